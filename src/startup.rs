//! Builds and runs the application: database (embedded or external), migrations, engine,
//! HTTP server. `main` only parses arguments and calls in here.

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use chatkit_actors::store::{PoolSettings, Store};
use chatkit_actors::Engine;

use crate::auth::Authenticator;
use crate::embedded_pg::EmbeddedPostgres;
use crate::http::{configure, panics, request_id, AppState, Routes};
use crate::settings::{DatabaseTarget, Settings};

/// The database the server uses, and the private cluster behind it if we started one.
pub struct Database {
    pub store: Store,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects (starting the embedded cluster when no URL is configured) and migrates.
    pub async fn open(settings: &Settings) -> Result<Database, String> {
        let (pg_config, embedded) = match &settings.database.target {
            DatabaseTarget::External(config) => ((**config).clone(), None),
            DatabaseTarget::Embedded(dir) => {
                let dir = dir.clone();
                let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir))
                    .await
                    .map_err(|e| e.to_string())??;
                (pg.connection(), Some(pg))
            }
        };
        let pool = PoolSettings {
            max_size: settings.database.pool_size,
            writers: settings.engine.batch.max_in_flight,
            connect_timeout: settings.database.connect_timeout,
            wait_timeout: settings.database.connect_timeout,
            operation_timeout: settings.database.operation_timeout,
            prepared_statements: settings.database.prepared_statements,
            replica_max_wait: settings.database.replica_max_wait,
        };
        let listen = settings.database.listen.as_deref().cloned();
        let store = Store::with_replicas(
            pg_config,
            listen,
            settings.database.replicas.0.clone(),
            settings.database.schema.clone(),
            &pool,
        )
        .map_err(|e| e.to_string());
        let store = match store {
            Ok(store) => store,
            Err(e) => {
                if let Some(pg) = &embedded {
                    pg.stop();
                }
                return Err(e);
            }
        };
        if let Err(error) = store.migrate().await {
            if let Some(pg) = &embedded {
                pg.stop();
            }
            return Err(format!("cannot prepare the database: {error}"));
        }
        Ok(Database { store, embedded })
    }

    pub fn close(&self) {
        if let Some(pg) = &self.embedded {
            pg.stop();
        }
    }
}

/// Why the server could not start or run: a problem the operator must fix in the
/// configuration or the environment (exit code 2, like an invalid configuration), or a
/// failure while running (exit code 1).
#[derive(Debug)]
pub enum StartError {
    Config(String),
    Runtime(String),
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) => 2,
            StartError::Runtime(_) => 1,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(message) | StartError::Runtime(message) => f.write_str(message),
        }
    }
}

impl From<String> for StartError {
    fn from(message: String) -> Self {
        StartError::Runtime(message)
    }
}

/// The ports we serve on, bound before anything else starts, so a port in use is one clear
/// line at start-up.
struct Listeners {
    server: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
}

impl Listeners {
    fn reserve(settings: &Settings) -> Result<Listeners, StartError> {
        let server = reserve_listener(
            settings.server.bind,
            "server.bind",
            "free the port or choose another server.bind",
        )?;
        let metrics = settings
            .metrics_bind
            .map(|addr| {
                reserve_listener(
                    addr,
                    "metrics.bind",
                    "free the port, choose another metrics.bind, or set metrics.enabled = false",
                )
            })
            .transpose()?;
        Ok(Listeners { server, metrics })
    }
}

/// Binds `addr` for the setting `key`; a failure is a configuration error naming `remedy`.
fn reserve_listener(
    addr: std::net::SocketAddr,
    key: &str,
    remedy: &str,
) -> Result<std::net::TcpListener, StartError> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        // actix-web's default backlog: bursts of thousands of connections queue, not fail.
        socket.listen(1024)?.into_std()
    };
    bind().map_err(|error| {
        StartError::Config(format!(
            "cannot listen on {addr} ({key}): {error}; {remedy}"
        ))
    })
}

/// Runs the server until SIGINT/SIGTERM, then drains, shuts the engine down and stops the
/// embedded database. In order: the ports, the database, the engine, the HTTP servers.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let listeners = Listeners::reserve(&settings)?;
    let database = Database::open(&settings).await?;
    let result = serve_with(&settings, &database, listeners).await;
    database.close();
    result
}

/// Everything that runs on the open database: the engine and the HTTP servers, until stopped
/// and drained, then the engine shut down.
async fn serve_with(
    settings: &Settings,
    database: &Database,
    listeners: Listeners,
) -> Result<(), StartError> {
    let url_key = url_signing_key(settings, &database.store).await?;
    let mcp_servers = &settings.engine.agent.mcp_servers;
    let mcp_names: Vec<&str> = mcp_servers.iter().map(|s| s.name.as_str()).collect();
    crate::http::metrics::export_known(&mcp_names);
    let engine = Engine::start(database.store.clone(), settings.engine.clone(), &url_key);
    let state = app_state(settings, engine.clone()).await;
    let (server, addrs) = http_server(settings, state.clone(), listeners.server)?;
    let metrics = start_metrics(listeners.metrics)?;
    // Watch SIGTERM/SIGINT before saying we listen: a signal that arrives right after the
    // line (scripts and tests stop us as soon as they read it) must be handled, not kill us.
    let stop_signal = StopSignal::watch();
    for addr in addrs {
        tracing::info!("listening on http://{addr}");
        // Also on stdout, for scripts and tests that start us with port 0.
        println!("listening on http://{addr}");
    }
    let result = run_until_stopped(server, stop_signal).await;
    if let Some(handle) = metrics {
        handle.stop(false).await;
    }
    engine.shutdown().await;
    drop(state);
    result
}

