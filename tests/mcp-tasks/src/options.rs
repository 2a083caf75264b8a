//! Command-line options, the same as the reference `mcp_tasks.py` takes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: mcp-tasks --jwt-secret SECRET [--host HOST] [--port PORT] [--aud AUD] [--iss ISS] [--log FILE]

Task-list MCP server over Streamable HTTP at http://HOST:PORT/mcp, and its
task board (a widget server) at http://HOST:PORT/widgets.
Every request needs `Authorization: Bearer <JWT>` (HS256, exp and sub required).

  --host HOST         bind address, loopback only (default 127.0.0.1)
  --port PORT         TCP port, 0 for any free one (default 18082)
  --jwt-secret SECRET HS256 secret the bearer JWTs are signed with (required)
  --aud AUD           required audience claim, if any
  --iss ISS           required issuer claim, if any
  --log FILE          append each HTTP request and tool call as a JSON line
  --tool-delay-ms MS  sleep this long in add_task and list_tasks (timeout tests)";

#[derive(Debug)]
pub struct Options {
    pub addr: SocketAddr,
    pub jwt_secret: String,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub log: Option<PathBuf>,
    pub tool_delay: std::time::Duration,
}

/// What to do instead of serving.
#[derive(Debug)]
pub enum Exit {
    Help,
    Usage(String),
}

impl Options {
    /// Parses `--name value` and `--name=value` arguments (program name excluded).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, Exit> {
        let mut host = "127.0.0.1".to_owned();
        let mut port: u16 = 18082;
        let mut jwt_secret = None;
        let mut audience = None;
        let mut issuer = None;
        let mut log = None;
        let mut tool_delay = std::time::Duration::ZERO;

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Err(Exit::Help);
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => {
                    (name.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| Exit::Usage(format!("{name} needs a value")))
            };
            match name.as_str() {
                "--host" => host = value()?,
                "--port" => {
                    let text = value()?;
                    port = text
                        .parse()
                        .map_err(|_| Exit::Usage(format!("--port: not a port number: {text}")))?;
                }
                "--jwt-secret" => jwt_secret = Some(value()?),
                "--aud" => audience = Some(value()?),
                "--iss" => issuer = Some(value()?),
                "--log" => log = Some(PathBuf::from(value()?)),
                "--tool-delay-ms" => {
                    let text = value()?;
                    let ms: u64 = text.parse().map_err(|_| {
                        Exit::Usage(format!("--tool-delay-ms: not a number: {text}"))
                    })?;
                    tool_delay = std::time::Duration::from_millis(ms.min(60_000));
                }
                other => return Err(Exit::Usage(format!("unknown argument: {other}"))),
            }
        }

        let jwt_secret =
            jwt_secret.ok_or_else(|| Exit::Usage("--jwt-secret is required".into()))?;
        let ip = loopback(&host).ok_or_else(|| {
            Exit::Usage(format!(
                "mcp-tasks binds to loopback addresses only, not {host}"
            ))
        })?;
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            jwt_secret,
            audience,
            issuer,
            log,
            tool_delay,
        })
    }
}

/// The address to bind for `host`, if it is a loopback one.
fn loopback(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().ok().filter(IpAddr::is_loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, Exit> {
        Options::parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn parses_and_defaults() {
        let options = parse(&["--jwt-secret", "k", "--port=0", "--aud", "a"]).unwrap();
        assert_eq!(options.addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(options.jwt_secret, "k");
        assert_eq!(options.audience.as_deref(), Some("a"));
        assert!(options.issuer.is_none() && options.log.is_none());
        let options = parse(&["--jwt-secret=k", "--host", "::1"]).unwrap();
        assert_eq!(options.addr, "[::1]:18082".parse().unwrap());
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(parse(&[]), Err(Exit::Usage(_))));
        assert!(matches!(
            parse(&["--jwt-secret", "k", "--host", "0.0.0.0"]),
            Err(Exit::Usage(_))
        ));
        assert!(matches!(
            parse(&["--jwt-secret", "k", "--port", "x"]),
            Err(Exit::Usage(_))
        ));
        assert!(matches!(parse(&["--jwt-secret"]), Err(Exit::Usage(_))));
        assert!(matches!(parse(&["--help"]), Err(Exit::Help)));
    }
}
