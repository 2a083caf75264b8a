//! The `--log` file: one JSON object per line, appended and flushed at once so
//! a test can read it while the server runs.
//!
//! Two kinds of line share the file:
//! - `{"ts", "http", "authorization", "traceparent"}` for every HTTP request,
//!   written before authentication, so tests can prove which bearer token (and
//!   which W3C trace context) rode on each POST, GET and DELETE of the transport;
//! - `{"ts", "tool", "args", "sub", "ok", "error"?}` for every tool call, the
//!   same shape as the reference `mcp_tasks.py`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// Where log lines go; a no-op when the server runs without `--log`.
pub struct EventLog {
    file: Option<Mutex<File>>,
}

impl EventLog {
    pub fn open(path: Option<&Path>) -> io::Result<Self> {
        let file = match path {
            Some(path) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        Ok(Self { file })
    }

    /// Records one HTTP request with its raw `Authorization` and `traceparent`
    /// values (or null).
    pub fn http_request(
        &self,
        method: &http::Method,
        authorization: Option<&str>,
        traceparent: Option<&str>,
    ) {
        if self.file.is_none() {
            return;
        }
        self.write(json!({
            "ts": unix_seconds(),
            "http": method.as_str(),
            "authorization": authorization,
            "traceparent": traceparent,
        }));
    }

    /// Records one tool call; `error` is `None` when the call succeeded.
    pub fn tool_call(&self, tool: &str, args: Value, sub: Option<&str>, error: Option<&str>) {
        if self.file.is_none() {
            return;
        }
        let mut entry = Map::new();
        entry.insert("ts".into(), json!(unix_seconds()));
        entry.insert("tool".into(), json!(tool));
        entry.insert("args".into(), args);
        entry.insert("sub".into(), json!(sub));
        entry.insert("ok".into(), json!(error.is_none()));
        if let Some(error) = error {
            entry.insert("error".into(), json!(error));
        }
        self.write(Value::Object(entry));
    }

    fn write(&self, entry: Value) {
        let Some(file) = &self.file else { return };
        let mut line = entry.to_string();
        line.push('\n');
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        // One write per line under the lock: concurrent requests never interleave.
        if let Err(error) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            eprintln!("mcp-tasks: cannot write the log: {error}");
        }
    }
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}
