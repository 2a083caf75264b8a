//! The Postgres store: threads and items, per-user scoped reads, and batched writes.
//!
//! Reads are served straight from Postgres (it is authoritative: every event that announces a
//! stored item left only after its commit). Writes arrive as [`WriteOp`] batches from the
//! persistence actor and run in one transaction each.

mod attachments;
mod batch_plan;
pub(crate) mod cluster;
mod error;
mod generated;
mod migrations;
mod quota;
mod reads;
mod replicas;
mod schema;
mod sql;
mod write_op;
mod writes;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::FutureExt;
use serde_json::value::RawValue;
use tokio_postgres::NoTls;

pub(crate) use attachments::{AttachmentRow, Claim, NewAttachment, CHUNK_BYTES};
pub use error::StoreError;
pub(crate) use generated::GeneratedFile;
pub use schema::SchemaName;
use sql::Sql;
pub(crate) use write_op::{ItemRecord, WriteOp};

use crate::protocol::ThreadItem;

/// An item as stored: its exact wire JSON plus what we index.
#[derive(Clone, Debug)]
pub(crate) struct StoredItem {
    pub id: String,
    pub kind: String,
    pub body: String,
}

impl StoredItem {
    pub(crate) fn is_hidden(&self) -> bool {
        self.kind == "hidden_context_item" || self.kind == "sdk_hidden_context"
    }

    pub(crate) fn parse(&self) -> Result<ThreadItem, StoreError> {
        serde_json::from_str(&self.body)
            .map_err(|e| StoreError::Corrupt(format!("item {}: {e}", self.id)))
    }

    pub(crate) fn raw_json(&self) -> Result<Box<RawValue>, StoreError> {
        RawValue::from_string(self.body.clone())
            .map_err(|e| StoreError::Corrupt(format!("item {}: {e}", self.id)))
    }
}

/// Pool settings.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// Connections for reads and everything but the group commit (`database.pool_size`).
    pub max_size: usize,
    /// Connections of the group commit's own pool (`persistence.max_in_flight`).
    pub writers: usize,
    pub connect_timeout: Duration,
    pub wait_timeout: Duration,
    /// The longest any database operation may take, from waiting for a connection to the
    /// last row (a stalled database must not stall the server).
    pub operation_timeout: Duration,
    /// Statements prepared by name and kept per connection (`database.prepared_statements`);
    /// `false`: unnamed statements only, as PgBouncer's transaction pooling needs.
    pub prepared_statements: bool,
    /// How long a read waits for a standby to catch up before it goes to the primary
    /// (`database.replica_max_wait_ms`).
    pub replica_max_wait: Duration,
}

/// Where a read runs: the primary (what the thread actors load: authoritative), or a standby
/// that has caught up with the primary (the client's reads, `database.replica_urls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadFrom {
    Primary,
    CaughtUpStandby,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// The group commit's connections ([`Store::apply`] only): opened by the persistence
    /// actor's first batches, so their I/O runs on its thread. A connection opened by another
    /// thread (a read on an HTTP worker, a load on an arbiter) would make every commit over it
    /// cross threads twice.
    writes: Pool,
    schema: SchemaName,
    /// For the dedicated `LISTEN` connection (not pooled).
    pg_config: tokio_postgres::Config,
    operation_timeout: Duration,
    prepared_statements: bool,
    /// Standbys for the client's reads (`database.replica_urls`); `None`: every read on the
    /// primary.
    replicas: Option<std::sync::Arc<replicas::Replicas>>,
}

