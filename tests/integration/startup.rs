//! Start-up: configuration validation, `--help`, the embedded PostgreSQL (created, kept across
//! restarts, stopped on SIGTERM), and migrations applied once.

use std::process::Command;

use serde_json::json;

use crate::harness::postgres::DiscardOnDrop;
use crate::harness::*;

pub(crate) fn chatkit(envs: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatkit-rs"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn invalid_configuration_lists_every_problem_and_exits_non_zero() {
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__DATABASE__SCHEMA", "bad;schema"),
            (
                "CHATKIT__DATABASE__URL",
                "postgres://user:hunter2-secret@[bad",
            ),
            ("CHATKIT__MODEL__BASE_URL", "not a url"),
            ("CHATKIT__SERVER__BIND", "nowhere"),
            ("CHATKIT__AUTH__ALGORITHM", "none"),
        ],
        &["check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    for expected in [
        "database.schema",
        "database.url",
        "model.base_url",
        "server.bind",
        "auth.algorithm",
    ] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("configuration error:") && l.contains(expected))
                .count(),
            1,
            "one line about {expected}: {stderr}"
        );
    }
    assert!(
        !stderr.contains("hunter2-secret"),
        "a password was printed: {stderr}"
    );

    let (code, _, stderr) = chatkit(&[], &["check-config"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("auth.jwt_secret is required"), "{stderr}");

    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__MODEL__API_KEY", "sk-should-not-be-here"),
        ],
        &["check-config"],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
    assert!(!stderr.contains("sk-should-not-be-here"));

    let (code, stdout, _) = chatkit(&[("CHATKIT__AUTH__JWT_SECRET", SECRET)], &["check-config"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("configuration is valid"));
}

#[test]
fn help_lists_the_options_and_commands() {
    let (code, stdout, _) = chatkit(&[], &["--help"]);
    assert_eq!(code, 0);
    for word in ["--config", "serve", "migrate", "check-config", "dev-token"] {
        assert!(stdout.contains(word), "--help mentions {word}: {stdout}");
    }
}

#[test]
fn dev_token_is_accepted_by_the_server() {
    let (code, token, _) = chatkit(
        &[("CHATKIT__AUTH__JWT_SECRET", SECRET)],
        &["dev-token", "--sub", "carol", "--ttl", "60"],
    );
    assert_eq!(code, 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = TestServer::start();
        let reply = server
            .post_raw(
                Some(token.trim()),
                json!({ "type": "threads.list", "params": {} }).to_string(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    });
}

fn pg_running(data_dir: &std::path::Path) -> bool {
    let pid_file = data_dir.join("postmaster.pid");
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return false;
    };
    let pid = text.lines().next().unwrap_or("").trim();
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn embedded_postgres_survives_restarts_and_stops_on_sigterm() {
    let dir = std::path::PathBuf::from(format!("/var/tmp/chatkit-it-embedded-{}", rand_suffix()));
    let _discard = DiscardOnDrop(dir.clone());
    let dir_text = dir.to_string_lossy().to_string();
    // The server's log, shown when an exit is not clean.
    let log = temp_path("embedded-server", "log");
    let log_tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let start = || {
        let (child, listening) = spawn_listening(
            Command::new(env!("CARGO_BIN_EXE_chatkit-rs"))
                .env("CHATKIT__SERVER__BIND", "127.0.0.1:0")
                .env("CHATKIT__METRICS__BIND", "127.0.0.1:0")
                .env("CHATKIT__DATABASE__EMBEDDED_DIR", &dir_text)
                .env_remove("CHATKIT__DATABASE__URL")
                .env("CHATKIT__AUTH__JWT_SECRET", SECRET)
                .env("CHATKIT__MODEL__BASE_URL", shared().mock.base_url())
                .stderr(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                        .unwrap(),
                ),
            "chatkit-rs",
        );
        (child, listening.addr)
    };
    let alice = token("alice");
    let body = create_request("remember me").to_string();

    let (mut child, addr) = start();
    assert!(pg_running(&dir), "the embedded cluster runs");
    let socket_only = std::fs::read_to_string(dir.join("postmaster.pid")).unwrap();
    assert!(
        !socket_only.contains("127.0.0.1"),
        "listens on a unix socket only"
    );
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://{addr}/chatkit"))
        .bearer_auth(&alice)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let text = created.text().await.unwrap();
    assert!(text.contains("thread.item.done"));

    terminate(&child);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM exits 0: {status:?}\n{}",
        log_tail()
    );
    assert!(!pg_running(&dir), "the embedded cluster was stopped");

    let (mut child, addr) = start();
    let listed = http
        .post(format!("http://{addr}/chatkit"))
        .bearer_auth(&alice)
        .body(op_request("threads.list", json!({})).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        1,
        "the thread survived the restart"
    );
    terminate(&child);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM exits 0: {status:?}\n{}",
        log_tail()
    );
    assert!(!pg_running(&dir));
}

