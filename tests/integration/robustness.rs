//! Requests as attackers and careless clients send them: long multi-byte text where the
//! server cuts text, a handler that panics, methods a path does not serve, and what hostile
//! traffic leaves behind in memory.

use serde_json::json;

use crate::harness::*;

/// The text that makes a debug build's handler panic (`CHATKIT_DEBUG_PANIC_MARKER`).
const PANIC_MARKER: &str = "fault-injection-7d1c";

fn panicking_server() -> TestServer {
    TestServer::start_with(&[
        ("CHATKIT_DEBUG_PANIC_MARKER", PANIC_MARKER),
        ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0"),
    ])
}

#[tokio::test]
async fn an_unknown_op_name_cut_inside_a_character_is_a_400_not_a_dropped_connection() {
    let server = TestServer::start_with(&[("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0")]);
    let alice = token("alice");
    // Byte 64 of each name falls inside a multi-byte character (2, 3 and 4 bytes long):
    // cutting the name there for the error message used to panic the worker.
    for (prefix, wide) in [(63, "é"), (62, "中"), (61, "😀"), (63, "\u{301}")] {
        for tail in [0, 1, 100, 100_000] {
            let name = format!("{}{wide}{}", "a".repeat(prefix), "é".repeat(tail));
            let body = json!({ "type": name, "params": {} }).to_string();
            let reply = server.post_raw(Some(&alice), body).await;
            reply.assert_error(400, "unknown_operation");
            let message = reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                message.len() < 120,
                "the echoed name is cut: {} bytes",
                message.len()
            );
        }
    }
    assert_eq!(server.log_count("panic"), 0, "{}", server.logs());
}

#[tokio::test]
async fn a_panicking_handler_answers_500_internal_logs_one_line_and_counts_it() {
    let server = panicking_server();
    let alice = token("alice");
    let body =
        json!({ "type": "threads.list", "params": {}, "metadata": { "note": PANIC_MARKER } });
    let reply = server.post_raw(Some(&alice), body.to_string()).await;
    reply.assert_error(500, "internal");
    assert_eq!(reply.json()["error"]["message"], "internal error");
    let request_id = reply
        .headers
        .get("x-request-id")
        .expect("the answer to a panic carries the request id")
        .to_str()
        .unwrap()
        .to_string();
    eventually("the panic is logged", || {
        server.log_count("fault injection: request body carries the panic marker") == 1
    })
    .await;
    let panic_lines: Vec<String> = server
        .logs()
        .lines()
        .filter(|l| l.contains("panic"))
        .map(str::to_string)
        .collect();
    assert_eq!(panic_lines.len(), 1, "one log line: {panic_lines:#?}");
    assert!(panic_lines[0].contains("ERROR"), "{}", panic_lines[0]);
    assert!(
        panic_lines[0].contains(&request_id),
        "the line names the request: {}",
        panic_lines[0]
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("chatkit_http_panics_total 1"),
        "the panic is counted:\n{metrics}"
    );
    // The worker lives on and serves the next requests.
    for _ in 0..4 {
        let page = server.list_threads(&alice, json!({})).await;
        assert_eq!(page["data"], json!([]));
    }
}

#[tokio::test]
async fn paths_answer_405_with_allow_for_methods_they_do_not_serve() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let cases = [
        ("/chatkit", reqwest::Method::GET, "POST"),
        ("/chatkit", reqwest::Method::PUT, "POST"),
        ("/chatkit", reqwest::Method::DELETE, "POST"),
        ("/chatkit", reqwest::Method::PATCH, "POST"),
        ("/chatkit", reqwest::Method::OPTIONS, "POST"),
        ("/healthz", reqwest::Method::POST, "GET"),
        ("/admin/threads", reqwest::Method::DELETE, "GET"),
    ];
    for (path, method, allow) in cases {
        let response = http
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        let reply = Reply::read(response).await;
        reply.assert_error(405, "method_not_allowed");
        assert_eq!(
            reply.headers.get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
    }
    let head = http.head(server.url("/chatkit")).send().await.unwrap();
    assert_eq!(head.status(), 405);
    assert_eq!(head.headers()["allow"], "POST");
}

/// Long multi-byte text in every field, some of it making the handler panic.
fn hostile_body(i: usize) -> serde_json::Value {
    let unit = ["é", "中", "😀", "\u{301}", "\u{200f}", "\"", "\\"][i % 7];
    let text = unit.repeat([10, 1_000, 30_000, 120_000][i % 4]);
    match i % 5 {
        0 => json!({ "type": format!("{}é{text}", "a".repeat(63)), "params": {} }),
        1 => {
            json!({ "type": "threads.list", "params": {}, "metadata": { "x": format!("{PANIC_MARKER}{text}") } })
        }
        2 => json!({ "type": "threads.update", "params": { "thread_id": text, "title": text } }),
        3 => json!({ "type": "items.list", "params": { "thread_id": "thr_x", "after": text } }),
        _ => {
            json!({ "type": "threads.create", "params": { "input": { "content": [{ "type": "input_text", "text": text }], "attachments": [text], "inference_options": {} } } })
        }
    }
}

#[tokio::test]
async fn hostile_traffic_with_caught_panics_leaves_memory_near_its_working_set() {
    let server = panicking_server();
    let alice = token("alice");
    // The working set: the same kinds of request, once each.
    for i in 0..40 {
        server
            .post_raw(Some(&alice), hostile_body(i).to_string())
            .await;
    }
    let warm = server.rss_kib();
    let mut statuses = std::collections::BTreeMap::new();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let http = reqwest::Client::new();
            let url = server.url("/chatkit");
            let alice = alice.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for i in 0..125 {
                    let body = hostile_body(c * 125 + i).to_string();
                    let response = http
                        .post(&url)
                        .bearer_auth(&alice)
                        .body(body)
                        .send()
                        .await
                        .expect("every request is answered");
                    seen.push(response.status().as_u16());
                    let _ = response.bytes().await;
                }
                seen
            })
        })
        .collect();
    for client in clients {
        for status in client.await.unwrap() {
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    assert_eq!(statuses.get(&500), Some(&200), "{statuses:?}");
    assert!(
        statuses.keys().all(|s| *s == 500 || (400..500).contains(s)),
        "only the injected panics are 5xx: {statuses:?}"
    );
    let after = server.rss_kib();
    eprintln!(
        "hostile traffic: {statuses:?}, rss {warm} KiB warm, {after} KiB after 1,000 requests"
    );
    assert!(
        after < warm + 48 * 1024,
        "memory returns near its working set: {warm} KiB warm, {after} KiB after"
    );
    assert_eq!(
        server.log_count("fault injection"),
        208,
        "one log line per panic (8 in the warm-up)"
    );
}
