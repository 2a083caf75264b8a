//! Command-line interface: `chatkit-rs [--config FILE] [COMMAND]`; no command = `serve`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A production ChatKit backend: actors, Postgres, SSE.
#[derive(Debug, Parser)]
#[command(name = "chatkit-rs", version, about, long_about = None)]
pub struct Cli {
    /// TOML file layered over config/default.toml (the environment, CHATKIT__SECTION__KEY,
    /// overrides both; the model API key comes from OPENAI_API_KEY only).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Print a short-lived HS token signed with the configured secret (local use only).
    DevToken {
        /// The user id (`sub` claim).
        #[arg(long, default_value = "dev-user")]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}
