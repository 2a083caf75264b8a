//! The processes a test runs: the `chatkit-rs` server under test ([`TestServer`], port 0, its
//! own schema, logs in a file), the mock model ([`MockModel`]) and the MCP server
//! ([`McpServer`]) with their request logs, and what every test of the binary shares
//! ([`shared`]: one PostgreSQL cluster, one mock model). Every child is killed when the test
//! binary exits, even when a test panicked.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::postgres::TestPostgres;
use super::tokens::SECRET;

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static SHARED: OnceLock<Shared> = OnceLock::new();

/// Processes to kill when the test binary exits (statics are never dropped).
pub fn register_child(pid: u32) {
    CHILDREN.lock().unwrap().push(pid);
}

extern "C" fn cleanup_at_exit() {
    if let Ok(children) = CHILDREN.lock() {
        for pid in children.iter() {
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
    if let Some(shared) = SHARED.get() {
        shared.postgres.stop();
    }
}

/// What all tests of this binary share.
pub struct Shared {
    pub postgres: TestPostgres,
    pub mock: MockModel,
}

pub fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        unsafe { libc::atexit(cleanup_at_exit) };
        let postgres = TestPostgres::start();
        let mock = MockModel::start(&["--slow-delay-ms", "50"]);
        Shared { postgres, mock }
    })
}

/// A unique suffix for schemas and file names.
pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{:x}", COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}

/// A new schema name for a test server.
pub fn new_schema() -> String {
    format!("t_{}", rand_suffix())
}

/// A fresh path in the temporary directory: `chatkit-it-<what>-<unique>.<ext>`.
pub fn temp_path(what: &str, ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "chatkit-it-{what}-{}-{}.{ext}",
        std::process::id(),
        rand_suffix()
    ))
}

/// Directory of the built binaries (target/debug), next to this test executable's `deps/`.
fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", name, "--bin", name])
            .status()
            .unwrap();
        assert!(status.success(), "could not build {name}");
    }
    path
}

/// What a process printed before it was ready.
pub struct Listening {
    /// From `listening on http://ADDR`.
    pub addr: String,
    /// From a `metrics on URL` line before it.
    pub metrics_url: Option<String>,
}

/// Spawns `command` with its stdout piped, registers it for the exit clean-up, and reads
/// its stdout up to the `listening on http://ADDR` line (the rest is drained in the
/// background).
pub fn spawn_listening(command: &mut Command, what: &str) -> (Child, Listening) {
    let (child, listening) = try_spawn_listening(command, what);
    let listening = listening.unwrap_or_else(|| panic!("{what} exited before listening"));
    (child, listening)
}

/// As [`spawn_listening`]; `None` when the process exited before listening.
fn try_spawn_listening(command: &mut Command, what: &str) -> (Child, Option<Listening>) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    register_child(child.id());
    let listening = read_until_listening(&mut child);
    (child, listening)
}

fn read_until_listening(child: &mut Child) -> Option<Listening> {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut metrics_url = None;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        if n == 0 {
            return None;
        }
        if let Some(url) = line.trim().strip_prefix("metrics on ") {
            metrics_url = Some(url.to_string());
        }
        if let Some(addr) = line.trim().strip_prefix("listening on http://") {
            let addr = addr.to_string();
            std::thread::spawn(move || drain(reader));
            return Some(Listening { addr, metrics_url });
        }
    }
}

fn drain(mut reader: impl Read) {
    let mut sink = [0u8; 4096];
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
}

