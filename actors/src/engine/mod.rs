//! The engine's front door: what the HTTP layer calls. Streaming ops and changes go through
//! the thread's actor (routed by the registry, [`routing`]); reads are served from Postgres
//! ([`reads`]). [`Engine::start`] wires the actors; [`Engine::shutdown`] takes them down in
//! the order that loses nothing.

mod actions;
mod attachments;
mod choices;
mod dictation;
mod handover_listener;
mod reads;
mod turns;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use crate::actors::live_actors::LiveDirectory;
use crate::actors::persistence::{FlushNow, PersistenceActor};
use crate::actors::registry::{Registry, RetireAll};
use crate::actors::routing::ToThread;
use crate::actors::thread::ThreadActor;
use crate::actors::thread::{Delete, Rename};
use crate::attachments::UrlSigner;
use crate::config::EngineSettings;
use crate::deadline::Deadline;
use crate::error::EngineError;
use crate::ids::ThreadId;
use crate::mcp::ServerHealth;
use crate::model::ModelCatalog;
use crate::protocol::{InferenceOptions, Page, Thread};
use crate::store::Store;

use crate::actors::env::EngineEnv;
pub use crate::actors::turn::TurnStream;
/// What operators see of the cluster (`GET /admin/threads`, `GET /admin/instances`).
pub use crate::store::cluster::{InstanceRow, LiveThreadFilter, LiveThreadRow};
pub use attachments::AttachmentContent;
pub use turns::{OriginOf, Requester, TurnRequest};
pub use uploads::{UploadAuth, UploadBody};

/// What the composer can offer (`Engine::composer_options`).
#[derive(Clone, Debug, Default)]
pub struct ComposerOptions {
    pub models: Vec<(String, String)>,
    pub tools: Vec<(String, String)>,
    pub dictation: bool,
}

/// Handle to the running engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    env: Arc<EngineEnv>,
    registry: Addr<Registry>,
    /// The live thread actors (the registry publishes them): a message for one goes straight
    /// to it.
    directory: LiveDirectory<Addr<ThreadActor>>,
    /// The thread actors' arbiters, then the one of the registry and persistence actors.
    arbiters: Arc<Vec<Arbiter>>,
    stop_listener: Arc<watch::Sender<bool>>,
    /// Set when shutdown begins (`EngineEnv::stopping`).
    stopping: Arc<watch::Sender<bool>>,
    /// Model ids chosen while no picker is configured, each warned about once.
    unlisted_models: Arc<choices::UnlistedModels>,
    /// Dictation (`input.transcribe`).
    transcriber: Arc<crate::model::Transcriber>,
    /// Signs and checks attachment URLs.
    url_signer: Arc<UrlSigner>,
}

/// How long shutdown waits for running turns to end (their clients are gone by then, and
/// shutdown tells the others to stop, so they end at once by the cancellation rule, storing
/// what it stores).
const TURNS_END_TIMEOUT: Duration = Duration::from_secs(10);

