//! The registry actor: knows the live thread actor of each thread on this instance, starts
//! one on demand (spread over a small pool of arbiters), keeps at most `max_live` of them
//! (least recently used idle ones retire first), and forgets an actor when it retires.

use std::sync::Arc;

use actix::prelude::*;

use super::env::EngineEnv;
use super::live_actors::{LiveActors, LiveDirectory};
use super::reaper::reap;
use super::routing::{ReapIfCommittedLate, RegistryLink, Retired, ToThread};
use super::thread::{
    Delete, ForwardedAnswer, Passivate, RetireForShutdown, ThreadActor, YieldToOtherInstance,
};
use crate::error::EngineError;
use crate::ids::ThreadId;
use crate::metrics::METRICS;
use crate::protocol::ThreadMeta;

/// How often a message is routed again when it meets an actor that just retired.
const ROUTE_ATTEMPTS: usize = 4;

/// Another instance asked (through `LISTEN/NOTIFY`) for a thread that may be live here.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct HandoverRequested {
    pub thread_id: String,
    /// The answer to the question the thread's turn waits on, when that is why.
    pub answer: Option<String>,
}

/// Shutdown: every live thread actor retires once its turn ended; answers when all have.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RetireAll;

pub(crate) struct Registry {
    env: Arc<EngineEnv>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    next_actor_id: u64,
    live: LiveActors<Addr<ThreadActor>>,
}

impl Registry {
    /// `directory`: where the live actors are published for senders on other threads.
    pub fn new(
        env: Arc<EngineEnv>,
        arbiters: Vec<ArbiterHandle>,
        directory: LiveDirectory<Addr<ThreadActor>>,
    ) -> Self {
        assert!(
            !arbiters.is_empty(),
            "the registry needs at least one arbiter"
        );
        Registry {
            env,
            arbiters,
            next_arbiter: 0,
            next_actor_id: 0,
            live: LiveActors::publishing_to(directory),
        }
    }

    fn start_actor(
        &mut self,
        ctx: &mut Context<Self>,
        thread_id: ThreadId,
        make: impl FnOnce(u64, Arc<EngineEnv>, RegistryLink) -> ThreadActor + Send + 'static,
    ) -> (Addr<ThreadActor>, u64) {
        self.next_actor_id += 1;
        let actor_id = self.next_actor_id;
        let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
        self.next_arbiter = self.next_arbiter.wrapping_add(1);
        let env = self.env.clone();
        let registry = RegistryLink {
            retired: ctx.address().recipient(),
            reap: ctx.address().recipient(),
        };
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| make(actor_id, env, registry));
        self.live.insert(thread_id, addr.clone(), actor_id);
        METRICS.live_thread_actors.set(self.live.len() as i64);
        self.enforce_max_live();
        (addr, actor_id)
    }

    /// The live actor of `thread_id` (and its id), started (loading) if the thread is not
    /// live here, or started for a thread being created now (`new_thread`).
    fn route(
        &mut self,
        thread_id: &ThreadId,
        new_thread: Option<ThreadMeta>,
        ctx: &mut Context<Self>,
    ) -> (Addr<ThreadActor>, u64) {
        if let Some(meta) = new_thread {
            let id = thread_id.clone();
            return self.start_actor(ctx, thread_id.clone(), move |actor_id, env, registry| {
                ThreadActor::new_thread(actor_id, id, meta, env, registry)
            });
        }
        if let Some(live) = self.live.touch(thread_id) {
            return (live.addr.clone(), live.actor_id);
        }
        let id = thread_id.clone();
        self.start_actor(ctx, thread_id.clone(), move |actor_id, env, registry| {
            ThreadActor::existing(actor_id, id, env, registry)
        })
    }

    /// Forwards `msg` to its thread's actor and answers with the actor's answer; an actor
    /// that retired meanwhile (closed mailbox, or [`EngineError::Retired`]) is forgotten and
    /// the message routed again, a few times at most.
    fn forward<M, T>(
        &mut self,
        msg: ToThread<M>,
        attempts_left: usize,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<T, EngineError>>
    where
        M: Message<Result = Result<T, EngineError>> + Clone + Send + 'static,
        T: Send + 'static,
        ThreadActor: Handler<M>,
    {
        let ToThread {
            thread_id,
            new_thread,
            message,
        } = msg;
        // A new thread's actor cannot have retired yet: its message is not kept for a retry.
        let kept = new_thread.is_none().then(|| message.clone());
        let (addr, actor_id) = self.route(&thread_id, new_thread, ctx);
        let answer = addr.send(message);
        Box::pin(answer.into_actor(self).then(move |answer, act, ctx| {
            let retired = matches!(
                answer,
                Ok(Err(EngineError::Retired)) | Err(MailboxError::Closed)
            );
            if let (true, Some(message), true) = (retired, kept, attempts_left > 1) {
                act.forget(&thread_id, actor_id);
                let again = ToThread::existing(&thread_id, message);
                return act.forward(again, attempts_left - 1, ctx);
            }
            let result = match answer {
                _ if retired => Err(EngineError::Unavailable(
                    "thread actor kept retiring".into(),
                )),
                Ok(result) => result,
                Err(_) => Err(EngineError::Unavailable("thread actor timed out".into())),
            };
            Box::pin(actix::fut::ready(result))
        }))
    }

    /// Forgets the actor `actor_id` of `thread_id`, if it is still the one registered.
    fn forget(&mut self, thread_id: &ThreadId, actor_id: u64) {
        if self.live.remove(thread_id, actor_id) {
            METRICS.live_thread_actors.set(self.live.len() as i64);
        }
    }

    /// Over `max_live`: ask the least recently used actors to retire. Busy ones decline and
    /// are asked again when the next actor starts.
    fn enforce_max_live(&mut self) {
        let max = self.env.settings.actors.max_live.max(1);
        // Actors already told to retire are not counted nor told again (each new thread
        // told the same dozens of retiring actors once more while they stopped).
        let staying = self.live.staying();
        if staying <= max {
            return;
        }
        for addr in self.live.retire_least_recently_used(staying - max) {
            addr.do_send(Passivate);
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        // Heartbeat: this instance lives, and its leases are extended (now, then periodically).
        let every = self.env.settings.cluster.lease_ttl / 3;
        self.heartbeat(ctx);
        ctx.run_interval(every, |act, ctx| act.heartbeat(ctx));
    }
}

impl Registry {
    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let env = self.env.clone();
        ctx.spawn(
            async move {
                let cluster = &env.settings.cluster;
                if let Err(error) = env.store.heartbeat(&cluster.instance_id).await {
                    tracing::warn!(%error, "cluster heartbeat failed");
                }
            }
            .into_actor(self),
        );
    }
}

