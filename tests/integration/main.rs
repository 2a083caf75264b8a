//! Integration tests: real PostgreSQL, the real `chatkit-rs` binary on port 0, the
//! `mock-llm` model, and the official SDK checking every body.

mod harness;

mod attachment_races;
mod attachments;
mod auth;
mod bad_input;
mod browser;
mod client_tools;
mod cluster;
mod cluster_nginx;
mod conversation;
mod cors;
mod crash;
mod drain;
mod failures;
mod first_hour;
mod fixtures;
mod forwarded;
mod fuzz;
mod ha;
mod hosted_tools;
mod hostile;
mod isolation;
mod jwks;
mod lifecycle;
mod limits;
mod model_side;
mod model_transport;
mod paging;
mod pgbouncer;
mod questions;
mod replicas;
mod restart;
mod robustness;
mod secrets;
mod startup;
mod supervision;
mod tool_servers;
mod tools;
mod traces;
mod widgets;
