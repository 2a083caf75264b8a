//! The HTTP layer: routes, the request log, and the status/headers/bodies aiohttp produces for
//! the reference (404/405/413 texts, its 500 page for unhandled exceptions, aborted
//! connections for `midfail`). The extensions (`/v1/responses`, `/v1/audio/transcriptions`)
//! follow the same conventions.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::ToSocketAddrs;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::BytesMut;
use futures::StreamExt;
use serde_json::json;

use crate::cli::Config;
use crate::completion::{self, ChunkStream, Completion, Usage};
use crate::hosted;
use crate::json::{self, Value};
use crate::responses::{self, InvalidInput, ResponsePlan};
use crate::script::{self, ReplyKind};
use crate::transcription;

/// aiohttp `client_max_size`: bodies longer than this get 413.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Shared by every worker.
struct AppState {
    cfg: Config,
    /// The `--log` file; one `write_all` per line under the lock keeps lines whole.
    log: Option<Mutex<File>>,
}

impl AppState {
    /// `log_body`: the parsed body re-serialized compactly, or `{"_raw": <lossy text>}`.
    fn log_body(&self, raw: &[u8], parsed: Option<&Value>) {
        if self.log.is_none() {
            return;
        }
        let line = match parsed {
            Some(v) => json::compact(v),
            None => json::compact(&json!({ "_raw": String::from_utf8_lossy(raw) })),
        };
        self.log_line(line);
    }

    /// Appends `line` and a newline to the log.
    fn log_line(&self, mut line: Vec<u8>) {
        let Some(log) = &self.log else { return };
        line.push(b'\n');
        let mut file = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(err) = file.write_all(&line) {
            eprintln!("mock-llm: cannot write the request log: {err}");
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status).content_type(JSON).body(body)
}

fn text_response(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status).content_type(TEXT).body(body)
}

fn error_response(
    status: StatusCode,
    message: &str,
    etype: &str,
    code: Option<&str>,
) -> HttpResponse {
    json_response(status, completion::error_object(message, etype, code))
}

/// aiohttp's answer to an unhandled exception in a handler (`handle_error`, debug off).
fn internal_error(req: &HttpRequest) -> HttpResponse {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let mut res = HttpResponse::InternalServerError();
    res.force_close();
    if wants_html {
        res.content_type("text/html; charset=utf-8").body(
            "<html><head><title>500 Internal Server Error</title></head><body>\n\
             <h1>500 Internal Server Error</h1>\nServer got itself in trouble\n</body></html>\n",
        )
    } else {
        res.content_type(TEXT)
            .body("500 Internal Server Error\n\nServer got itself in trouble")
    }
}

/// A response whose body fails before its first byte: actix drops the connection without
/// flushing the status line, so the client sees the connection close with no reply at all,
/// like the reference's `transport.abort()` before `prepare()`.
fn abort_connection() -> HttpResponse {
    HttpResponse::Ok().streaming(futures::stream::once(async {
        Err::<bytes::Bytes, _>(actix_web::error::ErrorInternalServerError(
            "midfail: connection aborted",
        ))
    }))
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .content_type(TEXT)
        .insert_header((header::ALLOW, HeaderValue::from_static(allow)))
        .body("405: Method Not Allowed")
}

async fn models(state: web::Data<AppState>) -> HttpResponse {
    json_response(StatusCode::OK, completion::models_object(&state.cfg.model))
}

/// Reads the whole body; `Err` carries the response when it exceeds the limit (413) or the
/// client went away.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<BytesMut, HttpResponse> {
    let hint = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY_BYTES + 1);
    let mut body = BytesMut::with_capacity(hint);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| HttpResponse::BadRequest().finish())?;
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY_BYTES {
            let mut res = text_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Maximum request body size 67108864 exceeded.",
            );
            res.head_mut().reason = Some("Request Entity Too Large"); // aiohttp's phrase
            return Err(res);
        }
    }
    Ok(body)
}

/// `--http-versions 2`: model requests over HTTP/1.x get 505.
fn refuse_http1(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    (state.cfg.http2_only() && req.version() != actix_web::http::Version::HTTP_2).then(|| {
        text_response(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "505: this mock was started with --http-versions 2",
        )
    })
}

