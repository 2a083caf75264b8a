//! Test harness: one Postgres cluster and one mock model per test binary, a real server
//! process per test (own schema, port 0), and a small HTTP client that parses SSE and checks
//! every body with the official SDK.

pub mod postgres;
pub mod sdk;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use postgres::TestPostgres;
pub use sdk::Kind;

/// The HS256 secret every test server verifies with.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

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

/// Reads a child's stdout until its `listening on http://ADDR` line; also returns the URL
/// of a `metrics on …` line printed before it.
fn wait_for_listening(child: &mut Child) -> (String, BufReader<std::process::ChildStdout>) {
    let (addr, _, reader) = wait_for_lines(child);
    (addr, reader)
}

fn wait_for_lines(
    child: &mut Child,
) -> (String, Option<String>, BufReader<std::process::ChildStdout>) {
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let mut metrics = None;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "process exited before listening");
        if let Some(url) = line.trim().strip_prefix("metrics on ") {
            metrics = Some(url.to_string());
        }
        if let Some(addr) = line.trim().strip_prefix("listening on http://") {
            return (addr.to_string(), metrics, reader);
        }
    }
}

/// The mock model (`mock-llm`), with its request log.
pub struct MockModel {
    pub addr: String,
    pub log: PathBuf,
    _child: Child,
}

