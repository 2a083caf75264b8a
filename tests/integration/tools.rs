//! Server tools from a real rmcp MCP server over Streamable HTTP: the caller's token rides on
//! the transport (and nowhere else), the tool loop, errors, timeouts and display modes.

use serde_json::{json, Value};

use crate::harness::*;

fn config(mcp: &McpServer, extra: &str) -> String {
    format!(
        r#"
[agent]
{extra}

[[mcp.servers]]
name = "tasks"
url = "{}"
timeout_secs = 2
forward_user_token = true
"#,
        mcp.url()
    )
}

/// A server with the `tasks` MCP server (and these `[agent]` lines), titles off.
fn server_with_tasks(mcp: &McpServer, agent: &str) -> TestServer {
    TestServer::start_with_config(
        &config(mcp, agent),
        &[("CHATKIT__TITLES__ENABLED", "false")],
    )
}

#[tokio::test]
async fn tool_turns_run_against_mcp_with_the_callers_token_on_the_transport() {
    let mcp = McpServer::start(&[]);
    let server = server_with_tasks(&mcp, "");
    let alice = token("alice");
    let bob = token("bob");

    let added = answered_thread(&server, &alice, "add task buy milk").await;
    // Tools are invisible by default (as in the reference): only the answer shows.
    assert!(!added
        .kinds()
        .iter()
        .any(|k| k == "progress_update" || k.contains("workflow")));
    let text = added.answer_text();
    assert!(
        text.starts_with("Done: {"),
        "the tool result went back to the model unchanged: {text}"
    );
    assert!(text.contains(r#""title":"buy milk""#), "{text}");

    let calls = mcp.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["tool"], "add_task");
    assert_eq!(
        calls[0]["sub"], "alice",
        "the MCP server saw alice's identity"
    );
    assert_eq!(calls[0]["args"]["title"], "buy milk");

    // "list tasks" sees alice's task; bob sees none of it.
    let thread_id = added.thread_id();
    let listed = add_message(&server, &alice, &thread_id, "list tasks").await;
    assert!(listed.answer_text().contains("buy milk"));
    let bobs = create_thread(&server, &bob, "list tasks").await;
    let bob_text = bobs.answer_text();
    assert!(bob_text.contains(r#""count":0"#), "{bob_text}");

    // Every HTTP request of alice's MCP session carried her token; bob's carried his.
    let http = mcp.http_requests();
    assert!(http.len() >= 4);
    for line in &http {
        let auth = line["authorization"]
            .as_str()
            .expect("every MCP request is authenticated");
        assert!(
            auth == format!("Bearer {alice}") || auth == format!("Bearer {bob}"),
            "{auth}"
        );
    }

    // The token never reached the model, its prompt, tool arguments or the logs.
    for request in shared().mock.requests() {
        let text = request.to_string();
        assert!(
            !text.contains(&alice) && !text.contains(&bob),
            "a token reached the model"
        );
    }
    let names = offered_tools("list tasks");
    assert!(
        names.contains(&"add_task".to_string()) && names.contains(&"list_tasks".to_string()),
        "{names:?}"
    );
    let logs = server.logs();
    assert!(
        !logs.contains(&alice) && !logs.contains(&bob),
        "a token reached the logs"
    );
}

/// Alice's answered turn `text` (the mock calls two tools for it) on a server showing tools
/// as `display`: the MCP server, the server, her token and the stream.
async fn tools_shown_as(display: &str, text: &str) -> (McpServer, TestServer, String, Stream) {
    let mcp = McpServer::start(&[]);
    let server = server_with_tasks(&mcp, &format!("tool_display = \"{display}\""));
    let alice = token("alice");
    let stream = answered_thread(&server, &alice, text).await;
    (mcp, server, alice, stream)
}

#[tokio::test]
async fn parallel_tool_calls_and_progress_display() {
    let (mcp, server, alice, stream) = tools_shown_as("progress", "two tools please").await;
    let progress: Vec<&Value> = stream
        .events
        .iter()
        .filter(|e| e["type"] == "progress_update")
        .collect();
    assert_eq!(progress.len(), 2);
    assert_eq!(progress[0]["text"], "Running add_task");
    let titles: Vec<String> = mcp
        .tool_calls()
        .iter()
        .map(|c| c["args"]["title"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = titles.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "b"]);
    // The model got both results, in call order, after one assistant message with two calls.
    let request = shared()
        .mock
        .last_request_where("with the tool results", |r| {
            r.to_string().contains("two tools please") && last_message(r)["role"] == "tool"
        });
    let messages = request["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 3]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(messages[n - 2]["role"], "tool");
    assert_eq!(messages[n - 1]["role"], "tool");
    // Nothing of the tools is stored in progress mode.
    let items = server.items(&alice, &stream.thread_id()).await;
    assert_eq!(page_data(&items).len(), 2);
}

#[tokio::test]
async fn workflow_display_persists_one_task_per_call() {
    let (_mcp, server, alice, stream) = tools_shown_as("workflow", "two tools").await;
    let kinds = stream.kinds();
    let added = kinds.iter().position(|k| k == "thread.item.added").unwrap();
    assert_eq!(stream.events[added]["item"]["type"], "workflow");
    assert_eq!(
        stream.events[added]["item"]["workflow"]["tasks"][0]["status_indicator"],
        "loading"
    );
    assert!(
        kinds.contains(&"thread.item.updated:added".to_string()),
        "{kinds:?}"
    );
    let done: Vec<Value> = stream.done_items();
    assert_eq!(done[1]["type"], "workflow");
    let tasks = done[1]["workflow"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(tasks
        .iter()
        .all(|t| t["status_indicator"] == "complete" && t["title"] == "add_task"));
    assert!(done[1]["workflow"]["summary"]["duration"].is_u64());
    assert_eq!(done[2]["type"], "assistant_message");
    // After a reload the user sees what the assistant did.
    let thread = server.get_thread(&alice, &stream.thread_id()).await;
    assert_eq!(
        field_of(&thread["items"], "type"),
        ["user_message", "workflow", "assistant_message"]
    );
}

#[tokio::test]
async fn mcp_down_or_refusing_the_token_leaves_its_tools_out_of_the_turn() {
    let alice = token("alice");
    // Down: nothing listens there. The turn is answered without its tools (issue 29: one
    // server down no longer fails every turn; tool_servers.rs has the rest).
    let down = "[[mcp.servers]]\nname = \"tasks\"\nurl = \"http://127.0.0.1:9/mcp\"\ntimeout_secs = 2\nforward_user_token = true\n";
    let server = TestServer::start_with_config(down, &[]);
    let stream = create_thread(&server, &alice, "add task x").await;
    stream.assert_answered();
    assert!(!stream.kinds().iter().any(|k| k == "error"));
    let items = server.items(&alice, &stream.thread_id()).await;
    assert_eq!(
        page_data(&items).len(),
        2,
        "the user message and the answer, nothing half-written"
    );

    // Refusing the token: the MCP server requires an audience our token lacks.
    let strict = McpServer::start(&["--aud", "tools-only"]);
    let server = TestServer::start_with_config(&config(&strict, ""), &[]);
    let stream = create_thread(&server, &alice, "add task y").await;
    stream.assert_answered();
    assert!(strict.tool_calls().is_empty());
}

#[tokio::test]
async fn a_slow_tool_times_out_and_the_model_is_told() {
    let mcp = McpServer::start(&["--tool-delay-ms", "3000"]);
    let server = server_with_tasks(&mcp, "");
    let alice = token("alice");
    let stream = answered_thread(&server, &alice, "add task slowly").await;
    let text = stream.answer_text();
    assert!(
        text.contains("timed out"),
        "the model saw the timeout as a tool error: {text}"
    );
}

#[tokio::test]
async fn sessions_survive_turns_follow_token_refresh_and_actor_restarts() {
    let mcp = McpServer::start(&[]);
    let mut server = server_with_tasks(&mcp, "");
    let first_token = token_with(json!({ "sub": "alice", "exp": now() + 3600 }));
    let thread_id = create_thread(&server, &first_token, "add task one")
        .await
        .thread_id();
    add_message(&server, &first_token, &thread_id, "add task two")
        .await
        .assert_answered();
    let inits = |mcp: &McpServer| mcp.http_requests().len();
    let after_two_turns = inits(&mcp);

    // A refreshed token (same user) is used from the next turn on.
    let refreshed = token_with(json!({ "sub": "alice", "exp": now() + 7200 }));
    assert_ne!(refreshed, first_token);
    add_message(&server, &refreshed, &thread_id, "add task three")
        .await
        .assert_answered();
    let last_auth = mcp
        .log_lines()
        .into_iter()
        .rev()
        .find_map(|l| l["authorization"].as_str().map(str::to_string))
        .unwrap();
    assert_eq!(last_auth, format!("Bearer {refreshed}"));
    assert!(inits(&mcp) > after_two_turns);

    // The server restarts between two tool turns: the thread and its tools carry on.
    server.restart();
    let listed = add_message(&server, &refreshed, &thread_id, "list tasks").await;
    let text = listed.answer_text();
    // (The mock echoes the first 200 characters of the tool result.)
    assert!(
        text.starts_with(r#"Done: {"tasks":[{"#) && text.contains("one"),
        "{text}"
    );
    let last = mcp.tool_calls().pop().unwrap();
    assert_eq!(
        (last["tool"].as_str(), last["sub"].as_str()),
        (Some("list_tasks"), Some("alice"))
    );
}

#[tokio::test]
async fn tool_names_are_made_unique_across_servers_and_sessions_close_on_retirement() {
    let first = McpServer::start(&[]);
    let second = McpServer::start(&[]);
    let toml = format!(
        "[[mcp.servers]]\nname = \"home\"\nurl = \"{}\"\nforward_user_token = true\n\n[[mcp.servers]]\nname = \"work\"\nurl = \"{}\"\nforward_user_token = true\n",
        first.url(),
        second.url()
    );
    let server =
        TestServer::start_with_config(&toml, &[("CHATKIT__ACTORS__IDLE_TIMEOUT_SECS", "1")]);
    let alice = token("alice");
    answered_thread(&server, &alice, "hello tools").await;
    let request = shared().mock.last_request_where("offering tools", |r| {
        r.to_string().contains("hello tools") && r.get("tools").is_some()
    });
    let mut names = tool_names(&request);
    names.sort();
    assert!(
        names.contains(&"home__add_task".to_string())
            && names.contains(&"work__add_task".to_string()),
        "{names:?}"
    );
    // Every tool of both servers, each name prefixed: nothing collides, nothing is lost.
    assert_eq!(names.len() % 2, 0);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("home__") || n.starts_with("work__")),
        "{names:?}"
    );
    let home = names.iter().filter(|n| n.starts_with("home__")).count();
    assert_eq!(home * 2, names.len(), "{names:?}");
    // When the idle actor retires, its sessions are closed (HTTP DELETE on the transport).
    eventually("the sessions are closed", || {
        [&first, &second]
            .iter()
            .all(|m| m.log_lines().iter().any(|l| l["http"] == "DELETE"))
    })
    .await;
}

#[tokio::test]
async fn a_callers_other_threads_offer_cached_tools_and_open_a_session_only_to_call_one() {
    let mcp = McpServer::start(&[]);
    let server = server_with_tasks(&mcp, "");
    let requests = |mcp: &McpServer| mcp.http_requests().len();
    let alice = token("alice-catalog");
    answered_thread(&server, &alice, "hello from the first thread").await;
    let after_first = requests(&mcp);
    assert!(after_first > 0, "the first thread listed the tools");

    // A second thread of the same caller: the tools are offered to the model, no MCP request.
    let second = answered_thread(&server, &alice, "hello from the second thread").await;
    assert_eq!(requests(&mcp), after_first);
    let offered = offered_tools("hello from the second thread");
    assert!(offered.contains(&"add_task".to_string()), "{offered:?}");

    // Calling a tool opens that thread's session.
    let called = add_message(&server, &alice, &second.thread_id(), "add task milk").await;
    called.assert_answered();
    assert!(requests(&mcp) > after_first);
    let last = mcp.tool_calls().pop().unwrap();
    assert_eq!(
        (last["tool"].as_str(), last["sub"].as_str()),
        (Some("add_task"), Some("alice-catalog"))
    );

    // Another caller never gets alice's entry: its first thread lists the tools itself.
    let before_bob = requests(&mcp);
    let bob = token("bob-catalog");
    answered_thread(&server, &bob, "hello from bob").await;
    let bearer = format!("Bearer {bob}");
    let bob_listed = mcp
        .http_requests()
        .iter()
        .skip(before_bob)
        .any(|l| l["authorization"] == bearer.as_str());
    assert!(bob_listed, "bob's own session listed the tools");
}

/// The tool names the model was offered in the request that carried `text`.
fn offered_tools(text: &str) -> Vec<String> {
    tool_names(&shared().mock.last_request_containing(text))
}
