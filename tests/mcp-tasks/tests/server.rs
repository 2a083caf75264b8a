//! Black-box tests: start the built `mcp-tasks` binary on a free port and talk
//! to it with rmcp's Streamable HTTP client, the way the ChatKit engine does
//! (the caller's raw JWT handed to `auth_header`, rmcp adding "Bearer ").

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SECRET: &str = "test-secret";
const STARTUP: Duration = Duration::from_secs(20);
const CONNECT: Duration = Duration::from_secs(20);

type Client = RunningService<RoleClient, ()>;

/// One running `mcp-tasks`, killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    async fn start(extra: &[&str]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "mcp-tasks-test-{}-{}.jsonl",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&log);
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-tasks"))
            .args(["--port", "0", "--jwt-secret", SECRET, "--log"])
            .arg(&log)
            .args(extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcp-tasks");
        let stdout = child.stdout.take().expect("piped stdout");
        let line = tokio::time::timeout(STARTUP, BufReader::new(stdout).lines().next_line())
            .await
            .expect("mcp-tasks prints its address in time")
            .expect("read stdout")
            .expect("one line on stdout");
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Self { child, base, log }
    }

    fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("each log line is JSON"))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// An HS256 token with exactly these claims, signed with the server's secret.
fn token_with(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode JWT")
}

/// A valid token for `sub`, good for ten minutes.
fn token(sub: &str) -> String {
    token_with(json!({"sub": sub, "exp": get_current_timestamp() + 600}))
}

async fn try_connect(url: &str, token: Option<&str>) -> Result<Client, ClientInitializeError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    tokio::time::timeout(CONNECT, ().serve(transport))
        .await
        .expect("the client settles in time")
}

async fn connect(server: &Server, token: &str) -> Client {
    try_connect(&server.url(), Some(token))
        .await
        .expect("client connects")
}

async fn call(client: &Client, tool: &'static str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("tool arguments are an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .unwrap_or_else(|error| panic!("{tool}: {error}"))
}

/// The single text item of a result.
fn text(result: &CallToolResult) -> &str {
    assert_eq!(result.content.len(), 1, "{result:?}");
    &result.content[0].as_text().expect("text content").text
}

/// The JSON object of a successful result.
fn ok_json(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    serde_json::from_str(text(result)).expect("result text is JSON")
}

/// The message of a tool error.
fn tool_error(result: &CallToolResult) -> &str {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    text(result)
}

