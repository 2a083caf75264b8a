//! The HTTP client side: requests to a [`TestServer`]'s `/chatkit` (every JSON request,
//! response body and SSE event checked by the official SDK), whole replies ([`Reply`]),
//! parsed SSE responses ([`Stream`]), streams read frame by frame ([`LiveStream`]), and the
//! request bodies and calls most tests make.

use serde_json::{json, Value};

use super::processes::{rand_suffix, TestServer};
use super::sdk::{self, Kind};

/// A user message input with one text part.
pub fn text_input(text: &str) -> Value {
    json!({
        "content": [{ "type": "input_text", "text": text }],
        "attachments": [],
        "inference_options": {}
    })
}

/// A request body: `{"type": op, "params": params}`.
pub fn op_request(op: &str, params: Value) -> Value {
    json!({ "type": op, "params": params })
}

/// `threads.create` with a text message.
pub fn create_request(text: &str) -> Value {
    op_request("threads.create", json!({ "input": text_input(text) }))
}

/// `threads.add_user_message` with a text message.
pub fn add_message_request(thread_id: &str, text: &str) -> Value {
    op_request(
        "threads.add_user_message",
        json!({ "thread_id": thread_id, "input": text_input(text) }),
    )
}

/// The next turn of a conversation: creates the thread when there is none yet.
pub fn turn_request(thread_id: Option<&str>, text: &str) -> Value {
    match thread_id {
        None => create_request(text),
        Some(id) => add_message_request(id, text),
    }
}

/// Creates a thread with a text message; asserts 200.
pub async fn create_thread(server: &TestServer, token: &str, text: &str) -> Stream {
    let stream = server
        .stream(
            token,
            "threads.create",
            json!({ "input": text_input(text) }),
        )
        .await;
    assert_eq!(stream.status, 200, "{}", stream.raw);
    stream
}

/// Alice's token and the thread she creates on `server` with `text` (asserting 200).
pub async fn alice_starts(server: &TestServer, text: &str) -> (String, Stream) {
    let alice = super::tokens::token("alice");
    let stream = create_thread(server, &alice, text).await;
    (alice, stream)
}

/// Creates a thread and asserts the turn was answered.
pub async fn answered_thread(server: &TestServer, token: &str, text: &str) -> Stream {
    let stream = create_thread(server, token, text).await;
    stream.assert_answered();
    stream
}

/// Creates one thread per text, in order; their ids.
pub async fn create_threads(server: &TestServer, token: &str, texts: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for text in texts {
        ids.push(create_thread(server, token, text).await.thread_id());
    }
    ids
}

/// Adds a text message to a thread (any status: see [`Stream::status`]).
pub async fn add_message(server: &TestServer, token: &str, thread_id: &str, text: &str) -> Stream {
    server
        .stream(
            token,
            "threads.add_user_message",
            json!({ "thread_id": thread_id, "input": text_input(text) }),
        )
        .await
}

/// One string field of every item of a page (`"type"`, `"id"`…), in order.
pub fn field_of<'a>(page: &'a Value, field: &str) -> Vec<&'a str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_str().unwrap())
        .collect()
}

/// The entries of a page (`data`).
pub fn page_data(page: &Value) -> &Vec<Value> {
    page["data"].as_array().unwrap()
}

