//! How the thread actor answers each of its messages.

use std::time::Instant;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::history::window_ending_at;
use super::messages::ForwardedAnswer;
use super::messages::{
    Delete, Passivate, Rename, RetireForShutdown, StartTurn, SyncAction, TurnInput,
    YieldToOtherInstance,
};
use super::plan::{action_sender, refuse_inactive};
use super::{ThreadActor, ThreadState};
use crate::actors::env::Lease;
use crate::actors::turn::{run_sync_action, SkipReason, TurnStart};
use crate::error::EngineError;
use crate::protocol::{ThreadItem, ThreadMeta};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;

impl Handler<StartTurn> for ThreadActor {
    type Result = ResponseActFuture<Self, Result<TurnStart, EngineError>>;

    fn handle(&mut self, msg: StartTurn, ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        let user_id = msg.user_id.clone();
        // The lease is taken in the request's span (`with_lease` instruments its wait).
        let request = msg.trace.span().clone();
        let _in_request = request.enter();
        // An answer goes along to the instance whose turn waits on its question.
        let answer = match &msg.input {
            TurnInput::StructuredInput {
                item_id,
                submission,
            } => ForwardedAnswer::payload(item_id, submission),
            _ => None,
        };
        self.with_lease_answering(
            &user_id,
            msg.deadline,
            answer,
            move |act, ctx, lease| act.turn_with_lease(msg, lease, ctx),
            ctx,
        )
    }
}

impl ThreadActor {
    /// Starts the turn; a retry further back than memory first loads the window that ends
    /// at its target.
    fn turn_with_lease(
        &mut self,
        msg: StartTurn,
        lease: Lease,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<TurnStart, EngineError>> {
        match &msg.input {
            TurnInput::StructuredInput { .. } => {
                let forwarded = std::mem::take(&mut self.answer_forwarded);
                return self.answer_question(msg, forwarded);
            }
            TurnInput::UserMessage(_) | TurnInput::RetryAfter(_)
                if self.busy && self.questions.pending().is_some() =>
            {
                return self.supersede_question(msg, lease)
            }
            _ => {}
        }
        let limit = self.env.settings.history_limit as usize;
        let busy = self.busy;
        let older_target = match (&msg.input, self.live_for(&msg.user_id)) {
            (TurnInput::RetryAfter(item_id), Ok(live))
                if !busy && live.may_hold_older(item_id, limit) =>
            {
                Some(item_id.clone())
            }
            _ => None,
        };
        let Some(item_id) = older_target else {
            return Box::pin(actix::fut::ready(self.spawn_turn(msg, lease.fencing, ctx)));
        };
        self.busy = true;
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        let load = async move { window_ending_at(&env, &thread_id, &item_id).await };
        Box::pin(load.into_actor(self).map(move |loaded, act, ctx| {
            act.busy = false;
            match loaded? {
                None => Err(EngineError::ItemNotFound),
                Some(window) => {
                    if let ThreadState::Ready(live) = &mut act.state {
                        live.history = window;
                    }
                    act.spawn_turn(msg, lease.fencing, ctx)
                }
            }
        }))
    }
}

impl Handler<SyncAction> for ThreadActor {
    type Result = ResponseActFuture<Self, Result<Option<ThreadItem>, EngineError>>;

