//! HTTP-level fuzzing: thousands of mutated and random bodies, headers, methods and paths
//! against the real server. Zero 5xx, the process stays up, memory stays flat.

use serde_json::json;

use crate::harness::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn corpus(thread_id: &str) -> Vec<String> {
    let input = text_input("hello");
    vec![
        json!({ "type": "threads.create", "params": { "input": input } }).to_string(),
        json!({ "type": "threads.add_user_message", "params": { "thread_id": thread_id, "input": input } }).to_string(),
        json!({ "type": "threads.get_by_id", "params": { "thread_id": thread_id } }).to_string(),
        json!({ "type": "threads.list", "params": { "limit": 5, "order": "asc" } }).to_string(),
        json!({ "type": "items.list", "params": { "thread_id": thread_id, "limit": 3 } }).to_string(),
        json!({ "type": "threads.update", "params": { "thread_id": thread_id, "title": "t" } }).to_string(),
        json!({ "type": "items.feedback", "params": { "thread_id": thread_id, "item_ids": ["a"], "kind": "positive" } }).to_string(),
        json!({ "type": "threads.retry_after_item", "params": { "thread_id": thread_id, "item_id": "msg_x" } }).to_string(),
        json!({ "type": "threads.add_client_tool_output", "params": { "thread_id": thread_id, "result": [1, {"a": null}] } }).to_string(),
    ]
}

const SPLICES: &[&str] = &[
    "null",
    "true",
    "-1",
    "1e999",
    "\"\"",
    "[]",
    "{}",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "9223372036854775808",
    "{\"type\":",
    "\"threads.delete\"",
    "\u{202e}",
    "\"thr_\"",
    "0.0000001",
    "[[[[[[[[",
    "}}}}",
];

fn mutate(rng: &mut Rng, seed: &str) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        if bytes.is_empty() {
            bytes.push(b'{');
        }
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 => bytes[at] = rng.next() as u8,
            1 => bytes.truncate(at),
            2 => {
                let splice = rng.pick(SPLICES).as_bytes().to_vec();
                bytes.splice(at..at, splice);
            }
            3 => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                let len = rng.below(64);
                let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, junk);
            }
            _ => {
                let end = (at + 1 + rng.below(32)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn thousands_of_hostile_requests_cause_no_5xx() {
    const REQUESTS: usize = 4000;
    let server = TestServer::start_with(&[
        ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0"),
        ("CHATKIT__LIMITS__MAX_STREAMS_PER_USER", "0"),
        ("CHATKIT__SERVER__MAX_BODY_BYTES", "65536"),
        ("CHATKIT__TITLES__ENABLED", "false"),
        ("RUST_LOG", "warn"),
    ]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "seed").await.thread_id();
    let corpus = corpus(&thread_id);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let methods = [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ];
    let paths = [
        "/chatkit",
        "/chatkit",
        "/chatkit",
        "/chatkit/",
        "/",
        "/admin",
        "/chatkit?x=1",
        "/%2e%2e/etc/passwd",
    ];
    let auths = [
        Some(format!("Bearer {alice}")),
        None,
        Some("Bearer x".to_string()),
        Some(format!("bearer {alice}")),
        Some("Basic YTpi".to_string()),
    ];
    let content_types = [
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
        "application/json; charset=latin1",
    ];
    let mut status_counts = std::collections::BTreeMap::new();
    let mut warmed_rss = 0;
    for i in 0..REQUESTS {
        if i == 500 {
            warmed_rss = rss_kib(server.pid());
        }
        let method = if rng.below(10) < 8 {
            reqwest::Method::POST
        } else {
            rng.pick(&methods).clone()
        };
        let path = if rng.below(10) < 8 {
            "/chatkit"
        } else {
            rng.pick(&paths)
        };
        let body = match rng.below(10) {
            0 => (0..rng.below(2048)).map(|_| rng.next() as u8).collect(),
            1 => rng.pick(&corpus).as_bytes().to_vec(),
            _ => {
                let seed = rng.pick(&corpus).clone();
                mutate(&mut rng, &seed)
            }
        };
        let mut req = http.request(method, server.url(path)).body(body);
        // Mostly a valid token, so most requests reach the parser.
        let auth = if rng.below(10) < 7 {
            &auths[0]
        } else {
            rng.pick(&auths)
        };
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let ct = rng.pick(&content_types);
        if !ct.is_empty() {
            req = req.header("content-type", *ct);
        }
        let response = req.send().await.expect("the server answers every request");
        let status = response.status().as_u16();
        let _ = response.bytes().await;
        assert!(status < 500, "request {i} got {status}");
        *status_counts.entry(status).or_insert(0) += 1;
    }
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "the process stayed up");
    let final_rss = rss_kib(server.pid());
    assert!(
        final_rss < warmed_rss + 64 * 1024,
        "memory stays flat: {warmed_rss} KiB after warm-up, {final_rss} KiB at the end"
    );
    eprintln!("http fuzz: {REQUESTS} hostile requests, 0 5xx, statuses {status_counts:?}, rss {warmed_rss}→{final_rss} KiB");
}
