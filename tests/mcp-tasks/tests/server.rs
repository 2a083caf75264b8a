//! Black-box tests: start the built `mcp-tasks` binary on a free port and talk
//! to it with rmcp's Streamable HTTP client, the way the ChatKit engine does
//! (the caller's raw JWT handed to `auth_header`, rmcp adding "Bearer ").

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, NotificationMetaObject, ProgressNotificationParam,
};
use rmcp::service::{ClientInitializeError, NotificationContext, Peer, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
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

    fn widgets_url(&self) -> String {
        format!("{}/widgets", self.base)
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

fn transport(url: &str, token: Option<&str>) -> StreamableHttpClientTransport<reqwest::Client> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    StreamableHttpClientTransport::from_config(config)
}

async fn try_connect(url: &str, token: Option<&str>) -> Result<Client, ClientInitializeError> {
    tokio::time::timeout(CONNECT, ().serve(transport(url, token)))
        .await
        .expect("the client settles in time")
}

async fn connect(server: &Server, token: &str) -> Client {
    try_connect(&server.url(), Some(token))
        .await
        .expect("client connects")
}

async fn call(client: &Peer<RoleClient>, tool: &'static str, args: Value) -> CallToolResult {
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
async fn tools_list_shows_every_tool_with_schemas() {
    let server = Server::start(&[]).await;
    let client = connect(&server, &token("alice")).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "add_task",
            "bad_widget",
            "complete_task",
            "complete_task_card",
            "delete_task",
            "delete_task_card",
            "draft_report",
            "highlight_task",
            "list_tasks",
            "order_pizza",
            "show_task",
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
    for name in [
        "show_task",
        "complete_task_card",
        "delete_task_card",
        "highlight_task",
    ] {
        assert_eq!(schema(name)["required"], json!(["task_id"]), "{name}");
    }
    let report = schema("draft_report");
    assert_eq!(report["required"], json!(["topic"]));
    assert!(report["properties"]["steps"]["type"]
        .to_string()
        .contains("integer"));
    assert!(schema("bad_widget")
        .get("required")
        .is_none_or(|r| r == &json!([])));
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

// ---------------------------------------------------------------------------
// Widget tools (specs/widgets.md): `_meta["chatkit/…"]` on the results.
// ---------------------------------------------------------------------------

/// The `_meta` of a result as JSON (null when absent).
fn meta(result: &CallToolResult) -> Value {
    serde_json::to_value(&result.meta).expect("meta serialises")
}

/// The task card `show_task` and `complete_task_card` send.
fn task_card(task: &Value, description: &str) -> Value {
    let id = task["id"].as_str().unwrap();
    let done = task["status"] == "done";
    let mut buttons = Vec::new();
    if !done {
        buttons.push(json!({"type": "Button", "label": "Complete",
            "onClickAction": {"type": "tasks.complete", "payload": {"task_id": id}}}));
    }
    buttons.push(
        json!({"type": "Button", "label": "Delete", "style": "secondary",
        "onClickAction": {"type": "tasks.delete", "payload": {"task_id": id}}}),
    );
    json!({
        "type": "Card",
        "id": format!("task-{id}"),
        "children": [
            {"type": "Row", "children": [
                {"type": "Title", "value": task["title"]},
                {"type": "Spacer"},
                {"type": "Badge", "label": task["status"],
                 "color": if done { "success" } else { "secondary" }},
            ]},
            {"type": "Text", "value": description},
            {"type": "Row", "children": buttons},
        ],
    })
}

#[tokio::test]
async fn task_cards_ride_in_meta_and_add_task_is_structured() {
    let server = Server::start(&[]).await;
    let client = connect(&server, &token("alice")).await;

    let added = call(
        &client,
        "add_task",
        json!({"title": "Buy milk", "description": "2 l"}),
    )
    .await;
    let task = ok_json(&added);
    assert_eq!(added.structured_content.as_ref(), Some(&task));
    assert_eq!(meta(&added), Value::Null);
    let id = task["id"].as_str().unwrap().to_owned();
    let plain = call(&client, "add_task", json!({"title": "No description"})).await;
    assert_eq!(
        plain.structured_content.as_ref().unwrap()["description"],
        Value::Null
    );

    // show_task: the task's JSON for the model, its card and copy text for the UI.
    let shown = call(&client, "show_task", json!({"task_id": id})).await;
    assert_eq!(ok_json(&shown), task);
    assert!(shown.structured_content.is_none());
    assert_eq!(
        meta(&shown),
        json!({"chatkit/widget": task_card(&task, "2 l"), "chatkit/copy_text": "Buy milk"})
    );
    let other = ok_json(&plain);
    let shown = call(&client, "show_task", json!({"task_id": other["id"]})).await;
    assert_eq!(meta(&shown)["chatkit/widget"], task_card(&other, ""));

    // complete_task_card: done, and the card has lost its Complete button.
    let completed = call(&client, "complete_task_card", json!({"task_id": id})).await;
    let done = ok_json(&completed);
    assert_eq!(done["status"], "done");
    assert_eq!(done["id"], json!(id));
    let card = task_card(&done, "2 l");
    assert_eq!(card["children"][2]["children"].as_array().unwrap().len(), 1);
    assert_eq!(meta(&completed), json!({"chatkit/widget": card}));
    let shown = call(&client, "show_task", json!({"task_id": id})).await;
    assert_eq!(meta(&shown)["chatkit/widget"], card);

    // delete_task_card: gone, and the card says so.
    let deleted = call(&client, "delete_task_card", json!({"task_id": id})).await;
    assert_eq!(ok_json(&deleted), json!({"deleted": true, "id": id}));
    assert_eq!(
        meta(&deleted),
        json!({"chatkit/widget": {"type": "Card", "id": format!("task-{id}"),
            "children": [{"type": "Text", "value": "Task deleted."}]}})
    );
    let listed = ok_json(&call(&client, "list_tasks", json!({})).await);
    assert_eq!(listed["count"], 1);

    // Failures are plain tool errors, without a widget.
    for tool in ["show_task", "complete_task_card", "delete_task_card"] {
        let missing = call(&client, tool, json!({"task_id": id})).await;
        assert_eq!(
            tool_error(&missing),
            format!("Error executing tool {tool}: no task with id '{id}'")
        );
        assert_eq!(meta(&missing), Value::Null);
    }
    // Another user's task is out of reach here too.
    let bob = connect(&server, &token("bob")).await;
    let theirs = call(&bob, "show_task", json!({"task_id": other["id"]})).await;
    assert_eq!(theirs.is_error, Some(true));
    bob.cancel().await.expect("close");
    client.cancel().await.expect("close");

    let log = server.log_lines();
    let tools: Vec<&str> = log
        .iter()
        .filter_map(|line| line["tool"].as_str())
        .collect();
    assert_eq!(
        &tools[..7],
        [
            "add_task",
            "add_task",
            "show_task",
            "show_task",
            "complete_task_card",
            "show_task",
            "delete_task_card"
        ]
    );
    let card_calls: Vec<&Value> = log
        .iter()
        .filter(|line| line["tool"] == "complete_task_card")
        .collect();
    assert_eq!(card_calls[0]["args"], json!({"task_id": id}));
    assert_eq!(card_calls[0]["sub"], "alice");
    assert_eq!(card_calls[0]["ok"], true);
    assert_eq!(card_calls[1]["ok"], false);
}

#[tokio::test]
async fn highlight_task_sends_an_effect_and_a_notice_and_bad_widget_a_bad_widget() {
    let server = Server::start(&[]).await;
    let client = connect(&server, &token("alice")).await;

    // No such task is needed.
    let highlighted = call(&client, "highlight_task", json!({"task_id": "task_x"})).await;
    assert_eq!(ok_json(&highlighted), json!({"highlighted": "task_x"}));
    assert_eq!(
        meta(&highlighted),
        json!({
            "chatkit/client_effect": {"name": "highlight_task", "data": {"task_id": "task_x"}},
            "chatkit/notice": {"level": "info", "message": "Task highlighted.", "title": "Tasks"},
        })
    );

    let bad = call(&client, "bad_widget", json!({})).await;
    assert_eq!(ok_json(&bad), json!({"ok": true}));
    assert_eq!(
        meta(&bad),
        json!({"chatkit/widget": {"type": "Card", "children": [{"value": "a node without a type"}]}})
    );
    client.cancel().await.expect("close");

    let log = server.log_lines();
    let calls: Vec<&Value> = log
        .iter()
        .filter(|line| line.get("tool").is_some())
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["tool"], "highlight_task");
    assert_eq!(calls[0]["args"], json!({"task_id": "task_x"}));
    assert_eq!(calls[1]["tool"], "bad_widget");
    assert_eq!(calls[1]["args"], json!({}));
    assert!(calls.iter().all(|c| c["ok"] == true && c["sub"] == "alice"));
}

/// One progress notification as the client got it, with its `_meta`.
#[derive(Debug)]
struct Progress {
    params: ProgressNotificationParam,
    meta: Value,
}

/// A client that keeps every progress notification it receives.
#[derive(Clone, Default)]
struct ProgressLog(Arc<Mutex<Vec<Progress>>>);

impl ClientHandler for ProgressLog {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        // rmcp 3.11's client moves the notification's `_meta` out of the params
        // into the context's extensions (its `context.meta` stays empty: it is
        // taken after the extensions were swapped out).
        let meta = if context.meta.is_empty() {
            context.extensions.get::<NotificationMetaObject>()
        } else {
            Some(&context.meta)
        };
        let meta = serde_json::to_value(meta).expect("meta serialises");
        self.0.lock().unwrap().push(Progress { params, meta });
    }
}

impl ProgressLog {
    /// Waits for `count` notifications and returns them in progress order
    /// (rmcp handles each notification in a task of its own).
    async fn take(&self, count: usize) -> Vec<Progress> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.0.lock().unwrap().len();
            if got >= count || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut all = std::mem::take(&mut *self.0.lock().unwrap());
        all.sort_by(|a, b| a.params.progress.total_cmp(&b.params.progress));
        all
    }
}

