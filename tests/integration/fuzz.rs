//! HTTP-level fuzzing: thousands of mutated and random bodies, headers, methods and paths
//! against the real server. Zero 5xx, the process stays up, memory stays flat.

use chatkit_actors::attachments::signing::Purpose;
use serde_json::json;

use crate::harness::*;

pub(crate) struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
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
            warmed_rss = server.rss_kib();
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
    let final_rss = server.rss_kib();
    assert!(
        final_rss < warmed_rss + 64 * 1024,
        "memory stays flat: {warmed_rss} KiB after warm-up, {final_rss} KiB at the end"
    );
    eprintln!("http fuzz: {REQUESTS} hostile requests, 0 5xx, statuses {status_counts:?}, rss {warmed_rss}→{final_rss} KiB");
}

/// Characters attackers like: combining marks, 4-byte characters, NUL and other controls,
/// RTL and BOM marks, quotes and backslashes; the rest of the time any code point.
const HOSTILE_CHARS: &[char] = &[
    'a',
    ' ',
    '"',
    '\\',
    '\'',
    '\0',
    '\n',
    '\u{7f}',
    'é',
    '\u{301}',
    '\u{36f}',
    '\u{200f}',
    '\u{202e}',
    '\u{feff}',
    '\u{fffd}',
    '中',
    '😀',
    '𝄞',
    '\u{10ffff}',
    '\u{e0001}',
];

impl Rng {
    fn hostile_char(&mut self) -> char {
        if self.below(4) > 0 {
            return *self.pick(HOSTILE_CHARS);
        }
        loop {
            if let Some(c) = char::from_u32(self.below(0x11_0000) as u32) {
                return c;
            }
        }
    }

    /// A string of a length class from empty to `max_bytes` (lengths around the 64-byte
    /// cuts included).
    pub(crate) fn hostile_string(&mut self, max_bytes: usize) -> String {
        let target = match self.below(5) {
            0 => self.below(16),
            1 => 56 + self.below(16),
            2 => 200 + self.below(2_000),
            3 => 2_000 + self.below(max_bytes / 8),
            _ => max_bytes / 2 + self.below(max_bytes / 2),
        };
        let mut text = String::new();
        // A run of hostile characters, repeated up to the length (cheap for long ones).
        let run: String = (0..1 + self.below(48))
            .map(|_| self.hostile_char())
            .collect();
        while text.len() < target.min(max_bytes) {
            text.push_str(&run);
        }
        text
    }
}

/// Every string in `value` replaced by hostile text (op names and other discriminators
/// only now and then, so that most requests reach their op's params).
fn with_hostile_strings(value: &mut serde_json::Value, rng: &mut Rng, max_bytes: usize) {
    match value {
        serde_json::Value::String(text) => {
            let discriminator = text.contains('.') || text == "input_text" || text == "asc";
            if !discriminator || rng.below(5) == 0 {
                *text = rng.hostile_string(max_bytes);
            }
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .for_each(|v| with_hostile_strings(v, rng, max_bytes)),
        serde_json::Value::Object(map) => map
            .values_mut()
            .for_each(|v| with_hostile_strings(v, rng, max_bytes)),
        _ => {}
    }
}

#[tokio::test]
async fn hostile_unicode_in_every_string_field_of_every_op_causes_no_5xx() {
    const REQUESTS: usize = 1200;
    const BODY_LIMIT: usize = 1_048_576;
    let server = TestServer::start_with(&[
        ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0"),
        ("CHATKIT__LIMITS__MAX_STREAMS_PER_USER", "0"),
        ("CHATKIT__TITLES__ENABLED", "false"),
        ("RUST_LOG", "warn"),
    ]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "seed").await.thread_id();
    let templates: Vec<serde_json::Value> = include_str!("../fixtures/requests.jsonl")
        .lines()
        .map(|line| serde_json::from_str(&line.replace("thr_5c1e9a02", &thread_id)).unwrap())
        .collect();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..REQUESTS {
        let mut request = rng.pick(&templates).clone();
        // Most bodies hold several long strings; every twentieth one string near the limit.
        let max_bytes = if i % 20 == 0 {
            BODY_LIMIT
        } else {
            BODY_LIMIT / 8
        };
        with_hostile_strings(&mut request, &mut rng, max_bytes);
        let body = request.to_string();
        let response = http
            .post(server.url("/chatkit"))
            .bearer_auth(&alice)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} got no answer: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!(status < 500, "request {i} got {status}: {text}");
        *statuses.entry(status).or_insert(0) += 1;
    }
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "the process stayed up");
    assert_eq!(server.log_count("panic"), 0, "no panic, caught or not");
    eprintln!("unicode fuzz: {REQUESTS} requests over every op, 0 5xx, statuses {statuses:?}");
}