impl MockModel {
    pub fn start(args: &[&str]) -> MockModel {
        let log = std::env::temp_dir().join(format!(
            "chatkit-it-mock-{}-{}.jsonl",
            std::process::id(),
            rand_suffix()
        ));
        let mut child = Command::new(bin_path("mock-llm"))
            .args(["--port", "0", "--log"])
            .arg(&log)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mock-llm");
        register_child(child.id());
        let (addr, reader) = wait_for_listening(&mut child);
        std::thread::spawn(move || drain(reader));
        MockModel {
            addr,
            log,
            _child: child,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The newest request whose body mentions `text` (the mock is shared by parallel tests).
    pub fn last_request_containing(&self, text: &str) -> Value {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.to_string().contains(text))
            .unwrap_or_else(|| panic!("the mock saw no request mentioning {text:?}"))
    }

    /// Every request body the mock received, in order.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// The `mcp-tasks` MCP server (rmcp, Streamable HTTP, JWT on the transport), with its log.
pub struct McpServer {
    pub addr: String,
    pub log: PathBuf,
    child: Child,
}

impl McpServer {
    pub fn start(args: &[&str]) -> McpServer {
        let log = std::env::temp_dir().join(format!(
            "chatkit-it-mcp-{}-{}.jsonl",
            std::process::id(),
            rand_suffix()
        ));
        let mut child = Command::new(bin_path("mcp-tasks"))
            .args(["--port", "0", "--jwt-secret", SECRET, "--log"])
            .arg(&log)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mcp-tasks");
        register_child(child.id());
        let (addr, reader) = wait_for_listening(&mut child);
        std::thread::spawn(move || drain(reader));
        McpServer { addr, log, child }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Every line of its log: HTTP requests (`http`, `authorization`) and tool calls.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The HTTP requests it received (`http` method, `authorization`), in order.
    pub fn http_requests(&self) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.get("http").is_some())
            .collect()
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut reader: impl Read) {
    let mut sink = [0u8; 4096];
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
}

pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{:x}", COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
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
    http: reqwest::Client,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts with extra `CHATKIT__…` settings.
    pub fn start_with(extra: &[(&str, &str)]) -> TestServer {
        let schema = format!("t_{}", rand_suffix());
        Self::start_on_schema(&schema, extra)
    }

    /// Starts with a TOML config file (for lists such as `[[mcp.servers]]`) plus settings.
    pub fn start_with_config(toml: &str, extra: &[(&str, &str)]) -> TestServer {
        let path = std::env::temp_dir().join(format!("chatkit-it-config-{}.toml", rand_suffix()));
        std::fs::write(&path, toml).unwrap();
        let schema = format!("t_{}", rand_suffix());
        Self::start_full(
            &schema,
            extra,
            vec!["--config".into(), path.to_string_lossy().to_string()],
        )
    }

    pub fn start_on_schema(schema: &str, extra: &[(&str, &str)]) -> TestServer {
        Self::start_full(schema, extra, Vec::new())
    }

    fn start_full(schema: &str, extra: &[(&str, &str)], args: Vec<String>) -> TestServer {
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
        let log_path =
            std::env::temp_dir().join(format!("chatkit-it-server-{schema}-{}.log", rand_suffix()));
        Self::spawn(schema.to_string(), env, args, log_path)
    }

    fn spawn(
        schema: String,
        env: Vec<(String, String)>,
        args: Vec<String>,
        log_path: PathBuf,
    ) -> TestServer {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatkit-rs"))
            .args(&args)
            .env_remove("OPENAI_API_KEY")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start chatkit-rs");
        register_child(child.id());
        let (addr, metrics_url, reader) = wait_for_lines(&mut child);
        std::thread::spawn(move || drain(reader));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        TestServer {
            addr,
            metrics_url,
            schema,
            log_path,
            child,
            env,
            args,
            http,
        }
    }

    /// Kills the process with SIGKILL (no flush, no cleanup) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful stop).
    pub fn terminate(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
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

    /// POSTs raw bytes to `/chatkit`.
    pub async fn post_raw(&self, token: Option<&str>, body: impl Into<reqwest::Body>) -> Reply {
        let mut req = self.http.post(self.url("/chatkit")).body(body);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    /// POSTs a JSON request (checked by the SDK first) to `/chatkit`.
    pub async fn post(&self, token: &str, body: &Value) -> Reply {
        let text = body.to_string();
        sdk::check(Kind::Request, &text);
        self.post_raw(Some(token), text).await
    }

    /// Runs a JSON op and returns the body, asserting 200 and SDK validity as `kind`.
    pub async fn call(&self, token: &str, op: &str, params: Value, kind: Kind) -> Value {
        let reply = self
            .post(token, &serde_json::json!({ "type": op, "params": params }))
            .await;
        assert_eq!(reply.status, 200, "{op}: {}", reply.text);
        assert!(
            reply.content_type.starts_with("application/json"),
            "{op}: {}",
            reply.content_type
        );
        sdk::check(kind, &reply.text);
        serde_json::from_str(&reply.text).unwrap()
    }

    /// A thread's items, oldest first (one page of up to 200), checked by the SDK.
    pub async fn items_asc(&self, token: &str, thread_id: &str) -> Value {
        let params = serde_json::json!({ "thread_id": thread_id, "order": "asc", "limit": 200 });
        self.call(token, "items.list", params, Kind::ItemsPage)
            .await
    }

    /// Runs a streaming op to its end; every event is checked by the SDK.
    pub async fn stream(&self, token: &str, op: &str, params: Value) -> Stream {
        let reply = self
            .post(token, &serde_json::json!({ "type": op, "params": params }))
            .await;
        Stream::parse(reply)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A whole HTTP reply.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.text().await.unwrap_or_default();
        Reply {
            status,
            content_type,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }

    /// Asserts a JSON error with this status and code, and nothing internal in it.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "body: {}", self.text);
        assert!(body["error"]["message"].is_string());
        let lower = self.text.to_lowercase();
        for leak in [
            "sql",
            "postgres",
            "tokio",
            "panicked",
            "/src/",
            ".rs:",
            "backtrace",
        ] {
            assert!(
                !lower.contains(leak),
                "error body leaks {leak:?}: {}",
                self.text
            );
        }
    }
}

/// A parsed SSE response.
pub struct Stream {
    pub status: u16,
    pub raw: String,
    pub events: Vec<Value>,
    pub reply: Reply,
}

impl Stream {
    pub fn parse(reply: Reply) -> Stream {
        let mut events = Vec::new();
        if reply.status == 200 {
            assert_eq!(reply.content_type, "text/event-stream; charset=utf-8");
            for frame in reply.text.split_terminator("\n\n") {
                let json = frame
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("bad frame {frame:?}"));
                assert!(!json.contains('\n'));
                sdk::check(Kind::Event, json);
                events.push(serde_json::from_str(json).unwrap());
            }
            assert!(reply.text.is_empty() || reply.text.ends_with("\n\n"));
        }
        Stream {
            status: reply.status,
            raw: reply.text.clone(),
            events,
            reply,
        }
    }

    /// Event types, with the update type for `thread.item.updated`.
    pub fn kinds(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| {
                let t = e["type"].as_str().unwrap().to_string();
                match e["update"]["type"].as_str() {
                    Some(u) => format!("{t}:{}", u.rsplit('.').next().unwrap()),
                    None => t,
                }
            })
            .collect()
    }

    pub fn thread_id(&self) -> String {
        self.events
            .iter()
            .find_map(|e| {
                e["thread"]["id"]
                    .as_str()
                    .or(e["item"]["thread_id"].as_str())
            })
            .expect("a thread id in the stream")
            .to_string()
    }

    /// The turn ended with a stored assistant answer (then possibly a `thread.updated`).
    pub fn assert_answered(&self) {
        assert_eq!(self.status, 200, "{}", self.raw);
        let kinds = self.kinds();
        let last_done = kinds
            .iter()
            .rposition(|k| k == "thread.item.done")
            .expect("an item.done");
        assert_eq!(
            self.events[last_done]["item"]["type"], "assistant_message",
            "{kinds:?}"
        );
        assert!(
            kinds[last_done + 1..].iter().all(|k| k == "thread.updated"),
            "{kinds:?}"
        );
        assert!(!kinds.iter().any(|k| k == "error"), "{kinds:?}");
    }

    /// The `thread.item.done` items, in order.
    pub fn done_items(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| e["type"] == "thread.item.done")
            .map(|e| e["item"].clone())
            .collect()
    }
}