#[test]
fn migrations_are_recorded_and_idempotent() {
    let schema = new_schema();
    let url = shared().postgres.url();
    for _ in 0..2 {
        let (code, _, stderr) = chatkit(
            &[
                ("CHATKIT__DATABASE__URL", &url),
                ("CHATKIT__DATABASE__SCHEMA", &schema),
                ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ],
            &["migrate"],
        );
        assert_eq!(code, 0, "{stderr}");
    }
    let applied = shared().postgres.psql(&format!(
        "SELECT version, name FROM {schema}.schema_migrations"
    ));
    assert_eq!(
        applied,
        "1|0001_threads_and_items\n2|0002_cluster\n3|0003_lease_liveness\n4|0004_items_fenced_not_keyed\n5|0005_drop_threads_version\n6|0006_attachments\n7|0007_lease_checks_fail_in_the_server\n8|0008_attachments_join_one_thread\n9|0009_threads_seq_not_unique"
    );
}

/// Each `configuration error:` line of `stderr` that mentions `text`.
fn problem_lines<'a>(stderr: &'a str, text: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("configuration error:") && l.contains(text))
        .collect()
}

#[test]
fn unknown_keys_and_sections_are_refused_naming_the_closest_known_key() {
    let file = temp_path("misspelt", "toml");
    std::fs::write(
        &file,
        "[modle]\nname = \"gpt-4o\"\n[server]\nbnd = \"0.0.0.0:80\"\n[[mcp.servers]]\nname = \"t\"\nurll = \"http://127.0.0.1:1/mcp\"\n",
    )
    .unwrap();
    let file = file.to_string_lossy().to_string();
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__LIMITS__REQUESTS_PER_MINUT", "5"),
        ],
        &["--config", &file, "check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    for (unknown, suggestion) in [
        ("unknown section [modle]", "did you mean [model]?"),
        ("unknown key server.bnd", "did you mean server.bind?"),
        (
            "unknown key mcp.servers.urll",
            "did you mean mcp.servers.url?",
        ),
        (
            "CHATKIT__LIMITS__REQUESTS_PER_MINUT matches no setting",
            "did you mean CHATKIT__LIMITS__REQUESTS_PER_MINUTE?",
        ),
    ] {
        let lines = problem_lines(&stderr, unknown);
        assert_eq!(lines.len(), 1, "one line about {unknown}: {stderr}");
        assert!(lines[0].contains(suggestion), "{}", lines[0]);
    }
    // The same keys spelt right pass.
    std::fs::write(
        &file,
        "[model]\nname = \"gpt-4o\"\n[server]\nbind = \"127.0.0.1:8000\"\n",
    )
    .unwrap();
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__MODEL__BASE_URL", "http://127.0.0.1:1/v1"),
        ],
        &["--config", &file, "check-config"],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn wrong_values_name_their_key_and_the_old_max_turns_still_counts() {
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__ACTORS__MAX_LIVE", "0"),
            ("CHATKIT__AGENT__TOOL_DISPLAY", "loud"),
            ("CHATKIT__STREAM__ON_DISCONNECT", "sometimes"),
        ],
        &["check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        problem_lines(&stderr, "stream.on_disconnect").len(),
        1,
        "{stderr}"
    );
    assert_eq!(
        problem_lines(&stderr, "actors.max_live must be positive").len(),
        1,
        "{stderr}"
    );
    assert_eq!(
        problem_lines(&stderr, "agent.tool_display").len(),
        1,
        "{stderr}"
    );
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__MODEL__BASE_URL", "http://127.0.0.1:1/v1"),
            ("CHATKIT__AGENT__MAX_TURNS", "3"),
        ],
        &["check-config"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: agent.max_turns is the old name of agent.max_model_calls"),
        "{stderr}"
    );
}

