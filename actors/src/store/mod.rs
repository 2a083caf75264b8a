//! The Postgres store: threads and items, per-user scoped reads, and batched writes.
//!
//! Reads are served straight from Postgres (it is authoritative: every event that announces a
//! stored item left only after its commit). Writes arrive as [`WriteOp`] batches from the
//! persistence actor and run in one transaction each.

mod attachments;
mod batch_plan;
pub(crate) mod cluster;
mod error;
mod migrations;
mod quota;
mod replicas;
mod schema;
mod sql;
mod writes;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::value::RawValue;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

pub(crate) use attachments::{AttachmentRow, Claim, NewAttachment, CHUNK_BYTES};
pub use error::StoreError;
pub use schema::SchemaName;
use sql::Sql;
pub(crate) use writes::WriteOp;

use crate::ids::ThreadId;
use crate::protocol::{Order, Page, ThreadItem, ThreadMeta, ThreadStatus, Timestamp};

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
    pub max_size: usize,
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
enum ReadFrom {
    Primary,
    CaughtUpStandby,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
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

const THREAD_COLUMNS: &str =
    "id, user_id, created_at, title, status, allowed_image_domains, metadata";

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
        let pool = build_pool(pg_config, settings)?;
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
    async fn timed<T>(
        &self,
        what: &'static str,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        crate::metrics::labels::check_database_operation(what);
        let limit = crate::deadline::Deadline::cap(self.operation_timeout);
        match tokio::time::timeout(limit, operation).await {
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
        }
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

    /// Runs one batch of writes in one transaction.
    pub(crate) async fn apply(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        self.timed("apply", async move {
            let client = self.pool.get().await?;
            writes::apply_batch(&client, ops, self.prepared_statements).await
        })
        .await
    }

    /// A thread by id, whoever owns it (the caller checks ownership).
    pub(crate) async fn load_thread(
        &self,
        thread_id: &str,
    ) -> Result<Option<ThreadMeta>, StoreError> {
        self.timed("load_thread", async move {
            let client = self.reader(ReadFrom::Primary).await?;
            self.thread_on(&client, thread_id).await
        })
        .await
    }

    async fn thread_on(
        &self,
        client: &deadpool_postgres::Object,
        thread_id: &str,
    ) -> Result<Option<ThreadMeta>, StoreError> {
        {
            let row = self
                .sql(client)
                .query_opt(
                    &format!("SELECT {THREAD_COLUMNS} FROM threads WHERE id = $1"),
                    &[(&thread_id, Type::TEXT)],
                )
                .await?;
            row.map(|row| thread_from_row(&row)).transpose()
        }
    }

    /// A thread visible to `user_id`, or `None` (another user's thread looks absent).
    pub(crate) async fn load_user_thread(
        &self,
        user_id: &str,
        thread_id: &str,
    ) -> Result<Option<ThreadMeta>, StoreError> {
        self.timed("load_user_thread", async move {
            let client = self.reader(ReadFrom::CaughtUpStandby).await?;
            Ok(self
                .thread_on(&client, thread_id)
                .await?
                .filter(|t| t.user_id.as_str() == user_id))
        })
        .await
    }

    /// The user's threads by `created_at` (then insertion order), strictly after `after`.
    pub(crate) async fn list_threads(
        &self,
        user_id: &str,
        limit: u32,
        order: Order,
        after: Option<&str>,
    ) -> Result<Page<ThreadMeta>, StoreError> {
        self.timed("list_threads", async move {
            let query = KeysetQuery {
                table: "threads",
                columns: THREAD_COLUMNS,
                scope: "user_id",
            };
            let client = self.reader(ReadFrom::CaughtUpStandby).await?;
            let rows = self
                .keyset_rows(&client, &query, user_id, limit, order, after)
                .await?;
            let mut threads = rows
                .iter()
                .map(thread_from_row)
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(page_from(&mut threads, limit, |t| t.id.to_string()))
        })
        .await
    }

    /// A thread's items (hidden ones included) in `created_at` order, strictly after `after`.
    pub(crate) async fn list_items(
        &self,
        thread_id: &str,
        limit: u32,
        order: Order,
        after: Option<&str>,
    ) -> Result<Page<StoredItem>, StoreError> {
        self.timed("list_items", async move {
            let client = self.reader(ReadFrom::Primary).await?;
            self.items_on(&client, thread_id, limit, order, after).await
        })
        .await
    }

    /// A thread visible to `user_id` and a page of its items (hidden ones included), read on
    /// one connection (a caught-up standby when there is one): `None` when the thread is not
    /// the user's.
    pub(crate) async fn user_thread_items(
        &self,
        user_id: &str,
        thread_id: &str,
        limit: u32,
        order: Order,
        after: Option<&str>,
    ) -> Result<Option<(ThreadMeta, Page<StoredItem>)>, StoreError> {
        self.timed("user_thread_items", async move {
            let client = self.reader(ReadFrom::CaughtUpStandby).await?;
            let Some(meta) = self
                .thread_on(&client, thread_id)
                .await?
                .filter(|t| t.user_id.as_str() == user_id)
            else {
                return Ok(None);
            };
            let page = self
                .items_on(&client, thread_id, limit, order, after)
                .await?;
            Ok(Some((meta, page)))
        })
        .await
    }

    async fn items_on(
        &self,
        client: &deadpool_postgres::Object,
        thread_id: &str,
        limit: u32,
        order: Order,
        after: Option<&str>,
    ) -> Result<Page<StoredItem>, StoreError> {
        let query = KeysetQuery {
            table: "items",
            columns: ITEM_COLUMNS,
            scope: "thread_id",
        };
        let rows = self
            .keyset_rows(client, &query, thread_id, limit, order, after)
            .await?;
        let mut items: Vec<StoredItem> = rows.iter().map(item_from_row).collect();
        Ok(page_from(&mut items, limit, |i| i.id.clone()))
    }

    /// Up to `limit + 1` rows of `query.table` whose `query.scope` column is `scope`, ordered
    /// by `(created_at, seq)`, strictly after the row `after` (which must be in scope).
    async fn keyset_rows(
        &self,
        client: &deadpool_postgres::Object,
        query: &KeysetQuery,
        scope: &str,
        limit: u32,
        order: Order,
        after: Option<&str>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let KeysetQuery {
            table,
            columns,
            scope: scope_column,
        } = query;
        let sql = self.sql(client);
        let (cmp, dir) = order_sql(order);
        let fetch = limit as i64 + 1;
        let Some(cursor) = after else {
            return sql
                .query(
                    &format!(
                        "SELECT {columns} FROM {table} WHERE {scope_column} = $1
                     ORDER BY created_at {dir}, seq {dir} LIMIT $2"
                    ),
                    &[(&scope, Type::TEXT), (&fetch, Type::INT8)],
                )
                .await;
        };
        let Some(cursor_row) = sql
            .query_opt(
                &format!(
                    "SELECT created_at, seq FROM {table} WHERE {scope_column} = $1 AND id = $2"
                ),
                &[(&scope, Type::TEXT), (&cursor, Type::TEXT)],
            )
            .await?
        else {
            return Err(StoreError::CursorNotFound);
        };
        let created: chrono::NaiveDateTime = cursor_row.get(0);
        let seq: i64 = cursor_row.get(1);
        sql.query(
            &format!(
                "SELECT {columns} FROM {table}
                 WHERE {scope_column} = $1 AND (created_at, seq) {cmp} ($2, $3)
                 ORDER BY created_at {dir}, seq {dir} LIMIT $4"
            ),
            &[
                (&scope, Type::TEXT),
                (&created, Type::TIMESTAMP),
                (&seq, Type::INT8),
                (&fetch, Type::INT8),
            ],
        )
        .await
    }

    /// The newest `limit` items of a thread, oldest first, parsed (the actor's history).
    pub(crate) async fn recent_items(
        &self,
        thread_id: &str,
        limit: u32,
    ) -> Result<Vec<ThreadItem>, StoreError> {
        self.timed("recent_items", async move {
            let page = self.list_items(thread_id, limit, Order::Desc, None).await?;
            let mut items = page
                .data
                .iter()
                .map(StoredItem::parse)
                .collect::<Result<Vec<_>, _>>()?;
            items.reverse();
            Ok(items)
        })
        .await
    }

    /// One item of a thread.
    pub(crate) async fn load_item(
        &self,
        thread_id: &str,
        item_id: &str,
    ) -> Result<Option<StoredItem>, StoreError> {
        self.timed("load_item", async move {
            let client = self.pool.get().await?;
            let row = self
                .sql(&client)
                .query_opt(
                    &format!("SELECT {ITEM_COLUMNS} FROM items WHERE thread_id = $1 AND id = $2"),
                    &[(&thread_id, Type::TEXT), (&item_id, Type::TEXT)],
                )
                .await?;
            Ok(row.as_ref().map(item_from_row))
        })
        .await
    }
}

/// What a keyset-paged listing reads (table and column names are constants, never input).
struct KeysetQuery {
    table: &'static str,
    columns: &'static str,
    scope: &'static str,
}

const ITEM_COLUMNS: &str = "id, kind, body";

fn item_from_row(row: &tokio_postgres::Row) -> StoredItem {
    StoredItem {
        id: row.get(0),
        kind: row.get(1),
        body: row.get(2),
    }
}

fn order_sql(order: Order) -> (&'static str, &'static str) {
    match order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    }
}

