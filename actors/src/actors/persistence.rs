//! The persistence actor: takes writes from every thread actor and commits them as group
//! commits, one transaction per flush, answering each write only after its commit.
//!
//! A flush starts when the buffer holds `max_batch` writes or `flush_interval` after the first
//! buffered write. Up to `max_in_flight` flushes run at once, on separate connections (so
//! Postgres itself shares one WAL flush among their commits), but never two writes of the same
//! thread: one thread's writes commit in the order they were sent. A failed batch is retried write by write, so one bad write (say, an
//! item for a thread deleted meanwhile) cannot fail the writes of other threads.

use std::collections::HashSet;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::config::BatchSettings;
use crate::metrics::METRICS;
use crate::store::{Store, StoreError, WriteOp};

/// Commit these writes together (atomically with each other); resolves after the commit.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Persist(pub Vec<WriteOp>);

/// Flush whatever is buffered now and answer when it has committed (used at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushNow;

struct PendingWrite {
    ops: Vec<WriteOp>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

pub struct PersistenceActor {
    store: Store,
    settings: BatchSettings,
    pending: Vec<PendingWrite>,
    in_flight: usize,
    /// Threads with a write in a running flush: their next writes wait for it.
    busy_threads: HashSet<String>,
    timer: Option<SpawnHandle>,
    flush_waiters: Vec<oneshot::Sender<()>>,
}

impl PersistenceActor {
    pub fn new(store: Store, settings: BatchSettings) -> Self {
        PersistenceActor {
            store,
            settings,
            pending: Vec::new(),
            in_flight: 0,
            busy_threads: HashSet::new(),
            timer: None,
            flush_waiters: Vec::new(),
        }
    }

    fn can_flush(&self) -> bool {
        self.in_flight < self.settings.max_in_flight.max(1) && !self.pending.is_empty()
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if !self.can_flush() {
            return;
        }
        if self.pending.len() >= self.settings.max_batch
            || self.settings.flush_interval.is_zero()
            || !self.flush_waiters.is_empty()
        {
            self.flush(ctx);
        } else if self.timer.is_none() {
            self.timer = Some(ctx.run_later(self.settings.flush_interval, |act, ctx| {
                act.timer = None;
                act.flush(ctx);
            }));
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if !self.can_flush() {
            return;
        }
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        // Take writes in order, skipping (with all their successors) those of threads that
        // already have a write in flight.
        let max = self.settings.max_batch.max(1);
        let mut blocked: HashSet<String> = HashSet::new();
        let mut batch = Vec::new();
        let mut kept = Vec::with_capacity(self.pending.len());
        for write in self.pending.drain(..) {
            let threads = write_threads(&write.ops);
            let waits = batch.len() >= max
                || threads
                    .iter()
                    .any(|t| self.busy_threads.contains(t) || blocked.contains(t));
            if waits {
                blocked.extend(threads);
                kept.push(write);
            } else {
                batch.push((write, threads));
            }
        }
        self.pending = kept;
        if batch.is_empty() {
            return;
        }
        let mut batch_threads = Vec::new();
        let batch: Vec<PendingWrite> = batch
            .into_iter()
            .map(|(write, threads)| {
                batch_threads.extend(threads);
                write
            })
            .collect();
        for thread in &batch_threads {
            self.busy_threads.insert(thread.clone());
        }
        self.in_flight += 1;
        let store = self.store.clone();
        let commit = async move {
            let all: Vec<WriteOp> = batch.iter().flat_map(|w| w.ops.iter().cloned()).collect();
            let started = std::time::Instant::now();
            METRICS.batch_writes.observe(batch.len() as f64);
            let mut result = store.apply(&all).await;
            if matches!(&result, Err(e) if e.is_broken_connection()) {
                // A connection that died (restarted or terminated backend) is replaced by the
                // pool: try once more. Safe because every write is idempotent (upserts,
                // deletes by id, absolute updates). Not after a timeout: a stalled database
                // would make the writers wait twice the deadline.
                result = store.apply(&all).await;
            }
            METRICS
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            if let Err(error) = &result {
                let kind = if error.is_unavailable() {
                    "unavailable"
                } else {
                    "query"
                };
                METRICS.commit_failures.with_label_values(&[kind]).inc();
            }
            match result {
                Ok(()) => {
                    tracing::trace!(writes = batch.len(), ops = all.len(), elapsed = ?started.elapsed(), "group commit");
                    for write in batch {
                        let _ = write.reply.send(Ok(()));
                    }
                }
                Err(error) if batch.len() == 1 || error.is_unavailable() => {
                    tracing::warn!(%error, writes = batch.len(), "group commit failed");
                    for write in batch {
                        let _ = write.reply.send(Err(clone_error(&error)));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, writes = batch.len(), "group commit failed; retrying writes one by one");
                    for write in batch {
                        let result = store.apply(&write.ops).await;
                        let _ = write.reply.send(result);
                    }
                }
            }
        };
        ctx.spawn(commit.into_actor(self).map(move |(), act, ctx| {
            act.in_flight -= 1;
            for thread in &batch_threads {
                act.busy_threads.remove(thread);
            }
            if act.pending.is_empty() && act.in_flight == 0 {
                for waiter in act.flush_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
            act.schedule(ctx);
            // Writes held back for a busy thread may be free to go now.
            if act.can_flush() && act.timer.is_none() {
                act.schedule(ctx);
            }
        }));
    }
}

/// The threads a write touches.
fn write_threads(ops: &[WriteOp]) -> Vec<String> {
    let mut threads: Vec<String> = ops.iter().map(|op| op.thread_id().to_string()).collect();
    threads.dedup();
    threads
}

fn clone_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::TimedOut(m) => StoreError::TimedOut(m.clone()),
        StoreError::Query(m) => StoreError::Query(m.clone()),
        StoreError::CursorNotFound => StoreError::CursorNotFound,
        StoreError::LeaseLost => StoreError::LeaseLost,
        StoreError::AttachmentTaken => StoreError::AttachmentTaken,
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
    }
}

impl Actor for PersistenceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Bounded mailbox: senders wait (backpressure) when writes arrive faster than commits.
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Persist> for PersistenceActor {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: Persist, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        if msg.0.is_empty() {
            let _ = reply.send(Ok(()));
        } else {
            self.pending.push(PendingWrite { ops: msg.0, reply });
            self.schedule(ctx);
        }
        Box::pin(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("persistence stopped".into())))
        })
    }
}

impl Handler<FlushNow> for PersistenceActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: FlushNow, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        if self.pending.is_empty() && self.in_flight == 0 {
            let _ = done.send(());
        } else {
            self.flush_waiters.push(done);
            self.schedule(ctx);
        }
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}
