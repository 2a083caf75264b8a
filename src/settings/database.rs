//! The `[database]` section: where PostgreSQL is (a URL, or the embedded cluster), the
//! LISTEN connection's own URL, the schema, the pool and its deadlines.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chatkit_actors::store::SchemaName;
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct RawDatabase {
    url: Option<String>,
    listen_url: Option<String>,
    schema: String,
    embedded_dir: String,
    pool_size: usize,
    connect_timeout_secs: u64,
    operation_timeout_secs: std::num::NonZeroU64,
    prepared_statements: bool,
    replica_urls: Vec<String>,
    replica_max_wait_ms: u64,
}

/// Standbys for the client's reads (`database.replica_urls`); their URLs may hold passwords.
#[derive(Clone, Default)]
pub struct ReplicaTargets(pub Vec<tokio_postgres::Config>);

impl std::fmt::Debug for ReplicaTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplicaTargets(<{} redacted>)", self.0.len())
    }
}

#[derive(Clone)]
pub enum DatabaseTarget {
    /// A server we connect to.
    External(Box<tokio_postgres::Config>),
    /// A private cluster in this directory.
    Embedded(PathBuf),
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseTarget::External(_) => f.write_str("External(<redacted>)"),
            DatabaseTarget::Embedded(dir) => write!(f, "Embedded({})", dir.display()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub target: DatabaseTarget,
    /// The `LISTEN` connection's server (`database.listen_url`); `None`: the pool's.
    pub listen: Option<Box<tokio_postgres::Config>>,
    pub schema: SchemaName,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    /// The longest a database operation may take (`database.operation_timeout_secs`).
    pub operation_timeout: Duration,
    /// Statements prepared by name per connection (`database.prepared_statements`); off behind
    /// PgBouncer in transaction mode.
    pub prepared_statements: bool,
    /// Standbys the client's reads may use once caught up (`database.replica_urls`).
    pub replicas: ReplicaTargets,
    /// How long a read waits for a standby to catch up (`database.replica_max_wait_ms`).
    pub replica_max_wait: Duration,
}

pub(super) fn database_settings(
    raw: RawDatabase,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<DatabaseSettings> {
    let before = problems.len();
    let schema = SchemaName::parse(&raw.schema).map_err(|p| problems.push(p));
    let target = match raw.url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => match tokio_postgres::Config::from_str(url) {
            Ok(config) => Some(DatabaseTarget::External(Box::new(config))),
            Err(_) => {
                // The URL may hold a password: never echo it.
                problems.push("database.url is not a valid PostgreSQL connection string".into());
                None
            }
        },
        _ => Some(DatabaseTarget::Embedded(PathBuf::from(&raw.embedded_dir))),
    };
    let listen = match raw.listen_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => {
            if raw.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
                problems.push(
                    "database.listen_url needs database.url (the embedded database is reached directly)".into(),
                );
            }
            match tokio_postgres::Config::from_str(url) {
                Ok(config) => Some(Box::new(config)),
                Err(_) => {
                    problems.push(
                        "database.listen_url is not a valid PostgreSQL connection string".into(),
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let mut replicas = Vec::new();
    for (index, url) in raw.replica_urls.iter().enumerate() {
        if raw.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
            problems.push(
                "database.replica_urls needs database.url (the embedded database has no standbys)"
                    .into(),
            );
            break;
        }
        match tokio_postgres::Config::from_str(url.trim()) {
            Ok(config) => replicas.push(config),
            // The URL may hold a password: never echo it.
            Err(_) => problems.push(format!(
                "database.replica_urls[{index}] is not a valid PostgreSQL connection string"
            )),
        }
    }
    if raw.replica_max_wait_ms > 10_000 {
        problems.push("database.replica_max_wait_ms must be at most 10000".into());
    }
    if raw.pool_size == 0 {
        problems.push("database.pool_size must be positive".into());
    }
    // Unnamed statements are for a transaction pooler, which cannot hold the LISTEN session.
    if !raw.prepared_statements
        && listen.is_none()
        && matches!(target, Some(DatabaseTarget::External(_)))
    {
        warnings.push(
            "database.prepared_statements = false (a pooler in transaction mode?) without \
             database.listen_url: the LISTEN connection for hand-overs goes to database.url too; \
             point database.listen_url at PostgreSQL directly"
                .into(),
        );
    }
    if problems.len() != before {
        return None;
    }
    Some(DatabaseSettings {
        target: target?,
        listen,
        schema: schema.ok()?,
        pool_size: raw.pool_size,
        connect_timeout: Duration::from_secs(raw.connect_timeout_secs.max(1)),
        operation_timeout: Duration::from_secs(raw.operation_timeout_secs.get()),
        prepared_statements: raw.prepared_statements,
        replicas: ReplicaTargets(replicas),
        replica_max_wait: Duration::from_millis(raw.replica_max_wait_ms),
    })
}
