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
use tracing::Instrument;

use crate::config::BatchSettings;
use crate::metrics::METRICS;
use crate::store::{Store, StoreError, WriteOp};
use crate::trace::{self, TraceContext};

/// Commit these writes together (atomically with each other); resolves after the commit.
/// The span of the work they belong to is the commit span's parent or one of its links.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Persist(pub Vec<WriteOp>, pub TraceContext);

/// Flush whatever is buffered now and answer when it has committed (used at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushNow;

struct PendingWrite {
    ops: Vec<WriteOp>,
    reply: oneshot::Sender<Result<(), StoreError>>,
    trace: TraceContext,
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
        let pending = std::mem::take(&mut self.pending);
        let max = self.settings.max_batch.max(1);
        let selected = select_batch(pending, |w| write_threads(&w.ops), &self.busy_threads, max);
        self.pending = selected.kept;
        if selected.batch.is_empty() {
            return;
        }
        let batch_threads = selected.threads;
        for thread in &batch_threads {
            self.busy_threads.insert(thread.clone());
        }
        self.in_flight += 1;
        let span = batch_span(&selected.batch, self.store.schema().as_str());
        let commit = commit_batch(self.store.clone(), selected.batch).instrument(span);
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

/// The writes of a flush, those left for later, and the threads the flush touches.
struct Selected<W> {
    batch: Vec<W>,
    kept: Vec<W>,
    threads: Vec<String>,
}

/// Takes writes in order, at most `max`, skipping (with all their successors) those of
/// threads that already have a write in flight (`busy`): one thread's writes commit in the
/// order they were sent.
fn select_batch<W>(
    pending: Vec<W>,
    threads_of: impl Fn(&W) -> Vec<String>,
    busy: &HashSet<String>,
    max: usize,
) -> Selected<W> {
    let mut blocked: HashSet<String> = HashSet::new();
    let mut selected = Selected {
        batch: Vec::new(),
        kept: Vec::new(),
        threads: Vec::new(),
    };
    for write in pending {
        let threads = threads_of(&write);
        let waits = selected.batch.len() >= max
            || threads
                .iter()
                .any(|t| busy.contains(t) || blocked.contains(t));
        if waits {
            blocked.extend(threads);
            selected.kept.push(write);
        } else {
            selected.threads.extend(threads);
            selected.batch.push(write);
        }
    }
    selected
}

/// One group commit: the batch's writes in one transaction, each answered after it. A broken
/// connection is retried once; a failure that is not the database's being unavailable is
/// retried write by write, so one bad write cannot fail the others.
async fn commit_batch(store: Store, batch: Vec<PendingWrite>) {
    let all: Vec<WriteOp> = batch.iter().flat_map(|w| w.ops.iter().cloned()).collect();
    let started = std::time::Instant::now();
    METRICS.batch_writes.observe(batch.len() as f64);
    let mut result = store.apply(&all).await;
    if matches!(&result, Err(e) if e.is_broken_connection()) {
        // A connection that died (restarted or terminated backend) is replaced by the pool:
        // try once more. Safe because every write is idempotent (upserts, deletes by id,
        // absolute updates). Not after a timeout: a stalled database would make the writers
        // wait twice the deadline.
        result = store.apply(&all).await;
    }
    METRICS
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    let error = match result {
        Ok(()) => {
            tracing::trace!(writes = batch.len(), ops = all.len(), elapsed = ?started.elapsed(), "group commit");
            for write in batch {
                let _ = write.reply.send(Ok(()));
            }
            return;
        }
        Err(error) => error,
    };
    let kind = if error.is_unavailable() {
        "unavailable"
    } else {
        "query"
    };
    METRICS.commit_failures.with_label_values(&[kind]).inc();
    trace::record_error(&tracing::Span::current(), kind);
    if batch.len() == 1 || error.is_unavailable() {
        tracing::warn!(%error, writes = batch.len(), "group commit failed");
        for write in batch {
            let _ = write.reply.send(Err(error.clone()));
        }
        return;
    }
    tracing::warn!(%error, writes = batch.len(), "group commit failed; retrying writes one by one");
    for write in batch {
        let result = store.apply(&write.ops).await;
        let _ = write.reply.send(result);
    }
}

/// The group commit's span: a child of its first write's span, linked to every write's.
fn batch_span(batch: &[PendingWrite], schema: &str) -> tracing::Span {
    let Some(first) = batch.iter().find(|w| !w.trace.span().is_disabled()) else {
        return tracing::Span::none();
    };
    let ops = batch.iter().map(|w| w.ops.len()).sum();
    let span = trace::commit_span(first.trace.span(), batch.len(), ops, schema);
    if !span.is_disabled() {
        let parent = first.trace.span().id();
        for write in batch.iter().filter(|w| w.trace.span().id() != parent) {
            span.follows_from(write.trace.span());
        }
    }
    span
}

/// The threads a write touches.
fn write_threads(ops: &[WriteOp]) -> Vec<String> {
    let mut threads: Vec<String> = ops.iter().map(|op| op.thread_id().to_string()).collect();
    threads.dedup();
    threads
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
            self.pending.push(PendingWrite {
                ops: msg.0,
                reply,
                trace: msg.1,
            });
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

#[cfg(test)]
mod tests {
    use super::select_batch;
    use std::collections::HashSet;

    type Write = (String, Vec<String>);

    /// The names of the writes chosen for the batch and of those kept for later.
    fn select(
        pending: &[(&str, &[&str])],
        busy: &[&str],
        max: usize,
    ) -> (Vec<String>, Vec<String>) {
        let pending: Vec<Write> = pending
            .iter()
            .map(|(name, threads)| {
                let threads = threads.iter().map(|t| t.to_string()).collect();
                (name.to_string(), threads)
            })
            .collect();
        let busy: HashSet<String> = busy.iter().map(|t| t.to_string()).collect();
        let chosen = select_batch(pending, |w: &Write| w.1.clone(), &busy, max);
        let names = |ws: Vec<Write>| ws.into_iter().map(|w| w.0).collect();
        (names(chosen.batch), names(chosen.kept))
    }

    #[test]
    fn writes_of_a_busy_thread_and_all_their_successors_wait() {
        let (batch, kept) = select(
            &[("a1", &["a"]), ("b1", &["b"]), ("a2", &["a"])],
            &["b"],
            10,
        );
        assert_eq!(batch, ["a1", "a2"]);
        assert_eq!(kept, ["b1"]);
        let pending: &[(&str, &[&str])] = &[("b1", &["b"]), ("c1", &["b", "c"]), ("c2", &["c"])];
        let (batch, kept) = select(pending, &["b"], 10);
        assert!(batch.is_empty());
        assert_eq!(kept, ["b1", "c1", "c2"], "c2 keeps its place behind c1");
    }

    #[test]
    fn a_batch_holds_at_most_max_writes_in_order() {
        let (batch, kept) = select(&[("a", &["a"]), ("b", &["b"]), ("c", &["c"])], &[], 2);
        assert_eq!(batch, ["a", "b"]);
        assert_eq!(kept, ["c"]);
    }
}
