//! The playground page, driven in headless Chromium (Debian `chromium` + `playwright-core`
//! from npm) against the real server, mock model and Postgres. Screenshots are saved under
//! `$CARGO_TARGET_DIR/browser-artifacts` (or `$CHATKIT_BROWSER_ARTIFACTS`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::harness::*;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Runs `scenario` of `tests/browser/playground.mjs` against a development-mode server and
/// checks that it passed and took each of `screenshots`.
fn run_playground(scenario: &str, screenshots: &[&str]) {
    let server = TestServer::start_with(&[("CHATKIT__SERVER__MODE", "development")]);
    run_playground_on(&server, scenario, screenshots);
}

/// Runs `scenario` against `server` (which must be in development mode), as [`run_playground`].
pub(crate) fn run_playground_on(server: &TestServer, scenario: &str, screenshots: &[&str]) {
    // One Chromium at a time: the scenarios at once are slow on small machines.
    static ONE_BROWSER: Mutex<()> = Mutex::new(());
    let _browser = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let dir = browser_dir();
    ensure_debian_binary(&["/usr/bin/node", "/usr/local/bin/node"], "nodejs");
    ensure_debian_binary(&["/usr/bin/npm", "/usr/local/bin/npm"], "npm");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status();
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "npm ci in tests/browser failed (node and npm are needed)"
        );
    }
    let chromium = match std::env::var("CHROMIUM") {
        Ok(path) => path,
        Err(_) => ensure_debian_binary(&["/usr/bin/chromium"], "chromium"),
    };
    let artifacts = std::env::var("CHATKIT_BROWSER_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("browser-artifacts")
        });
    let out = Command::new("node")
        .arg(dir.join("playground.mjs"))
        .arg(format!("http://{}", server.addr))
        .arg(scenario)
        .env("ARTIFACTS", &artifacts)
        .env("ADMIN_TOKEN", admin_token())
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test {scenario} failed\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("playground {scenario}: all steps passed")),
        "{stdout}"
    );
    for shot in screenshots {
        assert!(
            artifacts.join(format!("{shot}.png")).exists(),
            "screenshot {shot}"
        );
    }
    eprintln!("browser screenshots in {}", artifacts.display());
}

#[test]
fn playground_streams_a_reply_keeps_history_renames_and_deletes() {
    run_playground(
        "basics",
        &[
            "1-streamed-reply",
            "2-history-after-reload",
            "3-renamed",
            "4-deleted",
        ],
    );
}

#[test]
fn playground_uploads_attachments_and_shows_them_after_reload() {
    run_playground(
        "attachments",
        &[
            "attachments-1-refused",
            "attachments-2-chips",
            "attachments-3-sent",
            "attachments-4-after-reload",
        ],
    );
}

#[test]
fn playground_answers_the_models_questions_in_a_form() {
    let server = TestServer::start_with_config(
        "[agent]\nask_user = true\n",
        &[
            ("CHATKIT__SERVER__MODE", "development"),
            ("CHATKIT__TITLES__ENABLED", "false"),
        ],
    );
    run_playground_on(
        &server,
        "questions",
        &[
            "questions-1-form",
            "questions-2-answered",
            "questions-3-after-reload",
        ],
    );
}

/// Issue 26: with `stream.on_disconnect = "finish"` a reload in the middle of an answer finds
/// the whole answer once the turn ends, and the thread goes on.
#[test]
fn playground_reloaded_mid_answer_finds_the_whole_answer() {
    let server = TestServer::start_with(&[
        ("CHATKIT__SERVER__MODE", "development"),
        ("CHATKIT__TITLES__ENABLED", "false"),
        ("CHATKIT__STREAM__ON_DISCONNECT", "finish"),
    ]);
    run_playground_on(
        &server,
        "reload",
        &[
            "reload-1-streaming",
            "reload-2-reopened",
            "reload-3-whole-answer",
            "reload-4-next-turn",
        ],
    );
}

/// The model picker's choices (issue 16).
const TWO_MODELS: &str = r#"
[[models]]
id = "fast"
label = "Fast"
model = "mock-fast"

[[models]]
id = "deep"
label = "Deep"
model = "mock-deep"
"#;

#[test]
fn playground_picks_a_model_and_shows_reasoning_live_then_collapsed() {
    // A model slow enough (a pause between chunks) for the thoughts to be seen as they stream.
    let model = MockModel::start(&["--delay-ms", "250"]);
    let base_url = model.base_url();
    let server = TestServer::start_with_config(
        TWO_MODELS,
        &[
            ("CHATKIT__SERVER__MODE", "development"),
            ("CHATKIT__MODEL__BASE_URL", &base_url),
            ("CHATKIT__TITLES__ENABLED", "false"),
        ],
    );
    run_playground_on(
        &server,
        "reasoning",
        &[
            "reasoning-1-picker",
            "reasoning-2-thinking",
            "reasoning-3-collapsed",
            "reasoning-4-after-reload",
            "reasoning-5-expanded",
        ],
    );
    let request = model.last_request_where("asking \"think about cats\"", |r| {
        r["messages"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["role"] == "user" && m["content"] == "think about cats")
        })
    });
    assert_eq!(request["model"], "mock-deep", "the picked model answered");
}

#[tokio::test]
async fn playground_embeds_the_composer_options_as_inert_json() {
    let label = "</script><script>alert(1)</script> & <!-- \u{2028}";
    let server = TestServer::start_with_config(
        r#"
[[models]]
id = "x"
label = "</script><script>alert(1)</script> & <!-- \u2028"
model = "mock-x"
"#,
        &[
            ("CHATKIT__SERVER__MODE", "development"),
            ("CHATKIT__TRANSCRIPTION__ENABLED", "false"),
        ],
    );
    let page = reqwest::get(server.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open = r#"<script type="application/json" id="composer-options">"#;
    let start = page
        .find(open)
        .expect("the composer options are in the page")
        + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    let embedded = &page[start..end];
    assert!(
        !embedded.contains(['<', '>', '&', '\u{2028}']),
        "escaped: {embedded}"
    );
    let options: serde_json::Value = serde_json::from_str(embedded).unwrap();
    assert_eq!(
        options,
        serde_json::json!({
            "models": [{ "id": "x", "label": label }],
            "tools": [],
            "dictation": false
        })
    );
    assert!(!page.contains("<script>alert"));
}

#[tokio::test]
async fn playground_and_dev_tokens_are_off_in_production_mode() {
    let server = TestServer::start();
    let page = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(page.status(), 404);
    let token = reqwest::Client::new()
        .post(server.url("/dev/token"))
        .json(&serde_json::json!({ "sub": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        token.status(),
        404,
        "no token minting outside development mode"
    );
}

#[test]
fn playground_renders_a_widget_and_a_button_replaces_the_card_also_after_reload() {
    let mcp = McpServer::start(&[]);
    let config = format!(
        r#"
[[mcp.servers]]
name = "tasks"
url = "{}"
forward_user_token = true

[[widget_actions]]
type = "tasks.complete"
tool = "tasks__complete_task_card"
then = "replace"
"#,
        mcp.url()
    );
    let server = TestServer::start_with_config(
        &config,
        &[
            ("CHATKIT__SERVER__MODE", "development"),
            ("CHATKIT__TITLES__ENABLED", "false"),
        ],
    );
    run_playground_on(
        &server,
        "widgets",
        &["widget-card", "widget-completed", "widget-after-reload"],
    );
}
