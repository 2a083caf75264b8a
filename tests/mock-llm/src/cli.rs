//! Command line: the reference's argparse options (same names and defaults; long options may be
//! abbreviated, as argparse allows) plus `--workers` and `--http-versions`.

use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, ValueEnum};

/// OpenAI-compatible Chat Completions mock: the Rust twin of mock_llm.py, same reply script,
/// plus the Responses API and audio transcriptions (see tests/mock-llm/README.md).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mock-llm",
    infer_long_args = true,
    allow_negative_numbers = true,
    disable_version_flag = true
)]
pub struct Config {
    /// Bind address (loopback only).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 picks a free one, see the listening line).
    #[arg(long, default_value_t = 18081)]
    pub port: u16,
    /// Model id listed by /v1/models and echoed when a request has no string `model`.
    #[arg(long, default_value = "mock-model")]
    pub model: String,
    /// Word tokens in a default reply (clamped to 0..=100000 when used, like the reference).
    #[arg(long, default_value_t = 8, value_parser = saturating_int)]
    pub tokens: i64,
    /// Delay in milliseconds before every chunk after the first.
    #[arg(long, default_value_t = 0.0)]
    pub delay_ms: f64,
    /// Minimum delay in milliseconds between chunks for 'slow <n>'.
    #[arg(long, default_value_t = 50.0)]
    pub slow_delay_ms: f64,
    /// Append every request body as a JSON line.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Server worker threads (default: one per core).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub workers: Option<usize>,
    /// HTTP versions of model requests.
    #[arg(long, value_enum, default_value = "any")]
    pub http_versions: HttpVersions,
}

/// `--http-versions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HttpVersions {
    /// HTTP/1.1, and HTTP/2 with prior knowledge (h2c) on the same port.
    Any,
    /// HTTP/2 only: POST requests (chat completions, responses, transcriptions) over HTTP/1.x
    /// get 505, so a test can tell that its client really multiplexes over HTTP/2.
    #[value(name = "2")]
    Two,
}

impl Config {
    pub fn http2_only(&self) -> bool {
        self.http_versions == HttpVersions::Two
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["mock-llm"])
    }
}

/// `int()`, whose range is unlimited: a value beyond `i64` saturates, so `--tokens` still
/// clamps like the reference.
fn saturating_int(value: &str) -> Result<i64, String> {
    let v = value.trim();
    v.parse::<i64>().or_else(|_| {
        let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(if v.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            })
        } else {
            Err(format!("invalid int value: '{value}'"))
        }
    })
}

/// The reference's guard: it binds to loopback addresses only.
pub fn is_loopback_host(host: &str) -> bool {
    host.starts_with("127.") || host == "localhost" || host == "::1"
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("mock-llm").chain(args.iter().copied()))
    }

    #[test]
    fn argparse_like() {
        let cfg = parse(&[
            "--port=0",
            "--tok",
            "3",
            "--delay-ms",
            "-1.5",
            "--slow",
            "7",
            "--mod",
            "m",
        ])
        .unwrap();
        assert_eq!((cfg.port, cfg.tokens, cfg.model.as_str()), (0, 3, "m"));
        assert_eq!((cfg.delay_ms, cfg.slow_delay_ms), (-1.5, 7.0));
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
        assert!(parse(&["--model", "--port"]).is_err());
        assert!(parse(&["--workers", "0"]).is_err());
        assert_eq!(parse(&["--he"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert!(!parse(&[]).unwrap().http2_only());
        assert!(parse(&["--http-versions", "2"]).unwrap().http2_only());
        assert!(!parse(&["--http-v=any"]).unwrap().http2_only());
        assert!(parse(&["--http-versions", "1"]).is_err());
        let huge = parse(&["--tokens", "99999999999999999999999"]).unwrap();
        assert_eq!(huge.tokens, i64::MAX);
    }

    #[test]
    fn defaults_are_the_references() {
        let cfg = Config::default();
        assert_eq!((cfg.host.as_str(), cfg.port), ("127.0.0.1", 18081));
        assert_eq!((cfg.model.as_str(), cfg.tokens), ("mock-model", 8));
        assert_eq!((cfg.delay_ms, cfg.slow_delay_ms), (0.0, 50.0));
        assert!(cfg.log.is_none() && cfg.workers.is_none() && !cfg.http2_only());
    }

    #[test]
    fn loopback_only() {
        for ok in ["127.0.0.1", "127.1.2.3", "localhost", "::1"] {
            assert!(is_loopback_host(ok));
        }
        for bad in ["0.0.0.0", "::", "10.0.0.1", "LOCALHOST", "[::1]"] {
            assert!(!is_loopback_host(bad));
        }
    }
}