/// The start of every JSON endpoint: the HTTP/2 check, the body read and parsed, the log line
/// written; `Ok(None)` when the body is not JSON.
async fn read_json(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Option<Value>, HttpResponse> {
    if let Some(res) = refuse_http1(state, req) {
        return Err(res);
    }
    let raw = read_body(req, payload).await?;
    let parsed = json::loads(&raw);
    if let Some(traceparent) = req.headers().get("traceparent") {
        let line = json!({ "_traceparent": String::from_utf8_lossy(traceparent.as_bytes()) });
        state.log_line(json::compact(&line));
    }
    state.log_body(&raw, parsed.as_ref());
    Ok(parsed)
}

fn not_an_object() -> HttpResponse {
    error_response(
        StatusCode::BAD_REQUEST,
        "Request body must be a JSON object.",
        "invalid_request_error",
        None,
    )
}

/// The `fail` rule's answer.
fn mock_failure() -> HttpResponse {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server had an error while processing your request. (mock failure)",
        "server_error",
        Some("mock_failure"),
    )
}

fn event_stream(
    body: impl futures::Stream<Item = Result<bytes::Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .streaming(body)
}

async fn chat_completions(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let parsed = match read_json(&state, &req, payload).await {
        Ok(parsed) => parsed,
        Err(res) => return res,
    };
    let Some(body) = parsed.as_ref().and_then(Value::as_object) else {
        return not_an_object();
    };
    let Some(messages) = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "'messages' must be a non-empty array.",
            "invalid_request_error",
            Some("invalid_value"),
        );
    };

    let cfg = &state.cfg;
    let Ok(reply) = script::plan_reply(body, messages, cfg) else {
        return internal_error(&req);
    };
    if reply.kind == ReplyKind::Fail {
        return mock_failure();
    }

    let completion = Completion {
        id: format!("chatcmpl-{}", crate::ids::uuid4_hex24()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&cfg.model)
            .to_owned(),
    };
    let stream = matches!(body.get("stream"), Some(Value::Bool(true)));
    let include_usage = body
        .get("stream_options")
        .and_then(Value::as_object)
        .is_some_and(|o| matches!(o.get("include_usage"), Some(Value::Bool(true))));
    let usage = Usage {
        prompt_tokens: script::prompt_token_estimate(messages),
        completion_tokens: completion::completion_tokens(&reply.kind),
    };

    if !stream {
        let total = reply
            .delay
            .saturating_mul(completion::chunk_count(&reply.kind));
        if !total.is_zero() {
            tokio::time::sleep(total).await;
        }
        if matches!(reply.kind, ReplyKind::Midfail(_)) {
            return abort_connection();
        }
        return json_response(
            StatusCode::OK,
            completion::completion_object(&completion, &reply.kind, usage),
        );
    }

    let chunks = ChunkStream::new(&completion, reply.kind, reply.delay, include_usage, usage);
    event_stream(chunks.into_stream())
}

/// `GET /v1/containers/{id}/files/{id}/content` (an extension): a code interpreter's file.
async fn container_file() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(hosted::CONTAINER_FILE)
}

