//! Cluster bookkeeping in Postgres: thread leases (one live owner per thread, with a fencing
//! token), instance heartbeats, hand-over notifications, and the admin listings.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::Type;

use super::{Store, StoreError};

/// A lease's fencing token: it grows with every change of owner, and a write counts only
/// while the writer's token is still the lease's (so a paused instance cannot write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FencingToken(i64);

impl FencingToken {
    /// The token of a lease created with its thread (`thread_leases.fencing` starts at 1).
    pub(crate) const FIRST: FencingToken = FencingToken(1);

    pub(crate) fn get(self) -> i64 {
        self.0
    }
}

/// What a thread's owner is doing, as the cluster view (and other instances) see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseState {
    Idle,
    /// A response is streaming: another instance answers 409 rather than asking for it.
    Streaming,
}

impl LeaseState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LeaseState::Idle => "idle",
            LeaseState::Streaming => "streaming",
        }
    }
}

/// The result of trying to become a thread's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseAttempt {
    /// We own it now, with this fencing token.
    Acquired(FencingToken),
    /// Another live instance owns it.
    Held { owner: String, state: LeaseState },
    /// No such thread of this user (unknown, deleted, or another user's: the same answer).
    NoSuchThread,
}

/// The `application_name` of an instance's dedicated LISTEN connection: its presence in
/// `pg_stat_activity` (same database) tells other instances that the owner is alive. The
/// schema is part of it (as a hash: the name must fit in 63 bytes), so that deployments
/// sharing one Postgres with the same instance ids in different schemas cannot keep each
/// other's dead instances "alive" (seen as a flaky 409 when tests ran in parallel).
pub(crate) fn listener_application_name(schema: &str, instance_id: &str) -> String {
    format!("ck:{:08x}:{instance_id}", fnv1a32(schema.as_bytes()))
}

/// FNV-1a: the same on every instance (unlike std's randomly keyed hasher).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The notification channel instances listen on; payloads carry thread ids only.
pub(crate) const HANDOVER_CHANNEL: &str = "chatkit_handover";

/// A live thread, for `GET /admin/threads`.
#[derive(Debug, Clone, Serialize)]
pub struct LiveThreadRow {
    pub thread_id: String,
    pub user_id: String,
    pub instance_id: String,
    pub state: String,
    pub live_since: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub item_count: i64,
}

/// An instance, for `GET /admin/instances`.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    pub instance_id: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub live_threads: i64,
}

/// Filters of the admin thread listing.
#[derive(Debug, Default, Clone)]
pub struct LiveThreadFilter {
    pub instance_id: Option<String>,
    pub user_id: Option<String>,
    pub state: Option<String>,
}

// For the thread $1 of the user $4 only: inserted, or taken over when ours already, or when
// its owner's heartbeat is older than $3 milliseconds; every change of owner bumps the
// fencing token.
const TAKE_LEASE: &str = "
    INSERT INTO thread_leases (thread_id, instance_id)
    SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM threads WHERE id = $1 AND user_id = $4)
    ON CONFLICT (thread_id) DO UPDATE
      SET instance_id = excluded.instance_id,
          fencing = thread_leases.fencing + 1,
          state = 'idle', live_since = now(), last_activity = now()
    WHERE thread_leases.instance_id = excluded.instance_id
       OR NOT EXISTS (SELECT 1 FROM instances i
                      WHERE i.instance_id = thread_leases.instance_id
                        AND i.heartbeat_at > now() - $3 * interval '1 millisecond')
    RETURNING fencing";

// The lease of the thread $1 of the user $2: no row when there is no such thread of theirs,
// NULLs when nobody holds it.
const LEASE_HOLDER: &str = "
    SELECT l.instance_id, l.state
    FROM threads t LEFT JOIN thread_leases l ON l.thread_id = t.id
    WHERE t.id = $1 AND t.user_id = $2";

// The LISTEN connections of an instance (see `listener_application_name`).
const LISTENERS: &str = "
    SELECT count(*) FROM pg_stat_activity
    WHERE application_name = $1 AND datname = current_database()";

// From the dead owner $3, only if it still holds it.
const TAKE_OVER_LEASE: &str = "
    UPDATE thread_leases
    SET instance_id = $2, fencing = fencing + 1,
        state = 'idle', live_since = now(), last_activity = now()
    WHERE thread_id = $1 AND instance_id = $3
    RETURNING fencing";

