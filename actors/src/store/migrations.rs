//! Versioned migrations from `sql/`, applied at start-up inside one transaction under an
//! advisory lock (so several instances starting together apply each exactly once) and
//! recorded in `schema_migrations`.

use tokio_postgres::Client;

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
];

/// Arbitrary constant key for `pg_advisory_xact_lock`, shared by every instance.
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_6b69_7401;

/// Applies the missing migrations; returns how many were applied.
pub async fn apply(client: &mut Client, schema: &SchemaName) -> Result<usize, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    // The schema name is a validated plain identifier (SchemaName), safe to splice.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut count = 0;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
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
pub async fn all_applied(client: &Client) -> Result<bool, StoreError> {
    let row = client
        .query_opt("SELECT max(version) FROM schema_migrations", &[])
        .await?;
    let latest: Option<i32> = row.and_then(|r| r.get(0));
    Ok(latest == MIGRATIONS.last().map(|m| m.version))
}