impl Engine {
    /// Starts the persistence actor, the registry, the arbiter pool, the hand-over listener
    /// and the clean-up of unused uploads. `url_key` signs attachment URLs (the configured
    /// one, or [`Store::url_signing_key`]). Must run inside an actix system.
    pub fn start(store: Store, settings: EngineSettings, url_key: &[u8]) -> Engine {
        let models = ModelCatalog::new(settings.model.clone(), &settings.models);
        let core_arbiter = Arbiter::new();
        let batch = settings.batch.clone();
        let persist_store = store.clone();
        let persistence = PersistenceActor::start_in_arbiter(&core_arbiter.handle(), |_| {
            PersistenceActor::new(persist_store, batch)
        });
        let mut arbiters: Vec<Arbiter> = (0..settings.actors.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        let handles = arbiters.iter().map(Arbiter::handle).collect();
        let mcp_health = ServerHealth::new(&settings.agent.mcp_servers);
        let transcriber = Arc::new(crate::model::Transcriber::new(
            &settings.transcription,
            settings.model.api_key.clone(),
        ));
        let (stopping, stopping_seen) = watch::channel(false);
        let env = Arc::new(EngineEnv {
            store,
            models,
            persistence,
            settings,
            tool_catalog: Arc::default(),
            mcp_health,
            stopping: stopping_seen,
        });
        env.mcp_health.probe_all(&env.settings.agent.mcp_servers);
        let registry_env = env.clone();
        let directory = LiveDirectory::default();
        let published = directory.clone();
        let registry = Registry::start_in_arbiter(&core_arbiter.handle(), move |_| {
            Registry::new(registry_env, handles, published)
        });
        let (stop_listener, stopped) = watch::channel(false);
        core_arbiter.spawn(handover_listener::run(
            env.store.clone(),
            registry.clone(),
            env.settings.cluster.instance_id.clone(),
            stopped,
        ));
        if env.settings.attachments.enabled {
            core_arbiter.spawn(attachments::clean_up_unused(env.clone()));
        }
        arbiters.push(core_arbiter);
        Engine {
            env,
            registry,
            directory,
            arbiters: Arc::new(arbiters),
            stop_listener: Arc::new(stop_listener),
            stopping: Arc::new(stopping),
            unlisted_models: Arc::default(),
            transcriber,
            url_signer: Arc::new(UrlSigner::new(url_key)),
        }
    }

    /// protocol §7.2: a model the picker does not offer, or a tool choice the menu does not
    /// have, is refused before anything is stored.
    fn check_inference(&self, options: &InferenceOptions) -> Result<(), EngineError> {
        choices::check_inference(
            options,
            &self.env.models,
            &self.env.settings,
            &self.unlisted_models,
        )
    }

    /// What the composer can offer (the playground shows it): the model picker's and the tool
    /// menu's `(id, label)`, and whether dictation is on.
    pub fn composer_options(&self) -> ComposerOptions {
        let settings = &self.env.settings;
        ComposerOptions {
            models: settings
                .models
                .iter()
                .map(|m| (m.id.clone(), m.label.clone()))
                .collect(),
            tools: settings
                .tool_choices
                .iter()
                .map(|t| (t.id.clone(), t.label.clone()))
                .collect(),
            dictation: settings.transcription.enabled,
        }
    }

    /// `threads.update`.
    pub async fn rename_thread(
        &self,
        who: &Requester,
        thread_id: &ThreadId,
        title: &str,
    ) -> Result<Thread, EngineError> {
        let rename = self.to_thread(
            thread_id,
            Rename {
                user_id: who.user_id.clone(),
                deadline: who.deadline,
                title: title.to_string(),
            },
        );
        let meta = self.answer_by(who, "renaming the thread", rename).await?;
        Ok(meta.to_wire(Page::empty()))
    }

    /// `threads.delete`.
    pub async fn delete_thread(
        &self,
        who: &Requester,
        thread_id: &ThreadId,
    ) -> Result<(), EngineError> {
        let delete = self.to_thread(
            thread_id,
            Delete {
                user_id: who.user_id.clone(),
                deadline: who.deadline,
            },
        );
        self.answer_by(who, "deleting the thread", delete).await
    }

    /// Sends `message` to the actor of `thread_id`: straight to it when it is live here,
    /// else (or when it has just retired) through the registry, which starts it if needed
    /// and routes again past an actor that retired.
    async fn to_thread<M, T>(&self, thread_id: &ThreadId, message: M) -> Result<T, EngineError>
    where
        M: Message<Result = Result<T, EngineError>> + Clone + Send + 'static,
        T: Send + 'static,
        ThreadActor: Handler<M>,
    {
        if let Some((actor, _)) = self.directory.lookup(thread_id) {
            match actor.send(message.clone()).await {
                Ok(Err(EngineError::Retired)) | Err(MailboxError::Closed) => {}
                Ok(answer) => return answer,
                Err(MailboxError::Timeout) => {
                    return Err(EngineError::Unavailable("thread actor timed out".into()))
                }
            }
        }
        self.through_registry(ToThread::existing(thread_id, message))
            .await
    }

    /// Sends `message` through the registry (one message: it routes, starts the actor if
    /// needed, and routes again past an actor that retired).
    async fn through_registry<M, T>(&self, message: ToThread<M>) -> Result<T, EngineError>
    where
        M: Message<Result = Result<T, EngineError>> + Clone + Send + 'static,
        T: Send + 'static,
        ThreadActor: Handler<M>,
    {
        match self.registry.send(message).await {
            Ok(answer) => answer,
            Err(_) => Err(EngineError::Unavailable("the registry stopped".into())),
        }
    }

    /// Runs a request's `work` with its deadline in force, answering at the latest shortly
    /// after it (the thread's actor bounds its own waits by the deadline and answers first).
    /// Not an `async fn`, for the reason given at [`Deadline::scope`].
    fn answer_by<T>(
        &self,
        who: &Requester,
        what: &'static str,
        work: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> impl std::future::Future<Output = Result<T, EngineError>> {
        let answer_by = Deadline::from_instant(who.deadline.instant() + turns::ANSWER_GRACE);
        answer_by.bound(what, who.deadline.scope(work))
    }

    /// A request arriving now: its deadline is `database.operation_timeout_secs` from now.
    pub fn request_deadline(&self) -> Deadline {
        Deadline::after(self.env.store.operation_timeout())
    }

    /// Each configured tool server and whether it answers (`/readyz` lists them).
    pub fn tool_server_states(&self) -> Vec<(String, bool)> {
        self.env.mcp_health.states()
    }

    /// Database reachable and migrated.
    pub async fn is_ready(&self) -> bool {
        self.env.store.is_ready().await
    }

    /// Live threads across the cluster (admin).
    pub async fn admin_live_threads(
        &self,
        filter: &LiveThreadFilter,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<LiveThreadRow>, bool), EngineError> {
        let ttl = self.env.settings.cluster.lease_ttl;
        Ok(self
            .env
            .store
            .live_threads(filter, limit, after, ttl)
            .await?)
    }

    /// Instances with a recent heartbeat (admin).
    pub async fn admin_instances(&self) -> Result<Vec<InstanceRow>, EngineError> {
        Ok(self
            .env
            .store
            .instances(self.env.settings.cluster.lease_ttl * 3)
            .await?)
    }

    /// Takes the engine down after the HTTP server stopped: every thread actor retires once
    /// its turn ended (a turn whose client left stores what the cancellation rule stores),
    /// buffered writes commit, this instance leaves the cluster (its leases go), the
    /// hand-over listener ends and the arbiters stop. The engine serves nothing afterwards.
    pub async fn shutdown(&self) {
        // Turns that run on without their client (`stream.on_disconnect = "finish"`) stop now.
        let _ = self.stopping.send(true);
        match tokio::time::timeout(TURNS_END_TIMEOUT, self.registry.send(RetireAll)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the registry did not answer at shutdown"),
            Err(_) => tracing::warn!("turns still running at shutdown; their writes may be lost"),
        }
        let _ = self.env.persistence.send(FlushNow).await;
        self.leave_cluster().await;
        let _ = self.stop_listener.send(true);
        for arbiter in self.arbiters.iter() {
            arbiter.stop();
        }
    }

    async fn leave_cluster(&self) {
        let instance = &self.env.settings.cluster.instance_id;
        if let Err(error) = self.env.store.leave_cluster(instance).await {
            tracing::warn!(%error, "could not release this instance's leases; they will expire");
        }
    }
}