/// The key of attachment URL signatures: configured, or the one kept in the database.
async fn url_signing_key(settings: &Settings, store: &Store) -> Result<Vec<u8>, StartError> {
    match &settings.engine.attachments.signing_key {
        Some(key) => Ok(key.clone()),
        None => store.url_signing_key().await.map_err(|error| {
            StartError::Runtime(format!("cannot read the URL signing key: {error}"))
        }),
    }
}

/// What every request handler shares.
async fn app_state(settings: &Settings, engine: Engine) -> web::Data<AppState> {
    let auth = Authenticator::new(settings.auth.clone());
    auth.warm_up().await;
    let transcription_limits = crate::http::limits::LimitSettings {
        requests_per_minute: engine.transcriptions_per_minute(),
        max_streams_per_user: 0,
        max_open_streams: 0,
    };
    web::Data::new(AppState {
        engine,
        auth,
        auth_settings: settings.auth.clone(),
        limits: crate::http::limits::Limiter::new(settings.limits.clone()),
        transcription_limits: crate::http::limits::Limiter::new(transcription_limits),
        max_body_bytes: settings.server.max_body_bytes,
        body_timeout: settings.server.body_timeout,
        trusted_proxies: settings.server.trusted_proxies.clone(),
        model_notice: settings.model_warning.clone(),
    })
}

/// The ChatKit server on `listener`, not yet running, and the addresses it serves.
fn http_server(
    settings: &Settings,
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
) -> Result<(Server, Vec<std::net::SocketAddr>), StartError> {
    let routes = Routes {
        playground: settings.server.playground,
        dev_tokens: settings.server.development,
    };
    let cors_origins = settings.server.cors_allowed_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::Condition::new(
                !cors_origins.is_empty(),
                crate::http::cors(&cors_origins),
            ))
            .wrap(actix_web::middleware::from_fn(panics::middleware))
            .wrap(actix_web::middleware::from_fn(request_id::middleware))
            .app_data(state.clone())
            .configure(|cfg| configure(cfg, routes))
    })
    .workers(settings.server.workers)
    // Small SSE writes must leave at once, not wait for the client's delayed ACK (~40 ms).
    .tcp_nodelay(true)
    .shutdown_timeout(settings.server.drain_timeout.as_secs())
    // We handle SIGTERM/SIGINT ourselves: actix-server's own handling stops the whole actix
    // System 300 ms after the drain, which would stop the engine's arbiters under
    // `Engine::shutdown` (the actors, the persistence writer).
    .disable_signals()
    .listen(listener)
    .map_err(|e| StartError::Config(format!("cannot listen on {}: {e}", settings.server.bind)))?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

/// `/metrics` on its own port, when enabled; the handle that stops it.
fn start_metrics(
    listener: Option<std::net::TcpListener>,
) -> Result<Option<ServerHandle>, StartError> {
    let Some(listener) = listener else {
        return Ok(None);
    };
    let metrics = crate::http::metrics::server(listener)
        .map_err(|e| StartError::Config(format!("cannot serve metrics: {e}")))?;
    let handle = metrics.handle();
    actix_web::rt::spawn(metrics);
    Ok(Some(handle))
}

/// Serves until the stop signal, then drains: gracefully, and without stopping the actix
/// System (the engine shuts down after).
async fn run_until_stopped(server: Server, stop_signal: StopSignal) -> Result<(), StartError> {
    let draining = server.handle();
    actix_web::rt::spawn(async move {
        stop_signal.received().await;
        tracing::info!("stop signal received; draining");
        draining.stop(true).await;
    });
    server.await.map_err(|e| StartError::Runtime(e.to_string()))
}

/// SIGTERM or SIGINT (Ctrl-C), watched from the moment [`StopSignal::watch`] returns.
struct StopSignal {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignal {
    fn watch() -> StopSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::warn!(%error, "cannot watch {name}");
                None
            }
        };
        StopSignal {
            terminate: watch(SignalKind::terminate(), "SIGTERM"),
            interrupt: watch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    async fn received(mut self) {
        let terminate = async {
            match &mut self.terminate {
                Some(stream) => stream.recv().await,
                None => std::future::pending().await,
            }
        };
        let interrupt = async {
            match &mut self.interrupt {
                Some(stream) => stream.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = terminate => {}
            _ = interrupt => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_port_in_use_is_a_configuration_error_naming_the_key_and_the_remedy() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let error = reserve_listener(addr, "metrics.bind", "set metrics.enabled = false")
            .expect_err("the port is taken");
        assert_eq!(error.exit_code(), 2);
        let line = error.to_string();
        assert!(
            line.starts_with(&format!("cannot listen on {addr} (metrics.bind): "))
                && line.ends_with("; set metrics.enabled = false")
                && !line.contains('\n'),
            "{line}"
        );
    }
}
