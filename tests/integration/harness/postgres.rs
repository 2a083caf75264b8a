//! A throwaway PostgreSQL cluster, run by the server's own embedded-cluster code
//! (`chatkit_server::embedded_pg`: the installed binaries, as the `postgres` user when we are
//! root, a unix socket only) with test options: nothing synced to disk, more connections, the
//! socket next to the data directory. One cluster serves the whole test binary (each test
//! has its own schema); tests that stop the database start a private one. Clusters are
//! deleted when dropped or, for the shared one, when the test process exits.

use std::path::{Path, PathBuf};
use std::process::Command;

use chatkit_server::embedded_pg::{EmbeddedPostgres, Options, StopMode, DATABASE, ROLE};

pub struct TestPostgres {
    /// Holds `data/` (the cluster), the socket and nothing else.
    pub dir: PathBuf,
    cluster: EmbeddedPostgres,
}

/// Where the test clusters of process `pid` live.
fn dir_of(pid: u32) -> String {
    format!("/var/tmp/chatkit-it-{pid}")
}

fn options(dir: &Path) -> Options {
    Options {
        socket_dir: Some(dir.to_path_buf()),
        durable: false,
        settings: vec![("max_connections".into(), "300".into())],
        ..Options::default()
    }
}

impl TestPostgres {
    /// The cluster shared by the test binary (after removing those of dead test processes).
    pub fn start() -> TestPostgres {
        clean_stale_clusters();
        Self::start_in(PathBuf::from(dir_of(std::process::id())))
    }

    /// A second, private cluster (for tests that stop and start the database).
    pub fn start_private(tag: &str) -> TestPostgres {
        Self::start_in(PathBuf::from(format!(
            "{}-{tag}",
            dir_of(std::process::id())
        )))
    }

    fn start_in(dir: PathBuf) -> TestPostgres {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = EmbeddedPostgres::start_with(&dir.join("data"), options(&dir))
            .unwrap_or_else(|e| panic!("test PostgreSQL in {}: {e}", dir.display()));
        TestPostgres { dir, cluster }
    }

    /// A streaming standby of this cluster (`pg_basebackup -R`: it follows the primary over
    /// the unix socket), running in a private directory of its own.
    pub fn standby(&self, tag: &str) -> TestPostgres {
        let dir = PathBuf::from(format!("{}-{tag}", dir_of(std::process::id())));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        super::processes::chown_postgres(&dir);
        let data = dir.join("data");
        let out = super::processes::as_postgres(
            &self
                .cluster
                .bin_dir()
                .join("pg_basebackup")
                .to_string_lossy(),
        )
        .arg("-h")
        .arg(self.cluster.socket_dir())
        .args([
            "-p",
            &self.cluster.port().to_string(),
            "-U",
            ROLE,
            "-X",
            "stream",
            "-R",
            "-D",
        ])
        .arg(&data)
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = EmbeddedPostgres::start_with(&data, options(&dir))
            .unwrap_or_else(|e| panic!("standby in {}: {e}", dir.display()));
        TestPostgres { dir, cluster }
    }

    /// Starts the server again (after [`TestPostgres::stop_server`]).
    pub fn start_server(&self) {
        self.cluster.start_server().unwrap();
    }

    /// Stops the server (immediate: like a crash), keeping the data.
    pub fn stop_server(&self) {
        // A paused server could not act on the stop.
        self.resume();
        let _ = self.cluster.stop_server(StopMode::Immediate);
    }

    /// Freezes the whole server (postmaster and every backend, SIGSTOP): connections stay
    /// open and nothing answers, as with a stalled primary.
    pub fn pause(&self) {
        self.pauser().pause();
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.pauser().resume();
    }

    /// Pauses and resumes this server from another thread.
    pub fn pauser(&self) -> Pauser {
        Pauser {
            dir: self.dir.clone(),
        }
    }

    /// The directory of its unix socket and the port in the socket's name (nothing listens on
    /// TCP): where a pooler in front of it connects.
    pub fn socket(&self) -> (&Path, u16) {
        (self.cluster.socket_dir(), self.cluster.port())
    }

    /// Connection string (key=value form) for the server under test.
    pub fn url(&self) -> String {
        self.cluster.connection_string()
    }

    /// Runs SQL through psql and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.cluster.bin_dir().join("psql"))
            .arg("-h")
            .arg(self.cluster.socket_dir())
            .args(["-p", &self.cluster.port().to_string()])
            .args(["-U", ROLE, "-d", DATABASE, "-At", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server and deletes the cluster.
    pub fn stop(&self) {
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Clusters left by test processes that died without cleaning up.
fn clean_stale_clusters() {
    let Ok(entries) = std::fs::read_dir("/var/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("chatkit-it-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        discard_cluster(&dir.join("data"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Stops the server of the cluster in `data_dir` if one runs (immediately: whoever started
/// it is gone or failed), then deletes the directory.
pub fn discard_cluster(data_dir: &Path) {
    let options = Options {
        socket_dir: Some(data_dir.to_path_buf()),
        ..Options::default()
    };
    if let Ok(cluster) = EmbeddedPostgres::open(data_dir, options) {
        if cluster.is_running() {
            let _ = cluster.stop_server(StopMode::Immediate);
        }
    }
    let _ = std::fs::remove_dir_all(data_dir);
}

/// Discards the cluster in its directory when dropped, even when the test failed before the
/// server that ran it could stop it.
pub struct DiscardOnDrop(pub PathBuf);

impl Drop for DiscardOnDrop {
    fn drop(&mut self) {
        discard_cluster(&self.0);
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Freezes (SIGSTOP) and thaws (SIGCONT) every process of a test cluster.
pub struct Pauser {
    dir: PathBuf,
}

impl Pauser {
    pub fn pause(&self) {
        self.signal_all(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal_all(libc::SIGCONT);
    }

    fn signal_all(&self, signal: libc::c_int) {
        // No pid file: the server is not running (stopped already), nothing to signal.
        let Ok(pid_file) = std::fs::read_to_string(self.dir.join("data/postmaster.pid")) else {
            return;
        };
        let postmaster: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        pids.extend(super::processes::children_of(postmaster));
        for pid in pids {
            unsafe { libc::kill(pid, signal) };
        }
    }
}