impl TestServer {
    /// POSTs raw bytes to `/chatkit`.
    pub async fn post_raw(&self, token: Option<&str>, body: impl Into<reqwest::Body>) -> Reply {
        let mut req = self.http.post(self.url("/chatkit")).body(body);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    /// POSTs a JSON request (checked by the SDK first) to `/chatkit`.
    pub async fn post(&self, token: &str, body: &Value) -> Reply {
        let text = body.to_string();
        sdk::check(Kind::Request, &text);
        self.post_raw(Some(token), text).await
    }

    /// POSTs `{"type": op, "params": params}` (checked by the SDK first).
    pub async fn post_op(&self, token: &str, op: &str, params: Value) -> Reply {
        self.post(token, &op_request(op, params)).await
    }

    /// Runs a JSON op and returns the body, asserting 200 and SDK validity as `kind`.
    pub async fn call(&self, token: &str, op: &str, params: Value, kind: Kind) -> Value {
        let reply = self.post_op(token, op, params).await;
        assert_eq!(reply.status, 200, "{op}: {}", reply.text);
        assert!(
            reply.content_type.starts_with("application/json"),
            "{op}: {}",
            reply.content_type
        );
        sdk::check(kind, &reply.text);
        serde_json::from_str(&reply.text).unwrap()
    }

    /// `threads.get_by_id`: the thread with its oldest items.
    pub async fn get_thread(&self, token: &str, thread_id: &str) -> Value {
        let params = json!({ "thread_id": thread_id });
        self.call(token, "threads.get_by_id", params, Kind::Thread)
            .await
    }

    /// `threads.list` with these params (`json!({})` for the defaults).
    pub async fn list_threads(&self, token: &str, params: Value) -> Value {
        self.call(token, "threads.list", params, Kind::ThreadsPage)
            .await
    }

    /// `items.list` with the defaults (newest first, 20).
    pub async fn items(&self, token: &str, thread_id: &str) -> Value {
        let params = json!({ "thread_id": thread_id });
        self.call(token, "items.list", params, Kind::ItemsPage)
            .await
    }

    /// A thread's items, oldest first (one page of up to 200), checked by the SDK.
    pub async fn items_asc(&self, token: &str, thread_id: &str) -> Value {
        let params = json!({ "thread_id": thread_id, "order": "asc", "limit": 200 });
        self.call(token, "items.list", params, Kind::ItemsPage)
            .await
    }

    /// Runs a streaming op to its end; every event is checked by the SDK.
    pub async fn stream(&self, token: &str, op: &str, params: Value) -> Stream {
        Stream::parse(self.post_op(token, op, params).await)
    }

    /// Starts a streaming request and returns once the 200 headers arrived.
    pub async fn open_stream(&self, token: &str, body: &Value) -> LiveStream {
        let response = self
            .http
            .post(self.url("/chatkit"))
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        LiveStream {
            response,
            buffer: String::new(),
            events: Vec::new(),
        }
    }

    /// Adds a message and returns once the stream started (`slow N` answers slowly).
    pub async fn open_message_stream(
        &self,
        token: &str,
        thread_id: &str,
        text: &str,
    ) -> LiveStream {
        self.open_stream(token, &add_message_request(thread_id, text))
            .await
    }

    /// The metrics listener's current text.
    pub async fn metrics(&self) -> String {
        let url = self.metrics_url.clone().expect("a metrics listener");
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }
}

/// `GET url` with an optional bearer token: the status and the JSON body (`null` if none).
pub async fn get_json(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A whole HTTP reply.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.text().await.unwrap_or_default();
        Reply {
            status,
            content_type,
            headers,
            text,
        }
    }

    /// `Ok` when the status is `status`, else the status and body (for [`eventually`]).
    ///
    /// [`eventually`]: super::wait::eventually
    pub fn status_is(&self, status: u16) -> Result<(), String> {
        if self.status == status {
            Ok(())
        } else {
            Err(format!("HTTP {}: {}", self.status, self.text))
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }

    /// Asserts a JSON error with this status and code, and nothing internal in it.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "body: {}", self.text);
        assert!(body["error"]["message"].is_string());
        let lower = self.text.to_lowercase();
        for leak in [
            "sql",
            "postgres",
            "tokio",
            "panicked",
            "/src/",
            ".rs:",
            "backtrace",
        ] {
            assert!(
                !lower.contains(leak),
                "error body leaks {leak:?}: {}",
                self.text
            );
        }
    }
}

/// One SSE frame without its `\n\n`: `data: JSON` on one line, the JSON checked by the SDK.
fn parse_frame(frame: &str) -> Value {
    let json = frame
        .strip_prefix("data: ")
        .unwrap_or_else(|| panic!("bad frame {frame:?}"));
    assert!(!json.contains('\n'), "one line per frame: {frame:?}");
    sdk::check(Kind::Event, json);
    serde_json::from_str(json).unwrap()
}

/// The items of the `thread.item.done` events, in order.
fn done_items(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "thread.item.done")
        .map(|e| e["item"].clone())
        .collect()
}

/// A parsed SSE response.
pub struct Stream {
    pub status: u16,
    pub raw: String,
    pub events: Vec<Value>,
    pub reply: Reply,
}

impl Stream {
    pub fn parse(reply: Reply) -> Stream {
        let mut events = Vec::new();
        if reply.status == 200 {
            assert_eq!(reply.content_type, "text/event-stream; charset=utf-8");
            for frame in reply.text.split_terminator("\n\n") {
                events.push(parse_frame(frame));
            }
            assert!(reply.text.is_empty() || reply.text.ends_with("\n\n"));
        }
        Stream {
            status: reply.status,
            raw: reply.text.clone(),
            events,
            reply,
        }
    }

    /// A 200 event stream read by another client (through a balancer).
    pub fn from_event_stream(text: String) -> Stream {
        Stream::parse(Reply {
            status: 200,
            content_type: "text/event-stream; charset=utf-8".into(),
            headers: Default::default(),
            text,
        })
    }

