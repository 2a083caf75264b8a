//! Test harness: one PostgreSQL cluster and one mock model per test binary, a real server
//! process per test (own schema, port 0), and a small HTTP client that parses SSE and checks
//! every body with the official SDK. `use crate::harness::*;` brings all of it.
//!
//! | module | what |
//! |---|---|
//! | [`processes`] | spawning and killing the server under test ([`TestServer`]), the mock model ([`MockModel`]) and the MCP server ([`McpServer`]); waiting for `listening on`; [`shared`] (the cluster and mock every test uses); the model requests the mock saw |
//! | [`client`] | requests to `/chatkit` (bodies, ops, [`create_thread`], [`add_message`]…), [`Reply`], SSE parsing ([`Stream`], [`LiveStream`]), every body checked by the SDK |
//! | [`collector`] | an OTLP/HTTP trace receiver standing in for a collector ([`Collector`]), a hanging one, a dead endpoint, span trees |
//! | [`events`] | expected SSE streams as event lists, compared byte for byte ([`assert_frames`]) |
//! | [`tokens`] | JWT minting ([`token`], [`admin_token`], [`sign`]…) and the shared [`SECRET`] |
//! | [`wait`] | [`eventually`]: polling a check (sync or async) until it holds or a deadline passes; [`sleep_ms`] |
//! | [`postgres`] | [`postgres::TestPostgres`]: throwaway clusters, run by the server's own `embedded_pg` |
//! | [`nginx`] | [`nginx::Nginx`] stopped through its master, [`free_port`] |
//! | [`pgbouncer`] | [`pgbouncer::PgBouncer`] in transaction mode in front of a server, its admin console |
//! | [`sdk`] | the official Python SDK as a validator ([`Kind`]) |

pub mod client;
pub mod collector;
pub mod events;
pub mod nginx;
pub mod pgbouncer;
pub mod postgres;
pub mod processes;
pub mod sdk;
pub mod tokens;
pub mod wait;

pub use client::*;
pub use collector::*;
pub use events::*;
pub use nginx::*;
pub use processes::*;
pub use sdk::Kind;
pub use tokens::*;
pub use wait::*;
