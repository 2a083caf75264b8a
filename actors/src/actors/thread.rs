//! The thread actor: owns one thread's metadata and recent history, runs one turn at a time,
//! and retires when idle. It is supervised: when it stops after a failure (a panicking turn,
//! a commit it cannot vouch for) the supervisor restarts it and it reloads from Postgres.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::registry::{Registry, Retired};
use super::turn::{run_turn, TurnJob, TurnOutcome, TurnStream};
use crate::engine::{EngineEnv, Lease};
use crate::error::EngineError;
use crate::ids::{new_id, prefix};
use crate::mcp::{BearerToken, McpSessions};
use crate::model::history_messages;
use crate::protocol::requests::UserMessageInput;
use crate::protocol::{
    ItemBody, Page, ThreadItem, ThreadMeta, ThreadStatus, ThreadStreamEvent, Timestamp,
    ToolCallStatus, UserMessage,
};
use crate::store::WriteOp;

/// What starts a turn.
#[derive(Debug)]
pub enum TurnInput {
    UserMessage(UserMessageInput),
    /// §3.3: the browser's result for the pending client tool call.
    ClientToolOutput(Value),
    /// §3.4: drop everything after this user message and answer it again.
    RetryAfter(String),
}

/// Start a turn; answers with the event stream, or why not (before anything was written).
#[derive(Message)]
#[rtype(result = "Result<TurnStream, EngineError>")]
pub struct StartTurn {
    pub user_id: String,
    /// The caller's token, for tool servers that receive it on their transport.
    pub token: Option<BearerToken>,
    pub input: TurnInput,
}

/// Rename the thread (`threads.update`).
#[derive(Message)]
#[rtype(result = "Result<ThreadMeta, EngineError>")]
pub struct Rename {
    pub user_id: String,
    pub title: String,
}

/// Delete the thread and its items (`threads.delete`).
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Delete {
    pub user_id: String,
}

/// Another instance wants this thread: retire (releasing the lease) now, or after the turn.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandOver;

/// Retire now unless a turn is running (the registry keeps at most `max_live` actors).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Passivate;

/// Whether this actor can serve `user_id` (used before reads that need no actor work).
#[derive(Message)]
#[rtype(result = "Result<ThreadMeta, EngineError>")]
pub struct Describe {
    pub user_id: String,
}

enum ThreadState {
    /// Loading from Postgres (messages wait: the load runs with `ctx.wait`).
    Loading,
    Ready(Box<LiveThread>),
    /// The thread does not exist (or the load failed): the actor has retired.
    Gone,
}

struct LiveThread {
    meta: ThreadMeta,
    /// The newest items (hidden ones included), oldest first, at most `history_limit`.
    history: Vec<ThreadItem>,
    /// False for a thread created here whose first write has not committed yet.
    persisted: bool,
}

pub struct ThreadActor {
    actor_id: u64,
    thread_id: String,
    env: Arc<EngineEnv>,
    registry: Addr<Registry>,
    state: ThreadState,
    busy: bool,
    retired: bool,
    last_activity: Instant,
    load_error: Option<EngineError>,
    idle_check: Option<SpawnHandle>,
    /// One session per MCP server, lent to the running turn.
    mcp: Option<McpSessions>,
    /// The thread's lease fencing token, once this actor may write the thread. Acquired on
    /// the first write (a hand-over from another instance if needed), released on retirement.
    lease: Option<i64>,
    /// Another instance asked for the thread while a turn ran: retire when it ends.
    handover_requested: bool,
}

impl ThreadActor {
    /// An actor for an existing thread; it loads the thread when it starts.
    pub fn existing(
        actor_id: u64,
        thread_id: String,
        env: Arc<EngineEnv>,
        registry: Addr<Registry>,
    ) -> Self {
        let mcp = McpSessions::new(env.tool_catalog.clone());
        ThreadActor {
            actor_id,
            thread_id,
            env,
            registry,
            state: ThreadState::Loading,
            busy: false,
            retired: false,
            last_activity: Instant::now(),
            load_error: None,
            idle_check: None,
            mcp: Some(mcp),
            lease: None,
            handover_requested: false,
        }
    }

    /// An actor for a thread being created now; nothing is in the database yet.
    pub fn new_thread(
        actor_id: u64,
        meta: ThreadMeta,
        env: Arc<EngineEnv>,
        registry: Addr<Registry>,
    ) -> Self {
        let thread_id = meta.id.clone();
        let mut actor = Self::existing(actor_id, thread_id, env, registry);
        // The lease is created with the thread (fencing token 1), in the same transaction.
        actor.lease = Some(1);
        actor.state = ThreadState::Ready(Box::new(LiveThread {
            meta,
            history: Vec::new(),
            persisted: false,
        }));
        actor
    }