/// `POST /v1/responses` (an extension; see `responses`).
async fn create_response(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let parsed = match read_json(&state, &req, payload).await {
        Ok(parsed) => parsed,
        Err(res) => return res,
    };
    let Some(body) = parsed.as_ref().and_then(Value::as_object) else {
        return not_an_object();
    };
    let input = match responses::input_of(body) {
        Ok(input) => input,
        Err(err) => {
            let (message, code) = match err {
                InvalidInput::Missing => (
                    "Missing required parameter: 'input'.",
                    "missing_required_parameter",
                ),
                InvalidInput::WrongType => (
                    "Invalid type for 'input': expected a string or an array of input items.",
                    "invalid_type",
                ),
            };
            let body = completion::error_object_with_param(
                message,
                "invalid_request_error",
                Some("input"),
                Some(code),
            );
            return json_response(StatusCode::BAD_REQUEST, body);
        }
    };
    let cfg = &state.cfg;
    if let Some(hosted) = hosted::plan(body, &input) {
        let reply = hosted::HostedReply::new(hosted, body, cfg);
        if matches!(body.get("stream"), Some(Value::Bool(true))) {
            return event_stream(reply.into_stream());
        }
        tokio::time::sleep(reply.total_delay()).await;
        return json_response(StatusCode::OK, reply.final_object());
    }
    let Ok(reply) = responses::plan_response(body, &input, cfg) else {
        return internal_error(&req);
    };
    if reply.kind == ReplyKind::Fail {
        return mock_failure();
    }
    let plan = ResponsePlan::new(reply, body, responses::input_tokens(body, &input), cfg);
    if matches!(body.get("stream"), Some(Value::Bool(true))) {
        return event_stream(plan.into_stream());
    }
    let total = plan.total_delay();
    if !total.is_zero() {
        tokio::time::sleep(total).await;
    }
    if plan.is_midfail() {
        return abort_connection();
    }
    json_response(StatusCode::OK, plan.final_object())
}

/// `POST /v1/audio/transcriptions` (an extension; see `transcription`).
async fn transcriptions(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Some(res) = refuse_http1(&state, &req) {
        return res;
    }
    let raw = match read_body(&req, payload).await {
        Ok(raw) => raw,
        Err(res) => return res,
    };
    let upload = transcription::read_form(req.headers(), raw.freeze()).await;
    state.log_line(upload.log_line());
    match upload.transcript() {
        Ok(text) => json_response(StatusCode::OK, json::dumps(&json!({ "text": text }))),
        Err(refusal) => json_response(
            StatusCode::BAD_REQUEST,
            completion::error_object_with_param(
                refusal.message,
                "invalid_request_error",
                refusal.param,
                None,
            ),
        ),
    }
}

async fn not_found() -> HttpResponse {
    text_response(StatusCode::NOT_FOUND, "404: Not Found")
}

/// Binds every address `host` resolves to (like aiohttp; HTTP/1.1 and h2c), prints
/// `listening on http://ADDR` for the first one, and serves until stopped.
pub async fn run(cfg: Config) -> std::io::Result<()> {
    let log = match &cfg.log {
        Some(path) => Some(Mutex::new(
            OpenOptions::new().create(true).append(true).open(path)?,
        )),
        None => None,
    };
    let addrs: Vec<_> = (cfg.host.as_str(), cfg.port).to_socket_addrs()?.collect();
    let workers = cfg.workers;
    let state = web::Data::new(AppState { cfg, log });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(
                web::resource("/v1/models")
                    .route(web::get().to(models))
                    .route(web::head().to(models))
                    .default_service(web::to(|| async { method_not_allowed("GET,HEAD") })),
            )
            .service(
                web::resource("/v1/chat/completions")
                    .route(web::post().to(chat_completions))
                    .default_service(web::to(|| async { method_not_allowed("POST") })),
            )
            .service(
                web::resource("/v1/responses")
                    .route(web::post().to(create_response))
                    .default_service(web::to(|| async { method_not_allowed("POST") })),
            )
            .service(
                web::resource("/v1/containers/{container}/files/{file}/content")
                    .route(web::get().to(container_file))
                    .default_service(web::to(|| async { method_not_allowed("GET") })),
            )
            .service(
                web::resource("/v1/audio/transcriptions")
                    .route(web::post().to(transcriptions))
                    .default_service(web::to(|| async { method_not_allowed("POST") })),
            )
            .default_service(web::to(not_found))
    })
    .shutdown_timeout(1)
    // Chunks must leave as they are written (a real model's tokens do).
    .tcp_nodelay(true);
    if let Some(n) = workers {
        server = server.workers(n);
    }
    for addr in &addrs {
        // HTTP/1.1 as the reference, and HTTP/2 with prior knowledge (h2c) on the same port:
        // a client may multiplex thousands of streams over one connection.
        server = server.bind_auto_h2c(addr)?;
    }
    let bound = server.addrs();
    let first = bound
        .first()
        .ok_or_else(|| std::io::Error::other("the host resolved to no address"))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{first}")?;
        out.flush()?;
    }
    server.run().await
}
