//! The engine's front door: what the HTTP layer calls. Streaming ops and changes go through
//! the thread's actor (routed by the registry); reads are served from Postgres, which is
//! authoritative because every announced item was committed before its event left.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::value::RawValue;

use crate::actors::persistence::{FlushNow, Persist, PersistenceActor};
use crate::actors::registry::{Handover, LiveCount, Registry, Route, SpawnNew};
use crate::actors::thread::{Delete, Rename, StartTurn, ThreadActor, TurnInput};
use crate::error::EngineError;
use crate::ids::{new_id, prefix};
use crate::config::EngineSettings;
use crate::mcp::BearerToken;
use crate::model::ModelClient;
use crate::protocol::requests::{
    page_size, FeedbackParams, ListItemsParams, ListThreadsParams, UserMessageInput,
};
use crate::protocol::{Page, Thread, ThreadMeta, Timestamp};
use crate::store::{Store, WriteOp};

pub use crate::actors::turn::{TurnFrame, TurnStream};

/// The right to write a thread: this instance's id and the lease's fencing token.
#[derive(Clone, Debug)]
pub struct Lease {
    pub instance_id: String,
    pub fencing: i64,
}

/// What every actor shares.
pub struct EngineEnv {
    pub store: Store,
    pub model: ModelClient,
    pub persistence: Addr<PersistenceActor>,
    pub settings: EngineSettings,
    /// Tool lists shared by every thread actor's MCP sessions.
    pub tool_catalog: Arc<crate::mcp::ToolCatalog>,
}

impl EngineEnv {
    /// Commits a thread's `ops` only if `lease` is still the thread's (fencing), recording
    /// the thread's state for the cluster view.
    pub async fn persist_as(
        &self,
        lease: &Lease,
        state: &'static str,
        ops: Vec<WriteOp>,
    ) -> Result<(), EngineError> {
        self.persist(fenced(lease, state, ops)).await
    }

    /// Commits `ops` through the persistence actor (group commit).
    pub async fn persist(&self, ops: Vec<WriteOp>) -> Result<(), EngineError> {
        match self.persistence.send(Persist(ops)).await {
            Ok(result) => result.map_err(EngineError::from),
            Err(_) => Err(EngineError::Unavailable("persistence actor stopped".into())),
        }
    }
}

/// `ops` with a `LeaseCheck` right after any thread/lease creation they start with.
pub fn fenced(lease: &Lease, state: &'static str, mut ops: Vec<WriteOp>) -> Vec<WriteOp> {
    let Some(thread_id) = ops.iter().find_map(|op| op.thread_id_of()) else {
        return ops;
    };
    let check = WriteOp::LeaseCheck {
        thread_id: thread_id.to_string(),
        instance_id: lease.instance_id.clone(),
        fencing: lease.fencing,
        state,
    };
    let at = ops
        .iter()
        .position(|op| !matches!(op, WriteOp::InsertThread(_) | WriteOp::InsertLease { .. }))
        .unwrap_or(ops.len());
    ops.insert(at, check);
    ops
}

/// A streaming request, as the engine sees it.
#[derive(Debug)]
pub enum TurnRequest {
    Create {
        input: UserMessageInput,
    },
    AddUserMessage {
        thread_id: String,
        input: UserMessageInput,
    },
    ClientToolOutput {
        thread_id: String,
        result: serde_json::Value,
    },
    RetryAfterItem {
        thread_id: String,
        item_id: String,
    },
}

/// Handle to the running engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    env: Arc<EngineEnv>,
    registry: Addr<Registry>,
    _arbiters: Arc<Vec<Arbiter>>,
}

/// How often a request re-routes when it meets an actor that just retired.
const ROUTE_ATTEMPTS: usize = 4;

