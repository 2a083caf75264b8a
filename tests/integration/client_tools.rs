//! Client tools (protocol §6.3, §8.6): the turn ends with a pending `client_tool_call`; the browser's
//! result continues the turn without new user input.

use serde_json::json;

use crate::harness::*;

const CONFIG: &str = r#"
[agent]
[[agent.client_tools]]
name = "add_task"
description = "Adds a task in the browser's task list."
parameters = '{"type":"object","properties":{"title":{"type":"string"}},"required":["title"]}'
"#;

const TOOL_OUTPUT: &str = "threads.add_client_tool_output";

#[tokio::test]
async fn client_tool_round_trip() {
    let server = TestServer::start_with_config(CONFIG, &[("CHATKIT__TITLES__ENABLED", "false")]);
    let (alice, first) = alice_starts(&server, "add task buy milk").await;
    // protocol §8.6 / test_respond_with_tool_call: exactly 4 events.
    assert_eq!(
        first.kinds(),
        [
            "thread.created",
            "thread.item.done",
            "stream_options",
            "thread.item.done"
        ]
    );
    let call = &first.events[3]["item"];
    assert_eq!(call["type"], "client_tool_call");
    assert_eq!(call["status"], "pending");
    assert_eq!(call["name"], "add_task");
    assert_eq!(call["arguments"], json!({ "title": "buy milk" }));
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
    assert!(call.get("output").is_none());
    let thread_id = first.thread_id();

    // The model was offered the client tool.
    let offered = shared().mock.last_request_containing("add task buy milk");
    assert_eq!(offered["tools"][0]["function"]["name"], "add_task");

    // A new message while the call is pending is fine, but tool output needs the pending call
    // among the newest items with no user message after it: first answer it.
    let output = server
        .stream(
            &alice,
            TOOL_OUTPUT,
            json!({ "thread_id": thread_id, "result": { "id": 7, "done": false } }),
        )
        .await;
    assert_eq!(
        output.kinds()[0],
        "stream_options",
        "no event for the completion (protocol §13.11)"
    );
    output.assert_answered();
    let answer = output.done_items()[0]["content"][0]["text"].clone();
    assert_eq!(
        answer, r#"Done: {"id":7,"done":false}"#,
        "the model saw the browser's result"
    );

    // The stored call is completed with the output; the history replays it as a call + result.
    let items = server.items_asc(&alice, &thread_id).await;
    let stored = &items["data"][1];
    assert_eq!(stored["id"], call["id"]);
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["output"], json!({ "id": 7, "done": false }));
    let request = shared()
        .mock
        .last_request_containing(r#"{\"id\":7,\"done\":false}"#);
    assert_eq!(
        message_fields(&request, "role"),
        ["system", "user", "assistant", "tool"]
    );

    // No pending call any more: a clear 409 before any stream.
    let params = json!({ "thread_id": thread_id, "result": {} });
    let again = server.post_op(&alice, TOOL_OUTPUT, params).await;
    again.assert_error(409, "invalid_thread_state");
}

#[tokio::test]
async fn tool_output_on_a_thread_without_a_pending_call_is_refused() {
    let server = TestServer::start_with_config(CONFIG, &[]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hello").await.thread_id();
    let params = json!({ "thread_id": thread_id, "result": null });
    let reply = server.post_op(&alice, TOOL_OUTPUT, params).await;
    reply.assert_error(409, "invalid_thread_state");
}

/// Issue 26, item 6 (the open upstream fix, openai/chatkit-python PR #123): the pending call
/// is completed where it is among the thread's newest items, not only when it is the very
/// last one (here a hidden context item stored after it, as the upstream PR tested).
#[tokio::test]
async fn tool_output_completes_the_pending_call_with_items_stored_after_it() {
    let server = TestServer::start_with_config(
        CONFIG,
        &[
            ("CHATKIT__TITLES__ENABLED", "false"),
            ("CHATKIT__ACTORS__IDLE_TIMEOUT_SECS", "1"),
        ],
    );
    let (alice, first) = alice_starts(&server, "add task buy milk").await;
    let call = first.events[3]["item"].clone();
    assert_eq!(call["status"], "pending");
    let thread_id = first.thread_id();
    let body = json!({
        "id": "shcx_after_the_call",
        "thread_id": thread_id,
        "created_at": "2999-01-01T00:00:00",
        "type": "sdk_hidden_context",
        "content": "A note stored after the call.",
    });
    shared().postgres.psql(&format!(
        "INSERT INTO {}.items (thread_id, id, created_at, kind, body) \
         VALUES ('{thread_id}', 'shcx_after_the_call', '2999-01-01', 'sdk_hidden_context', '{body}')",
        server.schema
    ));
    // The thread's actor retires when idle; the next request loads the thread with the note.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    let output = server
        .stream(
            &alice,
            TOOL_OUTPUT,
            json!({ "thread_id": thread_id, "result": { "id": 8 } }),
        )
        .await;
    output.assert_answered();
    // The model saw the call's result, then the note stored after it.
    let request = shared().mock.last_request_containing(r#"{\"id\":8}"#);
    assert_eq!(
        message_fields(&request, "role"),
        ["system", "user", "assistant", "tool", "user"]
    );
    let items = server.items_asc(&alice, &thread_id).await;
    let stored = page_data(&items)
        .iter()
        .find(|i| i["id"] == call["id"])
        .cloned()
        .expect("the call is still listed");
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["output"], json!({ "id": 8 }));
}
