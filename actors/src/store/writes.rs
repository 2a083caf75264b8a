//! Write operations and how one batch of them runs: a single transaction, statements
//! pipelined on the connection. (Each write of a thread is fenced by its lease, which is what
//! keeps memory and storage in step across instances; `threads.version` is no longer bumped.)

use deadpool_postgres::{Object, Transaction};
use serde_json::Value;
use tokio_postgres::Statement;

use super::StoreError;
use crate::protocol::{ThreadItem, ThreadMeta, Timestamp};

/// One change to the database. A batch of them from many threads commits together.
#[derive(Clone, Debug)]
pub enum WriteOp {
    InsertThread(ThreadMeta),
    /// Title, status, allowed image domains and private metadata.
    UpdateThread(ThreadMeta),
    /// Insert or replace an item (upsert: §8.5 re-inserts items on `done`).
    PutItem(ItemRecord),
    DeleteItems {
        thread_id: String,
        item_ids: Vec<String>,
    },
    DeleteThread {
        thread_id: String,
    },
    /// The first op of every batch a thread actor sends: the write only counts if the actor
    /// still holds the thread's lease (fencing), and it records the thread's state.
    LeaseCheck {
        thread_id: String,
        instance_id: String,
        fencing: i64,
        state: &'static str,
    },
    /// The lease of a thread created now (right after its `InsertThread`).
    InsertLease {
        thread_id: String,
        instance_id: String,
    },
    /// Deletes every item after this one (retry, §3.4).
    DeleteItemsAfter {
        thread_id: String,
        item_id: String,
    },
    /// Sets a generated title unless the thread got one meanwhile (a rename wins).
    SetTitleIfUntitled {
        thread_id: String,
        title: String,
    },
    Feedback {
        thread_id: String,
        user_id: String,
        item_ids: Vec<String>,
        kind: String,
    },
}

/// An item ready to store: its wire JSON serialized once.
#[derive(Clone, Debug)]
pub struct ItemRecord {
    pub thread_id: String,
    pub id: String,
    pub created_at: Timestamp,
    pub kind: &'static str,
    pub body: String,
}

impl WriteOp {
    pub fn put_item(item: &ThreadItem) -> Self {
        WriteOp::PutItem(ItemRecord {
            thread_id: item.thread_id.clone(),
            id: item.id.clone(),
            created_at: item.created_at,
            kind: item.kind(),
            body: serde_json::to_string(item).expect("items always serialize"),
        })
    }

    /// The thread this op writes.
    pub fn thread_id_of(&self) -> Option<&str> {
        Some(self.thread_id())
    }

    fn thread_id(&self) -> &str {
        match self {
            WriteOp::InsertThread(t) | WriteOp::UpdateThread(t) => &t.id,
            WriteOp::PutItem(r) => &r.thread_id,
            WriteOp::DeleteItems { thread_id, .. }
            | WriteOp::DeleteThread { thread_id }
            | WriteOp::SetTitleIfUntitled { thread_id, .. }
            | WriteOp::DeleteItemsAfter { thread_id, .. }
            | WriteOp::LeaseCheck { thread_id, .. }
            | WriteOp::InsertLease { thread_id, .. }
            | WriteOp::Feedback { thread_id, .. } => thread_id,
        }
    }
}

struct Statements {
    insert_thread: Statement,
    update_thread: Statement,
    put_item: Statement,
    delete_items: Statement,
    delete_thread: Statement,
    set_title: Statement,
    delete_after: Statement,
    lease_check: Statement,
    insert_lease: Statement,
    feedback: Statement,
}

