//! Versioned migrations from `sql/`, applied at start-up inside one transaction under an
//! advisory lock (so several instances starting together apply each exactly once) and
//! recorded in `schema_migrations`.

use tokio_postgres::types::Type;

use super::sql::Sql;
use super::{SchemaName, StoreError};

/// One migration file: its version, name and SQL.
pub(crate) struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A migration from its version and the file name (without `.sql`) in `sql/`.
macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../sql/", $name, ".sql")),
        }
    };
}

/// Every migration, in order. Add new files at the end; never edit an applied one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_threads_and_items"),
    migration!(2, "0002_cluster"),
    migration!(3, "0003_lease_liveness"),
    migration!(4, "0004_items_fenced_not_keyed"),
    migration!(5, "0005_drop_threads_version"),
    migration!(6, "0006_attachments"),
    migration!(7, "0007_lease_checks_fail_in_the_server"),
    migration!(8, "0008_attachments_join_one_thread"),
    migration!(9, "0009_threads_seq_not_unique"),
];

/// Arbitrary constant key for `pg_advisory_xact_lock`, shared by every instance.
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_6b69_7401;

/// Applies the missing migrations; returns how many were applied. The advisory lock and the
/// `search_path` last as long as the transaction (nothing stays on the session: fine behind
/// PgBouncer in transaction mode).
pub async fn apply(
    client: &mut deadpool_postgres::Object,
    schema: &SchemaName,
    prepared_statements: bool,
) -> Result<usize, StoreError> {
    let tx = client.transaction().await?;
    let sql = Sql::in_transaction(&tx, prepared_statements);
    sql.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&MIGRATION_LOCK_KEY, Type::INT8)],
    )
    .await?;
    // The schema name is a validated plain identifier (SchemaName), safe to splice.
    sql.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let applied: Vec<i32> = sql
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut count = 0;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        sql.batch_execute(migration.sql).await?;
        sql.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[
                (&migration.version, Type::INT4),
                (&migration.name, Type::TEXT),
            ],
        )
        .await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

/// Whether every known migration is recorded (for `/readyz`).
pub async fn all_applied(sql: Sql<'_>) -> Result<bool, StoreError> {
    let row = sql
        .query_opt("SELECT max(version) FROM schema_migrations", &[])
        .await?;
    let latest: Option<i32> = row.and_then(|r| r.get(0));
    Ok(latest == MIGRATIONS.last().map(|m| m.version))
}

/// Refuses to run when the pool's connections do not find our tables first: our statements
/// name tables without their schema, and outside the migrations (which set it themselves) the
/// schema comes from the connection's `search_path`. We send it as a startup option; PgBouncer
/// in transaction mode drops that option (`ignore_startup_parameters = options`), so its
/// database entry must set it (`connect_query`, see specs/persistence.md).
pub async fn check_search_path(sql: Sql<'_>, schema: &SchemaName) -> Result<(), StoreError> {
    let row = sql.query_one("SELECT current_schema()", &[]).await?;
    let current: Option<String> = row.get(0);
    if current.as_deref() == Some(schema.as_str()) {
        return Ok(());
    }
    Err(StoreError::Query(format!(
        "the pool's connections use schema {} instead of {schema} (their search_path): behind \
         PgBouncer in transaction mode, give its database entry \
         connect_query='SET search_path TO {schema}'",
        current.as_deref().unwrap_or("(none)")
    )))
}
