//! Reads: threads and items, by id, by owner, and in keyset pages (the cursor is an id the
//! caller may see); each read within the operation deadline, on the primary or a caught-up
//! standby as the caller asks.

use tokio_postgres::types::Type;

use super::{ReadFrom, Store, StoreError, StoredItem};
use crate::ids::ThreadId;
use crate::protocol::{Order, Page, ThreadItem, ThreadMeta, ThreadStatus, Timestamp};

const THREAD_COLUMNS: &str =
    "id, user_id, created_at, title, status, allowed_image_domains, metadata";

impl Store {
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
