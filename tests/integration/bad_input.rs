//! Bad input gets a clear 4xx JSON error, never a 500 and never internals.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn each_bad_input_class_has_its_status_and_code() {
    let server = TestServer::start_with(&[("CHATKIT__SERVER__MAX_BODY_BYTES", "65536")]);
    let alice = token("alice");
    let t = Some(alice.as_str());
    let cases: Vec<(String, u16, &str)> = vec![
        ("not json".into(), 400, "invalid_json"),
        ("".into(), 400, "invalid_json"),
        ("{\"type\":".into(), 400, "invalid_json"),
        ("[1,2]".into(), 400, "invalid_request"),
        ("\"threads.list\"".into(), 400, "invalid_request"),
        (json!({ "params": {} }).to_string(), 400, "invalid_request"),
        (json!({ "type": 7, "params": {} }).to_string(), 400, "invalid_request"),
        (json!({ "type": "threads.list" }).to_string(), 400, "invalid_request"),
        (json!({ "type": "threads.list", "params": [] }).to_string(), 400, "invalid_request"),
        (json!({ "type": "threads.list", "params": {}, "metadata": 3 }).to_string(), 400, "invalid_request"),
        (json!({ "type": "threads.explode", "params": {} }).to_string(), 400, "unknown_operation"),
        (json!({ "type": "threads.get_by_id", "params": {} }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.get_by_id", "params": { "thread_id": 5 } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.get_by_id", "params": { "thread_id": "" } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.get_by_id", "params": { "thread_id": "x".repeat(500) } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.list", "params": { "limit": -1 } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.list", "params": { "limit": 1001 } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.list", "params": { "order": "sideways" } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.create", "params": { "input": { "content": [{ "text": "no type" }], "attachments": [], "inference_options": {} } } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.create", "params": { "input": { "content": [] } } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.create", "params": { "input": { "content": [{ "type": "input_text", "text": "hi" }], "attachments": ["atc_1"], "inference_options": {} } } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "items.feedback", "params": { "thread_id": "thr_1", "item_ids": [], "kind": "meh" } }).to_string(), 400, "invalid_params"),
        (json!({ "type": "threads.get_by_id", "params": { "thread_id": "thr_nope" } }).to_string(), 404, "thread_not_found"),
        (json!({ "type": "threads.add_user_message", "params": { "thread_id": "thr_nope", "input": text_input("hi") } }).to_string(), 404, "thread_not_found"),
        ("x".repeat(70_000), 413, "payload_too_large"),
    ];
    for (body, status, code) in cases {
        let reply = server.post_raw(t, body.clone()).await;
        let shown: String = body.chars().take(120).collect();
        assert_eq!(reply.status, status, "{shown} → {}", reply.text);
        reply.assert_error(status, code);
    }
    // Invalid UTF-8.
    let reply = server.post_raw(t, vec![b'{', 0xff, 0xfe, b'}']).await;
    reply.assert_error(400, "invalid_json");
    // Deeply nested JSON is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000 / 2), "]".repeat(100_000 / 2));
    let reply = server.post_raw(t, deep).await;
    assert!(
        reply.status == 400 || reply.status == 413,
        "{}",
        reply.status
    );
    // Unknown keys are ignored (protocol §1.1).
    let reply = server
        .post_raw(
            t,
            json!({ "type": "threads.list", "params": { "whatever": 1 }, "extra": true })
                .to_string(),
        )
        .await;
    assert_eq!(reply.status, 200);
    // The server is still healthy.
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn extra_operations_answer_unsupported() {
    let server = TestServer::start();
    let alice = token("alice");
    // Widget actions are answered (tests/integration/widgets.rs); without a sender widget, or
    // with a type no tool handles, they are refused before anything runs.
    for op in ["threads.custom_action", "threads.sync_custom_action"] {
        let params = json!({ "thread_id": "thr_1", "action": { "type": "x" } });
        server
            .post(&alice, &json!({ "type": op, "params": params }))
            .await
            .assert_error(400, "invalid_params");
        let params = json!({ "thread_id": "thr_1", "item_id": "msg_1", "action": { "type": "x" } });
        server
            .post(&alice, &json!({ "type": op, "params": params }))
            .await
            .assert_error(400, "unknown_action");
    }
    for (op, params) in [(
        "threads.add_structured_input",
        json!({ "thread_id": "thr_1", "item_id": "si_1", "input": {} }),
    )] {
        let reply = server
            .post(&alice, &json!({ "type": op, "params": params }))
            .await;
        reply.assert_error(400, "unsupported_operation");
        assert!(reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(op));
    }
}