// Filters $1..$4 apply when not NULL; $5 rows at most; instances alive within $6 ms.
const LIVE_THREADS: &str = "
    SELECT l.thread_id, t.user_id, l.instance_id, l.state, l.live_since, l.last_activity,
           (SELECT count(*) FROM items i WHERE i.thread_id = l.thread_id)
    FROM thread_leases l JOIN threads t ON t.id = l.thread_id
    JOIN instances i ON i.instance_id = l.instance_id
    WHERE i.heartbeat_at > now() - $6 * interval '1 millisecond'
      AND ($1::text IS NULL OR l.instance_id = $1)
      AND ($2::text IS NULL OR t.user_id = $2)
      AND ($3::text IS NULL OR l.state = $3)
      AND ($4::text IS NULL OR l.thread_id > $4)
    ORDER BY l.thread_id LIMIT $5";

fn millis(d: Duration) -> f64 {
    d.as_millis() as f64
}

impl Store {
    /// Takes the lease of the thread of `user_id` if it is free, expired, or already ours.
    /// The owner is checked first: another user's thread answers `NoSuchThread`, whoever
    /// holds it.
    pub(crate) async fn acquire_lease(
        &self,
        thread_id: &str,
        user_id: &str,
        instance_id: &str,
        ttl: Duration,
    ) -> Result<LeaseAttempt, StoreError> {
        self.timed("acquire_lease", async move {
            let client = self.pool.get().await?;
            let sql = self.sql(&client);
            if let Some(row) = sql
                .query_opt(
                    TAKE_LEASE,
                    &[
                        (&thread_id, Type::TEXT),
                        (&instance_id, Type::TEXT),
                        (&millis(ttl), Type::FLOAT8),
                        (&user_id, Type::TEXT),
                    ],
                )
                .await?
            {
                return Ok(LeaseAttempt::Acquired(FencingToken(row.get(0))));
            }
            let holder = sql
                .query_opt(
                    LEASE_HOLDER,
                    &[(&thread_id, Type::TEXT), (&user_id, Type::TEXT)],
                )
                .await?;
            let Some(row) = holder else {
                return Ok(LeaseAttempt::NoSuchThread);
            };
            let Some(owner) = row.get::<_, Option<String>>(0) else {
                // Released between the two statements: try again.
                let again = self.acquire_lease(thread_id, user_id, instance_id, ttl);
                return Box::pin(again).await;
            };
            let state = if row.get::<_, Option<String>>(1).as_deref()
                == Some(LeaseState::Streaming.as_str())
            {
                LeaseState::Streaming
            } else {
                LeaseState::Idle
            };
            // The owner's LISTEN connection is gone: its process died (the kernel closed its
            // sockets), so take over without waiting for the lease to expire.
            let listener = listener_application_name(self.schema().as_str(), &owner);
            let alive: i64 = sql
                .query_one(LISTENERS, &[(&listener, Type::TEXT)])
                .await?
                .get(0);
            if alive == 0 {
                if let Some(row) = sql
                    .query_opt(
                        TAKE_OVER_LEASE,
                        &[
                            (&thread_id, Type::TEXT),
                            (&instance_id, Type::TEXT),
                            (&owner, Type::TEXT),
                        ],
                    )
                    .await?
                {
                    tracing::info!(%thread_id, dead_owner = %owner, "took over a thread from a dead instance");
                    return Ok(LeaseAttempt::Acquired(FencingToken(row.get(0))));
                }
            }
            Ok(LeaseAttempt::Held { owner, state })
        })
        .await
    }

