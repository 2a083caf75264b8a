//! Issue 29, defect 1: a tool server that is down, or that refuses the caller's token, costs
//! its tools, not the turn. The turn goes on with the tools that answer (the model is told
//! in one system line which are unavailable); a call to a server that fails mid-turn is a
//! tool error the model sees; the server is probed with backoff; its state is a metric and
//! `/readyz` lists it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// The `tasks` server, its tool lists shared for `cache_secs`.
fn tasks_server(mcp: &McpServer, cache_secs: u32) -> String {
    format!(
        "[[mcp.servers]]\nname = \"tasks\"\nurl = \"{}\"\nforward_user_token = true\ntools_cache_secs = {cache_secs}\ntimeout_secs = 5\n",
        mcp.url()
    )
}

/// The system lines of a model request after its instructions.
fn notices(request: &Value) -> Vec<String> {
    request["messages"].as_array().unwrap()[1..]
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn server_up_metric(server: &TestServer) -> Option<i64> {
    let metrics = server.metrics().await;
    metrics
        .lines()
        .find(|l| l.starts_with("chatkit_mcp_server_up{server=\"tasks\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn readyz(server: &TestServer) -> (u16, Value) {
    let response = reqwest::get(server.url("/readyz")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn wait_for_state(server: &TestServer, up: i64) {
    Patience::tries(150)
        .every(Duration::from_millis(200))
        .until(
            &format!("chatkit_mcp_server_up = {up}"),
            async || match server_up_metric(server).await {
                Some(value) if value == up => Ok(()),
                other => Err(format!("{other:?}")),
            },
        )
        .await;
}

#[tokio::test]
async fn a_tool_server_that_is_down_costs_its_tools_not_the_turn() {
    let mut mcp = McpServer::start(&[]);
    let server = TestServer::start_with_config(
        &tasks_server(&mcp, 0),
        &[("CHATKIT__TITLES__ENABLED", "false")],
    );
    let alice = token("alice");
    create_thread(&server, &alice, "hello while up")
        .await
        .assert_answered();
    assert!(tool_names(&request_for("hello while up")).contains(&"add_task".to_string()));
    assert!(notices(&request_for("hello while up")).is_empty());
    assert_eq!(server_up_metric(&server).await, Some(1));

    mcp.stop();
    let hello = create_thread(&server, &alice, "hello while down").await;
    hello.assert_answered();
    let asked = request_for("hello while down");
    assert!(tool_names(&asked).is_empty(), "{asked}");
    assert_eq!(
        notices(&asked),
        ["The tools of these tool servers are unavailable right now: tasks. Answer without them."]
    );
    wait_for_state(&server, 0).await;
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 200, "ready is about the database");
    assert_eq!(body["tool_servers"], json!({ "tasks": "down" }));
    assert_eq!(body["database"], "up");
    // While it is down, turns do not try it: no turn waits on a dead server.
    let started = std::time::Instant::now();
    create_thread(&server, &alice, "hello again while down")
        .await
        .assert_answered();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        server.log_count("tool server is down"),
        1,
        "one warning per change"
    );

    mcp.restart();
    wait_for_state(&server, 1).await;
    assert!(mcp.probes() >= 1, "found up again by a probe");
    assert_eq!(
        readyz(&server).await.1["tool_servers"],
        json!({ "tasks": "up" })
    );
    assert_eq!(server.log_count("tool server is up again"), 1);
    create_thread(&server, &alice, "hello when back")
        .await
        .assert_answered();
    assert!(tool_names(&request_for("hello when back")).contains(&"add_task".to_string()));
}

#[tokio::test]
async fn a_tool_server_refusing_the_token_costs_its_tools_not_the_turn() {
    // It requires an audience our tokens do not carry: every session is refused (401).
    let mcp = McpServer::start(&["--aud", "another-audience"]);
    let server = TestServer::start_with_config(
        &tasks_server(&mcp, 0),
        &[("CHATKIT__TITLES__ENABLED", "false")],
    );
    let alice = token("alice");
    let refused = create_thread(&server, &alice, "hello with a refused token").await;
    refused.assert_answered();
    let asked = request_for("hello with a refused token");
    assert!(tool_names(&asked).is_empty());
    assert_eq!(notices(&asked).len(), 1, "{asked}");
    // The server answers (it refuses): it is up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server_up_metric(&server).await, Some(1));
    assert_eq!(server.log_count("panic"), 0);
}

#[tokio::test]
async fn a_call_to_a_server_that_fails_mid_turn_is_a_tool_error_the_model_sees() {
    let mut mcp = McpServer::start(&[]);
    let server = TestServer::start_with_config(
        &tasks_server(&mcp, 600),
        &[("CHATKIT__TITLES__ENABLED", "false")],
    );
    let alice = token("alice");
    // The tool list is now in the shared catalog: a new thread offers it without asking.
    create_thread(&server, &alice, "list the tools")
        .await
        .assert_answered();
    mcp.stop();
    let called = create_thread(&server, &alice, "call add_task {\"title\": \"x\"}").await;
    called.assert_answered();
    assert_eq!(
        called.answer_text(),
        "Done: The tool server tasks is unavailable: add_task did not answer."
    );
    assert!(!called.kinds().iter().any(|k| k == "error"));
}