#[tokio::test]
async fn tools_list_shows_the_six_tools_with_schemas() {
    let server = Server::start(&[]).await;
    let client = connect(&server, &token("alice")).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "add_task",
            "complete_task",
            "delete_task",
            "list_tasks",
            "slow_echo",
            "update_task"
        ]
    );
    let schema = |name: &str| {
        let tool = tools.iter().find(|tool| tool.name == name).unwrap();
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()));
        Value::Object((*tool.input_schema).clone())
    };
    let add = schema("add_task");
    assert_eq!(add["type"], "object");
    assert_eq!(add["required"], json!(["title"]));
    assert!(add["properties"]["description"].is_object());
    let list = schema("list_tasks");
    assert!(list.get("required").is_none_or(|r| r == &json!([])));
    let statuses = &list["properties"]["status"]["enum"];
    assert!(statuses.as_array().unwrap().contains(&json!("open")));
    assert!(statuses.as_array().unwrap().contains(&json!("done")));
    let update = schema("update_task");
    assert_eq!(update["required"], json!(["task_id"]));
    assert_eq!(schema("complete_task")["required"], json!(["task_id"]));
    assert_eq!(schema("delete_task")["required"], json!(["task_id"]));
    let echo = schema("slow_echo");
    assert_eq!(echo["properties"]["seconds"]["type"], "number");
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn one_user_adds_lists_updates_completes_and_deletes() {
    let server = Server::start(&[]).await;
    let client = connect(&server, &token("alice")).await;

    let milk = ok_json(&call(&client, "add_task", json!({"title": "  Buy milk "})).await);
    let id = milk["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("task_") && id.len() == 17, "{id}");
    assert_eq!(milk["title"], "Buy milk");
    assert_eq!(milk["description"], Value::Null);
    assert_eq!(milk["status"], "open");
    assert_eq!(milk["created_at"], milk["updated_at"]);
    assert!(milk["created_at"].as_str().unwrap().ends_with("+00:00"));

    let bread = ok_json(
        &call(
            &client,
            "add_task",
            json!({"title": "Bake bread", "description": "sourdough"}),
        )
        .await,
    );
    assert_eq!(bread["description"], "sourdough");

    // The result is the compact JSON of the result object, nothing else.
    let listed = call(&client, "list_tasks", json!({})).await;
    assert!(!text(&listed).contains('\n') && !text(&listed).contains(": "));
    let listed = ok_json(&listed);
    assert_eq!(listed["count"], 2);
    assert_eq!(listed["tasks"][0]["id"], milk["id"]);
    assert_eq!(listed["tasks"][1]["id"], bread["id"]);

    let updated = ok_json(
        &call(
            &client,
            "update_task",
            json!({"task_id": id, "title": "Buy oat milk", "description": "2 l"}),
        )
        .await,
    );
    assert_eq!(updated["title"], "Buy oat milk");
    assert_eq!(updated["description"], "2 l");
    assert_eq!(updated["status"], "open");
    assert_eq!(updated["created_at"], milk["created_at"]);

    let done = ok_json(&call(&client, "complete_task", json!({"task_id": id})).await);
    assert_eq!(done["status"], "done");
    let open = ok_json(&call(&client, "list_tasks", json!({"status": "open"})).await);
    assert_eq!(open["count"], 1);
    assert_eq!(open["tasks"][0]["id"], bread["id"]);
    let finished = ok_json(&call(&client, "list_tasks", json!({"status": "done"})).await);
    assert_eq!(finished["count"], 1);
    assert_eq!(finished["tasks"][0]["id"], json!(id));

    let reopened = ok_json(
        &call(
            &client,
            "update_task",
            json!({"task_id": id, "status": "open"}),
        )
        .await,
    );
    assert_eq!(reopened["status"], "open");

    let deleted = ok_json(&call(&client, "delete_task", json!({"task_id": id})).await);
    assert_eq!(deleted, json!({"deleted": true, "id": id}));
    let listed = ok_json(&call(&client, "list_tasks", json!({})).await);
    assert_eq!(listed["count"], 1);

    // Failures are tool errors carrying the reference server's messages.
    let missing = call(&client, "delete_task", json!({"task_id": id})).await;
    assert_eq!(
        tool_error(&missing),
        format!("Error executing tool delete_task: no task with id '{id}'")
    );
    let empty = call(&client, "add_task", json!({"title": "   "})).await;
    assert_eq!(
        tool_error(&empty),
        "Error executing tool add_task: title must not be empty"
    );
    let long = call(&client, "add_task", json!({"title": "x".repeat(501)})).await;
    assert_eq!(
        tool_error(&long),
        "Error executing tool add_task: title longer than 500 characters"
    );
    let long = call(
        &client,
        "update_task",
        json!({"task_id": bread["id"], "description": "d".repeat(5001)}),
    )
    .await;
    assert_eq!(
        tool_error(&long),
        "Error executing tool update_task: description longer than 5000 characters"
    );
    let bad_status = call(&client, "list_tasks", json!({"status": "closed"})).await;
    assert!(tool_error(&bad_status).contains("closed"), "{bad_status:?}");
    let no_title = call(&client, "add_task", json!({})).await;
    assert!(tool_error(&no_title).contains("title"), "{no_title:?}");

    client.cancel().await.expect("close");
}

#[tokio::test]
async fn users_cannot_see_or_touch_each_others_tasks() {
    let server = Server::start(&[]).await;
    let alice = connect(&server, &token("alice")).await;
    let bob = connect(&server, &token("bob")).await;

    let task = ok_json(&call(&alice, "add_task", json!({"title": "Alice's secret"})).await);
    let id = task["id"].clone();

    let seen = ok_json(&call(&bob, "list_tasks", json!({})).await);
    assert_eq!(seen, json!({"tasks": [], "count": 0}));
    for (tool, args) in [
        ("complete_task", json!({"task_id": id})),
        ("update_task", json!({"task_id": id, "title": "mine now"})),
        ("delete_task", json!({"task_id": id})),
    ] {
        let result = call(&bob, tool, args).await;
        assert!(
            tool_error(&result).ends_with(&format!("no task with id {}", py_quote(&id))),
            "{result:?}"
        );
    }

    let mine = ok_json(&call(&alice, "list_tasks", json!({})).await);
    assert_eq!(mine["count"], 1);
    assert_eq!(mine["tasks"][0], task);

    // A second connection with the same sub is the same user.
    let alice_again = connect(&server, &token("alice")).await;
    let mine = ok_json(&call(&alice_again, "list_tasks", json!({})).await);
    assert_eq!(mine["count"], 1);

    let log = server.log_lines();
    let bob_calls: Vec<&Value> = log
        .iter()
        .filter(|line| line["sub"] == "bob" && line["tool"] != "list_tasks")
        .collect();
    assert_eq!(bob_calls.len(), 3);
    assert!(bob_calls.iter().all(|line| line["ok"] == false));

    alice.cancel().await.expect("close");
    bob.cancel().await.expect("close");
    alice_again.cancel().await.expect("close");
}

fn py_quote(id: &Value) -> String {
    format!("'{}'", id.as_str().unwrap())
}

#[tokio::test]
async fn bad_missing_or_expired_tokens_are_refused_before_mcp() {
    let server = Server::start(&[]).await;
    let now = get_current_timestamp();
    let wrong_secret = encode(
        &Header::default(),
        &json!({"sub": "alice", "exp": now + 600}),
        &EncodingKey::from_secret(b"not-the-secret"),
    )
    .unwrap();
    let expired = token_with(json!({"sub": "alice", "exp": now - 10}));
    let no_sub = token_with(json!({"exp": now + 600}));

    // The rmcp client cannot even initialize.
    for token in [
        None,
        Some("garbage"),
        Some(&wrong_secret),
        Some(&expired),
        Some(&no_sub),
    ] {
        let outcome = try_connect(&server.url(), token.map(|t| t as &str)).await;
        assert!(outcome.is_err(), "token {token:?} was accepted");
    }

    // A raw initialize POST gets the 401 with the bearer challenge.
    let http = reqwest::Client::new();
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}
    })
    .to_string();
    let cases = [
        (None, "missing bearer token".to_owned()),
        (
            Some("Basic dXNlcjpwYXNz".to_owned()),
            "malformed authorization header".to_owned(),
        ),
        (
            Some("Bearer garbage".to_owned()),
            "invalid token: DecodeError".to_owned(),
        ),
        (
            Some(format!("Bearer {wrong_secret}")),
            "invalid token: InvalidSignatureError".to_owned(),
        ),
        (
            Some(format!("Bearer {expired}")),
            "invalid token: ExpiredSignatureError".to_owned(),
        ),
        (
            Some(format!("Bearer {no_sub}")),
            "invalid token: MissingRequiredClaimError".to_owned(),
        ),
    ];
    for (authorization, description) in cases {
        let mut request = http
            .post(server.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize.clone());
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("raw POST");
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="mcp_tasks", error="invalid_token""#
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"error": "invalid_token", "error_description": description})
        );
    }

    // GET and DELETE are gated too, and a good token still needs the right path.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = http.request(method, server.url()).send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = http
        .post(format!("{}/elsewhere", server.base))
        .header("authorization", format!("Bearer {}", token("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Refused requests never reached a tool.
    assert!(server
        .log_lines()
        .iter()
        .all(|line| line.get("tool").is_none()));
}

#[tokio::test]
async fn audience_and_issuer_are_checked_when_configured() {
    let server = Server::start(&["--aud", "tasks-api", "--iss", "chatkit"]).await;
    let exp = get_current_timestamp() + 600;
    let good =
        token_with(json!({"sub": "carol", "exp": exp, "aud": "tasks-api", "iss": "chatkit"}));
    let client = connect(&server, &good).await;
    let added = ok_json(&call(&client, "add_task", json!({"title": "t"})).await);
    assert_eq!(added["status"], "open");
    client.cancel().await.expect("close");

    for claims in [
        json!({"sub": "carol", "exp": exp}),
        json!({"sub": "carol", "exp": exp, "aud": "other", "iss": "chatkit"}),
        json!({"sub": "carol", "exp": exp, "aud": "tasks-api", "iss": "other"}),
        json!({"sub": "carol", "exp": exp, "aud": "tasks-api"}),
    ] {
        let token = token_with(claims.clone());
        assert!(
            try_connect(&server.url(), Some(&token)).await.is_err(),
            "{claims} was accepted"
        );
    }
}

#[tokio::test]
async fn slow_echo_waits_then_echoes() {
    let server = Server::start(&[]).await;
    let client = connect(&server, &token("alice")).await;
    let started = Instant::now();
    let result = call(
        &client,
        "slow_echo",
        json!({"text": "hé {\"x\"}", "seconds": 0.4}),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(result.is_error, Some(false));
    assert_eq!(text(&result), "hé {\"x\"}");
    let quick = call(&client, "slow_echo", json!({"text": "now", "seconds": -3})).await;
    assert_eq!(text(&quick), "now");
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn the_log_shows_every_request_token_and_tool_call() {
    let server = Server::start(&[]).await;
    let token = token("alice");
    let client = connect(&server, &token).await;
    let task = ok_json(&call(&client, "add_task", json!({"title": "logged"})).await);
    let _ = call(&client, "complete_task", json!({"task_id": "task_nope"})).await;
    let _ = call(&client, "list_tasks", json!({"status": "done"})).await;
    // Closing the client ends the session with a DELETE, awaited by `cancel`.
    client.cancel().await.expect("close");

    let log = server.log_lines();
    let http: Vec<&Value> = log
        .iter()
        .filter(|line| line.get("http").is_some())
        .collect();
    let bearer = format!("Bearer {token}");
    assert!(
        http.iter()
            .all(|line| line["authorization"] == bearer.as_str()),
        "{http:#?}"
    );
    assert!(http.iter().all(|line| line["ts"].is_f64()));
    let methods: Vec<&str> = http
        .iter()
        .map(|line| line["http"].as_str().unwrap())
        .collect();
    // initialize, notifications/initialized, 3 tool calls; the GET stream; the DELETE.
    assert!(
        methods.iter().filter(|m| **m == "POST").count() >= 5,
        "{methods:?}"
    );
    assert!(methods.contains(&"GET"), "{methods:?}");
    assert!(methods.contains(&"DELETE"), "{methods:?}");

    let tools: Vec<&Value> = log
        .iter()
        .filter(|line| line.get("tool").is_some())
        .collect();
    assert_eq!(tools.len(), 3, "{tools:#?}");
    assert_eq!(tools[0]["tool"], "add_task");
    assert_eq!(
        tools[0]["args"],
        json!({"title": "logged", "description": null})
    );
    assert_eq!(tools[0]["sub"], "alice");
    assert_eq!(tools[0]["ok"], true);
    assert!(tools[0].get("error").is_none());
    assert_eq!(tools[1]["tool"], "complete_task");
    assert_eq!(tools[1]["args"], json!({"task_id": "task_nope"}));
    assert_eq!(tools[1]["ok"], false);
    assert_eq!(tools[1]["error"], "no task with id 'task_nope'");
    assert_eq!(tools[2]["args"], json!({"status": "done"}));
    assert_eq!(tools[2]["ok"], true);
    assert!(task["id"].is_string());
}

#[tokio::test]
async fn sigterm_stops_the_server_with_a_session_open() {
    let mut server = Server::start(&[]).await;
    let client = connect(&server, &token("alice")).await;
    let _ = call(&client, "list_tasks", json!({})).await;
    let pid = server.child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("stops within 10 s")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    drop(client);
}

#[tokio::test]
async fn refuses_non_loopback_hosts() {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-tasks"))
        .args(["--host", "0.0.0.0", "--port", "0", "--jwt-secret", SECRET])
        .output()
        .await
        .expect("run mcp-tasks");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}
