//! How a batch of writes becomes statements: ops of many threads grouped into one multi-row
//! statement per kind, in rounds that keep each thread's ops in order (see [`plan`]).

use std::collections::{HashMap, VecDeque};

use chrono::NaiveDateTime;
use serde_json::Value;

use super::write_op::WriteOp;
use crate::protocol::ThreadMeta;

/// One statement of a batch.
#[derive(Debug)]
pub(super) enum Step<'a> {
    /// `SET LOCAL plan_cache_mode`, first in every batch.
    GenericPlans,
    InsertThreads(ThreadRows<'a>),
    InsertLeases {
        thread_ids: Vec<&'a str>,
        instance_ids: Vec<&'a str>,
        states: Vec<&'a str>,
    },
    LeaseChecks {
        thread_ids: Vec<&'a str>,
        instance_ids: Vec<&'a str>,
        fencings: Vec<i64>,
        states: Vec<&'a str>,
    },
    ReleaseLeases {
        thread_ids: Vec<&'a str>,
        instance_ids: Vec<&'a str>,
        fencings: Vec<i64>,
    },
    PutItems {
        thread_ids: Vec<&'a str>,
        ids: Vec<&'a str>,
        created_at: Vec<NaiveDateTime>,
        kinds: Vec<&'a str>,
        bodies: Vec<&'a str>,
    },
    /// A rarer op, on its own.
    One(&'a WriteOp),
}

#[derive(Debug, Default)]
pub(super) struct ThreadRows<'a> {
    pub(super) ids: Vec<&'a str>,
    pub(super) user_ids: Vec<&'a str>,
    pub(super) created_at: Vec<NaiveDateTime>,
    pub(super) titles: Vec<Option<&'a str>>,
    pub(super) statuses: Vec<Value>,
    pub(super) domains: Vec<Option<Value>>,
    pub(super) metadata: Vec<Value>,
}

/// Orders a batch into statements. Ops of different threads touch different rows, so they
/// commute; ops of one thread must keep their order. The batch runs in rounds: round k holds
/// the k-th op of every thread, and within a round the ops of one kind become one statement.
/// (One op per thread per round also keeps an upsert from touching a row twice.)
pub(super) fn plan(ops: &[WriteOp]) -> Vec<Step<'_>> {
    let mut queues = per_thread(ops);
    let mut steps = Vec::new();
    loop {
        let mut round = Round::default();
        for queue in &mut queues {
            if let Some(op) = queue.pop_front() {
                round.add(op);
            }
        }
        if round.is_empty() {
            return steps;
        }
        round.into_steps(&mut steps);
    }
}

/// The ops of each thread, in order, threads in the order they first appear.
fn per_thread(ops: &[WriteOp]) -> Vec<VecDeque<&WriteOp>> {
    let mut queues: Vec<VecDeque<&WriteOp>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for op in ops {
        let at = *index.entry(op.thread_id().as_str()).or_insert_with(|| {
            queues.push(VecDeque::new());
            queues.len() - 1
        });
        queues[at].push_back(op);
    }
    queues
}

/// The rows of one round, gathered per kind of op.
#[derive(Default)]
struct Round<'a> {
    threads: ThreadRows<'a>,
    lease_threads: Vec<&'a str>,
    lease_instances: Vec<&'a str>,
    lease_states: Vec<&'a str>,
    check_threads: Vec<&'a str>,
    check_instances: Vec<&'a str>,
    fencings: Vec<i64>,
    states: Vec<&'a str>,
    release_threads: Vec<&'a str>,
    release_instances: Vec<&'a str>,
    release_fencings: Vec<i64>,
    item_threads: Vec<&'a str>,
    item_ids: Vec<&'a str>,
    item_times: Vec<NaiveDateTime>,
    kinds: Vec<&'a str>,
    bodies: Vec<&'a str>,
    singles: Vec<Step<'a>>,
}

impl<'a> Round<'a> {
    fn add(&mut self, op: &'a WriteOp) {
        match op {
            WriteOp::InsertThread(t) => {
                let (status, domains, metadata) = thread_json(t);
                let threads = &mut self.threads;
                threads.ids.push(t.id.as_str());
                threads.user_ids.push(t.user_id.as_str());
                threads.created_at.push(t.created_at.naive());
                threads.titles.push(t.title.as_deref());
                threads.statuses.push(status);
                threads.domains.push(domains);
                threads.metadata.push(metadata);
            }
            WriteOp::InsertLease {
                thread_id,
                instance_id,
                state,
            } => {
                self.lease_threads.push(thread_id.as_str());
                self.lease_instances.push(instance_id.as_str());
                self.lease_states.push(state.as_str());
            }
            WriteOp::LeaseCheck {
                thread_id,
                instance_id,
                fencing,
                state,
            } => {
                self.check_threads.push(thread_id.as_str());
                self.check_instances.push(instance_id.as_str());
                self.fencings.push(fencing.get());
                self.states.push(state.as_str());
            }
            WriteOp::ReleaseLease {
                thread_id,
                instance_id,
                fencing,
            } => {
                self.release_threads.push(thread_id.as_str());
                self.release_instances.push(instance_id.as_str());
                self.release_fencings.push(fencing.get());
            }
            WriteOp::PutItem(r) => {
                self.item_threads.push(r.thread_id.as_str());
                self.item_ids.push(r.id.as_str());
                self.item_times.push(r.created_at.naive());
                self.kinds.push(r.kind);
                self.bodies.push(r.body.as_str());
            }
            other => self.singles.push(Step::One(other)),
        }
    }

    fn is_empty(&self) -> bool {
        self.threads.ids.is_empty()
            && self.lease_threads.is_empty()
            && self.check_threads.is_empty()
            && self.item_threads.is_empty()
            && self.release_threads.is_empty()
            && self.singles.is_empty()
    }

