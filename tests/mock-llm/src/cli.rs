//! Command line: the reference's argparse options (same names, defaults and long-option
//! abbreviations) plus `--workers`. Parsed by hand: the crate keeps its dependencies lean.

use std::path::PathBuf;

/// Settings of one mock server.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Model id listed by `/v1/models` and echoed when a request has no string `model`.
    pub model: String,
    /// Word tokens in a default reply (clamped to 0..=100000 when used, like the reference).
    pub tokens: i64,
    /// Delay before every chunk after the first.
    pub delay_ms: f64,
    /// Minimum delay between chunks for `slow <n>`.
    pub slow_delay_ms: f64,
    /// Append every POST body as one JSON line.
    pub log: Option<PathBuf>,
    /// actix-web workers; `None` = one per core.
    pub workers: Option<usize>,
    /// Refuse model requests (the POST endpoints) over HTTP/1.x with 505 (`--http-versions 2`):
    /// a test can tell that its client really multiplexes over HTTP/2.
    pub http2_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 18081,
            model: "mock-model".into(),
            tokens: 8,
            delay_ms: 0.0,
            slow_delay_ms: 50.0,
            log: None,
            workers: None,
            http2_only: false,
        }
    }
}

const USAGE: &str =
    "usage: mock-llm [-h] [--host HOST] [--port PORT] [--model MODEL] [--tokens TOKENS]
                [--delay-ms DELAY_MS] [--slow-delay-ms SLOW_DELAY_MS] [--log LOG]
                [--workers WORKERS] [--http-versions {any,2}]";

const HELP: &str = "
OpenAI-compatible Chat Completions mock: the Rust twin of mock_llm.py, same reply script,
plus the Responses API and audio transcriptions (see tests/mock-llm/README.md).

options:
  -h, --help            show this help message and exit
  --host HOST           bind address (loopback only)
  --port PORT           port (default 18081; 0 picks a free one, see the listening line)
  --model MODEL         model id listed by /v1/models
  --tokens TOKENS       word tokens in a default reply
  --delay-ms DELAY_MS   delay between chunks
  --slow-delay-ms SLOW_DELAY_MS
                        minimum delay between chunks for 'slow <n>'
  --log LOG             append every request body as a JSON line
  --workers WORKERS     server worker threads (default: one per core)
  --http-versions {any,2}
                        any (default): HTTP/1.1 and HTTP/2 with prior knowledge (h2c);
                        2: POST requests (chat completions, responses,
                        transcriptions) over HTTP/1.x get 505";

const OPTIONS: &[&str] = &[
    "--host",
    "--port",
    "--model",
    "--tokens",
    "--delay-ms",
    "--slow-delay-ms",
    "--log",
    "--workers",
    "--http-versions",
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Config),
    /// `-h` / `--help`: print this text to stdout and exit 0.
    Help(String),
}

/// A usage error: print it to stderr and exit 2 (argparse's convention).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{USAGE}\nmock-llm: error: {}", self.0)
    }
}

/// argparse's unique-prefix matching of long options.
fn resolve(name: &str) -> Result<&'static str, UsageError> {
    if let Some(exact) = OPTIONS.iter().find(|o| **o == name) {
        return Ok(exact);
    }
    let matches: Vec<&str> = OPTIONS
        .iter()
        .copied()
        .filter(|o| o.starts_with(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(UsageError(format!("unrecognized arguments: {name}"))),
        many => Err(UsageError(format!(
            "ambiguous option: {name} could match {}",
            many.join(", ")
        ))),
    }
}

/// Whether argparse would take `arg` as an option rather than a value (negative numbers are
/// values).
fn looks_like_option(arg: &str) -> bool {
    arg.starts_with('-') && arg.len() > 1 && arg[1..].parse::<f64>().is_err()
}

