//! The HTTP front: hyper 1 connections, each request logged, authenticated,
//! then handed to one of rmcp's `StreamableHttpService`s (tower services): the
//! `tasks` server at `/mcp`, the `board` server at `/widgets`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpService,
};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::auth::{unauthorized, BearerAuth};
use crate::board::BoardServer;
use crate::log::EventLog;
use crate::tools::TaskServer;

/// Path the `tasks` MCP endpoint is served at.
pub const MCP_PATH: &str = "/mcp";
/// Path the `board` MCP endpoint is served at.
pub const WIDGETS_PATH: &str = "/widgets";

pub type McpService = StreamableHttpService<TaskServer, LocalSessionManager>;
pub type BoardService = StreamableHttpService<BoardServer, LocalSessionManager>;
type HttpResponse = Response<BoxBody<Bytes, Infallible>>;

/// What every connection needs: the gate, the log and the MCP services.
pub struct Front {
    pub auth: BearerAuth,
    pub log: Arc<EventLog>,
    pub mcp: McpService,
    pub widgets: BoardService,
}

impl Front {
    /// Accepts connections until `shutdown` resolves.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        eprintln!("mcp-tasks: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let front = Arc::clone(&self);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let front = Arc::clone(&front);
                    async move { Ok::<_, Infallible>(front.handle(request).await) }
                });
                // Errors here are client disconnects; nothing to report.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, mut request: Request<Incoming>) -> HttpResponse {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| latin1(value.as_bytes()));
        let traceparent = request
            .headers()
            .get("traceparent")
            .map(|value| latin1(value.as_bytes()));
        self.log.http_request(
            request.method(),
            authorization.as_deref(),
            traceparent.as_deref(),
        );
        let caller = match self.auth.verify(authorization.as_deref()) {
            Ok(caller) => caller,
            Err(error) => return unauthorized(&error),
        };
        request.extensions_mut().insert(caller);
        let served = match request.uri().path() {
            MCP_PATH => self.mcp.clone().call(request).await,
            WIDGETS_PATH => self.widgets.clone().call(request).await,
            _ => return not_found(),
        };
        match served {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// Header bytes as the reference server reads them (latin-1), so any value,
/// even one that is not visible ASCII, is logged and checked verbatim.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&byte| char::from(byte)).collect()
}

fn not_found() -> HttpResponse {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(b"Not Found")).boxed())
        .expect("static response parts are valid")
}