/// An HS256 token for `sub`, valid for an hour.
pub fn token(sub: &str) -> String {
    token_with(serde_json::json!({ "sub": sub, "exp": now() + 3600 }))
}

pub fn token_with(claims: Value) -> String {
    sign(jsonwebtoken::Algorithm::HS256, SECRET, &claims)
}

pub fn sign(alg: jsonwebtoken::Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A user message input with one text part.
pub fn text_input(text: &str) -> Value {
    serde_json::json!({
        "content": [{ "type": "input_text", "text": text }],
        "attachments": [],
        "inference_options": {}
    })
}

pub async fn create_thread(server: &TestServer, token: &str, text: &str) -> Stream {
    let stream = server
        .stream(
            token,
            "threads.create",
            serde_json::json!({ "input": text_input(text) }),
        )
        .await;
    assert_eq!(stream.status, 200, "{}", stream.raw);
    stream
}

pub async fn add_message(server: &TestServer, token: &str, thread_id: &str, text: &str) -> Stream {
    server
        .stream(
            token,
            "threads.add_user_message",
            serde_json::json!({ "thread_id": thread_id, "input": text_input(text) }),
        )
        .await
}

pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A streaming response read frame by frame (for cancellation and crash tests).
pub struct LiveStream {
    response: reqwest::Response,
    buffer: String,
    pub events: Vec<Value>,
}

impl TestServer {
    pub async fn open_stream(&self, token: &str, body: &Value) -> LiveStream {
        let response = self
            .http
            .post(self.url("/chatkit"))
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        LiveStream {
            response,
            buffer: String::new(),
            events: Vec::new(),
        }
    }
}

impl LiveStream {
    /// Reads until `n` events arrived in total (or the stream ended); returns how many did.
    pub async fn read_events(&mut self, n: usize) -> usize {
        while self.events.len() < n {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let json = frame.trim_end().strip_prefix("data: ").unwrap().to_string();
                sdk::check(Kind::Event, &json);
                self.events.push(serde_json::from_str(&json).unwrap());
            }
            if self.events.len() >= n {
                break;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                _ => break,
            }
        }
        self.events.len()
    }

    pub fn done_items(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| e["type"] == "thread.item.done")
            .map(|e| e["item"].clone())
            .collect()
    }
}

/// Polls `check` every 50 ms for up to 10 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        sleep_ms(50).await;
    }
    panic!("timed out waiting for: {what}");
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

/// One string field of every item of a page (`"type"`, `"id"`…), in order.
pub fn field_of<'a>(page: &'a Value, field: &str) -> Vec<&'a str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_str().unwrap())
        .collect()
}