/// Sends SIGTERM to a process (graceful stop).
pub fn terminate(child: &Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// Kills a child and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// JSON lines of a log file, in order (lines that are not JSON are skipped).
fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Starts one of our helper binaries on port 0, logging what it receives as JSON lines:
/// its address, its log file and the process.
fn start_helper(binary: &str, args: &[&str]) -> (String, PathBuf, Child) {
    start_helper_on(binary, "0", args)
}

/// As [`start_helper`], on `port`.
fn start_helper_on(binary: &str, port: &str, args: &[&str]) -> (String, PathBuf, Child) {
    let log = temp_path(binary, "jsonl");
    let (child, listening) = spawn_listening(
        Command::new(bin_path(binary))
            .args(["--port", port, "--log"])
            .arg(&log)
            .args(args)
            .stderr(Stdio::null()),
        binary,
    );
    (listening.addr, log, child)
}

/// The mock model (`mock-llm`), with its request log.
pub struct MockModel {
    pub addr: String,
    pub log: PathBuf,
    child: Child,
}

impl MockModel {
    pub fn start(args: &[&str]) -> MockModel {
        let (addr, log, child) = start_helper("mock-llm", args);
        MockModel { addr, log, child }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request body the mock received, in order.
    pub fn requests(&self) -> Vec<Value> {
        json_lines(&self.log)
    }

    /// The newest request whose body mentions `text` (the mock is shared by parallel tests).
    pub fn last_request_containing(&self, text: &str) -> Value {
        self.last_request_where(&format!("mentioning {text:?}"), |r| {
            r.to_string().contains(text)
        })
    }

    /// The newest request for which `matches` holds; `what` names it on failure.
    pub fn last_request_where(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| matches(r))
            .unwrap_or_else(|| panic!("the mock saw no request {what}"))
    }

    /// The newest request whose last message has this content (the question of a turn).
    pub fn last_request_asking(&self, content: &str) -> Value {
        self.last_request_where(&format!("ending with {content:?}"), |r| {
            last_message(r)["content"] == content
        })
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The last message of a model request.
pub fn last_message(request: &Value) -> &Value {
    request["messages"].as_array().unwrap().last().unwrap()
}

/// One string field of every message of a model request (`"role"`, `"content"`), in order
/// (`""` where it is not a string).
pub fn message_fields<'a>(request: &'a Value, field: &str) -> Vec<&'a str> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[field].as_str().unwrap_or(""))
        .collect()
}

/// The names of the tools a model request offered (none when it offered none).
pub fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| {
                    t["function"]["name"]
                        .as_str()
                        .expect("a tool name")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `mcp-tasks` MCP server (rmcp, Streamable HTTP, JWT on the transport), with its log.
pub struct McpServer {
    pub addr: String,
    pub log: PathBuf,
    child: Child,
    args: Vec<String>,
}

impl McpServer {
    pub fn start(args: &[&str]) -> McpServer {
        let mut all = vec!["--jwt-secret", SECRET];
        all.extend_from_slice(args);
        let (addr, log, child) = start_helper("mcp-tasks", &all);
        let args = all.iter().map(|a| a.to_string()).collect();
        McpServer {
            addr,
            log,
            child,
            args,
        }
    }

    /// Stops it (SIGKILL): its port is left closed.
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Starts it again on the same address (a new log), with the same arguments.
    pub fn restart(&mut self) {
        let port = self
            .addr
            .rsplit(':')
            .next()
            .expect("an address with a port")
            .to_string();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (addr, log, child) = start_helper_on("mcp-tasks", &port, &args);
        assert_eq!(addr, self.addr, "restarted on its address");
        self.log = log;
        self.child = child;
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Every line of its log: HTTP requests (`http`, `authorization`) and tool calls.
    pub fn log_lines(&self) -> Vec<Value> {
        json_lines(&self.log)
    }

    /// The HTTP requests of MCP sessions it received (`http` method, `authorization`), in
    /// order; the server's health probes (`HEAD`, no credentials) are not among them.
    pub fn http_requests(&self) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.get("http").is_some() && l["http"] != "HEAD")
            .collect()
    }

    /// The health probes it received (`HEAD` requests).
    pub fn probes(&self) -> usize {
        self.log_lines()
            .into_iter()
            .filter(|l| l["http"] == "HEAD")
            .count()
    }

    pub fn tool_calls(&self) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.get("tool").is_some())
            .collect()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A real `chatkit-rs` process on port 0 with its own schema.
pub struct TestServer {
    pub addr: String,
    /// URL of the metrics listener.
    pub metrics_url: Option<String>,
    pub schema: String,
    pub log_path: PathBuf,
    child: Child,
    env: Vec<(String, String)>,
    args: Vec<String>,
    pub(super) http: reqwest::Client,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts with extra `CHATKIT__…` settings.
    pub fn start_with(extra: &[(&str, &str)]) -> TestServer {
        Self::start_on_schema(&new_schema(), extra)
    }

    /// Starts with a TOML config file (for lists such as `[[mcp.servers]]`) plus settings.
    pub fn start_with_config(toml: &str, extra: &[(&str, &str)]) -> TestServer {
        let path = temp_path("config", "toml");
        std::fs::write(&path, toml).unwrap();
        Self::start_full(
            &new_schema(),
            extra,
            vec!["--config".into(), path.to_string_lossy().to_string()],
        )
    }

    /// An instance named `name` of a cluster sharing `schema`: leases of 3 s, hand-overs
    /// within 5 s, titles off, plus `extra` settings.
    pub fn start_node(schema: &str, name: &str, extra: &[(&str, &str)]) -> TestServer {
        Self::try_start_node(schema, name, extra)
            .unwrap_or_else(|_| panic!("chatkit-rs exited before listening"))
    }

    /// As [`TestServer::start_node`]; a process that exits before listening is an `Err` with
    /// what it logged.
    pub fn try_start_node(
        schema: &str,
        name: &str,
        extra: &[(&str, &str)],
    ) -> Result<TestServer, String> {
        let mut settings = vec![
            ("CHATKIT__CLUSTER__INSTANCE_ID", name),
            ("CHATKIT__CLUSTER__LEASE_TTL_SECS", "3"),
            ("CHATKIT__CLUSTER__HANDOVER_TIMEOUT_SECS", "5"),
            ("CHATKIT__TITLES__ENABLED", "false"),
        ];
        settings.extend_from_slice(extra);
        let (env, log_path) = Self::environment(schema, &settings);
        Self::try_spawn(schema.to_string(), env, Vec::new(), log_path)
    }

    /// As [`TestServer::start_node`], with a TOML config file too.
    pub fn start_node_with_config(schema: &str, name: &str, toml: &str) -> TestServer {
        let path = temp_path("config", "toml");
        std::fs::write(&path, toml).unwrap();
        let settings = [
            ("CHATKIT__CLUSTER__INSTANCE_ID", name),
            ("CHATKIT__CLUSTER__LEASE_TTL_SECS", "3"),
            ("CHATKIT__CLUSTER__HANDOVER_TIMEOUT_SECS", "5"),
            ("CHATKIT__TITLES__ENABLED", "false"),
        ];
        Self::start_full(
            schema,
            &settings,
            vec!["--config".into(), path.to_string_lossy().to_string()],
        )
    }

    /// Starts with the model at `model` (another mock) plus settings.
    pub fn start_with_model(model: &MockModel, extra: &[(&str, &str)]) -> TestServer {
        let base_url = model.base_url();
        let mut settings = vec![("CHATKIT__MODEL__BASE_URL", base_url.as_str())];
        settings.extend_from_slice(extra);
        Self::start_with(&settings)
    }

    pub fn start_on_schema(schema: &str, extra: &[(&str, &str)]) -> TestServer {
        Self::start_full(schema, extra, Vec::new())
    }

    fn start_full(schema: &str, extra: &[(&str, &str)], args: Vec<String>) -> TestServer {
        let (env, log_path) = Self::environment(schema, extra);
        Self::spawn(schema.to_string(), env, args, log_path)
    }

    /// The environment of a server on `schema` with `extra` settings, and its log file.
    fn environment(schema: &str, extra: &[(&str, &str)]) -> (Vec<(String, String)>, PathBuf) {
        let shared = shared();
        let mut env: Vec<(String, String)> = vec![
            ("CHATKIT__SERVER__BIND".into(), "127.0.0.1:0".into()),
            ("CHATKIT__SERVER__WORKERS".into(), "2".into()),
            ("CHATKIT__DATABASE__URL".into(), shared.postgres.url()),
            ("CHATKIT__DATABASE__SCHEMA".into(), schema.into()),
            ("CHATKIT__DATABASE__POOL_SIZE".into(), "4".into()),
            ("CHATKIT__AUTH__JWT_SECRET".into(), SECRET.into()),
            ("CHATKIT__MODEL__BASE_URL".into(), shared.mock.base_url()),
            ("CHATKIT__MODEL__TIMEOUT_SECS".into(), "10".into()),
            ("CHATKIT__ACTORS__ARBITERS".into(), "2".into()),
            ("CHATKIT__METRICS__BIND".into(), "127.0.0.1:0".into()),
            ("RUST_LOG".into(), "debug".into()),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        let log_path = temp_path(&format!("server-{schema}"), "log");
        (env, log_path)
    }

    fn spawn(
        schema: String,
        env: Vec<(String, String)>,
        args: Vec<String>,
        log_path: PathBuf,
    ) -> TestServer {
        Self::try_spawn(schema, env, args, log_path)
            .unwrap_or_else(|_| panic!("chatkit-rs exited before listening"))
    }

    fn try_spawn(
        schema: String,
        env: Vec<(String, String)>,
        args: Vec<String>,
        log_path: PathBuf,
    ) -> Result<TestServer, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let (mut child, listening) = try_spawn_listening(
            Command::new(env!("CARGO_BIN_EXE_chatkit-rs"))
                .args(&args)
                .env_remove("OPENAI_API_KEY")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stderr(log),
            "chatkit-rs",
        );
        let Some(listening) = listening else {
            let _ = child.wait();
            return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Ok(TestServer {
            addr: listening.addr,
            metrics_url: listening.metrics_url,
            schema,
            log_path,
            child,
            env,
            args,
            http,
        })
    }

    /// Kills the process with SIGKILL (no flush, no cleanup) and waits for it.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful stop).
    pub fn terminate(&self) {
        terminate(&self.child);
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// A new process with the same settings and schema (after `kill`).
    pub fn restart(&mut self) {
        self.kill();
        let fresh = Self::spawn(
            self.schema.clone(),
            self.env.clone(),
            self.args.clone(),
            self.log_path.clone(),
        );
        // The old process is already dead; dropping it just reaps nothing.
        drop(std::mem::replace(self, fresh));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Everything the process logged (stderr) so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// How many log lines so far contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.logs().matches(text).count()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Makes sure a Debian package's binary is there: installs the package (as root, through
/// apt-get, once per test binary at a time) when it is missing, so `cargo test --workspace`
/// works on a fresh machine as `.ci/run` does. Returns the binary's path.
pub fn ensure_debian_binary(candidates: &[&str], package: &str) -> String {
    static APT: Mutex<bool> = Mutex::new(false);
    let find = || {
        candidates
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string())
    };
    if let Some(path) = find() {
        return path;
    }
    let mut updated = APT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = find() {
        return path;
    }
    assert!(
        unsafe { libc::geteuid() } == 0,
        "{package} is not installed ({candidates:?}); install the Debian package {package}"
    );
    if !*updated {
        let ok = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "apt-get update failed");
        *updated = true;
    }
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "apt-get install {package} failed");
    find().unwrap_or_else(|| panic!("{package} installed but none of {candidates:?} exists"))
}

/// The processes whose parent is `parent` (from `/proc`).
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // "pid (comm) state ppid …": the parent is the second field after the comm.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// A free TCP port on loopback below the kernel's ephemeral range (32768 and up), so that the
/// port-0 binds of the tests running alongside cannot take it between this check and the bind
/// of a server that needs its port in a configuration file (Patroni, PgBouncer).
pub fn free_low_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let spread = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            .wrapping_add(NEXT.fetch_add(7919, Ordering::Relaxed));
        let port = 20_000 + (spread % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `command` as the `postgres` user when we are root (initdb and PgBouncer refuse root), in a
/// process group of its own so that it and its children can be killed at once.
pub fn as_postgres(program: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    };
    command.process_group(0);
    command
}

/// Gives `dir` (recursively) to the `postgres` user when we are root.
pub fn chown_postgres(dir: &Path) {
    if unsafe { libc::geteuid() } == 0 {
        let _ = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir)
            .status();
    }
}

/// The model request of the turn whose user text is `asked` (first content of a user message).
pub fn request_for(asked: &str) -> Value {
    shared()
        .mock
        .last_request_where(&format!("asking {asked:?}"), |r| {
            r["messages"].as_array().is_some_and(|m| {
                m.iter()
                    .any(|m| m["role"] == "user" && m["content"] == asked)
            })
        })
}