/// Percent-encodes every byte of `text` (query values and path segments of any Unicode).
fn percent(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn hostile_uploads_names_types_paths_and_signatures_cause_no_5xx() {
    const REQUESTS: usize = 600;
    const KEY: &str = "fuzz-signing-key-0123456789abcdef0123456789";
    let server = TestServer::start_with(&[
        ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0"),
        ("CHATKIT__ATTACHMENTS__MAX_BYTES", "65536"),
        ("CHATKIT__ATTACHMENTS__MAX_BYTES_PER_USER", "0"),
        ("CHATKIT__ATTACHMENTS__SIGNING_KEY", KEY),
        ("RUST_LOG", "warn"),
    ]);
    let signer = chatkit_actors::attachments::UrlSigner::new(KEY.as_bytes());
    let origin = chatkit_actors::attachments::PublicOrigin::parse(&server.url("")).unwrap();
    let mut downloads = 0;
    let alice = token("alice");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let created: serde_json::Value = server
        .call(
            &alice,
            "attachments.create",
            json!({ "name": "a.txt", "size": 5, "mime_type": "text/plain" }),
            Kind::Attachment,
        )
        .await;
    let upload_url = created["upload_descriptor"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..REQUESTS {
        // Names and types reach the form's part headers as raw bytes (quotes, CR/LF, NUL…);
        // every other direct upload is a plausible text file with a hostile name, so it is
        // stored and downloaded again.
        let plausible = i % 10 == 0;
        let mut name = rng.hostile_string(600);
        let mut mime = rng.hostile_string(200);
        let mut content = rng.hostile_string(4_000).into_bytes();
        if plausible {
            name = name.replace(|c: char| c.is_control() || c == '"', "_");
            name.truncate(
                name.char_indices()
                    .nth(200)
                    .map_or(name.len(), |(at, _)| at),
            );
            mime = "text/plain".into();
            content = rng.hostile_string(4_000).replace('\0', "").into_bytes();
        }
        let boundary = "xYzBoundary";
        let mut form = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .into_bytes();
        form.extend_from_slice(&content);
        form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let hostile = rng.hostile_string(300);
        let request = match i % 5 {
            0 => http
                .post(server.url("/attachments"))
                .bearer_auth(&alice)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(form),
            1 => http
                .post(upload_url.clone())
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(form),
            2 => http.get(server.url(&format!(
                "/attachments/{id}/content?expires={}&signature={}",
                percent(&hostile),
                percent(&rng.hostile_string(300))
            ))),
            3 => http.get(server.url(&format!(
                "/attachments/{}/content?expires=99999999999&signature=x",
                percent(&hostile)
            ))),
            _ => http
                .post(server.url(&format!("/attachments/{}/upload", percent(&hostile))))
                .bearer_auth(&alice)
                .header(
                    "content-type",
                    rng.hostile_string(100).replace(['\r', '\n', '\0'], " "),
                )
                .body(rng.hostile_string(2_000)),
        };
        let response = match request.send().await {
            Ok(response) => response,
            // A header value reqwest itself refuses to send is no request at all.
            Err(e) if e.is_builder() => continue,
            Err(e) => panic!("request {i} got no answer: {e}"),
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!(status < 500, "request {i} got {status}: {text}");
        if status >= 400 {
            assert!(
                text.starts_with("{\"error\":"),
                "request {i}: a JSON error, not {text:?}"
            );
        } else if i % 5 == 0 {
            // Stored under its hostile name: it downloads with a safe Content-Disposition.
            let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
            let url = signer.url(
                &origin,
                Purpose::Content,
                stored["id"].as_str().unwrap(),
                i64::MAX / 2,
            );
            let fetched = server.get_raw(&url).await;
            assert_eq!(fetched.status, 200);
            assert!(fetched
                .header("content-disposition")
                .starts_with("attachment; filename=\""));
            downloads += 1;
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(
        downloads > 20,
        "hostile names were stored and downloaded: {downloads}"
    );
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
    assert_eq!(server.log_count("panic"), 0, "no panic, caught or not");
    eprintln!("upload fuzz: {REQUESTS} requests, 0 5xx, statuses {statuses:?}");
}

/// Control characters put into fields: NUL, which PostgreSQL cannot store, and others it
/// can.
const CONTROLS: &[&str] = &[
    "\u{1}",
    "\u{8}",
    "\t",
    "\r\n",
    "\u{1b}[2J",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{0}\u{1}",
];

/// Where a control character goes: a string value, or a key, by JSON pointer.
enum Target {
    Value(String),
    Key { object: String, key: String },
}

fn pointer_step(text: &str) -> String {
    text.replace('~', "~0").replace('/', "~1")
}

/// Every string value and every object key in `value`.
fn targets(value: &serde_json::Value, at: &str, out: &mut Vec<Target>) {
    match value {
        serde_json::Value::String(_) => out.push(Target::Value(at.to_string())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                targets(item, &format!("{at}/{i}"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                out.push(Target::Key {
                    object: at.to_string(),
                    key: key.clone(),
                });
                targets(item, &format!("{at}/{}", pointer_step(key)), out);
            }
        }
        _ => {}
    }
}

/// `text` with `control` in its middle (on a character boundary).
fn spliced(text: &str, control: &str) -> String {
    let middle = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    format!("{}{control}{}", &text[..middle], &text[middle..])
}

/// `request` with `control` put into `target`.
fn with_control(request: &serde_json::Value, target: &Target, control: &str) -> serde_json::Value {
    let mut request = request.clone();
    match target {
        Target::Value(at) => {
            let text = request.pointer_mut(at).unwrap();
            *text = spliced(text.as_str().unwrap(), control).into();
        }
        Target::Key { object, key } => {
            let map = request
                .pointer_mut(object)
                .unwrap()
                .as_object_mut()
                .unwrap();
            let value = map.remove(key).unwrap();
            map.insert(spliced(key, control), value);
        }
    }
    request
}

#[tokio::test]
async fn nul_and_control_characters_in_every_field_and_key_of_every_op_cause_no_5xx() {
    let server = TestServer::start_with(&[
        ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0"),
        ("CHATKIT__LIMITS__MAX_STREAMS_PER_USER", "0"),
        ("CHATKIT__TITLES__ENABLED", "false"),
        ("RUST_LOG", "warn"),
    ]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "seed").await.thread_id();
    let item_id = server.items_asc(&alice, &thread_id).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Real ids, so that the other fields reach their op; threads.delete gets a thread of
    // its own each time (a request whose NUL lands in an ignored key runs as is).
    let templates: Vec<serde_json::Value> = include_str!("../fixtures/requests.jsonl")
        .lines()
        .map(|line| {
            let line = line
                .replace("msg_0a4b77d3", &item_id)
                .replace("msg_1\"", &format!("{item_id}\""));
            match line.contains("\"threads.delete\"") {
                true => serde_json::from_str(&line).unwrap(),
                false => serde_json::from_str(&line.replace("thr_5c1e9a02", &thread_id)).unwrap(),
            }
        })
        .collect();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let mut statuses = std::collections::BTreeMap::new();
    let mut sent = 0;
    for template in &templates {
        let mut found = Vec::new();
        targets(template, "", &mut found);
        for (n, target) in found.iter().enumerate() {
            for control in ["\u{0}", CONTROLS[(sent + n) % CONTROLS.len()]] {
                let mut request = with_control(template, target, control);
                if request["type"] == "threads.delete" {
                    let own = create_thread(&server, &alice, "to delete")
                        .await
                        .thread_id();
                    let at = "/params/thread_id";
                    if let Some(id) = request.pointer_mut(at).filter(|id| **id == "thr_5c1e9a02") {
                        *id = own.into();
                    }
                }
                let body = request.to_string();
                let response = http
                    .post(server.url("/chatkit"))
                    .bearer_auth(&alice)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{body}: no answer: {e}"));
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                sent += 1;
                assert!(status < 500, "{body} → {status}: {text}");
                if status >= 400 {
                    assert!(text.starts_with("{\"error\":"), "{body} → {text}");
                }
                // A NUL anywhere in the params never gets past the edge.
                let in_params = match target {
                    Target::Value(at) => at.starts_with("/params/"),
                    Target::Key { object, .. } => object.starts_with("/params"),
                };
                if control.contains('\0') && in_params {
                    assert_eq!(status, 400, "{body} → {text}");
                }
                *statuses.entry(status).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
    assert_eq!(server.log_count("panic"), 0, "no panic, caught or not");
    eprintln!("control fuzz: {sent} requests, every field and key of every op, 0 5xx, statuses {statuses:?}");
}
