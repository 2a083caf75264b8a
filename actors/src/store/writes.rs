//! How one batch of writes runs: a single transaction, its statements pipelined on the
//! connection with its `BEGIN` and `COMMIT`. Each write of a thread is fenced by its lease,
//! which keeps memory and storage in step across instances.

use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Object;
use tokio_postgres::types::Type;

use super::batch_plan::{plan, thread_json, Step};
use super::sql::{Ready, Sql};
use super::write_op::WriteOp;
use super::StoreError;

struct Statements {
    generic_plans: Ready,
    insert_threads: Ready,
    update_thread: Ready,
    put_items: Ready,
    delete_items: Ready,
    delete_thread: Ready,
    set_title: Ready,
    delete_after: Ready,
    lease_checks: Ready,
    insert_leases: Ready,
    release_leases: Ready,
    feedback: Ready,
    link_attachments: Ready,
}

/// A statement's text and its parameters' types.
type Text = (&'static str, &'static [Type]);

// Statistics of the hot lease table change constantly (autoanalyze), and each change replans
// the prepared statements: custom plans for a few dozen threads chose a hash join over a
// sequential scan of every lease. The generic plans (key lookups) are right for every batch
// size, and skip planning on each execution too.
const GENERIC_PLANS: Text = ("SET LOCAL plan_cache_mode = force_generic_plan", &[]);

const INSERT_THREADS: Text = (
    "INSERT INTO threads (id, user_id, created_at, title, status, allowed_image_domains, metadata)
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamp[], $4::text[], $5::jsonb[],
                          $6::jsonb[], $7::jsonb[])",
    &[
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
        Type::TIMESTAMP_ARRAY,
        Type::TEXT_ARRAY,
        Type::JSONB_ARRAY,
        Type::JSONB_ARRAY,
        Type::JSONB_ARRAY,
    ],
);

const UPDATE_THREAD: Text = (
    "UPDATE threads SET title = $2, status = $3, allowed_image_domains = $4, metadata = $5
     WHERE id = $1",
    &[
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
        Type::JSONB,
        Type::JSONB,
    ],
);

const PUT_ITEMS: Text = (
    "INSERT INTO items (thread_id, id, created_at, kind, body)
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamp[], $4::text[], $5::text[])
     ON CONFLICT (thread_id, id) DO UPDATE SET kind = excluded.kind, body = excluded.body",
    &[
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
        Type::TIMESTAMP_ARRAY,
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
    ],
);

const DELETE_ITEMS: Text = (
    "DELETE FROM items WHERE thread_id = $1 AND id = ANY($2)",
    &[Type::TEXT, Type::TEXT_ARRAY],
);

// Items and attachments have no foreign key (sql/0004, sql/0006): they go with their thread
// explicitly.
const DELETE_THREAD: Text = (
    "WITH items_gone AS (DELETE FROM items WHERE thread_id = $1),
          attachments_gone AS (DELETE FROM attachments WHERE thread_id = $1)
     DELETE FROM threads WHERE id = $1",
    &[Type::TEXT],
);

// `l.thread_id = ANY($1)` keeps the lease table on its primary key: joined with the unnest
// alone, batches of a few dozen threads were planned as a hash join over a sequential scan of
// every lease (seen in benches/profile.sh as most of Postgres' CPU). Every thread must still
// hold its lease: `leases_held` (sql/0007) raises CK001 otherwise, aborting the transaction
// whose COMMIT is already on its way.
const LEASE_CHECKS: Text = (
    "WITH checked AS (
       UPDATE thread_leases AS l SET state = v.state, last_activity = now()
       FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[])
            AS v(thread_id, instance_id, fencing, state)
       WHERE l.thread_id = ANY($1::text[])
         AND l.thread_id = v.thread_id AND l.instance_id = v.instance_id
         AND l.fencing = v.fencing
       RETURNING 1)
     SELECT leases_held(cardinality($1::text[]), count(*)) FROM checked",
    &[
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
        Type::INT8_ARRAY,
        Type::TEXT_ARRAY,
    ],
);

const INSERT_LEASES: Text = (
    "INSERT INTO thread_leases (thread_id, instance_id, state)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
    &[Type::TEXT_ARRAY, Type::TEXT_ARRAY, Type::TEXT_ARRAY],
);

