//! The thread actor: owns one thread's metadata and recent history, runs one turn at a time,
//! and retires when idle. It is supervised: when it stops after a failure (a panicking turn,
//! a commit it cannot vouch for) the supervisor restarts it and it reloads from Postgres.
//!
//! - `messages.rs` — what it answers; `handlers.rs` — how.
//! - `plan.rs` — the pure decision of what a turn writes, announces and sends the model.
//! - `history.rs` — the thread as held in memory, and loading it.
//! - `lease.rs` — the lease that lets it write (hand-over between instances).
//! - `questions.rs` — answers to the question a turn waits on; superseding and skipping it.

mod handlers;
mod history;
mod lease;
mod messages;
mod plan;
mod questions;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::FutureExt;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::persistence::Persist;
use super::routing::{ReapIfCommittedLate, RegistryLink, Retired, Unacknowledged};
use super::turn::{run_turn, AfterTurn, QuestionDesk, TurnEnd, TurnJob, TurnOutcome, TurnStart};
use crate::actors::env::EngineEnv;
use crate::error::EngineError;
use crate::ids::{ItemId, ThreadId, UserId};
use crate::mcp::McpSessions;
use crate::protocol::{ThreadMeta, ThreadStreamEvent};
use crate::store::cluster::{FencingToken, LeaseState};
use crate::store::WriteOp;

use history::{newest_items, LoadedThread};
pub(crate) use messages::ForwardedAnswer;
pub(crate) use messages::{
    Delete, NewMessage, Passivate, Rename, RetireForShutdown, StartTurn, SyncAction, TurnInput,
    WidgetAction, YieldToOtherInstance,
};
use plan::{plan_turn, PlanSettings};

/// Capacity of a thread actor's mailbox.
const MAILBOX_CAPACITY: usize = 64;

enum ThreadState {
    /// Not loaded: the first request takes the lease and loads the thread then.
    Unloaded,
    Ready(Box<LoadedThread>),
    /// The thread does not exist (or the load failed): the actor has retired.
    Gone,
}

pub(crate) struct ThreadActor {
    actor_id: u64,
    thread_id: ThreadId,
    env: Arc<EngineEnv>,
    registry: RegistryLink,
    state: ThreadState,
    /// A turn (or a lease acquisition) is running.
    busy: bool,
    retired: bool,
    last_activity: Instant,
    load_error: Option<EngineError>,
    idle_check: Option<SpawnHandle>,
    /// One session per MCP server, lent to the running turn.
    mcp: Option<McpSessions>,
    /// The thread's lease fencing token, once this actor may write the thread. Acquired on
    /// the first write (a hand-over from another instance if needed), released on retirement.
    lease: Option<FencingToken>,
    /// Retire as soon as the running turn ended (another instance asked for the thread, or
    /// the engine shuts down).
    retire_after_turn: bool,
    /// Answered when the actor retires (shutdown waits for them).
    on_retired: Vec<oneshot::Sender<()>>,
    /// The question the running turn waits on, if any (shared with it).
    questions: QuestionDesk,
    /// Answered when the running turn ended (a message that superseded its question).
    on_turn_end: Vec<oneshot::Sender<()>>,
    /// The lease was just taken from an instance that was sent the request's answer.
    answer_forwarded: bool,
}

impl ThreadActor {
    /// An actor for an existing thread; it loads the thread when it starts.
    pub fn existing(
        actor_id: u64,
        thread_id: ThreadId,
        env: Arc<EngineEnv>,
        registry: RegistryLink,
    ) -> Self {
        let mcp = McpSessions::new(env.tool_catalog.clone());
        ThreadActor {
            actor_id,
            thread_id,
            env,
            registry,
            state: ThreadState::Unloaded,
            busy: false,
            retired: false,
            last_activity: Instant::now(),
            load_error: None,
            idle_check: None,
            mcp: Some(mcp),
            lease: None,
            retire_after_turn: false,
            on_retired: Vec::new(),
            questions: QuestionDesk::default(),
            on_turn_end: Vec::new(),
            answer_forwarded: false,
        }
    }

