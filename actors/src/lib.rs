//! # chatkit-actors: the engine of chatkit-rs
//!
//! Everything behind the HTTP edge, with no web framework in sight:
//!
//! - [`protocol`] — the ChatKit wire types (requests, threads, items, pages, stream events),
//!   serialized byte for byte like the reference SDK.
//! - [`ids`] — identifier generation (reference prefixes, 96 random bits).
//! - [`store`] — Postgres: migrations, per-user reads with cursor paging, batched writes.
//! - [`model`] — the OpenAI-compatible streaming client and the history → messages mapping.
//! - [`actors`] — the thread actor (one per live thread, supervised), the registry that routes
//!   to them, and the persistence actor that group-commits their writes.
//! - [`engine`] — the facade the edge calls: start a turn, rename, delete, list, read.
//! - [`error`] — the engine's error enum, mapped to HTTP by the edge.

pub mod actors;
pub mod config;
pub mod engine;
pub mod error;
pub mod ids;
pub mod mcp;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod store;
pub mod text;

pub use config::EngineSettings;
pub use engine::{Engine, TurnRequest, TurnStream};
pub use error::EngineError;