/// `draft_report`'s card with `words` words, streaming or final.
fn report_card(topic: &str, words: usize, last: bool) -> Value {
    let body: Vec<String> = (0..words).map(|i| format!("w{i}")).collect();
    let mut children = vec![
        json!({"type": "Title", "value": format!("Report: {topic}")}),
        json!({"type": "Markdown", "id": "body", "value": body.join(" "), "streaming": !last}),
    ];
    if last {
        children.push(json!({"type": "Badge", "label": "final"}));
        // Drafting again is an action (`report.redo`), its progress updating this card.
        children.push(json!({"type": "Button", "label": "Redo", "onClickAction":
            {"type": "report.redo", "payload": {"topic": topic, "steps": words}}}));
    }
    json!({"type": "Card", "id": "report", "children": children})
}

#[tokio::test]
async fn draft_report_streams_its_card_in_progress_notifications() {
    let server = Server::start(&[]).await;
    let progress = ProgressLog::default();
    let client = tokio::time::timeout(
        CONNECT,
        progress
            .clone()
            .serve(transport(&server.url(), Some(&token("alice")))),
    )
    .await
    .expect("the client settles in time")
    .expect("client connects");

    // rmcp's client puts a progress token on every request.
    let started = Instant::now();
    let result = call(&client, "draft_report", json!({"topic": "Q3", "steps": 3})).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(ok_json(&result), json!({"topic": "Q3", "words": 3}));
    let last = report_card("Q3", 3, true);
    assert_eq!(meta(&result), json!({"chatkit/widget": last}));

    let notes = progress.take(4).await;
    assert_eq!(notes.len(), 4, "{notes:#?}");
    let states: Vec<&Value> = notes.iter().map(|note| &note.meta).collect();
    assert_eq!(
        states,
        [
            &json!({"chatkit/widget": report_card("Q3", 1, false)}),
            &json!({"chatkit/widget": report_card("Q3", 2, false)}),
            &json!({"chatkit/widget": report_card("Q3", 3, false)}),
            &json!({"chatkit/widget": last}),
        ]
    );
    assert_eq!(states[0]["chatkit/widget"]["children"][1]["value"], "w0");
    for (k, note) in notes.iter().enumerate() {
        assert_eq!(note.params.progress_token, notes[0].params.progress_token);
        assert_eq!(note.params.progress, (k + 1) as f64);
        assert_eq!(note.params.total, Some(4.0));
    }

    // steps defaults to 5 and is clamped to 1..=50.
    let result = call(&client, "draft_report", json!({"topic": "d"})).await;
    assert_eq!(ok_json(&result)["words"], 5);
    assert_eq!(progress.take(6).await.len(), 6);
    let result = call(&client, "draft_report", json!({"topic": "x", "steps": -7})).await;
    assert_eq!(ok_json(&result)["words"], 1);
    assert_eq!(meta(&result)["chatkit/widget"], report_card("x", 1, true));
    let notes = progress.take(2).await;
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0].meta["chatkit/widget"], report_card("x", 1, false));
    client.cancel().await.expect("close");

    let log = server.log_lines();
    let reports: Vec<&Value> = log
        .iter()
        .filter(|line| line["tool"] == "draft_report")
        .collect();
    assert_eq!(reports.len(), 3);
    assert_eq!(reports[0]["args"], json!({"topic": "Q3", "steps": 3}));
    assert_eq!(reports[1]["args"], json!({"topic": "d", "steps": null}));
    assert!(reports.iter().all(|r| r["ok"] == true));
}

