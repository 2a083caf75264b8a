//! Reads on standbys (`database.replica_urls`) without losing read-your-writes: a read asks
//! the primary for its WAL position (`pg_current_wal_lsn()`, a trivial query) and runs on a
//! standby only once that standby has replayed up to it, so every commit acknowledged before
//! the read began — whoever made it, on whichever instance — is visible there. A standby that
//! is not there within `database.replica_max_wait_ms`, or unreachable, leaves the read to the
//! primary. The heavy part of a read (the rows, their JSON) moves off the primary; its cost
//! there is one round trip for the position (specs/persistence.md, "Reads on standbys").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use tokio_postgres::types::Type;

use super::sql::Sql;
use crate::metrics::METRICS;

/// How often a standby that is behind is asked again.
const CATCH_UP_POLL: Duration = Duration::from_millis(1);

pub(crate) struct Replicas {
    pools: Vec<Pool>,
    next: AtomicUsize,
    max_wait: Duration,
    prepared_statements: bool,
}

impl Replicas {
    pub fn new(pools: Vec<Pool>, max_wait: Duration, prepared_statements: bool) -> Self {
        Replicas {
            pools,
            next: AtomicUsize::new(0),
            max_wait,
            prepared_statements,
        }
    }

    /// A connection to a standby that has replayed everything the primary has written so far,
    /// or `None` (then the read goes to the primary).
    pub async fn caught_up(&self, primary: &Pool) -> Option<Object> {
        let position: String = {
            let client = primary.get().await.ok()?;
            let row = Sql::on_client(&client, self.prepared_statements)
                .query_one("SELECT pg_current_wal_lsn()::text", &[])
                .await
                .ok()?;
            row.get(0)
        };
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for offset in 0..self.pools.len() {
            let pool = &self.pools[(first + offset) % self.pools.len()];
            let Ok(client) = pool.get().await else {
                METRICS
                    .replica_reads
                    .with_label_values(&["unreachable"])
                    .inc();
                continue;
            };
            if self.replayed(&client, &position).await {
                METRICS.replica_reads.with_label_values(&["replica"]).inc();
                return Some(client);
            }
        }
        METRICS.replica_reads.with_label_values(&["behind"]).inc();
        None
    }

    /// Whether the standby behind `client` replays up to `position` within `max_wait` (a
    /// primary answers NULL: never used as a standby).
    async fn replayed(&self, client: &Object, position: &str) -> bool {
        let deadline = Instant::now() + self.max_wait;
        let sql = Sql::on_client(client, self.prepared_statements);
        loop {
            let caught_up = sql
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[(&position, Type::TEXT)],
                )
                .await
                .ok()
                .and_then(|row| row.get::<_, Option<bool>>(0));
            match caught_up {
                Some(true) => return true,
                Some(false) if Instant::now() < deadline => tokio::time::sleep(CATCH_UP_POLL).await,
                _ => return false,
            }
        }
    }
}
