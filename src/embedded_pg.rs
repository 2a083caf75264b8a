//! The private PostgreSQL cluster used when no `database.url` is configured: created with the
//! installed server binaries in a directory that survives restarts, listening on a unix
//! socket only, stopped cleanly on shutdown. As root, it runs as the `postgres` user (initdb
//! refuses root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The database role and database our cluster uses.
const ROLE: &str = "chatkit";
const DATABASE: &str = "postgres";
/// Unix socket paths are limited to 107 bytes.
const MAX_SOCKET_PATH: usize = 100;

/// A running private cluster.
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
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
        let bin_dir = find_bin_dir()?;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", data_dir.display()))?;
        let run_as = is_root().then_some("postgres");
        let socket_dir = if data_dir.as_os_str().len() < MAX_SOCKET_PATH - 20 {
            data_dir.clone()
        } else {
            std::env::temp_dir().join(format!("chatkit-pg-{}", short_hash(&data_dir)))
        };
        std::fs::create_dir_all(&socket_dir)
            .map_err(|e| format!("cannot create socket dir: {e}"))?;
        let pg = EmbeddedPostgres {
            bin_dir,
            data_dir,
            socket_dir,
            run_as,
            started_here: false,
        };
        if let Some(user) = run_as {
            pg.chown(user)?;
        }
        pg.init_if_needed()?;
        pg.start_server()
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

    fn init_if_needed(&self) -> Result<(), String> {
        if self.data_dir.join("PG_VERSION").is_file() {
            return Ok(());
        }
        tracing::info!(dir = %self.data_dir.display(), "initializing the embedded PostgreSQL cluster");
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-U",
                ROLE,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn start_server(mut self) -> Result<EmbeddedPostgres, String> {
        if self.is_running() {
            tracing::info!("adopting the embedded PostgreSQL cluster that is already running");
            return Ok(self);
        }
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c port=5432",
            self.socket_dir.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.data_dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &options])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the embedded PostgreSQL did not start (see {}): {}",
                self.data_dir.join("postgres.log").display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        self.started_here = true;
        tracing::info!(dir = %self.data_dir.display(), "embedded PostgreSQL started");
        Ok(self)
    }

    /// Connection settings for the cluster (unix socket, trust auth).
    pub fn connection(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(5432)
            .user(ROLE)
            .dbname(DATABASE);
        config
    }

    /// Stops the cluster (fast shutdown: open sessions are closed, data is safe).
    pub fn stop(&self) {
        if !self.started_here {
            return;
        }
        let status = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "60"])
            .stdout(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => tracing::info!("embedded PostgreSQL stopped"),
            _ => tracing::warn!("embedded PostgreSQL did not stop cleanly"),
        }
    }
}

fn short_hash(path: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