/// The JSON-RPC messages of a Streamable HTTP answer (an SSE stream or one
/// JSON body).
fn rpc_messages(body: &str) -> Vec<Value> {
    if let Ok(message) = serde_json::from_str::<Value>(body) {
        return vec![message];
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

#[tokio::test]
async fn draft_report_over_raw_http_notifies_only_with_a_progress_token() {
    let server = Server::start(&[]).await;
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", token("alice"));
    let post = |body: Value, session: Option<&str>| {
        let mut request = http
            .post(server.url())
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        request.send()
    };
    let initialize = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "raw", "version": "0"}}}),
        None,
    )
    .await
    .expect("initialize");
    assert_eq!(initialize.status(), 200);
    let session = initialize.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = initialize.text().await;
    let initialized = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(&session),
    )
    .await
    .expect("initialized");
    assert!(initialized.status().is_success());

    let answer = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "draft_report", "arguments": {"topic": "t", "steps": 2}}}),
        Some(&session),
    )
    .await
    .expect("tools/call");
    assert_eq!(answer.status(), 200);
    let messages = rpc_messages(&answer.text().await.unwrap());
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["id"], 2);
    let result = &messages[0]["result"];
    assert_eq!(
        result["content"],
        json!([{"type": "text", "text": "{\"topic\":\"t\",\"words\":2}"}])
    );
    assert_eq!(
        result["_meta"],
        json!({"chatkit/widget": report_card("t", 2, true)})
    );

    // With a token: the states on the wire, in `params._meta`, then the result.
    let answer = post(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"_meta": {"progressToken": "p1"}, "name": "draft_report",
                          "arguments": {"topic": "t", "steps": 1}}}),
        Some(&session),
    )
    .await
    .expect("tools/call");
    let messages = rpc_messages(&answer.text().await.unwrap());
    assert_eq!(messages.len(), 3, "{messages:#?}");
    let last = report_card("t", 1, true);
    assert_eq!(
        messages[0],
        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
            "_meta": {"chatkit/widget": report_card("t", 1, false)},
            "progressToken": "p1", "progress": 1.0, "total": 2.0}})
    );
    assert_eq!(
        messages[1]["params"]["_meta"],
        json!({"chatkit/widget": last})
    );
    assert_eq!(messages[1]["params"]["progress"], 2.0);
    assert_eq!(messages[2]["id"], 3);
    assert_eq!(
        messages[2]["result"]["_meta"],
        json!({"chatkit/widget": last})
    );
}