    /// An actor for a thread being created now; nothing is in the database yet.
    pub fn new_thread(
        actor_id: u64,
        thread_id: ThreadId,
        meta: ThreadMeta,
        env: Arc<EngineEnv>,
        registry: RegistryLink,
    ) -> Self {
        let mut actor = Self::existing(actor_id, thread_id, env, registry);
        // The lease is created with the thread, in the same transaction.
        actor.lease = Some(FencingToken::FIRST);
        actor.state = ThreadState::Ready(Box::new(LoadedThread {
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
        self.registry.retired.do_send(Retired {
            thread_id: self.thread_id.clone(),
            actor_id: self.actor_id,
        });
        // Give the lease up (another instance may be waiting for it), in the next group
        // commit. Without a token (the actor restarted after a failure) whatever row this
        // instance holds goes, at once: a queued release without a token could remove the
        // lease of the thread's next actor.
        let fencing = self.lease.take();
        let (env, thread_id) = (self.env.clone(), self.thread_id.clone());
        actix::spawn(async move {
            let instance_id = env.settings.cluster.instance_id.clone();
            let released = match fencing {
                Some(fencing) => env
                    .persist(vec![WriteOp::ReleaseLease {
                        thread_id: thread_id.clone(),
                        instance_id,
                        fencing,
                    }])
                    .await
                    .map_err(|error| error.to_string()),
                None => env
                    .store
                    .release_own_lease(thread_id.as_str(), &instance_id)
                    .await
                    .map_err(|error| error.to_string()),
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
        for waiter in self.on_retired.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// The loaded thread if `user_id` may see it.
    fn live_for(&mut self, user_id: &UserId) -> Result<&mut LoadedThread, EngineError> {
        if self.retired {
            return Err(self.load_error.clone().unwrap_or(EngineError::Retired));
        }
        match &mut self.state {
            ThreadState::Ready(live) if live.meta.user_id == *user_id => Ok(live),
            ThreadState::Ready(_) => Err(EngineError::ThreadNotFound),
            ThreadState::Unloaded | ThreadState::Gone => Err(EngineError::Retired),
        }
    }

    /// Whether the thread is in memory.
    fn is_loaded(&self) -> bool {
        matches!(self.state, ThreadState::Ready(_))
    }

    /// Reloads the newest items (messages wait meanwhile).
    fn refill_history(&mut self, ctx: &mut Context<Self>) {
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        let load = async move { newest_items(&env, &thread_id).await };
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(history) => {
                if let ThreadState::Ready(live) = &mut act.state {
                    live.history = history;
                }
            }
            Err(error) => {
                tracing::warn!(thread_id = %act.thread_id, %error, "could not refill history; reloading");
                act.state = ThreadState::Unloaded;
                ctx.stop();
            }
        }));
    }

    /// Plans the turn and spawns it on this actor's context; answers with the started turn.
    fn spawn_turn(
        &mut self,
        msg: StartTurn,
        fencing: FencingToken,
        ctx: &mut Context<Self>,
    ) -> Result<TurnStart, EngineError> {
        self.last_activity = Instant::now();
        let busy = self.busy;
        let env = self.env.clone();
        let settings = &env.settings;
        let live = self.live_for(&msg.user_id)?;
        if busy {
            return Err(EngineError::ThreadBusy);
        }
        let plan = plan_turn(
            live,
            msg.input,
            &PlanSettings {
                instance_id: &settings.cluster.instance_id,
                history_limit: settings.history_limit as usize,
                titles_enabled: settings.titles.enabled,
                instructions: &settings.model.instructions,
            },
        )?;
        let (tx, rx) = crate::frames::channel(settings.actors.stream_buffer);
        let (accepted, accepted_rx) = oneshot::channel();
        let job = TurnJob {
            env: self.env.clone(),
            thread_id: self.thread_id.clone(),
            plan,
            events: tx.clone(),
            accepted,
            deadline: msg.deadline,
            token: msg.token,
            links: msg.links,
            mcp: self
                .mcp
                .take()
                .unwrap_or_else(|| McpSessions::new(self.env.tool_catalog.clone())),
            lease: self.lease_with(fencing),
            questions: self.questions.clone(),
        };
        self.busy = true;
        let thread_id = self.thread_id.clone();
        let span = crate::trace::turn_span(&msg.trace, &self.thread_id);
        // Weak: a turn that waits for an answer ends its stream by dropping its sender.
        let tx = tx.downgrade();
        // Boxed at once: the turn's future is large (≈ 25 KB), and each wrapper below would
        // otherwise move (copy) all of it.
        let turn = Box::pin(run_turn(job));
        let guarded = AssertUnwindSafe(turn.instrument(span)).catch_unwind();
        ctx.spawn(
            guarded
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(outcome) => act.finish_turn(outcome, ctx),
                    Err(_panic) => {
                        tracing::error!(%thread_id, "turn panicked; restarting the thread actor");
                        if let Some(tx) = tx.upgrade() {
                            let _ = tx.try_send(&ThreadStreamEvent::stream_error(true).to_sse());
                        }
                        act.busy = false;
                        act.state = ThreadState::Unloaded;
                        ctx.stop();
                    }
                }),
        );
        Ok(TurnStart {
            accepted: accepted_rx,
            frames: rx,
        })
    }

    fn finish_turn(&mut self, outcome: TurnOutcome, ctx: &mut Context<Self>) {
        self.busy = false;
        for waiter in self.on_turn_end.drain(..) {
            let _ = waiter.send(());
        }
        self.mcp = Some(outcome.mcp);
        self.last_activity = Instant::now();
        let (mut changes, after) = match outcome.end {
            TurnEnd::InputRefused { new_thread_item } => {
                if let Some(item_id) = new_thread_item {
                    self.reap_if_committed_late(item_id);
                }
                return self.reload(ctx);
            }
            TurnEnd::Ran { changes, after } => (changes, after),
        };
        match after {
            AfterTurn::Reload => return self.reload(ctx),
            AfterTurn::MarkIdle => {
                if let Some(fencing) = self.lease {
                    // The cluster view shows the thread idle again (rides on the next commit).
                    let idle = self.lease_with(fencing).check(LeaseState::Idle);
                    let persist = Persist(vec![idle], crate::trace::TraceContext::none());
                    self.env.persistence.do_send(persist);
                }
            }
            AfterTurn::Idle => {}
        }
        if self.retire_after_turn {
            self.retire(ctx);
            return;
        }
        let limit = self.env.settings.history_limit as usize;
        if let ThreadState::Ready(live) = &mut self.state {
            live.persisted = true;
            if live.apply(&mut changes, limit) {
                self.refill_history(ctx);
            }
        }
    }

    /// Memory may disagree with Postgres (or the lease was lost): restart through the
    /// supervisor, which reloads; the lease is taken again on the next write.
    fn reload(&mut self, ctx: &mut Context<Self>) {
        self.state = ThreadState::Unloaded;
        self.lease = None;
        ctx.stop();
    }

    /// A new thread whose input's commit was given up on: deleted if it completes late.
    fn reap_if_committed_late(&self, item_id: ItemId) {
        let ThreadState::Ready(live) = &self.state else {
            return;
        };
        let lost = Unacknowledged {
            thread_id: self.thread_id.clone(),
            user_id: live.meta.user_id.clone(),
            item_id,
        };
        self.registry.reap.do_send(ReapIfCommittedLate(lost));
    }
}

impl Actor for ThreadActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if self.retired {
            return;
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
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(thread_id = %self.thread_id, "thread actor restarting; reloading from Postgres");
        self.busy = false;
        self.lease = None;
        // The restart cancelled the context's timers.
        self.idle_check = None;
        if self.retire_after_turn {
            // A hand-over or the shutdown was waiting for the turn, which ended badly.
            self.retire(ctx);
        } else if !self.retired {
            self.state = ThreadState::Unloaded;
        }
    }
}
