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
    let url = configured(raw.url.as_deref());
    let target = target(url, &raw.embedded_dir).map_err(|p| problems.push(p));
    let listen = listen_target(
        configured(raw.listen_url.as_deref()),
        url.is_some(),
        problems,
    );
    let replicas = replica_targets(&raw.replica_urls, url.is_some(), problems);
    problems.extend(bound_problems(&raw));
    let external = matches!(target, Ok(DatabaseTarget::External(_)));
    warnings.extend(pooler_warning(
        raw.prepared_statements,
        listen.is_some(),
        external,
    ));
    if problems.len() != before {
        return None;
    }
    Some(DatabaseSettings {
        target: target.ok()?,
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

/// A URL setting, trimmed, unless blank (blank: not set).
fn configured(url: Option<&str>) -> Option<&str> {
    url.map(str::trim).filter(|u| !u.is_empty())
}

/// The server at `url`, or the embedded cluster in `embedded_dir` when no URL is set.
fn target(url: Option<&str>, embedded_dir: &str) -> Result<DatabaseTarget, String> {
    match url {
        Some(url) => tokio_postgres::Config::from_str(url)
            .map(|config| DatabaseTarget::External(Box::new(config)))
            // The URL may hold a password: never echo it.
            .map_err(|_| "database.url is not a valid PostgreSQL connection string".into()),
        None => Ok(DatabaseTarget::Embedded(PathBuf::from(embedded_dir))),
    }
}

/// The LISTEN connection's own server (`database.listen_url`): only beside `database.url`.
fn listen_target(
    listen_url: Option<&str>,
    has_url: bool,
    problems: &mut Vec<String>,
) -> Option<Box<tokio_postgres::Config>> {
    let listen_url = listen_url?;
    if !has_url {
        problems.push(
            "database.listen_url needs database.url (the embedded database is reached directly)"
                .into(),
        );
    }
    match tokio_postgres::Config::from_str(listen_url) {
        Ok(config) => Some(Box::new(config)),
        Err(_) => {
            problems.push("database.listen_url is not a valid PostgreSQL connection string".into());
            None
        }
    }
}

/// The standbys (`database.replica_urls`): only beside `database.url`; each URL that does not
/// parse is a problem naming its index (never the URL, which may hold a password).
fn replica_targets(
    urls: &[String],
    has_url: bool,
    problems: &mut Vec<String>,
) -> Vec<tokio_postgres::Config> {
    if !urls.is_empty() && !has_url {
        problems.push(
            "database.replica_urls needs database.url (the embedded database has no standbys)"
                .into(),
        );
        return Vec::new();
    }
    let mut replicas = Vec::new();
    for (index, url) in urls.iter().enumerate() {
        match tokio_postgres::Config::from_str(url.trim()) {
            Ok(config) => replicas.push(config),
            Err(_) => problems.push(format!(
                "database.replica_urls[{index}] is not a valid PostgreSQL connection string"
            )),
        }
    }
    replicas
}

/// Numbers out of their range.
fn bound_problems(raw: &RawDatabase) -> Vec<String> {
    let mut problems = Vec::new();
    if raw.replica_max_wait_ms > 10_000 {
        problems.push("database.replica_max_wait_ms must be at most 10000".into());
    }
    if raw.pool_size == 0 {
        problems.push("database.pool_size must be positive".into());
    }
    problems
}

/// Unnamed statements are for a transaction pooler, which cannot hold the LISTEN session: an
/// external database reached that way needs `database.listen_url`.
fn pooler_warning(prepared_statements: bool, has_listen: bool, external: bool) -> Option<String> {
    (!prepared_statements && !has_listen && external).then(|| {
        "database.prepared_statements = false (a pooler in transaction mode?) without \
         database.listen_url: the LISTEN connection for hand-overs goes to database.url too; \
         point database.listen_url at PostgreSQL directly"
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: Option<&str>) -> RawDatabase {
        RawDatabase {
            url: url.map(str::to_string),
            listen_url: None,
            schema: "chatkit".into(),
            embedded_dir: "data/pg".into(),
            pool_size: 16,
            connect_timeout_secs: 0,
            operation_timeout_secs: std::num::NonZeroU64::new(5).unwrap(),
            prepared_statements: true,
            replica_urls: Vec::new(),
            replica_max_wait_ms: 200,
        }
    }

    #[test]
    fn a_blank_url_means_the_embedded_cluster() {
        assert_eq!(configured(Some("  ")), None);
        assert_eq!(configured(Some(" host=db ")), Some("host=db"));
        assert!(matches!(
            target(None, "data/pg"),
            Ok(DatabaseTarget::Embedded(dir)) if dir == std::path::Path::new("data/pg")
        ));
        assert!(matches!(
            target(Some("host=db"), "data/pg"),
            Ok(DatabaseTarget::External(_))
        ));
        assert_eq!(
            target(Some("postgres://u:secret@[bad"), "data/pg").err(),
            Some("database.url is not a valid PostgreSQL connection string".to_string())
        );
    }

    #[test]
    fn listen_and_replica_urls_need_a_database_url_and_must_parse() {
        let mut problems = Vec::new();
        assert!(listen_target(None, false, &mut problems).is_none());
        assert!(listen_target(Some("host=direct"), true, &mut problems).is_some());
        assert!(problems.is_empty());
        assert!(listen_target(Some("postgres://u:secret@[bad"), false, &mut problems).is_none());
        assert_eq!(
            problems,
            [
                "database.listen_url needs database.url (the embedded database is reached directly)",
                "database.listen_url is not a valid PostgreSQL connection string",
            ]
        );
        problems.clear();
        let urls = ["host=a".to_string(), "postgres://u:secret@[bad".to_string()];
        assert!(replica_targets(&urls, false, &mut problems).is_empty());
        assert_eq!(
            problems,
            ["database.replica_urls needs database.url (the embedded database has no standbys)"]
        );
        problems.clear();
        assert_eq!(replica_targets(&urls, true, &mut problems).len(), 1);
        assert_eq!(
            problems,
            ["database.replica_urls[1] is not a valid PostgreSQL connection string"]
        );
        assert!(replica_targets(&[], false, &mut problems).is_empty());
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn the_pool_and_the_replica_wait_are_bounded() {
        let mut database = raw(None);
        assert!(bound_problems(&database).is_empty());
        database.pool_size = 0;
        database.replica_max_wait_ms = 10_001;
        assert_eq!(
            bound_problems(&database),
            [
                "database.replica_max_wait_ms must be at most 10000",
                "database.pool_size must be positive",
            ]
        );
    }

    #[test]
    fn unnamed_statements_to_an_external_database_want_a_listen_url() {
        assert!(pooler_warning(false, false, true).is_some());
        assert_eq!(pooler_warning(true, false, true), None);
        assert_eq!(pooler_warning(false, true, true), None);
        assert_eq!(pooler_warning(false, false, false), None, "embedded");
    }

    #[test]
    fn settings_come_only_without_problems_and_a_timeout_is_at_least_a_second() {
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let settings =
            database_settings(raw(Some("host=db")), &mut problems, &mut warnings).expect("valid");
        assert_eq!(settings.connect_timeout, Duration::from_secs(1));
        assert!(problems.is_empty() && warnings.is_empty());
        let mut bad = raw(None);
        bad.schema = "bad;schema".into();
        bad.pool_size = 0;
        assert!(database_settings(bad, &mut problems, &mut warnings).is_none());
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
