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
async fn extra_operations_are_checked_before_they_run() {
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
    // Answers to questions (tests/integration/questions.rs) address a thread of the caller's.
    let params = json!({ "thread_id": "thr_1", "item_id": "si_1", "input": {} });
    server
        .post_op(&alice, "threads.add_structured_input", params)
        .await
        .assert_error(404, "thread_not_found");
}

/// A request body with `params` under `op`, sent as is (no SDK check: NUL is the point).
fn op_body(op: &str, params: serde_json::Value) -> String {
    json!({ "type": op, "params": params }).to_string()
}

#[tokio::test]
async fn nul_in_any_text_bound_for_the_database_is_a_400_naming_the_field() {
    let server = TestServer::start_with(&[("CHATKIT__TITLES__ENABLED", "false")]);
    let alice = token("alice");
    let thread = create_thread(&server, &alice, "hello").await.thread_id();
    let message = |content: serde_json::Value| json!({ "content": content, "attachments": [], "quoted_text": "q", "inference_options": {} });
    let cases = [
        (
            op_body(
                "threads.update",
                json!({ "thread_id": thread, "title": "a\u{0}b" }),
            ),
            "`title`",
        ),
        (
            op_body(
                "threads.create",
                json!({ "input": message(json!([{ "type": "input_text", "text": "hi\u{0}" }])) }),
            ),
            "`input.content[0].text`",
        ),
        (
            op_body(
                "threads.add_user_message",
                json!({ "thread_id": thread, "input": { "content": [{ "type": "input_text", "text": "hi" }], "attachments": [], "quoted_text": "\u{0}", "inference_options": {} } }),
            ),
            "`input.quoted_text`",
        ),
        (
            op_body(
                "threads.create",
                json!({ "input": message(json!([{ "type": "input_tag", "id": "t1", "text": "tag", "data": { "note": "x\u{0}" } }])) }),
            ),
            "`input.content[0].data.note`",
        ),
        (
            op_body(
                "threads.create",
                json!({ "input": message(json!([{ "type": "input_tag", "id": "t1", "text": "tag", "data": { "k\u{0}": 1 } }])) }),
            ),
            "a key of `input.content[0].data`",
        ),
        (
            op_body(
                "threads.create",
                json!({ "input": { "content": [{ "type": "input_text", "text": "hi" }], "attachments": [], "inference_options": { "model": "m\u{0}" } } }),
            ),
            "`input.inference_options.model`",
        ),
        (
            op_body(
                "threads.add_client_tool_output",
                json!({ "thread_id": thread, "result": { "out": ["\u{0}"] } }),
            ),
            "`result.out[0]`",
        ),
        (
            op_body(
                "threads.custom_action",
                json!({ "thread_id": thread, "item_id": "msg_1", "action": { "type": "x", "payload": { "v": "\u{0}" } } }),
            ),
            "`action.payload.v`",
        ),
        (
            op_body(
                "threads.sync_custom_action",
                json!({ "thread_id": thread, "item_id": "msg_1", "action": { "type": "x\u{0}" } }),
            ),
            "`action.type`",
        ),
        (
            op_body(
                "attachments.create",
                json!({ "name": "a\u{0}.txt", "size": 3, "mime_type": "text/plain" }),
            ),
            "`name`",
        ),
        (
            op_body(
                "attachments.create",
                json!({ "name": "a.txt", "size": 3, "mime_type": "text/plain\u{0}" }),
            ),
            "`mime_type`",
        ),
    ];
    for (body, field) in cases {
        let reply = server.post_raw(Some(&alice), body.clone()).await;
        reply.assert_error(400, "invalid_params");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.contains(field) && message.contains("NUL"),
            "{body} → {message}"
        );
    }
    // Other control characters are text like any other: stored and read back as sent.
    let title = "a\u{1}b\u{7f}\u{1b}[0m";
    let reply = server
        .post_raw(
            Some(&alice),
            op_body(
                "threads.update",
                json!({ "thread_id": thread, "title": title }),
            ),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(server.get_thread(&alice, &thread).await["title"], title);
    // An upload's file name cannot carry one either (the form refuses it or we do).
    let form = file_form("a\u{0}b.txt", "text/plain", b"abc");
    let reply = server.post_form("/attachments", Some(&alice), &form).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.starts_with("{\"error\":"), "{}", reply.text);
}

#[tokio::test]
async fn every_admin_endpoint_authenticates_before_it_reads_the_query_and_answers_json() {
    let server = TestServer::start_with(&[("CHATKIT__SERVER__MODE", "development")]);
    let alice = token("alice");
    let admin = admin_token();
    let get = |path: &str, token: Option<&str>| {
        let mut req = reqwest::Client::new().get(server.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { Reply::read(req.send().await.unwrap()).await }
    };
    for path in [
        "/admin/threads?limit=abc",
        "/admin/threads?limit=-1&state=%FF",
        "/admin/instances?limit=abc",
    ] {
        let reply = get(path, None).await;
        reply.assert_error(401, "unauthorized");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
        get(path, Some(&alice)).await.assert_error(403, "forbidden");
    }
    let reply = get("/admin/threads?limit=abc", Some(&admin)).await;
    reply.assert_error(400, "invalid_params");
    assert!(
        reply.text.contains("limit") || reply.text.contains("digit"),
        "{}",
        reply.text
    );
    assert_eq!(
        get("/admin/threads?limit=5", Some(&admin)).await.status,
        200
    );
    // Other extractors answer JSON too: a JSON body that is not what it should be.
    let http = reqwest::Client::new();
    for (content_type, body) in [
        ("application/json", "{"),
        ("application/json", "{\"sub\": 5}"),
        ("text/plain", "{\"sub\":\"x\"}"),
    ] {
        let reply = Reply::read(
            http.post(server.url("/dev/token"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(
            reply.content_type.starts_with("application/json"),
            "{body}: {} {}",
            reply.content_type,
            reply.text
        );
    }
}
