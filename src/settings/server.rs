//! The `[server]` section: where and how the HTTP server listens, and whom it believes.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::http::forwarded::TrustedProxies;

#[derive(Deserialize)]
pub(super) struct RawServer {
    bind: String,
    max_body_bytes: u64,
    body_timeout_secs: u64,
    workers: usize,
    drain_timeout_secs: u64,
    mode: String,
    playground: Option<bool>,
    #[serde(default)]
    cors_allowed_origins: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub workers: usize,
    pub drain_timeout: Duration,
    pub development: bool,
    /// Serve the playground page at `/` (default: in development mode only).
    pub playground: bool,
    /// Origins whose pages may call this server from the browser (CORS); `["*"]`: any.
    pub cors_allowed_origins: Vec<String>,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers count (none by default).
    pub trusted_proxies: TrustedProxies,
}

pub(super) fn server_settings(
    raw: RawServer,
    problems: &mut Vec<String>,
) -> Option<ServerSettings> {
    let before = problems.len();
    let bind = SocketAddr::from_str(&raw.bind).unwrap_or_else(|_| {
        problems.push(format!(
            "server.bind {:?} is not an IP:port address",
            raw.bind
        ));
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let development = match raw.mode.as_str() {
        "production" => false,
        "development" => true,
        other => {
            problems.push(format!(
                "server.mode {other:?} must be \"production\" or \"development\""
            ));
            false
        }
    };
    if development && !bind.ip().is_loopback() {
        problems.push("server.mode = \"development\" only binds to a loopback address".into());
    }
    if raw.max_body_bytes == 0 {
        problems.push("server.max_body_bytes must be positive".into());
    }
    if raw.body_timeout_secs == 0 {
        problems.push("server.body_timeout_secs must be positive".into());
    }
    let cors_allowed_origins = cors_origins(raw.cors_allowed_origins, problems);
    let trusted_proxies = TrustedProxies::parse(&raw.trusted_proxies).unwrap_or_else(|bad| {
        for entry in bad {
            problems.push(format!(
                "server.trusted_proxies {entry:?} is not an IP address or a CIDR block (10.0.0.0/8)"
            ));
        }
        TrustedProxies::default()
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (problems.len() == before).then(|| ServerSettings {
        bind,
        max_body_bytes: raw.max_body_bytes as usize,
        body_timeout: Duration::from_secs(raw.body_timeout_secs),
        workers: if raw.workers == 0 { cores } else { raw.workers },
        drain_timeout: Duration::from_secs(raw.drain_timeout_secs),
        development,
        playground: raw.playground.unwrap_or(development),
        cors_allowed_origins,
        trusted_proxies,
    })
}

/// `server.cors_allowed_origins`: origins (`scheme://host[:port]`) or `*`.
fn cors_origins(entries: Vec<String>, problems: &mut Vec<String>) -> Vec<String> {
    let mut cors_allowed_origins = Vec::new();
    for origin in entries {
        let origin = origin.trim().trim_end_matches('/').to_string();
        let valid = origin == "*"
            || url::Url::parse(&origin).ok().is_some_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.has_host()
                    && u.path() == "/"
                    && u.query().is_none()
                    && u.username().is_empty()
            });
        if valid {
            cors_allowed_origins.push(origin);
        } else {
            problems.push(format!(
                "server.cors_allowed_origins {origin:?} is not an origin (scheme://host[:port]) or \"*\""
            ));
        }
    }
    cors_allowed_origins
}