fn parse_int(option: &str, value: &str) -> Result<i64, UsageError> {
    let v = value.trim();
    v.parse::<i64>().or_else(|_| {
        // int() has no range limit; saturate so "tokens" still clamps like the reference.
        let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(if v.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            })
        } else {
            Err(UsageError(format!(
                "argument {option}: invalid int value: '{value}'"
            )))
        }
    })
}

fn parse_float(option: &str, value: &str) -> Result<f64, UsageError> {
    value
        .trim()
        .parse::<f64>()
        .map_err(|_| UsageError(format!("argument {option}: invalid float value: '{value}'")))
}

/// Parses `args` (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, UsageError> {
    let mut cfg = Config::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || (arg.len() > 2 && "--help".starts_with(arg.as_str())) {
            return Ok(Command::Help(format!("{USAGE}\n{HELP}")));
        }
        if !arg.starts_with("--") || arg == "--" {
            return Err(UsageError(format!("unrecognized arguments: {arg}")));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let option = resolve(name)?;
        let value = match inline {
            Some(v) => v,
            None => match args.next() {
                Some(v) if !looks_like_option(&v) => v,
                _ => {
                    return Err(UsageError(format!(
                        "argument {option}: expected one argument"
                    )))
                }
            },
        };
        match option {
            "--host" => cfg.host = value,
            "--port" => {
                let port = parse_int(option, &value)?;
                cfg.port = u16::try_from(port).map_err(|_| {
                    UsageError(format!("argument --port: port out of range: {port}"))
                })?;
            }
            "--model" => cfg.model = value,
            "--tokens" => cfg.tokens = parse_int(option, &value)?,
            "--delay-ms" => cfg.delay_ms = parse_float(option, &value)?,
            "--slow-delay-ms" => cfg.slow_delay_ms = parse_float(option, &value)?,
            "--log" => cfg.log = Some(PathBuf::from(value)),
            "--workers" => {
                let n = parse_int(option, &value)?;
                cfg.workers =
                    Some(usize::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                        UsageError(format!("argument --workers: must be >= 1: {n}"))
                    })?);
            }
            "--http-versions" => {
                cfg.http2_only = match value.as_str() {
                    "any" => false,
                    "2" => true,
                    other => {
                        return Err(UsageError(format!(
                    "argument --http-versions: invalid choice: '{other}' (choose from 'any', '2')"
                )))
                    }
                }
            }
            _ => unreachable!("resolve() returns one of OPTIONS"),
        }
    }
    Ok(Command::Run(cfg))
}

/// The reference's guard: it binds to loopback addresses only.
pub fn is_loopback_host(host: &str) -> bool {
    host.starts_with("127.") || host == "localhost" || host == "::1"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse(args.iter().map(|s| s.to_string())).unwrap() {
            Command::Run(cfg) => cfg,
            Command::Help(_) => panic!("help"),
        }
    }

    #[test]
    fn argparse_like() {
        let cfg = run(&[
            "--port=0",
            "--tok",
            "3",
            "--delay-ms",
            "-1.5",
            "--slow",
            "7",
            "--mod",
            "m",
        ]);
        assert_eq!((cfg.port, cfg.tokens, cfg.model.as_str()), (0, 3, "m"));
        assert_eq!((cfg.delay_ms, cfg.slow_delay_ms), (-1.5, 7.0));
        assert!(parse(["--port".to_string()]).is_err());
        assert!(parse(["--bogus".to_string(), "1".into()]).is_err());
        assert!(parse(["--model".to_string(), "--port".into()]).is_err());
        assert!(matches!(parse(["--he".to_string()]), Ok(Command::Help(_))));
        assert!(!run(&[]).http2_only);
        assert!(run(&["--http-versions", "2"]).http2_only);
        assert!(!run(&["--http-v=any"]).http2_only);
        assert!(parse(["--http-versions".to_string(), "1".into()]).is_err());
        assert_eq!(
            run(&["--tokens", "99999999999999999999999"]).tokens,
            i64::MAX
        );
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
