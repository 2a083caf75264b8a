//! The private PostgreSQL cluster used when no `database.url` is configured: created with the
//! installed server binaries in a directory that survives restarts, listening on a unix
//! socket only, stopped cleanly on shutdown. As root, it runs as the `postgres` user (initdb
//! refuses root).
//!
//! [`Options`] say where the socket goes, its port, whether the cluster is durable, and extra
//! server settings; the defaults are the server's. The integration tests run their throwaway
//! clusters through the same code with other options (not durable, more connections).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The database role our cluster's superuser has.
pub const ROLE: &str = "chatkit";
/// The database we connect to.
pub const DATABASE: &str = "postgres";
/// Unix socket paths are limited to 107 bytes.
const MAX_SOCKET_PATH: usize = 100;

/// How the cluster runs. `Options::default()` is what the server uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory of the unix socket. `None`: the data directory, or a short directory under
    /// the temporary directory when the data directory's path is too long for a socket.
    pub socket_dir: Option<PathBuf>,
    /// The port number in the socket's name (`.s.PGSQL.<port>`); nothing listens on TCP.
    pub port: u16,
    /// `false`: nothing is synced to disk (`initdb --no-sync`, `fsync=off`). Faster, and lost
    /// with the machine: only for throwaway clusters.
    pub durable: bool,
    /// More server settings, as `-c name=value`.
    pub settings: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            socket_dir: None,
            port: 5432,
            durable: true,
            settings: Vec::new(),
        }
    }
}

/// How to stop the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Sessions are closed, a checkpoint is written: the data is safe.
    Fast,
    /// Every process is killed at once, like a crash (recovery runs on the next start).
    Immediate,
}