#[test]
fn a_reasoning_setting_outside_its_values_is_one_line_listing_them() {
    let file = temp_path("reasoning", "toml");
    std::fs::write(
        &file,
        "[model]\nreasoning_summary = \"short\"\n\
         [[models]]\nid = \"deep\"\nmodel = \"o3\"\nreasoning_effort = \"max\"\n\
         [[models]]\nid = \"fine\"\nmodel = \"o3\"\nreasoning_effort = \"minimal\"\nreasoning_summary = \"detailed\"\n",
    )
    .unwrap();
    let file = file.to_string_lossy().to_string();
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__MODEL__REASONING_EFFORT", "High"),
        ],
        &["--config", &file, "check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    let problems: Vec<&str> = stderr.lines().filter(|l| l.contains("reasoning")).collect();
    assert_eq!(
        problems,
        [
            "configuration error: model.reasoning_effort \"High\" is not one of minimal, low, medium, high",
            "configuration error: model.reasoning_summary \"short\" is not one of auto, concise, detailed",
            "configuration error: models \"deep\": reasoning_effort \"max\" is not one of minimal, low, medium, high",
        ],
        "{stderr}"
    );
}

#[test]
fn the_default_model_without_a_key_is_one_warning_naming_the_fixes() {
    let (code, stdout, stderr) =
        chatkit(&[("CHATKIT__AUTH__JWT_SECRET", SECRET)], &["check-config"]);
    assert_eq!(code, 0, "a warning, not an error: {stderr}");
    assert!(stdout.contains("configuration is valid"));
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    for fix in ["OPENAI_API_KEY", "model.base_url", "mock-llm"] {
        assert!(warnings[0].contains(fix), "names {fix}: {}", warnings[0]);
    }
    // With a key, or another server, nothing to say.
    let (_, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("OPENAI_API_KEY", "sk-test"),
        ],
        &["check-config"],
    );
    assert!(!stderr.contains("warning:"), "{stderr}");
}