    /// Event types, with the update type for `thread.item.updated`.
    pub fn kinds(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| {
                let t = e["type"].as_str().unwrap().to_string();
                match e["update"]["type"].as_str() {
                    Some(u) => format!("{t}:{}", u.rsplit('.').next().unwrap()),
                    None => t,
                }
            })
            .collect()
    }

    /// The type of the last event (`""` for an empty stream).
    pub fn last_kind(&self) -> String {
        self.kinds().pop().unwrap_or_default()
    }

    pub fn thread_id(&self) -> String {
        self.events
            .iter()
            .find_map(|e| {
                e["thread"]["id"]
                    .as_str()
                    .or(e["item"]["thread_id"].as_str())
            })
            .expect("a thread id in the stream")
            .to_string()
    }

    /// The turn ended with a stored assistant answer (then possibly a `thread.updated`).
    pub fn assert_answered(&self) {
        assert_eq!(self.status, 200, "{}", self.raw);
        let kinds = self.kinds();
        let last_done = kinds
            .iter()
            .rposition(|k| k == "thread.item.done")
            .expect("an item.done");
        assert_eq!(
            self.events[last_done]["item"]["type"], "assistant_message",
            "{kinds:?}"
        );
        assert!(
            kinds[last_done + 1..].iter().all(|k| k == "thread.updated"),
            "{kinds:?}"
        );
        assert!(!kinds.iter().any(|k| k == "error"), "{kinds:?}");
    }

    /// The turn ended with the in-band `stream.error` event (retry allowed).
    pub fn assert_ends_in_error(&self) {
        assert_eq!(self.status, 200, "{}", self.raw);
        let kinds = self.kinds();
        assert_eq!(kinds.last().unwrap(), "error", "{kinds:?}");
        assert_eq!(self.events.last().unwrap()["allow_retry"], true);
    }

    /// The `thread.item.done` items, in order.
    pub fn done_items(&self) -> Vec<Value> {
        done_items(&self.events)
    }

    /// The id of the `n`th `thread.item.done` item (0: the user message).
    pub fn done_id(&self, n: usize) -> String {
        self.done_items()[n]["id"].as_str().unwrap().to_string()
    }

    /// The text of the last assistant message of the stream.
    pub fn answer_text(&self) -> String {
        let done = self.done_items();
        let answer = done
            .iter()
            .rev()
            .find(|i| i["type"] == "assistant_message")
            .expect("an answer");
        answer["content"][0]["text"].as_str().unwrap().to_string()
    }
}

/// A streaming response read frame by frame (for cancellation and crash tests).
pub struct LiveStream {
    response: reqwest::Response,
    buffer: String,
    pub events: Vec<Value>,
}

impl LiveStream {
    /// Reads until `n` events arrived in total (or the stream ended); returns how many did.
    pub async fn read_events(&mut self, n: usize) -> usize {
        while self.events.len() < n {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                self.events.push(parse_frame(&frame[..end]));
            }
            if self.events.len() >= n {
                break;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                _ => break,
            }
        }
        self.events.len()
    }

    /// Reads to the end of the stream.
    pub async fn read_to_end(&mut self) -> usize {
        self.read_events(usize::MAX).await
    }

    pub fn done_items(&self) -> Vec<Value> {
        done_items(&self.events)
    }
}

/// A `multipart/form-data` body with one `file` field, as a browser sends it: the
/// `Content-Type` header value and the body.
pub fn file_form(filename: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("----chatkit-test-{}", rand_suffix());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A response's status, headers and raw bytes.
pub struct RawReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    /// False when the body broke off before its announced length.
    pub complete: bool,
}

impl RawReply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl TestServer {
    /// POSTs a form (from [`file_form`]) to `url` (absolute, or a path of this server).
    pub async fn post_form(
        &self,
        url: &str,
        token: Option<&str>,
        form: &(String, Vec<u8>),
    ) -> Reply {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            self.url(url)
        };
        let mut req = self
            .http
            .post(url)
            .header("content-type", &form.0)
            .body(form.1.clone());
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    /// GETs `url` with no header, as an `<img>` tag or a download link does.
    pub async fn get_raw(&self, url: &str) -> RawReply {
        let response = self.http.get(url).send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let (bytes, complete) = match response.bytes().await {
            Ok(bytes) => (bytes.to_vec(), true),
            Err(_) => (Vec::new(), false),
        };
        RawReply {
            status,
            headers,
            bytes,
            complete,
        }
    }
}

/// One streaming request to `base` (a server or a balancer in front of several): the parsed
/// stream of a 200, else the status and body.
pub async fn post_stream(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
) -> Result<Stream, String> {
    let response = http
        .post(format!("{base}/chatkit"))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("HTTP {status} {text}"));
    }
    Ok(Stream::from_event_stream(text))
}