#[tokio::test]
async fn the_widgets_endpoint_serves_the_task_board_from_the_same_store() {
    let server = Server::start(&[]).await;
    let board = try_connect(&server.widgets_url(), Some(&token("alice")))
        .await
        .expect("client connects to /widgets");
    let info = board.peer_info().expect("server info");
    let name = info.server_info.as_ref().map(|about| about.name.as_str());
    assert_eq!(name, Some("board"));
    let tools = board.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(names, ["task_board"]);

    let empty = call(&board, "task_board", json!({})).await;
    let root = ok_json(&empty);
    assert_eq!(
        root,
        json!({"type": "ListView", "children": [
            {"type": "ListViewItem", "children": [{"type": "Text", "value": "No tasks."}]},
        ]})
    );
    assert_eq!(empty.structured_content.as_ref(), Some(&root));
    assert!(!text(&empty).contains('\n') && !text(&empty).contains(": "));

    let tasks = connect(&server, &token("alice")).await;
    let milk = ok_json(&call(&tasks, "add_task", json!({"title": "Buy milk"})).await);
    let bread = ok_json(&call(&tasks, "add_task", json!({"title": "Bake bread"})).await);
    let _ = call(&tasks, "complete_task", json!({"task_id": bread["id"]})).await;

    let full = call(&board, "task_board", json!({})).await;
    let row = |task: &Value, status: &str| {
        let id = task["id"].as_str().unwrap();
        json!({
            "type": "ListViewItem",
            "id": format!("row-{id}"),
            "children": [
                {"type": "Text", "value": task["title"]},
                {"type": "Badge", "label": status},
            ],
            "onClickAction": {"type": "tasks.complete", "payload": {"task_id": id}},
        })
    };
    let root = json!({"type": "ListView", "children": [row(&milk, "open"), row(&bread, "done")]});
    assert_eq!(ok_json(&full), root);
    assert_eq!(full.structured_content.as_ref(), Some(&root));
    assert_eq!(meta(&full), Value::Null);

    // Another user's board is their own; the same auth gate guards /widgets.
    let bob = try_connect(&server.widgets_url(), Some(&token("bob")))
        .await
        .expect("bob connects");
    let theirs = ok_json(&call(&bob, "task_board", json!({})).await);
    assert_eq!(theirs["children"][0]["children"][0]["value"], "No tasks.");
    assert!(try_connect(&server.widgets_url(), None).await.is_err());
    let refused = reqwest::Client::new()
        .post(server.widgets_url())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // The /mcp tools are not on /widgets, nor the board on /mcp.
    let wrong = board
        .call_tool(CallToolRequestParams::new("list_tasks"))
        .await;
    assert!(
        wrong.is_err() || wrong.as_ref().is_ok_and(|r| r.is_error == Some(true)),
        "{wrong:?}"
    );
    let wrong = tasks
        .call_tool(CallToolRequestParams::new("task_board"))
        .await;
    assert!(
        wrong.is_err() || wrong.as_ref().is_ok_and(|r| r.is_error == Some(true)),
        "{wrong:?}"
    );

    for client in [board, tasks, bob] {
        client.cancel().await.expect("close");
    }
    let log = server.log_lines();
    let boards: Vec<&Value> = log
        .iter()
        .filter(|line| line["tool"] == "task_board")
        .collect();
    assert_eq!(boards.len(), 3);
    assert_eq!(boards[0]["args"], json!({}));
    assert_eq!(boards[0]["sub"], "alice");
    assert_eq!(boards[2]["sub"], "bob");
}