impl<M, T> Handler<ToThread<M>> for Registry
where
    M: Message<Result = Result<T, EngineError>> + Clone + Send + 'static,
    T: Send + 'static,
    ThreadActor: Handler<M>,
{
    type Result = ResponseActFuture<Self, Result<T, EngineError>>;

    fn handle(&mut self, msg: ToThread<M>, ctx: &mut Context<Self>) -> Self::Result {
        self.forward(msg, ROUTE_ATTEMPTS, ctx)
    }
}

impl Handler<Retired> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Retired, _ctx: &mut Context<Self>) {
        self.forget(&msg.thread_id, msg.actor_id);
    }
}

impl Handler<ReapIfCommittedLate> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ReapIfCommittedLate, ctx: &mut Context<Self>) {
        let deletes: Recipient<ToThread<Delete>> = ctx.address().recipient();
        actix::spawn(reap(self.env.clone(), deletes, msg.0));
    }
}

impl Handler<RetireAll> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: RetireAll, _ctx: &mut Context<Self>) -> Self::Result {
        let retiring: Vec<_> = self
            .live
            .actors()
            .map(|live| live.addr.send(RetireForShutdown))
            .collect();
        tracing::debug!(live = retiring.len(), "retiring every thread actor");
        Box::pin(async move {
            let answers = futures::future::join_all(retiring).await;
            tracing::debug!(?answers, "every thread actor retired");
        })
    }
}

impl Handler<HandoverRequested> for Registry {
    type Result = ();

    fn handle(&mut self, msg: HandoverRequested, ctx: &mut Context<Self>) {
        let live = ThreadId::parse(msg.thread_id.as_str())
            .ok()
            .and_then(|id| self.live.get(&id));
        match live {
            Some(live) => live.addr.do_send(YieldToOtherInstance {
                answer: msg
                    .answer
                    .as_deref()
                    .and_then(ForwardedAnswer::from_payload),
            }),
            None => {
                // Not live here (retired, or its release failed): drop any lease row we hold.
                let env = self.env.clone();
                ctx.spawn(
                    async move {
                        let instance = &env.settings.cluster.instance_id;
                        if let Err(error) =
                            env.store.release_own_lease(&msg.thread_id, instance).await
                        {
                            tracing::debug!(%error, "could not release a stale lease");
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }
}
