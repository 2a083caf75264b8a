//! The harness of the black-box tests: starts the real `mock-llm` binary on `--port 0`, reads
//! its `listening on http://ADDR` line and talks raw HTTP/1.1 to it.
#![allow(dead_code)] // each test crate uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running mock server, killed when dropped.
pub struct MockLlm {
    child: Child,
    pub addr: SocketAddr,
}

impl MockLlm {
    pub fn start(args: &[&str]) -> MockLlm {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mock-llm"))
            .args(["--port", "0", "--workers", "1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mock-llm");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("a socket address");
        MockLlm { child, addr }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        // An aborted connection may end in a reset instead of a clean EOF: keep what arrived.
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        Response::parse(&raw)
    }

    pub fn post(&self, body: &str) -> Response {
        self.request("POST", "/v1/chat/completions", body.as_bytes(), &[])
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response as received; `complete` is false when the body was cut off.
#[derive(Debug)]
pub struct Response {
    /// 0 when the server closed the connection without answering.
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub complete: bool,
}

impl Response {
    pub fn parse(raw: &[u8]) -> Response {
        let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(
                raw.is_empty(),
                "a partial head: {:?}",
                String::from_utf8_lossy(raw)
            );
            return Response {
                status: 0,
                reason: String::new(),
                headers: Vec::new(),
                body: Vec::new(),
                complete: false,
            };
        };
        let head = std::str::from_utf8(&raw[..head_end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"));
        let status = parts.next().unwrap().parse().unwrap();
        let reason = parts.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(": ").expect("header line");
                (k.to_ascii_lowercase(), v.to_string())
            })
            .collect();
        let rest = &raw[head_end + 4..];
        let mut res = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
            complete: false,
        };
        if res.header("transfer-encoding") == Some("chunked") {
            (res.body, res.complete) = dechunk(rest);
        } else {
            let len: usize = res
                .header("content-length")
                .expect("content-length")
                .parse()
                .unwrap();
            res.complete = rest.len() == len;
            res.body = rest.to_vec();
        }
        res
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    /// The payloads of the `data: …\n\n` events, checking the framing on the way.
    pub fn events(&self) -> Vec<&str> {
        let text = self.text();
        let mut events = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let end = rest
                .find("\n\n")
                .expect("every event ends with a blank line");
            let event = rest[..end].strip_prefix("data: ").expect("data: prefix");
            assert!(!event.contains('\n'), "one line per event");
            events.push(event);
            rest = &rest[end + 2..];
        }
        events
    }
}

/// Decodes a chunked body; the flag says whether the terminating chunk arrived.
pub fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return (body, rest == b"\r\n");
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..size.min(rest.len())]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

pub fn is_hex24(s: &str) -> bool {
    s.len() == 24
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("mock-llm-{}-{nanos}-{name}", std::process::id()))
}
