//! The thread's lease: an actor writes a thread only while it holds the lease (fencing,
//! `specs/cluster.md`). It is taken before the actor's first write, asking the current owner
//! to hand the thread over if another instance holds it, and the thread is reloaded then,
//! since that instance may have written it meanwhile.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::Instrument;

use super::history::LoadedThread;
use super::{ThreadActor, ThreadState};
use crate::actors::env::{EngineEnv, Lease};
use crate::deadline::{Deadline, DeadlinePassed};
use crate::error::EngineError;
use crate::ids::{ThreadId, UserId};
use crate::store::cluster::{FencingToken, LeaseAttempt, LeaseState};
use crate::trace;

/// How often a thread streaming elsewhere is looked at again before answering busy (its
/// owner may just have died, and Postgres not yet noticed its connection closing).
const BUSY_CHECKS: u32 = 5;
const BUSY_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How often the lease is tried again while its owner hands the thread over.
const HANDOVER_POLL: Duration = Duration::from_millis(5);

impl ThreadActor {
    /// This actor's lease, with `fencing`.
    pub(super) fn lease_with(&self, fencing: FencingToken) -> Lease {
        Lease {
            thread_id: self.thread_id.clone(),
            instance_id: self.env.settings.cluster.instance_id.clone(),
            fencing,
        }
    }

    /// Runs `then` with the lease once this actor holds it: taking it first if needed (the
    /// caller's ownership checked in the same statement), then loading the thread — once,
    /// since another instance may have written it until then — within the request's
    /// `deadline`.
    pub(super) fn with_lease<R: 'static>(
        &mut self,
        user_id: &UserId,
        deadline: Deadline,
        then: impl FnOnce(
                &mut Self,
                &mut Context<Self>,
                Lease,
            ) -> ResponseActFuture<Self, Result<R, EngineError>>
            + 'static,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<R, EngineError>> {
        self.with_lease_answering(user_id, deadline, None, then, ctx)
    }

    /// As [`Self::with_lease`]; an `answer` (to the question a turn elsewhere waits on) is
    /// sent to the instance holding the thread, which goes on with it before handing over
    /// (`answer_forwarded` tells `then` it was).
    pub(super) fn with_lease_answering<R: 'static>(
        &mut self,
        user_id: &UserId,
        deadline: Deadline,
        answer: Option<String>,
        then: impl FnOnce(
                &mut Self,
                &mut Context<Self>,
                Lease,
            ) -> ResponseActFuture<Self, Result<R, EngineError>>
            + 'static,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<R, EngineError>> {
        // A request that waited in the mailbox past its deadline was answered already.
        if deadline.passed() {
            let passed = DeadlinePassed("waiting for the thread");
            return Box::pin(actix::fut::ready(Err(passed.into())));
        }
        if let Some(fencing) = self.lease {
            let lease = self.lease_with(fencing);
            return then(self, ctx, lease);
        }
        if self.retired {
            let error = self.load_error.clone().unwrap_or(EngineError::Retired);
            return Box::pin(actix::fut::ready(Err(error)));
        }
        if self.busy {
            return Box::pin(actix::fut::ready(Err(EngineError::ThreadBusy)));
        }
        self.busy = true;
        let env = self.env.clone();
        let thread_id = self.thread_id.clone();
        let user_id = user_id.clone();
        let acquire = async move {
            let (fencing, forwarded) =
                acquire(&env, &thread_id, &user_id, answer.as_deref()).await?;
            let thread = LoadedThread::load(&env, &thread_id)
                .await?
                .ok_or(EngineError::ThreadNotFound)?;
            Ok::<_, EngineError>((fencing, thread, forwarded))
        };
        let acquire = deadline
            .bound("taking the thread's lease", acquire)
            .instrument(tracing::Span::current());
        Box::pin(acquire.into_actor(self).then(move |acquired, act, ctx| {
            act.busy = false;
            match acquired {
                Ok((fencing, thread, forwarded)) => {
                    act.answer_forwarded = forwarded;
                    act.lease = Some(fencing);
                    act.state = ThreadState::Ready(Box::new(thread));
                    let lease = act.lease_with(fencing);
                    act.skip_orphaned_questions(&lease);
                    then(act, ctx, lease)
                }
                Err(e) => {
                    if matches!(e, EngineError::ThreadNotFound) && !act.is_loaded() {
                        // Nothing of the caller's here: make way (a request of the owner
                        // meanwhile is routed to a new actor).
                        act.retire(ctx);
                    }
                    Box::pin(actix::fut::ready(Err(e)))
                }
            }
        }))
    }
}

/// Takes the thread's lease, asking its current owner (once) to hand it over and waiting up
/// to `cluster.handover_timeout`. A thread streaming elsewhere is busy (409), as it would be
/// here — unless it was sent `answer`: then it streams the answered turn, and is waited for.
/// Also answers whether the answer was sent.
async fn acquire(
    env: &EngineEnv,
    thread_id: &ThreadId,
    user_id: &UserId,
    answer: Option<&str>,
) -> Result<(FencingToken, bool), EngineError> {
    let cluster = &env.settings.cluster;
    let thread_id = thread_id.as_str();
    let deadline = Instant::now() + cluster.handover_timeout;
    let mut asked = false;
    // Open from the request for a hand-over until the lease is ours (or not).
    let mut handover: Option<tracing::Span> = None;
    let mut busy_checks = 0;
    loop {
        let attempt = env
            .store
            .acquire_lease(
                thread_id,
                user_id.as_str(),
                &cluster.instance_id,
                cluster.lease_ttl,
            )
            .await?;
        match attempt {
            LeaseAttempt::Acquired(fencing) => return Ok((fencing, asked && answer.is_some())),
            LeaseAttempt::NoSuchThread => return Err(EngineError::ThreadNotFound),
            LeaseAttempt::Held {
                state: LeaseState::Streaming,
                ..
            } if !(asked && answer.is_some()) => {
                if busy_checks >= BUSY_CHECKS {
                    return Err(EngineError::ThreadBusy);
                }
                busy_checks += 1;
                tokio::time::sleep(BUSY_CHECK_INTERVAL).await;
            }
            LeaseAttempt::Held { owner, .. } => {
                if !asked {
                    tracing::debug!(%thread_id, %owner, "asking for a hand-over");
                    handover = Some(trace::handover_span(thread_id, &owner));
                    env.store
                        .request_handover(thread_id, &owner, answer)
                        .await?;
                    asked = true;
                }
                if Instant::now() >= deadline {
                    if let Some(span) = &handover {
                        trace::record_error(span, "timeout");
                    }
                    return Err(EngineError::Unavailable(format!(
                        "thread still held by {owner}"
                    )));
                }
                tokio::time::sleep(HANDOVER_POLL).await;
            }
        }
    }
}
