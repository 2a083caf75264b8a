//! # chatkit-actors: the engine of chatkit-rs
//!
//! Everything behind the HTTP edge, with no web framework in sight. What the edge uses is
//! public; everything else is `pub(crate)`, so the compiler points at dead code.
//!
//! - [`engine`] — the facade the edge calls: start a turn, rename, delete, read, shut down.
//! - [`deadline`] — a request's one deadline, shared by every database wait it makes.
//! - [`config`] — the engine's configuration sections, deserialized and checked here.
//! - [`protocol`] — the ChatKit wire types (requests, threads, items, pages, stream events),
//!   serialized byte for byte like the reference SDK (`specs/protocol.md`).
//! - [`ids`] — identifiers: generated ones, and the newtypes client ids are parsed into.
//! - [`attachments`] — accepted media types, signed upload and preview URLs, attachments in
//!   the model's input.
//! - [`text`] — cutting outside text on character boundaries.
//! - [`error`] — the engine's error enum, mapped to HTTP by the edge.
//! - [`store`] — Postgres: migrations, per-user reads with cursor paging, batched writes,
//!   leases (the edge only opens it and lists the cluster for operators).
//! - [`metrics`] — the engine's Prometheus metrics.
//! - `actors` — the thread actor (one per live thread, supervised), the registry that routes
//!   to them, and the persistence actor that group-commits their writes.
//! - `model` — the OpenAI-compatible streaming client and the history → messages mapping.
//! - `mcp` — MCP tool servers over Streamable HTTP.
//! - [`trace`] — the engine's spans, and the request's span carried between actors so that
//!   a turn, its model and tool calls and its commit are one trace.
//! - [`widgets`] — widgets from tool results (validation, `.widget` templates, streaming
//!   diffs) and the actions a widget may send.

mod actors;
pub mod attachments;
pub mod config;
pub mod deadline;
pub mod engine;
pub mod error;
mod frames;
pub mod ids;
mod mcp;
pub mod metrics;
mod model;
pub mod protocol;
pub mod store;
pub mod text;
mod tool_schema;
pub mod trace;
pub mod widgets;

pub use config::EngineSettings;
pub use deadline::Deadline;
pub use engine::{Engine, OriginOf, Requester, TurnRequest, TurnStream};
pub use error::{EngineError, InactiveStatus};
pub use ids::{AttachmentId, BearerToken, ItemId, ThreadId, UserId};
