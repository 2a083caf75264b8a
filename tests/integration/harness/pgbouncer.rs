//! PgBouncer (the Debian package, installed when missing) in transaction mode in front of a
//! PostgreSQL server, with its own ini in a private directory, on a loopback port below the
//! ephemeral range, as the `postgres` user when we are root. One database entry, `chatkit`,
//! whose server connections get `search_path` from `connect_query` (PgBouncer drops the
//! `options` startup parameter we send: `ignore_startup_parameters = options`), as
//! README's "Behind PgBouncer" says. [`PgBouncer::point_at`] moves it to another server (a new
//! primary) with a `RELOAD`; [`AdminConsole`] reads `SHOW POOLS` and `SHOW STATS`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::processes::{
    chown_postgres, ensure_debian_binary, free_low_port, rand_suffix, register_child,
};
use super::wait::Patience;

/// The PostgreSQL server behind PgBouncer.
#[derive(Clone, Debug)]
pub struct Backend {
    /// A host name or address, or the directory of a unix socket.
    pub host: String,
    pub port: u16,
    /// The role clients log in as (PgBouncer logs into the server with the same name).
    pub user: String,
    pub dbname: String,
}

/// A running PgBouncer; stopped (and its directory removed) on drop.
pub struct PgBouncer {
    config: Config,
    backend: Mutex<Backend>,
    child: Child,
}

/// What the ini says besides the server.
struct Config {
    dir: PathBuf,
    port: u16,
    user: String,
    schema: String,
    pool_size: u32,
}

impl Config {
    /// The ini: transaction pooling, the pool small, `options` ignored, `search_path` set on
    /// every server connection, logins retried after a second (the default 15 s would keep a
    /// failed-over pool down that long). Server connections are handed out in turn rather than
    /// the most recently used first, so that even under light load a client's consecutive
    /// transactions run on different server connections, as they do under heavy load.
    fn write(&self, backend: &Backend) {
        let dir = self.dir.display();
        let ini = format!(
            "[databases]
{DATABASE} = host={host} port={backend_port} dbname={dbname} connect_query='SET search_path TO {schema}'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {dir}
auth_type = trust
auth_file = {dir}/userlist.txt
admin_users = {user}
pool_mode = transaction
max_client_conn = 200
default_pool_size = {pool_size}
reserve_pool_size = 0
ignore_startup_parameters = options
server_round_robin = 1
server_login_retry = 1
server_connect_timeout = 2
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
",
            host = backend.host,
            backend_port = backend.port,
            dbname = backend.dbname,
            schema = self.schema,
            port = self.port,
            user = self.user,
            pool_size = self.pool_size,
        );
        std::fs::write(self.dir.join("pgbouncer.ini"), ini).unwrap();
    }
}

/// The database name clients use.
pub const DATABASE: &str = "chatkit";

impl PgBouncer {
    /// Starts PgBouncer in transaction mode: at most `pool_size` server connections, and the
    /// server connections' `search_path` set to `schema`.
    pub async fn start(backend: Backend, schema: &str, pool_size: u32) -> PgBouncer {
        let binary = ensure_debian_binary(&["/usr/sbin/pgbouncer"], "pgbouncer");
        let dir = PathBuf::from(format!("/var/tmp/chatkit-it-pgbouncer-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_low_port();
        std::fs::write(
            dir.join("userlist.txt"),
            format!("\"{}\" \"\"\n", backend.user),
        )
        .unwrap();
        let config = Config {
            dir,
            port,
            user: backend.user.clone(),
            schema: schema.to_string(),
            pool_size,
        };
        config.write(&backend);
        chown_postgres(&config.dir);
        let mut command = Command::new(&binary);
        command
            .arg(config.dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = postgres_ids() {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("start pgbouncer");
        register_child(child.id());
        let bouncer = PgBouncer {
            config,
            backend: Mutex::new(backend),
            child,
        };
        Patience::within(Duration::from_secs(10))
            .every(Duration::from_millis(20))
            .until("pgbouncer accepts connections", || {
                std::net::TcpStream::connect(("127.0.0.1", port))
            })
            .await;
        bouncer
    }

    /// `database.url` through PgBouncer.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={} dbname={DATABASE} connect_timeout=2",
            self.config.port, self.config.user
        )
    }

    /// The admin console (`SHOW …`, `RELOAD`).
    pub fn admin(&self) -> AdminConsole {
        AdminConsole {
            url: format!(
                "host=127.0.0.1 port={} user={} dbname=pgbouncer",
                self.config.port, self.config.user
            ),
        }
    }

    /// Sends new connections to another server (a new primary): the ini rewritten, then
    /// `RELOAD` (server connections to the old address close once released).
    pub async fn point_at(&self, host: &str, port: u16) {
        let backend = {
            let mut backend = self.backend.lock().unwrap();
            backend.host = host.to_string();
            backend.port = port;
            backend.clone()
        };
        self.config.write(&backend);
        self.admin().run("RELOAD").await;
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.config.dir);
        }
    }
}

/// The `postgres` user's uid and gid when we are root (PgBouncer refuses to run as root).
fn postgres_ids() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let entry = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    assert!(!entry.is_null(), "no postgres user");
    let entry = unsafe { &*entry };
    Some((entry.pw_uid, entry.pw_gid))
}

/// PgBouncer's admin console (simple queries only).
#[derive(Clone)]
pub struct AdminConsole {
    url: String,
}

/// One row of a `SHOW` command, by column name.
pub type ShowRow = BTreeMap<String, String>;

impl AdminConsole {
    /// Runs an admin command; the rows it returned.
    pub async fn run(&self, command: &str) -> Vec<ShowRow> {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the pgbouncer admin console");
        let connection = tokio::spawn(connection);
        let messages = client
            .simple_query(command)
            .await
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        drop(client);
        let _ = connection.await;
        messages
            .into_iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    row.columns()
                        .iter()
                        .enumerate()
                        .map(|(i, column)| {
                            (
                                column.name().to_string(),
                                row.get(i).unwrap_or("").to_string(),
                            )
                        })
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// The `chatkit` database's row of `command` (`SHOW POOLS`, `SHOW STATS`).
    pub async fn row(&self, command: &str) -> ShowRow {
        self.run(command)
            .await
            .into_iter()
            .find(|row| row.get("database").map(String::as_str) == Some(DATABASE))
            .unwrap_or_else(|| panic!("{command}: no row for {DATABASE}"))
    }

    /// Client and server connections of the `chatkit` pool now (`SHOW POOLS`).
    pub async fn pool(&self) -> Pool {
        let row = self.row("SHOW POOLS").await;
        let sum = |columns: &[&str]| -> i64 {
            columns
                .iter()
                .map(|c| row.get(*c).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0))
                .sum()
        };
        Pool {
            clients: sum(&["cl_active", "cl_waiting"]),
            waiting: sum(&["cl_waiting"]),
            servers: sum(&["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"]),
        }
    }
}

/// A snapshot of one pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pool {
    /// Client connections (ours: pooled connections of the instances).
    pub clients: i64,
    /// Clients waiting for a server connection.
    pub waiting: i64,
    /// Server connections to PostgreSQL.
    pub servers: i64,
}