    /// Gives up whatever lease this instance holds on a thread, whatever its fencing token
    /// (an actor restarted after a failure forgot its token; another instance may be waiting).
    pub(crate) async fn release_own_lease(
        &self,
        thread_id: &str,
        instance_id: &str,
    ) -> Result<(), StoreError> {
        self.timed("release_own_lease", async move {
            let client = self.pool.get().await?;
            self.sql(&client)
                .execute(
                    "DELETE FROM thread_leases WHERE thread_id = $1 AND instance_id = $2",
                    &[(&thread_id, Type::TEXT), (&instance_id, Type::TEXT)],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Asks the owner of a thread to hand it over (`LISTEN`ers get the thread id), with the
    /// answer to the question its turn waits on, if that is why (`thread/questions.rs`).
    pub(crate) async fn request_handover(
        &self,
        thread_id: &str,
        owner: &str,
        answer: Option<&str>,
    ) -> Result<(), StoreError> {
        self.timed("request_handover", async move {
            // Every instance hears it; only `owner` acts. Payload: `<owner> <thread id>`, ids
            // only, then the answer if any.
            let client = self.pool.get().await?;
            let payload = match answer {
                Some(answer) => format!("{owner} {thread_id} {answer}"),
                None => format!("{owner} {thread_id}"),
            };
            self.sql(&client)
                .execute(
                    "SELECT pg_notify($1, $2)",
                    &[(&HANDOVER_CHANNEL, Type::TEXT), (&payload, Type::TEXT)],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Records that this instance lives: its leases stay valid while this is fresh.
    pub(crate) async fn heartbeat(&self, instance_id: &str) -> Result<(), StoreError> {
        self.timed("heartbeat", async move {
            let client = self.pool.get().await?;
            self.sql(&client)
                .execute(
                    "INSERT INTO instances (instance_id) VALUES ($1)
                 ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()",
                    &[(&instance_id, Type::TEXT)],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Leaves the cluster: all leases released, the instance forgotten.
    pub(crate) async fn leave_cluster(&self, instance_id: &str) -> Result<(), StoreError> {
        self.timed("leave_cluster", async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let sql = self.sql_in(&tx);
            sql.execute(
                "DELETE FROM thread_leases WHERE instance_id = $1",
                &[(&instance_id, Type::TEXT)],
            )
            .await?;
            sql.execute(
                "DELETE FROM instances WHERE instance_id = $1",
                &[(&instance_id, Type::TEXT)],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Live threads across the cluster, by thread id, after `after`.
    pub(crate) async fn live_threads(
        &self,
        filter: &LiveThreadFilter,
        limit: u32,
        after: Option<&str>,
        ttl: Duration,
    ) -> Result<(Vec<LiveThreadRow>, bool), StoreError> {
        self.timed("live_threads", async move {
            let client = self.pool.get().await?;
            let rows = self
                .sql(&client)
                .query(
                    LIVE_THREADS,
                    &[
                        (&filter.instance_id, Type::TEXT),
                        (&filter.user_id, Type::TEXT),
                        (&filter.state, Type::TEXT),
                        (&after, Type::TEXT),
                        (&(limit as i64 + 1), Type::INT8),
                        (&millis(ttl), Type::FLOAT8),
                    ],
                )
                .await?;
            let mut out: Vec<LiveThreadRow> = rows
                .iter()
                .map(|r| LiveThreadRow {
                    thread_id: r.get(0),
                    user_id: r.get(1),
                    instance_id: r.get(2),
                    state: r.get(3),
                    live_since: r.get(4),
                    last_activity: r.get(5),
                    item_count: r.get(6),
                })
                .collect();
            let has_more = out.len() > limit as usize;
            out.truncate(limit as usize);
            Ok((out, has_more))
        })
        .await
    }

    /// Instances seen within `stale_after`, with their live-thread counts.
    pub(crate) async fn instances(
        &self,
        stale_after: Duration,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        self.timed("instances", async move {
            let client = self.pool.get().await?;
            let rows = self
                .sql(&client)
                .query(
                    "SELECT i.instance_id, i.started_at, i.heartbeat_at,
                        (SELECT count(*) FROM thread_leases l WHERE l.instance_id = i.instance_id)
                 FROM instances i
                 WHERE i.heartbeat_at > now() - $1 * interval '1 millisecond'
                 ORDER BY i.instance_id",
                    &[(&millis(stale_after), Type::FLOAT8)],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| InstanceRow {
                    instance_id: r.get(0),
                    started_at: r.get(1),
                    heartbeat_at: r.get(2),
                    live_threads: r.get(3),
                })
                .collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::listener_application_name;

    #[test]
    fn listener_names_tell_schemas_apart_and_fit_postgres() {
        let a = listener_application_name("chatkit", "node-1");
        assert_eq!(a, listener_application_name("chatkit", "node-1"));
        assert_ne!(a, listener_application_name("staging", "node-1"));
        // Postgres keeps 63 bytes of application_name; instance ids have at most 48.
        assert!(listener_application_name("s", &"x".repeat(48)).len() <= 63);
    }
}
