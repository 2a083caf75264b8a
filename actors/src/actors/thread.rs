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
use crate::engine::EngineEnv;
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
}

impl ThreadActor {
    /// An actor for an existing thread; it loads the thread when it starts.
    pub fn existing(
        actor_id: u64,
        thread_id: String,
        env: Arc<EngineEnv>,
        registry: Addr<Registry>,
    ) -> Self {
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
            mcp: Some(McpSessions::default()),
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
            mcp: McpSessions::default(),
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
        self.last_activity = Instant::now();
        if outcome.reload {
            // Memory may disagree with Postgres: restart through the supervisor, which reloads.
            self.state = ThreadState::Loading;
            ctx.stop();
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
        let idle = self.env.settings.idle_timeout;
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
        let (tx, rx) = mpsc::channel(self.env.settings.stream_buffer);
        let mut job = self.prepare_turn(&msg.user_id, msg.input, tx.clone())?;
        job.token = msg.token;
        job.mcp = self.mcp.take().unwrap_or_default();
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

    fn handle(&mut self, msg: Rename, _ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        let renamed = match self.live_for(&msg.user_id) {
            Ok(live) => {
                let mut meta = live.meta.clone();
                meta.title = Some(msg.title);
                meta
            }
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let env = self.env.clone();
        let write = renamed.clone();
        Box::pin(
            async move { env.persist(vec![WriteOp::UpdateThread(write)]).await }
                .into_actor(self)
                .map(move |result, act, _ctx| {
                    result?;
                    if let ThreadState::Ready(live) = &mut act.state {
                        live.meta.title = renamed.title.clone();
                    }
                    Ok(renamed)
                }),
        )
    }
}

impl Handler<Delete> for ThreadActor {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, msg: Delete, _ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.live_for(&msg.user_id) {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        Box::pin(
            async move { env.persist(vec![WriteOp::DeleteThread { thread_id }]).await }
                .into_actor(self)
                .map(|result, act, ctx| {
                    result?;
                    act.load_error = Some(EngineError::ThreadNotFound);
                    act.retire(ctx);
                    Ok(())
                }),
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
