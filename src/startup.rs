//! Builds and runs the application: database (embedded or external), migrations, engine,
//! HTTP server. `main` only parses arguments and calls in here.

use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use chatkit_actors::actors::persistence::BatchSettings;
use chatkit_actors::engine::TitleSettings;
use chatkit_actors::model::{ModelClient, ModelSettings};
use chatkit_actors::store::{PoolSettings, Store};
use chatkit_actors::{Engine, EngineSettings};

use crate::auth::Authenticator;
use crate::embedded_pg::EmbeddedPostgres;
use crate::http::{configure, request_id, AppState, Routes};
use crate::settings::{DatabaseTarget, Settings, MODEL_API_KEY_ENV};

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
            connect_timeout: settings.database.connect_timeout,
            wait_timeout: settings.database.connect_timeout,
        };
        let store = Store::new(pg_config, settings.database.schema.clone(), &pool)
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

fn engine_settings(settings: &Settings) -> EngineSettings {
    EngineSettings {
        history_limit: settings.model.history_limit,
        stream_buffer: settings.actors.stream_buffer,
        idle_timeout: settings.actors.idle_timeout,
        arbiters: settings.actors.arbiters,
        batch: BatchSettings {
            max_batch: settings.persistence.max_batch,
            flush_interval: settings.persistence.flush_interval,
            max_in_flight: settings.persistence.max_in_flight,
        },
        allow_cancel: settings.allow_cancel,
        max_live: settings.actors.max_live,
        titles: TitleSettings {
            enabled: settings.titles.enabled,
            prompt: settings.titles.prompt.clone(),
            max_chars: settings.titles.max_chars,
        },
        agent: settings.agent.clone(),
        cluster: settings.cluster.clone(),
    }
}

fn model_client(settings: &Settings) -> ModelClient {
    ModelClient::new(ModelSettings {
        base_url: settings.model.base_url.clone(),
        name: settings.model.name.clone(),
        api_key: std::env::var(MODEL_API_KEY_ENV)
            .ok()
            .filter(|k| !k.is_empty()),
        timeout: settings.model.timeout,
        instructions: settings.model.instructions.clone(),
        http2_prior_knowledge: settings.model.http2_prior_knowledge,
    })
}

/// Runs the server until SIGINT/SIGTERM, then flushes and stops the embedded database.
pub async fn serve(settings: Settings) -> Result<(), String> {
    let database = Database::open(&settings).await?;
    let engine = Engine::start(
        database.store.clone(),
        model_client(&settings),
        engine_settings(&settings),
    );
    let auth = Authenticator::new(settings.auth.clone());
    auth.warm_up().await;
    let state = web::Data::new(AppState {
        engine: engine.clone(),
        auth,
        auth_settings: settings.auth.clone(),
        limits: crate::http::limits::Limiter::new(settings.limits.clone()),
        max_body_bytes: settings.server.max_body_bytes,
        body_timeout: settings.server.body_timeout,
    });
    let state_for_app = state.clone();
    let routes = Routes {
        playground: settings.server.playground,
        dev_tokens: settings.server.development,
    };
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(request_id::middleware))
            .app_data(state_for_app.clone())
            .configure(|cfg| configure(cfg, routes))
    })
    .workers(settings.server.workers)
    // Small SSE writes must leave at once, not wait for the client's delayed ACK (~40 ms).
    .tcp_nodelay(true)
    .shutdown_timeout(settings.server.drain_timeout.as_secs())
    .bind(settings.server.bind);
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            database.close();
            return Err(format!("cannot listen on {}: {e}", settings.server.bind));
        }
    };
    let metrics = settings.metrics_bind.and_then(crate::http::metrics::server);
    let metrics_handle = metrics.as_ref().map(|m| m.handle());
    if let Some(metrics) = metrics {
        actix_web::rt::spawn(metrics);
    }
    for addr in server.addrs() {
        tracing::info!("listening on http://{addr}");
        // Also on stdout, for scripts and tests that start us with port 0.
        println!("listening on http://{addr}");
    }
    let result = server.run().await;
    if let Some(handle) = metrics_handle {
        handle.stop(false).await;
    }
    engine.flush().await;
    drop(Arc::new(state));
    database.close();
    result.map_err(|e| e.to_string())
}
