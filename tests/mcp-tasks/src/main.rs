//! `mcp-tasks`: a task-list MCP server over Streamable HTTP, the Rust twin of
//! the reference `mcp_tasks.py`, used by the integration tests as the MCP
//! server a ChatKit agent talks to.
//!
//! - [`options`]: the command line.
//! - [`auth`]: the bearer-JWT gate that answers 401 before any MCP processing
//!   and hands the verified `sub` to the tools.
//! - [`front`]: hyper connections in front of rmcp's `StreamableHttpService`s,
//!   `/mcp` (the `tasks` server) and `/widgets` (the `board` server).
//! - [`tools`]: the MCP tools (`add_task`, `list_tasks`, `update_task`,
//!   `complete_task`, `delete_task`, `slow_echo`).
//! - [`widget_tools`]: the `tasks` tools that answer ChatKit widgets in
//!   `_meta` (`show_task`, `complete_task_card`, `delete_task_card`,
//!   `draft_report`, `highlight_task`, `bad_widget`).
//! - [`board`]: the `board` server's `task_board`, a widget as its result.
//! - [`widgets`]: the widget JSON and `_meta` builders.
//! - [`store`]: the in-memory task lists, one per user.
//! - [`log`]: the `--log` JSON-lines file tests read back.
//!
//! On start it prints `listening on http://ADDR` (the bound address) on one
//! line; it stops on SIGTERM or SIGINT.

mod ask_tools;
mod auth;
mod board;
mod front;
mod log;
mod options;
mod store;
mod tools;
mod widget_tools;
mod widgets;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use tokio::net::TcpListener;

use crate::auth::BearerAuth;
use crate::board::BoardServer;
use crate::front::Front;
use crate::log::EventLog;
use crate::options::{Exit, Options, USAGE};
use crate::store::TaskStore;
use crate::tools::TaskServer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(Exit::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(Exit::Usage(message)) => {
            eprintln!("mcp-tasks: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mcp-tasks: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let log = Arc::new(
        EventLog::open(options.log.as_deref())
            .map_err(|error| format!("cannot open the log file: {error}"))?,
    );
    let store = Arc::new(TaskStore::default());
    let server = TaskServer::new(Arc::clone(&store), Arc::clone(&log), options.tool_delay);
    let board = BoardServer::new(store, Arc::clone(&log));
    // The default config: sessions, SSE keep-alive, and `allowed_hosts` limited
    // to localhost/127.0.0.1/::1, which suits a loopback-only server. Both
    // endpoints share its cancellation token.
    let config = StreamableHttpServerConfig::default();
    let sessions_stop = config.cancellation_token.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config.clone(),
    );
    let widgets = StreamableHttpService::new(
        move || Ok(board.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let front = Arc::new(Front {
        auth: BearerAuth::new(
            &options.jwt_secret,
            options.audience.as_deref(),
            options.issuer.as_deref(),
        ),
        log,
        mcp,
        widgets,
    });

    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", options.addr))?;
    let addr = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("cannot write to stdout: {error}"))?;
    drop(stdout);

    front.serve(listener, stop_signal()).await;
    // Close every MCP session; open connections end with the runtime.
    sessions_stop.cancel();
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