impl Engine {
    /// Starts the persistence actor, the registry and the arbiter pool. Must run inside an
    /// actix system.
    pub fn start(store: Store, settings: EngineSettings) -> Engine {
        let model = ModelClient::new(settings.model.clone());
        let persistence_arbiter = Arbiter::new();
        let batch = settings.batch.clone();
        let persist_store = store.clone();
        let persistence = PersistenceActor::start_in_arbiter(&persistence_arbiter.handle(), |_| {
            PersistenceActor::new(persist_store, batch)
        });
        let pool: Vec<Arbiter> = (0..settings.actors.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        let handles = pool.iter().map(Arbiter::handle).collect();
        let env = Arc::new(EngineEnv {
            store,
            model,
            persistence,
            settings,
            tool_catalog: Arc::default(),
        });
        let registry_env = env.clone();
        let registry = Registry::start_in_arbiter(&persistence_arbiter.handle(), move |_| {
            Registry::new(registry_env, handles)
        });
        let listener_registry = registry.clone();
        let listener_store = env.store.clone();
        let instance_id = env.settings.cluster.instance_id.clone();
        persistence_arbiter.spawn(listen_for_handovers(
            listener_store,
            listener_registry,
            instance_id,
        ));
        let mut arbiters = pool;
        arbiters.push(persistence_arbiter);
        Engine {
            env,
            registry,
            _arbiters: Arc::new(arbiters),
        }
    }

    pub fn store(&self) -> &Store {
        &self.env.store
    }

    /// Starts a streamed turn. Errors here happen before anything was written.
    pub async fn start_turn(
        &self,
        user_id: &str,
        token: Option<BearerToken>,
        request: TurnRequest,
    ) -> Result<TurnStream, EngineError> {
        match request {
            TurnRequest::Create { input } => {
                let meta = ThreadMeta::new(
                    new_id(prefix::THREAD),
                    user_id.to_string(),
                    Timestamp::now(),
                );
                let addr = self.registry.send(SpawnNew { meta }).await?;
                let turn = StartTurn {
                    user_id: user_id.to_string(),
                    token,
                    input: TurnInput::UserMessage(input),
                };
                addr.send(turn).await?
            }
            TurnRequest::AddUserMessage { thread_id, input } => {
                self.turn_on(&thread_id, user_id, token, TurnInput::UserMessage(input))
                    .await
            }
            TurnRequest::ClientToolOutput { thread_id, result } => {
                self.turn_on(
                    &thread_id,
                    user_id,
                    token,
                    TurnInput::ClientToolOutput(result),
                )
                .await
            }
            TurnRequest::RetryAfterItem { thread_id, item_id } => {
                self.turn_on(&thread_id, user_id, token, TurnInput::RetryAfter(item_id))
                    .await
            }
        }
    }

    async fn turn_on(
        &self,
        thread_id: &str,
        user_id: &str,
        token: Option<BearerToken>,
        input: TurnInput,
    ) -> Result<TurnStream, EngineError> {
        // The input is moved into the first delivery attempt that reaches a live actor; an
        // actor that retired in between answers `Retired` before looking at it, so we keep a
        // copy for the next attempt.
        let mut input = Some(input);
        for _ in 0..ROUTE_ATTEMPTS {
            let addr = self.route(thread_id).await?;
            let this_try = input
                .take()
                .ok_or_else(|| EngineError::Internal("lost input".into()))?;
            let retry_copy = clone_input(&this_try);
            match addr
                .send(StartTurn {
                    user_id: user_id.to_string(),
                    token: token.clone(),
                    input: this_try,
                })
                .await
            {
                Ok(Err(EngineError::Retired)) | Err(MailboxError::Closed) => {
                    input = Some(retry_copy)
                }
                Ok(result) => return result,
                Err(MailboxError::Timeout) => {
                    return Err(EngineError::Unavailable("thread actor timed out".into()))
                }
            }
        }
        Err(EngineError::Unavailable(
            "thread actor kept retiring".into(),
        ))
    }

    async fn route(&self, thread_id: &str) -> Result<Addr<ThreadActor>, EngineError> {
        Ok(self
            .registry
            .send(Route {
                thread_id: thread_id.to_string(),
            })
            .await?)
    }

    /// Sends `make()` to the thread's actor, routing again if it retired meanwhile.
    async fn ask<M>(&self, thread_id: &str, make: impl Fn() -> M) -> Result<M::Result, EngineError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        ThreadActor: Handler<M>,
    {
        for _ in 0..ROUTE_ATTEMPTS {
            let addr = self.route(thread_id).await?;
            match addr.send(make()).await {
                Ok(result) => return Ok(result),
                Err(MailboxError::Closed) => continue,
                Err(MailboxError::Timeout) => {
                    return Err(EngineError::Unavailable("thread actor timed out".into()))
                }
            }
        }
        Err(EngineError::Unavailable(
            "thread actor kept retiring".into(),
        ))
    }

    /// `threads.update`.
    pub async fn rename_thread(
        &self,
        user_id: &str,
        thread_id: &str,
        title: &str,
    ) -> Result<Thread, EngineError> {
        for _ in 0..ROUTE_ATTEMPTS {
            let rename = || Rename {
                user_id: user_id.to_string(),
                title: title.to_string(),
            };
            match self.ask(thread_id, rename).await? {
                Err(EngineError::Retired) => continue,
                other => return other.map(|meta| meta.to_wire(Page::empty())),
            }
        }
        Err(EngineError::Unavailable(
            "thread actor kept retiring".into(),
        ))
    }

    /// `threads.delete`.
    pub async fn delete_thread(&self, user_id: &str, thread_id: &str) -> Result<(), EngineError> {
        for _ in 0..ROUTE_ATTEMPTS {
            match self
                .ask(thread_id, || Delete {
                    user_id: user_id.to_string(),
                })
                .await?
            {
                Err(EngineError::Retired) => continue,
                other => return other,
            }
        }
        Err(EngineError::Unavailable(
            "thread actor kept retiring".into(),
        ))
    }

    /// Ownership check for reads: the thread's metadata if `user_id` may see it.
    async fn visible_thread(
        &self,
        user_id: &str,
        thread_id: &str,
    ) -> Result<ThreadMeta, EngineError> {
        self.env
            .store
            .load_user_thread(user_id, thread_id)
            .await?
            .ok_or(EngineError::ThreadNotFound)
    }

    /// `threads.get_by_id`: the thread with its oldest 20 visible items (§3.8).
    pub async fn get_thread(
        &self,
        user_id: &str,
        thread_id: &str,
    ) -> Result<Thread<Box<RawValue>>, EngineError> {
        let meta = self.visible_thread(user_id, thread_id).await?;
        let items = self
            .visible_items(
                thread_id,
                page_size(None).unwrap_or(20),
                crate::protocol::Order::Asc,
                None,
            )
            .await?;
        Ok(meta.to_wire(items))
    }

    /// `threads.list` (§3.9).
    pub async fn list_threads(
        &self,
        user_id: &str,
        params: &ListThreadsParams,
    ) -> Result<Page<Thread>, EngineError> {
        let limit = params.page_size().map_err(EngineError::InvalidInput)?;
        let page = self
            .env
            .store
            .list_threads(user_id, limit, params.order, params.after.as_deref())
            .await?;
        Ok(Page {
            data: page.data.iter().map(|t| t.to_wire(Page::empty())).collect(),
            has_more: page.has_more,
            after: page.after,
        })
    }

    /// `items.list` (§3.10): hidden items filtered after paging.
    pub async fn list_items(
        &self,
        user_id: &str,
        params: &ListItemsParams,
    ) -> Result<Page<Box<RawValue>>, EngineError> {
        self.visible_thread(user_id, &params.thread_id).await?;
        let limit = page_size(params.limit).map_err(EngineError::InvalidInput)?;
        self.visible_items(
            &params.thread_id,
            limit,
            params.order,
            params.after.as_deref(),
        )
        .await
    }

    async fn visible_items(
        &self,
        thread_id: &str,
        limit: u32,
        order: crate::protocol::Order,
        after: Option<&str>,
    ) -> Result<Page<Box<RawValue>>, EngineError> {
        let page = self
            .env
            .store
            .list_items(thread_id, limit, order, after)
            .await?;
        let data = page
            .data
            .iter()
            .filter(|item| !item.is_hidden())
            .map(|item| item.raw_json())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            data,
            has_more: page.has_more,
            after: page.after,
        })
    }

    /// `items.feedback`: recorded for the thread's owner; item ids are not checked (§13.19).
    pub async fn feedback(
        &self,
        user_id: &str,
        params: &FeedbackParams,
    ) -> Result<(), EngineError> {
        self.visible_thread(user_id, &params.thread_id).await?;
        let kind = match params.kind {
            crate::protocol::requests::FeedbackKind::Positive => "positive",
            crate::protocol::requests::FeedbackKind::Negative => "negative",
        };
        self.env
            .persist(vec![WriteOp::Feedback {
                thread_id: params.thread_id.clone(),
                user_id: user_id.to_string(),
                item_ids: params.item_ids.clone(),
                kind: kind.to_string(),
            }])
            .await
    }

    /// Database reachable and migrated.
    pub async fn is_ready(&self) -> bool {
        self.env.store.is_ready().await
    }

    /// Live thread actors on this instance.
    pub async fn live_threads(&self) -> usize {
        self.registry.send(LiveCount).await.unwrap_or(0)
    }

    /// Commits everything buffered and leaves the cluster (for shutdown).
    pub async fn shutdown(&self) {
        let _ = self.env.persistence.send(FlushNow).await;
        let instance = &self.env.settings.cluster.instance_id;
        let mut result = self.env.store.leave_cluster(instance).await;
        if matches!(&result, Err(e) if e.is_unavailable()) {
            // A pooled connection whose task lived on an arbiter already stopped by the
            // shutdown reports "connection closed"; the pool then opens a fresh one.
            result = self.env.store.leave_cluster(instance).await;
        }
        if let Err(error) = result {
            tracing::warn!(%error, "could not release this instance's leases; they will expire");
        }
    }

    /// This instance's id in the cluster.
    pub fn instance_id(&self) -> &str {
        &self.env.settings.cluster.instance_id
    }

    /// Live threads across the cluster (admin).
    pub async fn admin_live_threads(
        &self,
        filter: &crate::store::cluster::LiveThreadFilter,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<crate::store::cluster::LiveThreadRow>, bool), EngineError> {
        let ttl = self.env.settings.cluster.lease_ttl;
        Ok(self
            .env
            .store
            .live_threads(filter, limit, after, ttl)
            .await?)
    }

    /// Instances with a recent heartbeat (admin).
    pub async fn admin_instances(
        &self,
    ) -> Result<Vec<crate::store::cluster::InstanceRow>, EngineError> {
        Ok(self
            .env
            .store
            .instances(self.env.settings.cluster.lease_ttl * 3)
            .await?)
    }
}