/// Cuts the `limit + 1` rows fetched into a page: `has_more` when the extra row exists, and
/// `after` = the id of the last row returned (protocol §2.1).
fn page_from<T>(rows: &mut Vec<T>, limit: u32, id_of: impl Fn(&T) -> String) -> Page<T> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let after = if has_more {
        rows.last().map(&id_of)
    } else {
        None
    };
    Page {
        data: std::mem::take(rows),
        has_more,
        after,
    }
}

fn thread_from_row(row: &tokio_postgres::Row) -> Result<ThreadMeta, StoreError> {
    let id: String = row.get(0);
    let corrupt =
        |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("thread {id}: {what}: {e}"));
    let status: serde_json::Value = row.get(4);
    let status: ThreadStatus = serde_json::from_value(status).map_err(|e| corrupt("status", e))?;
    let domains: Option<serde_json::Value> = row.get(5);
    let allowed_image_domains = domains
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| corrupt("allowed_image_domains", e))?;
    let metadata: serde_json::Value = row.get(6);
    let metadata = match metadata {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let created: chrono::NaiveDateTime = row.get(2);
    let invalid = |what: &str| StoreError::Corrupt(format!("thread {id}: invalid {what}"));
    Ok(ThreadMeta {
        id: ThreadId::parse(id.as_str()).map_err(|_| invalid("id"))?,
        user_id: row.try_get(1).map_err(|_| invalid("user id"))?,
        created_at: Timestamp::from_naive(created),
        title: row.get(3),
        status,
        allowed_image_domains,
        metadata,
    })
}
