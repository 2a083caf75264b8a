//! A stand-in for an OpenTelemetry Collector: an OTLP/HTTP receiver (`POST /v1/traces`,
//! protobuf `ExportTraceServiceRequest`) that keeps every span it is sent, decoded with the
//! `opentelemetry-proto` types. Also a collector that accepts connections and never answers
//! ([`Collector::hanging`]), and the address of one that is not there ([`dead_endpoint`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

use super::wait::Patience;

/// One span as the collector received it (ids in lowercase hex, as in `traceparent`).
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client.
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: BTreeMap<String, String>,
    /// Linked spans, as `(trace_id, span_id)`.
    pub links: Vec<(String, String)>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    /// The resource's attributes (`service.name`…).
    pub resource: BTreeMap<String, String>,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    pub fn millis(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e6
    }
}

/// A running OTLP/HTTP receiver on port 0.
pub struct Collector {
    addr: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// The headers of the last export request.
    headers: Arc<Mutex<BTreeMap<String, String>>>,
    system: actix_web::rt::System,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// Every span of an export request.
fn decode(body: &[u8]) -> Result<Vec<ReceivedSpan>, prost::DecodeError> {
    let request = ExportTraceServiceRequest::decode(body)?;
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    status: span.status.map_or(0, |s| s.code),
                    resource: resource.clone(),
                });
            }
        }
    }
    Ok(spans)
}

async fn receive(
    spans: web::Data<Mutex<Vec<ReceivedSpan>>>,
    headers: web::Data<Mutex<BTreeMap<String, String>>>,
    request: actix_web::HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    *headers.lock().unwrap() = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    match decode(&body) {
        Ok(received) => {
            spans.lock().unwrap().extend(received);
            HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .body(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(error) => HttpResponse::BadRequest().body(error.to_string()),
    }
}

impl Collector {
    pub fn start() -> Collector {
        let spans = web::Data::new(Mutex::new(Vec::new()));
        let shared = spans.clone().into_inner();
        let headers = web::Data::new(Mutex::new(BTreeMap::new()));
        let shared_headers = headers.clone().into_inner();
        let (started, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(spans.clone())
                        .app_data(headers.clone())
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .route("/v1/traces", web::post().to(receive))
                })
                .workers(1)
                .bind(("127.0.0.1", 0))
                .expect("the collector binds");
                let addr = server.addrs()[0].to_string();
                started
                    .send((addr, actix_web::rt::System::current()))
                    .unwrap();
                let _ = server.run().await;
            });
        });
        let (addr, system) = wait.recv().expect("the collector starts");
        Collector {
            addr,
            spans: shared,
            headers: shared_headers,
            system,
        }
    }

    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` is set to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A header of the last export request.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lock().unwrap().get(name).cloned()
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of `trace_id`, once `done` holds for them (within 15 s).
    pub async fn trace(
        &self,
        trace_id: &str,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let of_trace = || {
            self.spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect::<Vec<_>>()
        };
        let what = format!("the spans of trace {trace_id}");
        Patience::within(Duration::from_secs(15))
            .until(&what, || {
                let spans = of_trace();
                if done(&spans) {
                    Ok(())
                } else {
                    let names: Vec<_> = spans.iter().map(|s| s.name.clone()).collect();
                    Err(format!("spans of {trace_id} so far: {names:?}"))
                }
            })
            .await;
        of_trace()
    }

    /// A collector that accepts connections and never answers them (kept open while it
    /// lives): its endpoint.
    pub fn hanging() -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        (format!("http://{addr}"), handle)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.system.stop();
    }
}

/// An endpoint nothing listens on.
pub fn dead_endpoint() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// The spans as an indented tree with each span's duration and its start relative to the
/// root's (the note `trace-tree.txt` shows one).
pub fn render_tree(spans: &[ReceivedSpan]) -> String {
    let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = String::new();
    let mut roots: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| !ids.contains(&s.parent_span_id.as_str()))
        .collect();
    roots.sort_by_key(|s| s.start_ns);
    for root in roots {
        render(spans, root, 0, start, &mut out);
    }
    out
}

fn render(spans: &[ReceivedSpan], span: &ReceivedSpan, depth: usize, start: u64, out: &mut String) {
    let _ = writeln!(
        out,
        "{:indent$}{} [+{:.1} ms, {:.1} ms]{}",
        "",
        span.name,
        span.start_ns.saturating_sub(start) as f64 / 1e6,
        span.millis(),
        if span.links.is_empty() {
            String::new()
        } else {
            format!(" links: {}", span.links.len())
        },
        indent = depth * 2
    );
    let mut children: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id == span.span_id)
        .collect();
    children.sort_by_key(|s| s.start_ns);
    for child in children {
        render(spans, child, depth + 1, start, out);
    }
}