/// Keeps a dedicated (non-pooled) connection listening for hand-over requests and passes them
/// to the registry; reconnects after a failure.
async fn listen_for_handovers(store: Store, registry: Addr<Registry>, instance_id: String) {
    use futures::StreamExt;
    let mut config = store.connection_config().clone();
    // Other instances look for this name to tell whether we are alive.
    config.application_name(crate::store::cluster::listener_application_name(
        store.schema().as_str(),
        &instance_id,
    ));
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let statement = format!("LISTEN {}", crate::store::cluster::HANDOVER_CHANNEL);
                let listen = client.batch_execute(&statement);
                // The LISTEN's reply arrives through the connection, which we poll below.
                let mut listen = Box::pin(listen);
                let mut listening = false;
                loop {
                    tokio::select! {
                        result = &mut listen, if !listening => {
                            if let Err(error) = result {
                                tracing::warn!(%error, "LISTEN failed");
                                break;
                            }
                            listening = true;
                        }
                        message = messages.next() => match message {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(note))) => {
                                // `<owner> <thread id>`: only the owner hands over.
                                if let Some((owner, thread_id)) = note.payload().split_once(' ') {
                                    if owner == instance_id {
                                        registry.do_send(Handover { thread_id: thread_id.to_string() });
                                    }
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(error)) => {
                                tracing::warn!(%error, "hand-over listener lost its connection");
                                break;
                            }
                            None => break,
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "hand-over listener cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn clone_input(input: &TurnInput) -> TurnInput {
    match input {
        TurnInput::UserMessage(m) => TurnInput::UserMessage(m.clone()),
        TurnInput::ClientToolOutput(v) => TurnInput::ClientToolOutput(v.clone()),
        TurnInput::RetryAfter(id) => TurnInput::RetryAfter(id.clone()),
    }
}