    /// Leaves the registry for good; later messages are told to route again.
    fn retire(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        self.retired = true;
        self.state = ThreadState::Gone;
        self.registry.do_send(Retired {
            thread_id: self.thread_id.clone(),
            actor_id: self.actor_id,
        });
        // Give the lease up (another instance may be waiting for it). Without a token (the
        // actor restarted after a failure) whatever row this instance holds goes.
        let fencing = self.lease.take();
        let (env, thread_id) = (self.env.clone(), self.thread_id.clone());
        actix::spawn(async move {
            let instance = &env.settings.cluster.instance_id;
            let released = match fencing {
                Some(fencing) => env.store.release_lease(&thread_id, instance, fencing).await,
                None => env.store.release_own_lease(&thread_id, instance).await,
            };
            if let Err(error) = released {
                tracing::debug!(%thread_id, %error, "lease not released; it lapses with the heartbeat");
            }
        });
        // Close the MCP sessions politely (bounded), without keeping the actor alive for it.
        if let Some(sessions) = self.mcp.take() {
            actix::spawn(sessions.close());
        }
        // With no timer left, the actor stops once the last address is dropped.
        if let Some(timer) = self.idle_check.take() {
            ctx.cancel_future(timer);
        }
    }

    /// The live thread if `user_id` may see it.
    fn live_for(&mut self, user_id: &str) -> Result<&mut LiveThread, EngineError> {
        if self.retired {
            return Err(self.load_error.clone().unwrap_or(EngineError::Retired));
        }
        match &mut self.state {
            ThreadState::Ready(live) if live.meta.user_id == user_id => Ok(live),
            ThreadState::Ready(_) => Err(EngineError::ThreadNotFound),
            ThreadState::Loading | ThreadState::Gone => Err(EngineError::Retired),
        }
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        let load = async move {
            let Some(meta) = env.store.load_thread(&thread_id).await? else {
                return Ok(None);
            };
            let history = env
                .store
                .recent_items(&thread_id, env.settings.history_limit)
                .await?;
            Ok::<_, EngineError>(Some(LiveThread {
                meta,
                history,
                persisted: true,
            }))
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| match result {
            Ok(Some(live)) => act.state = ThreadState::Ready(Box::new(live)),
            Ok(None) => {
                act.load_error = Some(EngineError::ThreadNotFound);
                act.retire(ctx);
            }
            Err(error) => {
                tracing::warn!(thread_id = %act.thread_id, %error, "could not load thread");
                act.load_error = Some(error);
                act.retire(ctx);
            }
        }));
    }

    /// Reloads the newest items (messages wait meanwhile).
    fn refill_history(&mut self, ctx: &mut Context<Self>) {
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        let load = async move {
            env.store
                .recent_items(&thread_id, env.settings.history_limit)
                .await
        };
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(history) => {
                if let ThreadState::Ready(live) = &mut act.state {
                    live.history = history;
                }
            }
            Err(error) => {
                tracing::warn!(thread_id = %act.thread_id, %error, "could not refill history; reloading");
                act.state = ThreadState::Loading;
                ctx.stop();
            }
        }));
    }

    fn lease(&self) -> Lease {
        Lease {
            instance_id: self.env.settings.cluster.instance_id.clone(),
            fencing: self.lease.unwrap_or(0),
        }
    }

    /// Runs `then` once this actor holds the thread's lease: acquires it first if needed
    /// (asking the current owner to hand the thread over), then reloads the thread, since
    /// another instance may have written it meanwhile.
    fn with_lease<R: 'static>(
        &mut self,
        user_id: &str,
        then: impl FnOnce(&mut Self, &mut Context<Self>) -> ResponseActFuture<Self, Result<R, EngineError>>
            + 'static,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<R, EngineError>> {
        if self.lease.is_some() {
            return then(self, ctx);
        }
        if let Err(e) = self.live_for(user_id) {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        if self.busy {
            return Box::pin(actix::fut::ready(Err(EngineError::ThreadBusy)));
        }
        self.busy = true;
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        let acquire = async move {
            let fencing = acquire_lease(&env, &thread_id).await?;
            let meta = env
                .store
                .load_thread(&thread_id)
                .await?
                .ok_or(EngineError::ThreadNotFound)?;
            let history = env
                .store
                .recent_items(&thread_id, env.settings.history_limit)
                .await?;
            Ok::<_, EngineError>((
                fencing,
                LiveThread {
                    meta,
                    history,
                    persisted: true,
                },
            ))
        };
        Box::pin(acquire.into_actor(self).then(move |acquired, act, ctx| {
            act.busy = false;
            match acquired {
                Ok((fencing, live)) => {
                    act.lease = Some(fencing);
                    act.state = ThreadState::Ready(Box::new(live));
                    then(act, ctx)
                }
                Err(e) => Box::pin(actix::fut::ready(Err(e))),
            }
        }))
    }

    fn prepare_turn(
        &mut self,
        user_id: &str,
        input: TurnInput,
        events: mpsc::Sender<super::turn::TurnFrame>,
    ) -> Result<TurnJob, EngineError> {
        if self.busy && self.live_for(user_id).is_ok() {
            return Err(EngineError::ThreadBusy);
        }
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        let live = self.live_for(user_id)?;
        let last_created_at = live.history.last().map(|i| i.created_at);
        let mut job = TurnJob {
            env: env.clone(),
            thread_id: thread_id.clone(),
            prelude_ops: Vec::new(),
            prelude_events: Vec::new(),
            prelude_items: Vec::new(),
            removed_ids: Vec::new(),
            model_input: Vec::new(),
            last_created_at,
            events,
            title_from: None,
            token: None,
            mcp: McpSessions::new(env.tool_catalog.clone()),
            lease: Lease {
                instance_id: String::new(),
                fencing: 0,
            },
        };
        let mut model_items: Vec<ThreadItem> = live.history.clone();
        match input {
            TurnInput::UserMessage(input) => {
                refuse_inactive(&live.meta.status)?;
                if !input.attachments.is_empty() {
                    return Err(EngineError::InvalidInput(
                        "attachments are not supported by this server".into(),
                    ));
                }
                let item = ThreadItem {
                    id: new_id(prefix::MESSAGE),
                    thread_id: thread_id.clone(),
                    created_at: Timestamp::now_after(last_created_at),
                    body: ItemBody::UserMessage(UserMessage {
                        content: input.content,
                        attachments: Vec::new(),
                        quoted_text: input.quoted_text,
                        inference_options: input.inference_options,
                    }),
                };
                if !live.persisted {
                    job.prelude_ops
                        .push(WriteOp::InsertThread(live.meta.clone()));
                    job.prelude_ops.push(WriteOp::InsertLease {
                        thread_id: thread_id.clone(),
                        instance_id: env.settings.cluster.instance_id.clone(),
                    });
                    job.prelude_events.push(ThreadStreamEvent::ThreadCreated {
                        thread: live.meta.to_wire(Page::empty()),
                    });
                }
                job.prelude_ops.push(WriteOp::put_item(&item));
                job.prelude_events
                    .push(ThreadStreamEvent::ItemDone { item: item.clone() });
                let answered_before = live
                    .history
                    .iter()
                    .any(|i| matches!(i.body, ItemBody::AssistantMessage(_)));
                if env.settings.titles.enabled && live.meta.title.is_none() && !answered_before {
                    if let ItemBody::UserMessage(m) = &item.body {
                        job.title_from = Some((live.meta.clone(), m.plain_text()));
                    }
                }
                job.last_created_at = Some(item.created_at);
                model_items.push(item.clone());
                job.prelude_items.push(item);
            }
            TurnInput::ClientToolOutput(result) => {
                refuse_inactive(&live.meta.status)?;
                let Some(newest) = live.history.last() else {
                    return Err(EngineError::Conflict(
                        "the thread has no pending client tool call".into(),
                    ));
                };
                let ItemBody::ClientToolCall(call) = &newest.body else {
                    return Err(EngineError::Conflict(
                        "the thread has no pending client tool call".into(),
                    ));
                };
                if call.status != ToolCallStatus::Pending {
                    return Err(EngineError::Conflict(
                        "the thread has no pending client tool call".into(),
                    ));
                }
                let mut completed = newest.clone();
                if let ItemBody::ClientToolCall(call) = &mut completed.body {
                    call.status = ToolCallStatus::Completed;
                    call.output = Some(result);
                }
                // Safety net of §3.3: other pending calls among the newest 20 items go away.
                let stale: Vec<String> = live
                    .history
                    .iter()
                    .rev()
                    .take(20)
                    .skip(1)
                    .filter(|i| matches!(&i.body, ItemBody::ClientToolCall(c) if c.status == ToolCallStatus::Pending))
                    .map(|i| i.id.clone())
                    .collect();
                job.prelude_ops.push(WriteOp::put_item(&completed));
                if !stale.is_empty() {
                    job.prelude_ops.push(WriteOp::DeleteItems {
                        thread_id: thread_id.clone(),
                        item_ids: stale.clone(),
                    });
                }
                model_items.retain(|i| !stale.contains(&i.id));
                if let Some(last) = model_items.last_mut() {
                    *last = completed.clone();
                }
                job.removed_ids = stale;
                job.prelude_items.push(completed);
            }
            TurnInput::RetryAfter(item_id) => {
                let Some(position) = live.history.iter().position(|i| i.id == item_id) else {
                    return Err(EngineError::ItemNotFound);
                };
                if !matches!(live.history[position].body, ItemBody::UserMessage(_)) {
                    return Err(EngineError::InvalidInput(format!(
                        "item {item_id} is not a user message"
                    )));
                }
                refuse_inactive(&live.meta.status)?;
                let removed: Vec<String> = live.history[position + 1..]
                    .iter()
                    .map(|i| i.id.clone())
                    .collect();
                // Everything after the target goes, in storage too (even items older than
                // what memory holds could not exist after it: memory holds the newest items).
                job.prelude_ops.push(WriteOp::DeleteItemsAfter {
                    thread_id: thread_id.clone(),
                    item_id: item_id.clone(),
                });
                model_items.truncate(position + 1);
                job.last_created_at = model_items.last().map(|i| i.created_at);
                job.removed_ids = removed;
            }
        }
        let limit = env.settings.history_limit as usize;
        let skip = model_items.len().saturating_sub(limit);
        job.model_input =
            history_messages(&env.model.settings().instructions, &model_items[skip..]);
        Ok(job)
    }

    fn finish_turn(&mut self, mut outcome: TurnOutcome, ctx: &mut Context<Self>) {
        self.busy = false;
        self.mcp = outcome.mcp.take();
        if outcome.prelude_committed && !outcome.reload && !outcome.idle_written {
            // The cluster view shows the thread idle again (rides on the next group commit).
            let lease = self.lease();
            let idle = WriteOp::LeaseCheck {
                thread_id: self.thread_id.clone(),
                instance_id: lease.instance_id,
                fencing: lease.fencing,
                state: "idle",
            };
            self.env
                .persistence
                .do_send(crate::actors::persistence::Persist(vec![idle]));
        }
        self.last_activity = Instant::now();
        if outcome.reload {
            // Memory may disagree with Postgres (or the lease was lost): restart through the
            // supervisor, which reloads; the lease is taken again on the next write.
            self.state = ThreadState::Loading;
            self.lease = None;
            ctx.stop();
            return;
        }
        if self.handover_requested {
            self.retire(ctx);
            return;
        }
        let limit = self.env.settings.history_limit as usize;
        let ThreadState::Ready(live) = &mut self.state else {
            return;
        };
        if outcome.prelude_committed {
            live.persisted = true;
        } else if !live.persisted {
            self.retire(ctx);
            return;
        }
        if live.meta.title.is_none() {
            live.meta.title = outcome.title;
        }
        live.history
            .retain(|i| !outcome.removed_ids.contains(&i.id));
        for item in outcome.committed {
            match live.history.iter_mut().find(|i| i.id == item.id) {
                Some(existing) => *existing = item,
                None => live.history.push(item),
            }
        }
        let excess = live.history.len().saturating_sub(limit);
        live.history.drain(..excess);
        if !outcome.removed_ids.is_empty() && live.history.len() < limit {
            // A retry shrank the window: older items may now fit in it again.
            self.refill_history(ctx);
        }
    }
}

