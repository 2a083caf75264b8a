//! A throwaway PostgreSQL cluster for the whole test binary: created from the installed server
//! binaries (as the `postgres` user when we are root, since initdb refuses root), listening
//! on a unix socket in its own directory, stopped when the test process exits. Each test gets
//! its own schema, so tests share the cluster without seeing each other.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct TestPostgres {
    pub dir: PathBuf,
    bin: PathBuf,
    run_as_postgres: bool,
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

pub fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries are installed (/usr/lib/postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("initdb found")
}

impl TestPostgres {
    pub fn start() -> TestPostgres {
        clean_stale_clusters();
        Self::start_in(PathBuf::from(format!(
            "/var/tmp/chatkit-it-{}",
            std::process::id()
        )))
    }

    /// A second, private cluster (for tests that stop and start the database).
    pub fn start_private(tag: &str) -> TestPostgres {
        Self::start_in(PathBuf::from(format!(
            "/var/tmp/chatkit-it-{}-{tag}",
            std::process::id()
        )))
    }

    fn start_in(dir: PathBuf) -> TestPostgres {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pg = TestPostgres {
            dir,
            bin: bin_dir(),
            run_as_postgres: is_root(),
        };
        if pg.run_as_postgres {
            assert!(Command::new("chown")
                .arg("postgres:")
                .arg(&pg.dir)
                .status()
                .unwrap()
                .success());
        }
        let out = pg
            .cmd("initdb")
            .arg("-D")
            .arg(pg.dir.join("data"))
            .args([
                "-U",
                "chatkit",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
                "--no-sync",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_server();
        pg
    }

    /// Starts the server of an initialized cluster.
    pub fn start_server(&self) {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c port=5432 -c fsync=off -c max_connections=300",
            self.dir.display()
        );
        let out = self
            .cmd("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-o", &options])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (immediate: like a crash), keeping the data.
    pub fn stop_server(&self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn cmd(&self, tool: &str) -> Command {
        if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        }
    }

    /// Connection string (key=value form) for the server under test.
    pub fn url(&self) -> String {
        format!(
            "host={} port=5432 user=chatkit dbname=postgres",
            self.dir.display()
        )
    }

    /// Runs SQL through psql and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h"])
            .arg(&self.dir)
            .args(["-U", "chatkit", "-d", "postgres", "-At", "-c", sql])
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
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let pg = TestPostgres {
            dir: entry.path(),
            bin: bin_dir(),
            run_as_postgres: is_root(),
        };
        pg.stop();
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}
