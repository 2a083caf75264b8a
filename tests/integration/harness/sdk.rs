//! The official SDK as a second opinion: every fixture, event and JSON body the tests see is
//! validated (and re-serialized) by `openai-chatkit`'s own pydantic types in a Python
//! process started once per test binary.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

struct Validator {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

static VALIDATOR: OnceLock<Mutex<Validator>> = OnceLock::new();

fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn start() -> Mutex<Validator> {
    let dir = std::env::var_os("CHATKIT_SDK_VALIDATOR_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/sdk_validator"));
    let out = Command::new("bash")
        .arg(dir.join("ensure_venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run ensure_venv.sh");
    assert!(
        out.status.success(),
        "could not prepare the openai-chatkit venv"
    );
    let python = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    let mut child = Command::new(python)
        .arg(dir.join("validate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start validate.py");
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    crate::harness::processes::register_child(child.id());
    Mutex::new(Validator {
        _child: child,
        stdin,
        stdout,
    })
}

/// What the JSON is, in the SDK's terms.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Event,
    Thread,
    ThreadsPage,
    ItemsPage,
    Item,
    Request,
    Attachment,
    Empty,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Thread => "thread",
            Kind::ThreadsPage => "threads_page",
            Kind::ItemsPage => "items_page",
            Kind::Item => "item",
            Kind::Request => "request",
            Kind::Attachment => "attachment",
            Kind::Empty => "empty",
        }
    }
}

/// Validates `json` as `kind`; the error message if the SDK disagrees.
pub fn validate(kind: Kind, json: &str) -> Result<(), String> {
    let validator = VALIDATOR.get_or_init(start);
    let mut v = validator.lock().unwrap_or_else(|p| p.into_inner());
    let line = serde_json::json!({ "kind": kind.name(), "json": json }).to_string();
    writeln!(v.stdin, "{line}").expect("write to validator");
    v.stdin.flush().unwrap();
    let mut answer = String::new();
    v.stdout
        .read_line(&mut answer)
        .expect("read from validator");
    let answer = answer.trim();
    if answer == "ok" {
        Ok(())
    } else {
        Err(answer.to_string())
    }
}

/// Panics with the SDK's message unless `json` validates as `kind`.
pub fn check(kind: Kind, json: &str) {
    if let Err(e) = validate(kind, json) {
        panic!("the official SDK rejects this {kind:?}: {e}\n{json}");
    }
}