#[tokio::test]
async fn the_server_says_at_start_and_in_the_playground_that_the_model_is_not_configured() {
    let server = TestServer::start_with(&[
        ("CHATKIT__MODEL__BASE_URL", "https://api.openai.com/v1"),
        ("CHATKIT__SERVER__PLAYGROUND", "true"),
    ]);
    eventually("the start-up warning", || {
        server.log_count("model is not configured") == 1
    })
    .await;
    let page = reqwest::get(server.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"data-testid="notice""#) && page.contains("OPENAI_API_KEY"),
        "the playground shows the notice"
    );
    // A configured model: no notice.
    let fine = TestServer::start_with(&[("CHATKIT__SERVER__PLAYGROUND", "true")]);
    let page = reqwest::get(fine.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(r#"data-testid="notice""#));
}

#[test]
fn a_metrics_port_in_use_refuses_to_start_unless_metrics_are_off() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let shared = shared();
    let url = shared.postgres.url();
    let base = [
        ("CHATKIT__AUTH__JWT_SECRET", SECRET),
        ("CHATKIT__SERVER__BIND", "127.0.0.1:0"),
        ("CHATKIT__DATABASE__URL", url.as_str()),
        ("CHATKIT__METRICS__BIND", addr.as_str()),
        ("CHATKIT__MODEL__BASE_URL", "http://127.0.0.1:1/v1"),
    ];
    let (code, stdout, stderr) = chatkit(&base, &["serve"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("metrics.bind"))
        .collect();
    assert_eq!(lines.len(), 1, "one clear line: {stderr}");
    assert!(
        lines[0].contains(&addr) && lines[0].contains("metrics.enabled = false"),
        "{}",
        lines[0]
    );
    // Likewise the main port.
    let mut server_taken = base;
    server_taken[1] = ("CHATKIT__SERVER__BIND", addr.as_str());
    server_taken[3] = ("CHATKIT__METRICS__ENABLED", "false");
    let (code, _, stderr) = chatkit(&server_taken, &["serve"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.contains("server.bind")).count(),
        1,
        "{stderr}"
    );
    // With metrics off the server starts.
    let server = TestServer::start_with(&[
        ("CHATKIT__METRICS__BIND", addr.as_str()),
        ("CHATKIT__METRICS__ENABLED", "false"),
    ]);
    assert!(server.metrics_url.is_none());
    drop(taken);
}

#[test]
fn a_listen_url_needs_a_database_url_and_must_parse() {
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            (
                "CHATKIT__DATABASE__LISTEN_URL",
                "host=127.0.0.1 password=hunter2-secret",
            ),
        ],
        &["check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("database.listen_url needs database.url"),
        "{stderr}"
    );
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__DATABASE__URL", "host=127.0.0.1"),
            (
                "CHATKIT__DATABASE__LISTEN_URL",
                "postgres://u:hunter2-secret@[bad",
            ),
        ],
        &["check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("database.listen_url is not a valid PostgreSQL connection string"));
    assert!(
        !stderr.contains("hunter2-secret"),
        "a password was printed: {stderr}"
    );
}

#[test]
fn prepared_statements_off_without_a_listen_url_is_a_warning_and_the_setting_must_be_a_bool() {
    let base = [
        ("CHATKIT__AUTH__JWT_SECRET", SECRET),
        ("OPENAI_API_KEY", "sk-test"),
        ("CHATKIT__DATABASE__URL", "host=127.0.0.1 port=6432"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut envs = base.to_vec();
        envs.extend_from_slice(extra);
        chatkit(&envs, &["check-config"])
    };
    let (code, stdout, stderr) = with(&[("CHATKIT__DATABASE__PREPARED_STATEMENTS", "false")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("configuration is valid"));
    assert!(
        stderr.contains("warning: database.prepared_statements = false")
            && stderr.contains("database.listen_url"),
        "{stderr}"
    );
    let (code, _, stderr) = with(&[
        ("CHATKIT__DATABASE__PREPARED_STATEMENTS", "false"),
        ("CHATKIT__DATABASE__LISTEN_URL", "host=127.0.0.1 port=5432"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    let (code, _, stderr) = with(&[("CHATKIT__DATABASE__PREPARED_STATEMENTS", "sometimes")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("prepared_statements"), "{stderr}");
}

#[test]
fn a_trusted_proxy_that_is_not_an_address_or_a_block_is_one_configuration_error() {
    let base = [
        ("CHATKIT__AUTH__JWT_SECRET", SECRET),
        ("OPENAI_API_KEY", "sk-test"),
        ("CHATKIT__DATABASE__URL", "host=127.0.0.1 port=1"),
    ];
    let with = |proxies: &'static str, command: &str| {
        let mut envs = base.to_vec();
        envs.push(("CHATKIT__SERVER__TRUSTED_PROXIES", proxies));
        chatkit(&envs, &[command])
    };
    let (code, stdout, stderr) = with("127.0.0.1,10.0.0.0/8,fd00::/8", "check-config");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("configuration is valid"));
    for command in ["check-config", "serve"] {
        let (code, stdout, stderr) = with("127.0.0.1,10.0.0.0/33", command);
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(!stdout.contains("listening on"), "{stdout}");
        let lines = problem_lines(&stderr, "server.trusted_proxies");
        assert_eq!(lines.len(), 1, "{command}: {stderr}");
        assert!(lines[0].contains("10.0.0.0/33"), "{}", lines[0]);
    }
}

/// Every counter family, each of its samples, from a `/metrics` text.
fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[tokio::test]
async fn a_fresh_server_exports_every_counter_at_zero() {
    let config = r#"
[[mcp.servers]]
name = "tasks"
url = "http://127.0.0.1:9/mcp"
"#;
    let server = TestServer::start_with_config(config, &[]);
    let text = server.metrics().await;
    let expected: &[(&str, &[&str])] = &[
        (
            "chatkit_database_timeouts_total",
            &["operation=\"apply\"", "operation=\"load_thread\""],
        ),
        (
            "chatkit_persistence_commit_failures_total",
            &["kind=\"unavailable\"", "kind=\"query\""],
        ),
        (
            "chatkit_model_errors_total",
            &["kind=\"http\"", "kind=\"timeout\"", "kind=\"unreachable\""],
        ),
        ("chatkit_mcp_errors_total", &["server=\"tasks\""]),
        (
            "chatkit_turns_total",
            &["outcome=\"answered\"", "outcome=\"failed\""],
        ),
        ("chatkit_model_tokens_total", &["direction=\"input\""]),
        (
            "chatkit_attachment_uploads_total",
            &["outcome=\"stored\"", "outcome=\"refused_quota\""],
        ),
        ("chatkit_attachment_upload_bytes_total", &[]),
        (
            "chatkit_widgets_total",
            &["outcome=\"rejected\",source=\"meta\""],
        ),
        ("chatkit_widget_actions_total", &["outcome=\"failed\""]),
        ("chatkit_replica_reads_total", &["outcome=\"behind\""]),
        (
            "chatkit_http_requests_total",
            &["op=\"threads.create\",status=\"200\""],
        ),
        ("chatkit_http_panics_total", &[]),
    ];
    for (family, labels) in expected {
        let found = samples(&text, family);
        assert!(!found.is_empty(), "{family} is missing from /metrics");
        for sample in &found {
            assert!(sample.ends_with(" 0"), "{sample}: not 0 on a fresh server");
        }
        for label in *labels {
            assert!(
                found.iter().any(|s| s.contains(label)),
                "{family}{{{label}}} is missing: {found:?}"
            );
        }
    }
}