/// Takes the thread's lease, asking its current owner (once) to hand it over and waiting up
/// to `cluster.handover_timeout`. A thread streaming elsewhere is busy (409), as it would be
/// here.
async fn acquire_lease(env: &EngineEnv, thread_id: &str) -> Result<i64, EngineError> {
    use crate::store::cluster::LeaseAttempt;
    let cluster = &env.settings.cluster;
    let deadline = Instant::now() + cluster.handover_timeout;
    let mut asked = false;
    let mut busy_checks = 0;
    loop {
        match env
            .store
            .acquire_lease(thread_id, &cluster.instance_id, cluster.lease_ttl)
            .await?
        {
            LeaseAttempt::Acquired(fencing) => return Ok(fencing),
            // Streaming elsewhere: busy. Look again for a short while first, in case its
            // owner just died and Postgres has not yet noticed its connection closing.
            LeaseAttempt::Held {
                streaming: true, ..
            } if busy_checks >= 5 => return Err(EngineError::ThreadBusy),
            LeaseAttempt::Held {
                streaming: true, ..
            } => {
                busy_checks += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            LeaseAttempt::Held { owner, .. } => {
                if !asked {
                    tracing::debug!(%thread_id, %owner, "asking for a hand-over");
                    env.store.request_handover(thread_id, &owner).await?;
                    asked = true;
                }
                if Instant::now() >= deadline {
                    return Err(EngineError::Unavailable(format!(
                        "thread still held by {owner}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

fn refuse_inactive(status: &ThreadStatus) -> Result<(), EngineError> {
    match status {
        ThreadStatus::Active => Ok(()),
        ThreadStatus::Locked { reason } => Err(EngineError::ThreadNotActive {
            status: "locked",
            reason: reason.clone(),
        }),
        ThreadStatus::Closed { reason } => Err(EngineError::ThreadNotActive {
            status: "closed",
            reason: reason.clone(),
        }),
    }
}

impl Actor for ThreadActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
        if self.retired {
            return;
        }
        if matches!(self.state, ThreadState::Loading) {
            self.load(ctx);
        }
        let idle = self.env.settings.actors.idle_timeout;
        let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        self.idle_check = Some(ctx.run_interval(every, move |act, ctx| {
            if !act.busy && act.last_activity.elapsed() >= idle {
                tracing::debug!(thread_id = %act.thread_id, "idle thread actor retires");
                act.retire(ctx);
            }
        }));
    }
}

impl Supervised for ThreadActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!(thread_id = %self.thread_id, "thread actor restarting; reloading from Postgres");
        self.busy = false;
        self.lease = None;
        if !self.retired {
            self.state = ThreadState::Loading;
        }
    }
}

impl ThreadActor {
    fn start_turn(
        &mut self,
        msg: StartTurn,
        ctx: &mut Context<Self>,
    ) -> Result<TurnStream, EngineError> {
        self.last_activity = Instant::now();
        let (tx, rx) = mpsc::channel(self.env.settings.actors.stream_buffer);
        let mut job = self.prepare_turn(&msg.user_id, msg.input, tx.clone())?;
        job.token = msg.token;
        job.mcp = self
            .mcp
            .take()
            .unwrap_or_else(|| McpSessions::new(self.env.tool_catalog.clone()));
        job.lease = self.lease();
        self.busy = true;
        let thread_id = self.thread_id.clone();
        let guarded = AssertUnwindSafe(run_turn(job)).catch_unwind();
        ctx.spawn(
            guarded
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(outcome) => act.finish_turn(outcome, ctx),
                    Err(_panic) => {
                        tracing::error!(%thread_id, "turn panicked; restarting the thread actor");
                        let _ = tx.try_send(Ok(ThreadStreamEvent::stream_error(true).to_sse()));
                        act.busy = false;
                        act.state = ThreadState::Loading;
                        ctx.stop();
                    }
                }),
        );
        Ok(rx)
    }

    /// A retry target that memory cannot tell about: memory is full (the thread may be
    /// longer) and the id is not in it.
    fn retry_target_beyond_memory(&mut self, user_id: &str, item_id: &str) -> bool {
        let limit = self.env.settings.history_limit as usize;
        let busy = self.busy;
        match self.live_for(user_id) {
            Ok(live) => {
                !busy
                    && live.history.len() >= limit
                    && !live.history.iter().any(|i| i.id == item_id)
            }
            Err(_) => false,
        }
    }
}

impl Handler<StartTurn> for ThreadActor {
    type Result = ResponseActFuture<Self, Result<TurnStream, EngineError>>;

    fn handle(&mut self, msg: StartTurn, ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        let user_id = msg.user_id.clone();
        self.with_lease(&user_id, move |act, ctx| act.turn_with_lease(msg, ctx), ctx)
    }
}

impl ThreadActor {
    fn turn_with_lease(
        &mut self,
        msg: StartTurn,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<TurnStream, EngineError>> {
        let beyond = match &msg.input {
            TurnInput::RetryAfter(item_id) => {
                self.retry_target_beyond_memory(&msg.user_id, item_id)
            }
            _ => false,
        };
        if !beyond {
            return Box::pin(actix::fut::ready(self.start_turn(msg, ctx)));
        }
        // Load the window of history that ends at the target, then retry from there.
        let TurnInput::RetryAfter(item_id) = &msg.input else {
            unreachable!()
        };
        let item_id = item_id.clone();
        self.busy = true;
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        let load = async move {
            let Some(target) = env.store.load_item(&thread_id, &item_id).await? else {
                return Ok(None);
            };
            let limit = env.settings.history_limit.saturating_sub(1).max(1);
            let before = env
                .store
                .list_items(
                    &thread_id,
                    limit,
                    crate::protocol::Order::Desc,
                    Some(&item_id),
                )
                .await?;
            let mut window = before
                .data
                .iter()
                .rev()
                .map(|i| i.parse())
                .collect::<Result<Vec<_>, _>>()?;
            window.push(target.parse()?);
            Ok::<_, EngineError>(Some(window))
        };
        Box::pin(load.into_actor(self).map(move |loaded, act, ctx| {
            act.busy = false;
            match loaded? {
                None => Err(EngineError::ItemNotFound),
                Some(window) => {
                    if let ThreadState::Ready(live) = &mut act.state {
                        live.history = window;
                    }
                    act.start_turn(msg, ctx)
                }
            }
        }))
    }
}

impl Handler<Rename> for ThreadActor {
    type Result = ResponseActFuture<Self, Result<ThreadMeta, EngineError>>;

    fn handle(&mut self, msg: Rename, ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        let user_id = msg.user_id.clone();
        self.with_lease(
            &user_id,
            move |act, _ctx| {
                let renamed = match act.live_for(&msg.user_id) {
                    Ok(live) => {
                        let mut meta = live.meta.clone();
                        meta.title = Some(msg.title);
                        meta
                    }
                    Err(e) => return Box::pin(actix::fut::ready(Err(e))),
                };
                let env = act.env.clone();
                let lease = act.lease();
                let write = renamed.clone();
                Box::pin(
                    async move {
                        env.persist_as(&lease, "idle", vec![WriteOp::UpdateThread(write)])
                            .await
                    }
                    .into_actor(act)
                    .map(move |result, act, _ctx| {
                        result?;
                        if let ThreadState::Ready(live) = &mut act.state {
                            live.meta.title = renamed.title.clone();
                        }
                        Ok(renamed)
                    }),
                )
            },
            ctx,
        )
    }
}

impl Handler<Delete> for ThreadActor {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, msg: Delete, ctx: &mut Context<Self>) -> Self::Result {
        let user_id = msg.user_id.clone();
        self.with_lease(
            &user_id,
            move |act, _ctx| {
                if let Err(e) = act.live_for(&msg.user_id) {
                    return Box::pin(actix::fut::ready(Err(e)));
                }
                let env = act.env.clone();
                let lease = act.lease();
                let thread_id = act.thread_id.clone();
                Box::pin(
                    async move {
                        env.persist_as(&lease, "idle", vec![WriteOp::DeleteThread { thread_id }])
                            .await
                    }
                    .into_actor(act)
                    .map(|result, act, ctx| {
                        result?;
                        // The lease row went with the thread (ON DELETE CASCADE).
                        act.lease = None;
                        act.load_error = Some(EngineError::ThreadNotFound);
                        act.retire(ctx);
                        Ok(())
                    }),
                )
            },
            ctx,
        )
    }
}

impl Handler<Describe> for ThreadActor {
    type Result = Result<ThreadMeta, EngineError>;

    fn handle(&mut self, msg: Describe, _ctx: &mut Context<Self>) -> Self::Result {
        self.live_for(&msg.user_id).map(|live| live.meta.clone())
    }
}

impl Handler<Passivate> for ThreadActor {
    type Result = ();

    fn handle(&mut self, _: Passivate, ctx: &mut Context<Self>) {
        if !self.busy {
            tracing::debug!(thread_id = %self.thread_id, "least recently used thread actor retires");
            self.retire(ctx);
        }
    }
}

impl Handler<HandOver> for ThreadActor {
    type Result = ();

    fn handle(&mut self, _: HandOver, ctx: &mut Context<Self>) {
        if self.busy {
            self.handover_requested = true;
        } else {
            tracing::debug!(thread_id = %self.thread_id, "handing the thread over to another instance");
            self.retire(ctx);
        }
    }
}