/// A connection pool to one server (connections open lazily).
fn build_pool(
    mut pg_config: tokio_postgres::Config,
    settings: &PoolSettings,
) -> Result<Pool, StoreError> {
    pg_config.connect_timeout(settings.connect_timeout);
    pg_config.application_name("chatkit-rs");
    let manager = Manager::from_config(
        pg_config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl Store {
    /// Builds the pool (connections are opened lazily) with `search_path` set to `schema`.
    /// `listen` is where the dedicated `LISTEN` connection goes (`database.listen_url`: a
    /// direct connection when the pool goes through PgBouncer in transaction mode, which
    /// cannot hold a `LISTEN`); `None`: the pool's server.
    pub fn new(
        pg_config: tokio_postgres::Config,
        listen: Option<tokio_postgres::Config>,
        schema: SchemaName,
        settings: &PoolSettings,
    ) -> Result<Self, StoreError> {
        Self::with_replicas(pg_config, listen, Vec::new(), schema, settings)
    }

    /// As [`Store::new`], with standbys for the client's reads (`database.replica_urls`).
    pub fn with_replicas(
        mut pg_config: tokio_postgres::Config,
        listen: Option<tokio_postgres::Config>,
        replicas: Vec<tokio_postgres::Config>,
        schema: SchemaName,
        settings: &PoolSettings,
    ) -> Result<Self, StoreError> {
        pg_config.options(format!("-c search_path={schema}"));
        let listen_config = listen.unwrap_or_else(|| pg_config.clone());
        let pool = build_pool(pg_config.clone(), settings)?;
        let writer_settings = PoolSettings {
            max_size: settings.writers.max(1),
            ..settings.clone()
        };
        let writes = build_pool(pg_config, &writer_settings)?;
        let replica_pools = replicas
            .into_iter()
            .map(|mut config| {
                config.options(format!("-c search_path={schema}"));
                build_pool(config, settings)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let replicas = (!replica_pools.is_empty()).then(|| {
            std::sync::Arc::new(replicas::Replicas::new(
                replica_pools,
                settings.replica_max_wait,
                settings.prepared_statements,
            ))
        });
        Ok(Store {
            pool,
            writes,
            schema,
            pg_config: listen_config,
            operation_timeout: settings.operation_timeout,
            prepared_statements: settings.prepared_statements,
            replicas,
        })
    }

    /// A connection for a read from `from`: a standby that caught up with the primary when
    /// there is one, else the primary.
    async fn reader(&self, from: ReadFrom) -> Result<deadpool_postgres::Object, StoreError> {
        if let (ReadFrom::CaughtUpStandby, Some(replicas)) = (from, &self.replicas) {
            if let Some(client) = replicas.caught_up(&self.pool).await {
                return Ok(client);
            }
        }
        Ok(self.pool.get().await?)
    }

    /// How statements run on a pooled connection (`store/sql.rs`).
    fn sql<'c>(&self, client: &'c deadpool_postgres::Object) -> Sql<'c> {
        Sql::on_client(client, self.prepared_statements)
    }

    /// How statements run inside a transaction.
    fn sql_in<'c>(&self, tx: &'c deadpool_postgres::Transaction<'_>) -> Sql<'c> {
        Sql::in_transaction(tx, self.prepared_statements)
    }

    /// Runs one database operation within `operation_timeout`, or what remains of the
    /// request's deadline when one is in force (`deadline.rs`): past it the caller gets
    /// `Unavailable` (503, or the in-band error of a stream) at once. A connection left with
    /// a request in flight answers again once the database does, so the pool heals by itself.
    /// A write that timed out here may still commit: it was never acknowledged (see
    /// specs/persistence.md, "A database that stalls").
    fn timed<T>(
        &self,
        what: &'static str,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> {
        // Not an `async fn` (see `Deadline::scope`): called where it is awaited, so the
        // deadline in force is the caller's.
        crate::metrics::labels::check_database_operation(what);
        let limit = crate::deadline::Deadline::cap(self.operation_timeout);
        tokio::time::timeout(limit, operation).map(move |timed| match timed {
            Ok(result) => result,
            Err(_) => {
                crate::metrics::METRICS
                    .database_timeouts
                    .with_label_values(&[what])
                    .inc();
                Err(StoreError::TimedOut(format!(
                    "{what} took longer than {limit:?}"
                )))
            }
        })
    }

    /// The longest a database operation may take (`database.operation_timeout_secs`); also
    /// a request's deadline.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    pub(crate) fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// Connection settings for a dedicated, non-pooled connection (LISTEN).
    pub(crate) fn connection_config(&self) -> &tokio_postgres::Config {
        &self.pg_config
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await?;
        let applied =
            migrations::apply(&mut client, &self.schema, self.prepared_statements).await?;
        migrations::check_search_path(self.sql(&client), &self.schema).await?;
        Ok(applied)
    }

    /// Database reachable and schema current (for `/readyz`).
    pub(crate) async fn is_ready(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => migrations::all_applied(self.sql(&client))
                .await
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Runs one batch of writes in one transaction, on the group commit's own connections.
    pub(crate) async fn apply(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        self.timed("apply", async move {
            let client = self.writes.get().await?;
            writes::apply_batch(&client, ops, self.prepared_statements).await
        })
        .await
    }
}