// Only leases still held with the token the retiring actor had: one taken over since (by
// this instance's next actor for the thread, or another instance) stays. `= ANY($1)` keeps
// the primary key, as for the lease checks.
const RELEASE_LEASES: Text = (
    "DELETE FROM thread_leases AS l
     USING unnest($1::text[], $2::text[], $3::int8[]) AS v(thread_id, instance_id, fencing)
     WHERE l.thread_id = ANY($1::text[])
       AND l.thread_id = v.thread_id AND l.instance_id = v.instance_id
       AND l.fencing = v.fencing",
    &[Type::TEXT_ARRAY, Type::TEXT_ARRAY, Type::INT8_ARRAY],
);

const DELETE_AFTER: Text = (
    "DELETE FROM items WHERE thread_id = $1 AND (created_at, seq) >
       (SELECT created_at, seq FROM items WHERE thread_id = $1 AND id = $2)",
    &[Type::TEXT, Type::TEXT],
);

const SET_TITLE: Text = (
    "UPDATE threads SET title = $2 WHERE id = $1 AND title IS NULL",
    &[Type::TEXT, Type::TEXT],
);

const FEEDBACK: Text = (
    "INSERT INTO feedback (thread_id, item_id, user_id, kind)
     SELECT $1, unnest($3::text[]), $2, $4
     ON CONFLICT (thread_id, item_id, user_id) DO UPDATE SET kind = excluded.kind, created_at = now()",
    &[Type::TEXT, Type::TEXT, Type::TEXT_ARRAY, Type::TEXT],
);

// Only the caller's attachments, and only unlinked ones or this thread's. The engine checked
// both before the turn, but another message may have taken one since (two `threads.create`
// naming it at once), or it was deleted: then `attachments_linked` (sql/0008) raises CK002 and
// the transaction aborts, so this message and its new thread are not stored. (Ids are
// distinct: the engine dropped repeats.)
const LINK_ATTACHMENTS: Text = (
    "WITH linked AS (
       UPDATE attachments SET thread_id = $1
       WHERE id = ANY($3) AND user_id = $2 AND (thread_id IS NULL OR thread_id = $1)
       RETURNING 1)
     SELECT attachments_linked(cardinality($3), count(*)) FROM linked",
    &[Type::TEXT, Type::TEXT, Type::TEXT_ARRAY],
);

/// Every statement a batch may run, made ready before the first is sent: with prepared
/// statements, those this connection has not prepared yet are prepared now, one after the
/// other; without, nothing goes to the server here.
async fn prepare(sql: &Sql<'_>) -> Result<Statements, StoreError> {
    let ready = |(text, types): Text| sql.ready(text, types);
    Ok(Statements {
        generic_plans: ready(GENERIC_PLANS).await?,
        insert_threads: ready(INSERT_THREADS).await?,
        update_thread: ready(UPDATE_THREAD).await?,
        put_items: ready(PUT_ITEMS).await?,
        delete_items: ready(DELETE_ITEMS).await?,
        delete_thread: ready(DELETE_THREAD).await?,
        lease_checks: ready(LEASE_CHECKS).await?,
        insert_leases: ready(INSERT_LEASES).await?,
        release_leases: ready(RELEASE_LEASES).await?,
        delete_after: ready(DELETE_AFTER).await?,
        set_title: ready(SET_TITLE).await?,
        feedback: ready(FEEDBACK).await?,
        link_attachments: ready(LINK_ATTACHMENTS).await?,
    })
}

/// Runs `ops` inside one transaction, each thread's ops in the order given.
///
/// The common ops (thread and lease inserts, lease checks, item upserts) of many threads go
/// to Postgres as one multi-row statement per kind: a group commit of a hundred writes is a
/// handful of statements, not hundreds (see `batch_plan.rs`). `BEGIN`, the statements and `COMMIT`
/// leave together and their answers come back together: one round trip per group commit
/// (three before: `BEGIN`, the statements, `COMMIT`, each a wake-up of the backend and of the
/// connection task, which on a busy small machine cost as much as the WAL flush). If a
/// statement fails, Postgres aborts the transaction and answers the `COMMIT` with a rollback;
/// the failed statement's error is the result.
pub(super) async fn apply_batch(
    client: &Object,
    ops: &[WriteOp],
    prepared_statements: bool,
) -> Result<(), StoreError> {
    let steps = plan(ops);
    let sql = Sql::on_client(client, prepared_statements);
    // Prepared (or looked up in the connection's cache) before anything is sent: from here
    // on, each request leaves when its future is first polled, and the joins below poll them
    // in order, so they reach the server in order without waiting for each other's answers.
    let stmts = prepare(&sql).await?;
    // A statement that failed before the transaction's end left (refused by the client, or
    // answered that soon because this task was descheduled) makes it end with `ROLLBACK`.
    let failed = AtomicBool::new(false);
    let (sql, stmts, failed) = (&sql, &stmts, &failed);
    let statements = futures::future::join_all(
        std::iter::once(&Step::GenericPlans)
            .chain(steps.iter())
            .map(|step| async move {
                let result = execute(sql, stmts, step).await;
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                result
            }),
    );
    let end = async {
        let end = match failed.load(Ordering::Relaxed) {
            true => "ROLLBACK",
            false => "COMMIT",
        };
        sql.batch_execute(end).await
    };
    // Joined, never short-circuited: an early error must not keep the end of the transaction
    // from being sent, and the connection goes back to the pool only once the transaction
    // ended (else the next user of the connection finds it aborted).
    let (begun, done, ended) = futures::join!(sql.batch_execute("BEGIN"), statements, end);
    begun?;
    done.into_iter().collect::<Result<Vec<()>, _>>()?;
    ended
}