    /// Protocol §3.6; the one message that runs while a turn streams.
    fn handle(&mut self, msg: SyncAction, ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        let user_id = msg.user_id.clone();
        let request = msg.trace.span().clone();
        let _in_request = request.enter();
        self.with_lease(
            &user_id,
            msg.deadline,
            move |act, _ctx, lease| {
                let busy = act.busy;
                let checked = act.live_for(&msg.user_id).and_then(|live| {
                    refuse_inactive(&live.meta.status)?;
                    let sender = action_sender(live, &msg.action)?;
                    Ok((sender, live.history.last().map(|i| i.created_at)))
                });
                let (sender, floor) = match checked {
                    Ok(checked) => checked,
                    Err(e) => return Box::pin(actix::fut::ready(Err(e))),
                };
                // A turn streaming meanwhile keeps the thread marked as streaming.
                let state = if busy {
                    LeaseState::Streaming
                } else {
                    LeaseState::Idle
                };
                let run = run_sync_action(
                    act.env.clone(),
                    lease,
                    state,
                    sender,
                    msg.action,
                    msg.token,
                    floor,
                )
                .instrument(msg.trace.span().clone());
                Box::pin(run.into_actor(act).map(|done, act, _ctx| {
                    let done = done?;
                    let limit = act.env.settings.history_limit as usize;
                    if let ThreadState::Ready(live) = &mut act.state {
                        for item in done.replaced.iter().chain([&done.record]) {
                            live.put(item.clone());
                        }
                        let excess = live.history.len().saturating_sub(limit);
                        live.history.drain(..excess);
                    }
                    Ok(done.replaced)
                }))
            },
            ctx,
        )
    }
}

impl Handler<Rename> for ThreadActor {
    type Result = ResponseActFuture<Self, Result<ThreadMeta, EngineError>>;

    fn handle(&mut self, msg: Rename, ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        let user_id = msg.user_id.clone();
        let deadline = msg.deadline;
        self.with_lease(
            &user_id,
            deadline,
            move |act, _ctx, lease| {
                let renamed = match act.live_for(&msg.user_id) {
                    Ok(live) => ThreadMeta {
                        title: Some(msg.title),
                        ..live.meta.clone()
                    },
                    Err(e) => return Box::pin(actix::fut::ready(Err(e))),
                };
                let env = act.env.clone();
                let write = WriteOp::UpdateThread(renamed.clone());
                Box::pin(
                    async move {
                        let commit = env.persist_as(&lease, LeaseState::Idle, vec![write]);
                        deadline.bound("committing the title", commit).await
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
        let deadline = msg.deadline;
        self.with_lease(
            &user_id,
            deadline,
            move |act, _ctx, lease| {
                if let Err(e) = act.live_for(&msg.user_id) {
                    return Box::pin(actix::fut::ready(Err(e)));
                }
                let env = act.env.clone();
                let delete = WriteOp::DeleteThread {
                    thread_id: act.thread_id.clone(),
                };
                Box::pin(
                    async move {
                        let commit = env.persist_as(&lease, LeaseState::Idle, vec![delete]);
                        deadline.bound("committing the deletion", commit).await
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

impl Handler<Passivate> for ThreadActor {
    type Result = ();

    fn handle(&mut self, _: Passivate, ctx: &mut Context<Self>) {
        // The registry asks once: a busy actor retires when its turn ended (a turn waiting
        // for an answer gives its question up now).
        if self.busy {
            self.questions.skip(SkipReason::Retiring);
            self.retire_after_turn = true;
        } else {
            tracing::debug!(thread_id = %self.thread_id, "least recently used thread actor retires");
            self.retire(ctx);
        }
    }
}

impl Handler<YieldToOtherInstance> for ThreadActor {
    type Result = ();

    fn handle(&mut self, msg: YieldToOtherInstance, ctx: &mut Context<Self>) {
        if self.busy {
            // The turn goes on with an answer sent along; else it gives its question up.
            let answered = msg
                .answer
                .is_some_and(|answer| self.take_forwarded_answer(answer));
            if !answered {
                self.questions.skip(SkipReason::Retiring);
            }
            self.retire_after_turn = true;
        } else {
            tracing::debug!(thread_id = %self.thread_id, "handing the thread over to another instance");
            self.retire(ctx);
        }
    }
}

impl Handler<RetireForShutdown> for ThreadActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: RetireForShutdown, ctx: &mut Context<Self>) -> Self::Result {
        if !self.busy {
            self.retire(ctx);
            return Box::pin(async {});
        }
        self.questions.skip(SkipReason::Retiring);
        let (retired, wait) = oneshot::channel();
        self.on_retired.push(retired);
        self.retire_after_turn = true;
        Box::pin(async move {
            // An error means the actor went away without retiring: nothing to wait for.
            let _ = wait.await;
        })
    }
}
