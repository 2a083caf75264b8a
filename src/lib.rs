//! # chatkit-rs: the HTTP edge
//!
//! - [`cli`] — arguments and subcommands.
//! - [`settings`] — layered configuration and its validation.
//! - [`telemetry`] — the log, and trace export over OTLP when configured (README "Traces").
//! - [`auth`] — bearer JWT verification (pinned algorithm, required claims).
//! - [`jwks`] — keys from a JWKS URL, by `kid`, cached and refreshed (rate-limited).
//! - [`embedded_pg`] — the private PostgreSQL used when no database URL is configured.
//! - [`http`] — routes, the `/chatkit` dispatcher, the SSE relay, the error mapping.
//! - [`startup`] — wiring: database, engine, server, graceful stop.
//!
//! The engine (actors, store, protocol) lives in the `chatkit-actors` crate.

pub mod auth;
pub mod cli;
pub mod embedded_pg;
pub mod http;
pub mod jwks;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod verified_tokens;