    /// The round's statements, in the order its ops may run: threads, leases, lease checks,
    /// items, lease releases, then the rarer ops.
    fn into_steps(self, steps: &mut Vec<Step<'a>>) {
        if !self.threads.ids.is_empty() {
            steps.push(Step::InsertThreads(self.threads));
        }
        if !self.lease_threads.is_empty() {
            steps.push(Step::InsertLeases {
                thread_ids: self.lease_threads,
                instance_ids: self.lease_instances,
                states: self.lease_states,
            });
        }
        if !self.check_threads.is_empty() {
            steps.push(Step::LeaseChecks {
                thread_ids: self.check_threads,
                instance_ids: self.check_instances,
                fencings: self.fencings,
                states: self.states,
            });
        }
        if !self.item_threads.is_empty() {
            steps.push(Step::PutItems {
                thread_ids: self.item_threads,
                ids: self.item_ids,
                created_at: self.item_times,
                kinds: self.kinds,
                bodies: self.bodies,
            });
        }
        if !self.release_threads.is_empty() {
            steps.push(Step::ReleaseLeases {
                thread_ids: self.release_threads,
                instance_ids: self.release_instances,
                fencings: self.release_fencings,
            });
        }
        steps.extend(self.singles);
    }
}

pub(super) fn thread_json(t: &ThreadMeta) -> (Value, Option<Value>, Value) {
    let status = serde_json::to_value(&t.status).expect("status serializes");
    let domains = t
        .allowed_image_domains
        .as_ref()
        .map(|d| Value::from(d.clone()));
    (status, domains, Value::Object(t.metadata.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Timestamp;
    use crate::store::cluster::{FencingToken, LeaseState};
    use crate::store::write_op::ItemRecord;

    fn check(thread: &str, state: LeaseState) -> WriteOp {
        WriteOp::LeaseCheck {
            thread_id: thread.into(),
            instance_id: "i1".into(),
            fencing: FencingToken::FIRST,
            state,
        }
    }

    fn item(thread: &str, id: &str) -> WriteOp {
        WriteOp::PutItem(ItemRecord {
            thread_id: thread.into(),
            id: id.into(),
            created_at: Timestamp::now_after(None),
            kind: "user_message",
            body: "{}".into(),
        })
    }

    /// (kind, threads or item ids) per step, for assertions.
    fn shape(steps: &[Step<'_>]) -> Vec<(&'static str, Vec<String>)> {
        steps
            .iter()
            .map(|step| match step {
                Step::InsertThreads(t) => {
                    ("threads", t.ids.iter().map(|s| s.to_string()).collect())
                }
                Step::InsertLeases { thread_ids, .. } => {
                    ("leases", thread_ids.iter().map(|s| s.to_string()).collect())
                }
                Step::LeaseChecks { thread_ids, .. } => {
                    ("checks", thread_ids.iter().map(|s| s.to_string()).collect())
                }
                Step::PutItems { ids, .. } => {
                    ("items", ids.iter().map(|s| s.to_string()).collect())
                }
                Step::ReleaseLeases { thread_ids, .. } => (
                    "releases",
                    thread_ids.iter().map(|s| s.to_string()).collect(),
                ),
                Step::One(op) => ("one", vec![op.thread_id().to_string()]),
                Step::GenericPlans => ("settings", vec![]),
            })
            .collect()
    }

    #[test]
    fn many_threads_become_one_statement_per_kind_and_round() {
        let mut ops = Vec::new();
        for t in ["a", "b", "c"] {
            ops.push(check(t, LeaseState::Idle));
            ops.push(item(t, &format!("{t}1")));
        }
        let steps = plan(&ops);
        assert_eq!(
            shape(&steps),
            vec![
                ("checks", vec!["a".into(), "b".into(), "c".into()]),
                ("items", vec!["a1".into(), "b1".into(), "c1".into()]),
            ]
        );
    }

    #[test]
    fn one_threads_ops_keep_their_order_across_rounds() {
        // Two writes of thread a in one batch (the same item twice: an upsert must not touch
        // one row twice in one statement), interleaved with thread b; a rare op in between.
        let ops = vec![
            check("a", LeaseState::Streaming),
            item("a", "x"),
            check("b", LeaseState::Idle),
            WriteOp::DeleteItemsAfter {
                thread_id: "b".into(),
                item_id: "y".into(),
            },
            check("a", LeaseState::Idle),
            item("a", "x"),
        ];
        let steps = plan(&ops);
        assert_eq!(
            shape(&steps),
            vec![
                ("checks", vec!["a".into(), "b".into()]),
                ("items", vec!["x".into()]),
                ("one", vec!["b".into()]),
                ("checks", vec!["a".into()]),
                ("items", vec!["x".into()]),
            ]
        );
    }

    #[test]
    fn lease_releases_of_retiring_actors_share_one_statement_with_the_batch() {
        let release = |thread: &str| WriteOp::ReleaseLease {
            thread_id: thread.into(),
            instance_id: "i1".into(),
            fencing: FencingToken::FIRST,
        };
        // c's last write and its release in one batch: the release comes after it.
        let ops = vec![
            release("a"),
            check("c", LeaseState::Idle),
            item("c", "c1"),
            release("b"),
            release("c"),
        ];
        let steps = plan(&ops);
        assert_eq!(
            shape(&steps),
            vec![
                ("checks", vec!["c".into()]),
                ("releases", vec!["a".into(), "b".into()]),
                ("items", vec!["c1".into()]),
                ("releases", vec!["c".into()]),
            ]
        );
    }

    #[test]
    fn an_empty_batch_plans_nothing() {
        assert!(plan(&[]).is_empty());
    }
}
