//! `chatkit-relay`: the practical ceiling for a ChatKit server on this machine. POST /chatkit
//! reads the body, streams one Chat Completions request from the model and relays every text
//! chunk as a ChatKit `text_delta` event, framed by the events a real turn has (protocol §8.1). No auth,
//! no actors, no persistence: whatever chatkit-rs costs beyond this is the price of its features.
//!
//! Usage: chatkit-relay [--port P] [--model-url http://127.0.0.1:P/v1] [--workers N]
//! Prints `listening on http://ADDR` once bound.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;

type ModelClient = Client<HttpConnector, Full<Bytes>>;
type Request = hyper::Request<Full<Bytes>>;
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn new_id(prefix: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{:016x}", n ^ 0x5eed << 40)
}

/// The event templates, one `data: …\n\n` frame each (ids are ours, so need no escaping;
/// texts arrive already JSON-encoded).
#[rustfmt::skip]
mod frames {
    use bytes::BytesMut;
    use std::fmt::Write;
    fn put(out: &mut BytesMut, args: std::fmt::Arguments) {
        let mut s = String::with_capacity(256);
        let _ = s.write_fmt(args);
        out.extend_from_slice(b"data: "); out.extend_from_slice(s.as_bytes()); out.extend_from_slice(b"\n\n");
    }
    pub fn now() -> String { chrono::Utc::now().naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string() }
    pub fn head(out: &mut BytesMut, created: bool, [thread, item, at]: &[String; 3], user: &str, text: &str) {
        if created {
            put(out, format_args!(r#"{{"type":"thread.created","thread":{{"id":"{thread}","created_at":"{at}","status":{{"type":"active"}},"metadata":{{}},"items":{{"data":[],"has_more":false}}}}}}"#));
        }
        put(out, format_args!(r#"{{"type":"thread.item.done","item":{{"id":"{user}","thread_id":"{thread}","created_at":"{at}","type":"user_message","content":[{{"type":"input_text","text":{text}}}],"attachments":[],"inference_options":{{}}}}}}"#));
        put(out, format_args!(r#"{{"type":"stream_options","stream_options":{{"allow_cancel":true}}}}"#));
        put(out, format_args!(r#"{{"type":"thread.item.added","item":{{"id":"{item}","thread_id":"{thread}","created_at":"{at}","type":"assistant_message","content":[]}}}}"#));
        put(out, format_args!(r#"{{"type":"thread.item.updated","item_id":"{item}","update":{{"type":"assistant_message.content_part.added","content_index":0,"content":{{"annotations":[],"text":"","type":"output_text"}}}}}}"#));
    }
    pub fn delta(out: &mut BytesMut, item: &str, delta: &str) {
        put(out, format_args!(r#"{{"type":"thread.item.updated","item_id":"{item}","update":{{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":{delta}}}}}"#));
    }
    pub fn tail(out: &mut BytesMut, thread: &str, item: &str, at: &str, text: &str) {
        put(out, format_args!(r#"{{"type":"thread.item.updated","item_id":"{item}","update":{{"type":"assistant_message.content_part.done","content_index":0,"content":{{"annotations":[],"text":{text},"type":"output_text"}}}}}}"#));
        put(out, format_args!(r#"{{"type":"thread.item.done","item":{{"id":"{item}","thread_id":"{thread}","created_at":"{at}","type":"assistant_message","content":[{{"annotations":[],"text":{text},"type":"output_text"}}]}}}}"#));
    }
    pub fn error(out: &mut BytesMut) {
        put(out, format_args!(r#"{{"type":"error","code":"stream.error","allow_retry":true}}"#));
    }
}

/// Streams the model's answer to `tx` as ChatKit frames; returns early if the client left.
async fn relay(client: ModelClient, ask: Request, ids: [String; 3], tx: Sender<Bytes>) {
    let [thread, item, at] = &ids;
    let (mut out, mut text) = (BytesMut::new(), String::new());
    match client.request(ask).await {
        Ok(resp) if resp.status().is_success() => {
            let (mut body, mut buf) = (resp.into_body(), BytesMut::new());
            while let Some(Ok(chunk)) = body.frame().await {
                buf.extend_from_slice(chunk.data_ref().map_or(&b""[..], |b| &b[..]));
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let event = buf.split_to(end + 2);
                    let data = event.strip_prefix(b"data: ").unwrap_or(b"");
                    let chunk: Value =
                        serde_json::from_slice(&data[..data.len().saturating_sub(2)])
                            .unwrap_or(Value::Null); // `[DONE]` too: the body ends right after it
                    let delta = chunk.pointer("/choices/0/delta/content");
                    if let Some(d) = delta.and_then(Value::as_str).filter(|d| !d.is_empty()) {
                        text.push_str(d);
                        frames::delta(&mut out, item, &delta.unwrap().to_string());
                    }
                }
                if !out.is_empty() && tx.send(out.split().freeze()).await.is_err() {
                    return;
                }
            }
            frames::tail(&mut out, thread, item, at, &Value::from(text).to_string());
        }
        _ => frames::error(&mut out),
    }
    let _ = tx.send(out.freeze()).await;
}

async fn chatkit(
    body: web::Bytes,
    client: web::Data<ModelClient>,
    url: web::Data<String>,
) -> HttpResponse {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let thread_id = req.pointer("/params/thread_id").and_then(Value::as_str);
    let thread = match (req["type"].as_str(), thread_id) {
        (Some("threads.create"), _) => None,
        (Some("threads.add_user_message"), Some(id)) if !id.contains(['"', '\\']) => Some(id),
        _ => return HttpResponse::BadRequest().json(json!({"error": {"code": "invalid_request"}})),
    };
    let text = req.pointer("/params/input/content/0/text").cloned();
    let text = text.unwrap_or_else(|| Value::from(""));
    let ask = json!({"model": "mock-model", "stream": true, "messages": [{"role": "user", "content": text}]});
    let ask = hyper::Request::post(format!("{}/chat/completions", url.get_ref()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(ask.to_string())))
        .expect("a valid request");
    let ids = [
        thread.map_or_else(|| new_id("thr"), str::to_owned),
        new_id("msg"),
        frames::now(),
    ];
    let mut head = BytesMut::new();
    frames::head(
        &mut head,
        thread.is_none(),
        &ids,
        &new_id("msg"),
        &text.to_string(),
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    actix_web::rt::spawn(relay(client.get_ref().clone(), ask, ids, tx));
    let rest = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|b| (Ok(b), rx)) });
    let first = futures::stream::once(async move { Ok::<_, actix_web::Error>(head.freeze()) });
    HttpResponse::Ok()
        .content_type("text/event-stream; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .streaming(futures::StreamExt::chain(first, rest))
}

fn main() -> std::io::Result<()> {
    let (mut port, mut model_url, mut workers) = (0u16, "http://127.0.0.1:18081/v1".to_owned(), 0);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => port = value.parse().expect("--port N"),
            "--model-url" => model_url = value.trim_end_matches('/').to_owned(),
            "--workers" => workers = value.parse().expect("--workers N"),
            _ => panic!("usage: chatkit-relay [--port P] [--model-url URL] [--workers N]"),
        }
    }
    actix_web::rt::System::new().block_on(async move {
        let model_url = web::Data::new(model_url);
        let mut server = HttpServer::new(move || {
            // One pool per worker: its connections live on that worker's runtime.
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let client: ModelClient = Client::builder(TokioExecutor::new()).build(connector);
            App::new()
                .app_data(web::Data::new(client))
                .app_data(model_url.clone())
                .route("/chatkit", web::post().to(chatkit))
        })
        // Small SSE writes must leave at once (actix keeps the OS default, Nagle, otherwise).
        .tcp_nodelay(true)
        .bind(("127.0.0.1", port))?;
        if workers > 0 {
            server = server.workers(workers);
        }
        println!("listening on http://{}", server.addrs()[0]);
        server.run().await
    })
}
