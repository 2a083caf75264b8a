//! What every actor of the engine shares, and the one way a thread's writes reach Postgres:
//! fenced by its lease, through the persistence actor's group commit.

use std::sync::Arc;

use actix::Addr;

use crate::actors::persistence::{Persist, PersistenceActor};
use crate::config::EngineSettings;
use crate::error::EngineError;
use crate::ids::ThreadId;
use crate::mcp::{ServerHealth, ToolCatalog};
use crate::model::ModelCatalog;
use crate::store::cluster::{FencingToken, LeaseState};
use crate::store::{Store, WriteOp};

pub(crate) struct EngineEnv {
    pub store: Store,
    /// The default model and the model picker's.
    pub models: ModelCatalog,
    pub persistence: Addr<PersistenceActor>,
    pub settings: EngineSettings,
    /// Tool lists shared by every thread actor's MCP sessions.
    pub tool_catalog: Arc<ToolCatalog>,
    /// Whether each tool server answers (turns leave a down one out).
    pub mcp_health: Arc<ServerHealth>,
    /// True once shutdown began: a turn whose client left stops then, even when
    /// `stream.on_disconnect = "finish"` would let it run on.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// The right to write a thread: this instance's id and the lease's fencing token.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    pub thread_id: ThreadId,
    pub instance_id: String,
    pub fencing: FencingToken,
}

impl EngineEnv {
    /// Commits a thread's `ops` only if `lease` is still the thread's (fencing), recording
    /// the thread's state for the cluster view.
    pub async fn persist_as(
        &self,
        lease: &Lease,
        state: LeaseState,
        ops: Vec<WriteOp>,
    ) -> Result<(), EngineError> {
        self.persist(lease.fence(state, ops)).await
    }

    /// Commits `ops` through the persistence actor (group commit); answers after the commit.
    /// The commit's span is a child of the caller's (or linked to it, when the group commit
    /// is another write's).
    pub async fn persist(&self, ops: Vec<WriteOp>) -> Result<(), EngineError> {
        let persist = Persist(ops, crate::trace::TraceContext::current());
        match self.persistence.send(persist).await {
            Ok(result) => result.map_err(EngineError::from),
            Err(_) => Err(EngineError::Unavailable("persistence actor stopped".into())),
        }
    }
}

impl Lease {
    /// The lease check of a write: it counts only while this lease is the thread's.
    pub fn check(&self, state: LeaseState) -> WriteOp {
        WriteOp::LeaseCheck {
            thread_id: self.thread_id.clone(),
            instance_id: self.instance_id.clone(),
            fencing: self.fencing,
            state,
        }
    }

    /// `ops` with the lease check right after the thread and lease creation they may start
    /// with (the check needs the lease row to exist). A lease these ops create needs no
    /// check: its insert fails, and the transaction with it, if the thread has one already.
    /// It is created in `state` instead (a check would update the row just inserted, and
    /// make Postgres check the lease's foreign key a second time).
    pub fn fence(&self, state: LeaseState, mut ops: Vec<WriteOp>) -> Vec<WriteOp> {
        let created = ops.iter_mut().find_map(|op| match op {
            WriteOp::InsertLease {
                thread_id,
                state: created,
                ..
            } if *thread_id == self.thread_id => Some(created),
            _ => None,
        });
        if let Some(created) = created {
            *created = state;
            return ops;
        }
        let at = ops
            .iter()
            .position(|op| !matches!(op, WriteOp::InsertThread(_) | WriteOp::InsertLease { .. }))
            .unwrap_or(ops.len());
        ops.insert(at, self.check(state));
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            thread_id: "thr_a".into(),
            instance_id: "i1".into(),
            fencing: FencingToken::FIRST,
        }
    }

    fn insert_lease(thread: &str) -> WriteOp {
        WriteOp::InsertLease {
            thread_id: thread.into(),
            instance_id: "i1".into(),
            state: LeaseState::Streaming,
        }
    }

    fn delete(thread: &str) -> WriteOp {
        WriteOp::DeleteItems {
            thread_id: thread.into(),
            item_ids: vec![],
        }
    }

    #[test]
    fn a_lease_the_ops_create_is_created_in_the_state_and_not_checked() {
        let ops = lease().fence(
            LeaseState::Idle,
            vec![insert_lease("thr_a"), delete("thr_a")],
        );
        assert!(!ops
            .iter()
            .any(|op| matches!(op, WriteOp::LeaseCheck { .. })));
        assert!(matches!(
            ops[0],
            WriteOp::InsertLease {
                state: LeaseState::Idle,
                ..
            }
        ));
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn an_existing_lease_is_checked_before_the_first_write() {
        let ops = lease().fence(LeaseState::Idle, vec![delete("thr_a")]);
        assert!(matches!(
            ops[0],
            WriteOp::LeaseCheck {
                state: LeaseState::Idle,
                ..
            }
        ));
        // Another thread's lease created in the same ops does not stand for this one's.
        let ops = lease().fence(
            LeaseState::Streaming,
            vec![insert_lease("thr_b"), delete("thr_a")],
        );
        assert!(matches!(ops[1], WriteOp::LeaseCheck { .. }));
        assert_eq!(ops.len(), 3);
    }
}