async fn execute(sql: &Sql<'_>, s: &Statements, step: &Step<'_>) -> Result<(), StoreError> {
    match step {
        Step::GenericPlans => {
            sql.execute_ready(&s.generic_plans, &[]).await?;
        }
        Step::InsertThreads(t) => {
            sql.execute_ready(
                &s.insert_threads,
                &[
                    &t.ids,
                    &t.user_ids,
                    &t.created_at,
                    &t.titles,
                    &t.statuses,
                    &t.domains,
                    &t.metadata,
                ],
            )
            .await?;
        }
        Step::InsertLeases {
            thread_ids,
            instance_ids,
            states,
        } => {
            sql.execute_ready(&s.insert_leases, &[thread_ids, instance_ids, states])
                .await?;
        }
        Step::LeaseChecks {
            thread_ids,
            instance_ids,
            fencings,
            states,
        } => {
            // A lost lease fails in the server (`leases_held`), aborting the transaction.
            sql.execute_ready(
                &s.lease_checks,
                &[thread_ids, instance_ids, fencings, states],
            )
            .await?;
        }
        Step::ReleaseLeases {
            thread_ids,
            instance_ids,
            fencings,
        } => {
            sql.execute_ready(&s.release_leases, &[thread_ids, instance_ids, fencings])
                .await?;
        }
        Step::PutItems {
            thread_ids,
            ids,
            created_at,
            kinds,
            bodies,
        } => {
            sql.execute_ready(&s.put_items, &[thread_ids, ids, created_at, kinds, bodies])
                .await?;
        }
        Step::One(op) => execute_one(sql, s, op).await?,
    }
    Ok(())
}

async fn execute_one(sql: &Sql<'_>, s: &Statements, op: &WriteOp) -> Result<(), StoreError> {
    match op {
        WriteOp::UpdateThread(t) => {
            let (status, domains, metadata) = thread_json(t);
            sql.execute_ready(
                &s.update_thread,
                &[&t.id, &t.title, &status, &domains, &metadata],
            )
            .await?;
        }
        WriteOp::DeleteItems {
            thread_id,
            item_ids,
        } => {
            sql.execute_ready(&s.delete_items, &[thread_id, item_ids])
                .await?;
        }
        WriteOp::DeleteThread { thread_id } => {
            sql.execute_ready(&s.delete_thread, &[thread_id]).await?;
        }
        WriteOp::DeleteItemsAfter { thread_id, item_id } => {
            sql.execute_ready(&s.delete_after, &[thread_id, item_id])
                .await?;
        }
        WriteOp::SetTitleIfUntitled { thread_id, title } => {
            sql.execute_ready(&s.set_title, &[thread_id, title]).await?;
        }
        WriteOp::Feedback {
            thread_id,
            user_id,
            item_ids,
            kind,
        } => {
            sql.execute_ready(&s.feedback, &[thread_id, user_id, item_ids, kind])
                .await?;
        }
        WriteOp::LinkAttachments {
            thread_id,
            user_id,
            attachment_ids,
        } => {
            sql.execute_ready(&s.link_attachments, &[thread_id, user_id, attachment_ids])
                .await?;
        }
        // Planned as multi-row statements, never one by one.
        WriteOp::InsertThread(_)
        | WriteOp::InsertLease { .. }
        | WriteOp::LeaseCheck { .. }
        | WriteOp::ReleaseLease { .. }
        | WriteOp::PutItem(_) => unreachable!("planned as a multi-row step"),
    }
    Ok(())
}
