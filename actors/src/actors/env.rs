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
    /// with (the check needs the lease row to exist).
    pub fn fence(&self, state: LeaseState, mut ops: Vec<WriteOp>) -> Vec<WriteOp> {
        let at = ops
            .iter()
            .position(|op| !matches!(op, WriteOp::InsertThread(_) | WriteOp::InsertLease { .. }))
            .unwrap_or(ops.len());
        ops.insert(at, self.check(state));
        ops
    }
}