impl StopMode {
    fn pg_ctl_name(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A private cluster (running once [`EmbeddedPostgres::start`] returned it).
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    options: Options,
    run_as: Option<&'static str>,
    started_here: bool,
}

/// Where the PostgreSQL server binaries are: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> Result<PathBuf, String> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_tools(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir).ok_or_else(|| {
        "no PostgreSQL server binaries found (initdb, pg_ctl); install the Debian package \
         `postgresql` (e.g. `apt-get install postgresql-15`) or set database.url"
            .to_string()
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl EmbeddedPostgres {
    /// Initializes the cluster if needed and starts it (or adopts one already running there).
    pub fn start(data_dir: &Path) -> Result<EmbeddedPostgres, String> {
        Self::start_with(data_dir, Options::default())
    }

    /// [`EmbeddedPostgres::start`] with other [`Options`].
    pub fn start_with(data_dir: &Path, options: Options) -> Result<EmbeddedPostgres, String> {
        let pg = Self::open(data_dir, options)?;
        pg.init_if_needed()?;
        pg.start_or_adopt()
    }

    /// The cluster in `data_dir`, neither initialized nor started: its directories exist and
    /// belong to the user it runs as. For stopping a cluster some other process left running.
    pub fn open(data_dir: &Path, options: Options) -> Result<EmbeddedPostgres, String> {
        let bin_dir = find_bin_dir()?;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", data_dir.display()))?;
        let run_as = is_root().then_some("postgres");
        let socket_dir = match &options.socket_dir {
            Some(dir) => dir.clone(),
            None if data_dir.as_os_str().len() < MAX_SOCKET_PATH - 20 => data_dir.clone(),
            None => std::env::temp_dir().join(format!("chatkit-pg-{}", short_hash(&data_dir))),
        };
        std::fs::create_dir_all(&socket_dir)
            .map_err(|e| format!("cannot create socket dir: {e}"))?;
        let pg = EmbeddedPostgres {
            bin_dir,
            data_dir,
            socket_dir,
            options,
            run_as,
            started_here: false,
        };
        if let Some(user) = run_as {
            pg.chown(user)?;
        }
        Ok(pg)
    }

    fn chown(&self, user: &str) -> Result<(), String> {
        for dir in [&self.data_dir, &self.socket_dir] {
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir)
                .status()
                .map_err(|e| format!("chown failed: {e}"))?;
            if !status.success() {
                return Err(format!("cannot give {} to the {user} user", dir.display()));
            }
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| format!("chmod failed: {e}"))?;
        }
        let reachable = Command::new("runuser")
            .args(["-u", user, "--", "test", "-w"])
            .arg(&self.data_dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !reachable {
            return Err(format!(
                "the {user} user cannot reach {} (a parent directory is private); set \
                 database.embedded_dir to a path it can reach, e.g. /var/tmp/chatkit-pg",
                self.data_dir.display()
            ));
        }
        Ok(())
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin_dir.join(tool);
        match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        }
    }

    /// `pg_ctl <action> -D <data dir>`, quiet on stdout.
    fn pg_ctl(&self, action: &str) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.arg(action)
            .arg("-D")
            .arg(&self.data_dir)
            .stdout(Stdio::null());
        cmd
    }

    fn init_if_needed(&self) -> Result<(), String> {
        if self.data_dir.join("PG_VERSION").is_file() {
            return Ok(());
        }
        tracing::info!(dir = %self.data_dir.display(), "initializing the embedded PostgreSQL cluster");
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&self.data_dir).args([
            "-U",
            ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        ]);
        if !self.options.durable {
            initdb.arg("--no-sync");
        }
        run(&mut initdb, "initdb", |stderr| {
            format!("initdb failed: {stderr}")
        })
    }

    /// Whether a server runs on this cluster's data directory.
    pub fn is_running(&self) -> bool {
        self.pg_ctl("status")
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn start_or_adopt(mut self) -> Result<EmbeddedPostgres, String> {
        if self.is_running() {
            tracing::info!("adopting the embedded PostgreSQL cluster that is already running");
            return Ok(self);
        }
        self.start_server()?;
        self.started_here = true;
        tracing::info!(dir = %self.data_dir.display(), "embedded PostgreSQL started");
        Ok(self)
    }

    /// Starts the server of the initialized cluster (again, after [`EmbeddedPostgres::stop_server`]).
    pub fn start_server(&self) -> Result<(), String> {
        let mut options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c port={}",
            self.socket_dir.display(),
            self.options.port
        );
        if !self.options.durable {
            options.push_str(" -c fsync=off");
        }
        for (name, value) in &self.options.settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        let mut start = self.pg_ctl("start");
        start
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "-o", &options]);
        run(&mut start, "pg_ctl", |stderr| {
            format!(
                "the embedded PostgreSQL did not start (see {}): {stderr}",
                self.log_file().display()
            )
        })
    }

    /// Stops the server, whoever started it; `Err` when `pg_ctl` failed (e.g. not running).
    pub fn stop_server(&self, mode: StopMode) -> Result<(), String> {
        let status = self
            .pg_ctl("stop")
            .args(["-m", mode.pg_ctl_name(), "-w", "-t", "60"])
            .status()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("pg_ctl stop exited with {status}"))
        }
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("postgres.log")
    }

    /// Where the server binaries (`psql` too) are.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        self.options.port
    }

    /// Connection settings for the cluster (unix socket, trust auth).
    pub fn connection(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.options.port)
            .user(ROLE)
            .dbname(DATABASE);
        config
    }

    /// The same settings as a `key=value` connection string (for `database.url`).
    pub fn connection_string(&self) -> String {
        let quoted =
            |value: &str| format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host={} port={} user={ROLE} dbname={DATABASE}",
            quoted(&self.socket_dir.to_string_lossy()),
            self.options.port
        )
    }

    /// Stops the cluster if this process started it (fast shutdown: open sessions are
    /// closed, data is safe).
    pub fn stop(&self) {
        if !self.started_here {
            return;
        }
        match self.stop_server(StopMode::Fast) {
            Ok(()) => tracing::info!("embedded PostgreSQL stopped"),
            Err(_) => tracing::warn!("embedded PostgreSQL did not stop cleanly"),
        }
    }
}

/// Runs a tool (stdin closed, stderr captured); `failed` words the error from its stderr.
fn run(
    command: &mut Command,
    tool: &str,
    failed: impl FnOnce(&str) -> String,
) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn short_hash(path: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