async fn prepare(tx: &Transaction<'_>) -> Result<Statements, StoreError> {
    Ok(Statements {
        insert_thread: tx
            .prepare_cached(
                "INSERT INTO threads (id, user_id, created_at, title, status, allowed_image_domains, metadata)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?,
        update_thread: tx
            .prepare_cached(
                "UPDATE threads SET title = $2, status = $3, allowed_image_domains = $4, metadata = $5
                 WHERE id = $1",
            )
            .await?,
        put_item: tx
            .prepare_cached(
                "INSERT INTO items (thread_id, id, created_at, kind, body) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (thread_id, id) DO UPDATE SET kind = excluded.kind, body = excluded.body",
            )
            .await?,
        delete_items: tx
            .prepare_cached("DELETE FROM items WHERE thread_id = $1 AND id = ANY($2)")
            .await?,
        delete_thread: tx.prepare_cached("DELETE FROM threads WHERE id = $1").await?,
        lease_check: tx
            .prepare_cached(
                "UPDATE thread_leases SET state = $4, last_activity = now()
                 WHERE thread_id = $1 AND instance_id = $2 AND fencing = $3",
            )
            .await?,
        insert_lease: tx
            .prepare_cached(
                "INSERT INTO thread_leases (thread_id, instance_id, state) VALUES ($1, $2, 'streaming')",
            )
            .await?,
        delete_after: tx
            .prepare_cached(
                "DELETE FROM items WHERE thread_id = $1 AND (created_at, seq) >
                   (SELECT created_at, seq FROM items WHERE thread_id = $1 AND id = $2)",
            )
            .await?,
        set_title: tx
            .prepare_cached("UPDATE threads SET title = $2 WHERE id = $1 AND title IS NULL")
            .await?,
        feedback: tx
            .prepare_cached(
                "INSERT INTO feedback (thread_id, item_id, user_id, kind)
                 SELECT $1, unnest($3::text[]), $2, $4
                 ON CONFLICT (thread_id, item_id, user_id) DO UPDATE SET kind = excluded.kind, created_at = now()",
            )
            .await?,
    })
}

/// Runs `ops` in order inside one transaction.
pub(super) async fn apply_batch(client: &mut Object, ops: &[WriteOp]) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let stmts = prepare(&tx).await?;
    // Polled in order, so the statements reach the server in order, without waiting for each
    // other's round trip (tokio-postgres pipelines them on the connection).
    futures::future::try_join_all(ops.iter().map(|op| execute(&tx, &stmts, op))).await?;
    tx.commit().await?;
    Ok(())
}

async fn execute(tx: &Transaction<'_>, s: &Statements, op: &WriteOp) -> Result<(), StoreError> {
    match op {
        WriteOp::InsertThread(t) => {
            let (status, domains, metadata) = thread_json(t);
            tx.execute(
                &s.insert_thread,
                &[
                    &t.id,
                    &t.user_id,
                    &t.created_at.naive(),
                    &t.title,
                    &status,
                    &domains,
                    &metadata,
                ],
            )
            .await?;
        }
        WriteOp::UpdateThread(t) => {
            let (status, domains, metadata) = thread_json(t);
            tx.execute(
                &s.update_thread,
                &[&t.id, &t.title, &status, &domains, &metadata],
            )
            .await?;
        }
        WriteOp::PutItem(r) => {
            tx.execute(
                &s.put_item,
                &[&r.thread_id, &r.id, &r.created_at.naive(), &r.kind, &r.body],
            )
            .await?;
        }
        WriteOp::DeleteItems {
            thread_id,
            item_ids,
        } => {
            tx.execute(&s.delete_items, &[thread_id, item_ids]).await?;
        }
        WriteOp::DeleteThread { thread_id } => {
            tx.execute(&s.delete_thread, &[thread_id]).await?;
        }
        WriteOp::LeaseCheck {
            thread_id,
            instance_id,
            fencing,
            state,
        } => {
            let updated = tx
                .execute(&s.lease_check, &[thread_id, instance_id, fencing, state])
                .await?;
            if updated != 1 {
                return Err(StoreError::LeaseLost);
            }
        }
        WriteOp::InsertLease {
            thread_id,
            instance_id,
        } => {
            tx.execute(&s.insert_lease, &[thread_id, instance_id])
                .await?;
        }
        WriteOp::DeleteItemsAfter { thread_id, item_id } => {
            tx.execute(&s.delete_after, &[thread_id, item_id]).await?;
        }
        WriteOp::SetTitleIfUntitled { thread_id, title } => {
            tx.execute(&s.set_title, &[thread_id, title]).await?;
        }
        WriteOp::Feedback {
            thread_id,
            user_id,
            item_ids,
            kind,
        } => {
            tx.execute(&s.feedback, &[thread_id, user_id, item_ids, kind])
                .await?;
        }
    }
    Ok(())
}

fn thread_json(t: &ThreadMeta) -> (Value, Option<Value>, Value) {
    let status = serde_json::to_value(&t.status).expect("status serializes");
    let domains = t
        .allowed_image_domains
        .as_ref()
        .map(|d| Value::from(d.clone()));
    (status, domains, Value::Object(t.metadata.clone()))
}
