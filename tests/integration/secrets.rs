//! Secrets never reach the logs: a whole session at debug level, with a model API key, a
//! database password and bearer tokens (valid and forged), leaves none of them in the output.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn debug_logs_of_a_session_hold_no_secret() {
    let api_key = "sk-test-4f9c2b7e1d8a6350-never-log-me";
    let db_password = "db-pass-8e1f0c7a-never-log-me";
    let url = format!("{} password={db_password}", shared().postgres.url());
    let server = TestServer::start_with(&[
        ("OPENAI_API_KEY", api_key),
        ("CHATKIT__DATABASE__URL", &url),
        ("RUST_LOG", "trace,h2=debug,hyper=debug"),
    ]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hello").await.thread_id();
    add_message(&server, &alice, &thread_id, "fail now").await;
    add_message(&server, &alice, &thread_id, "and again")
        .await
        .assert_answered();
    server.list_threads(&alice, json!({})).await;
    server
        .post_op(&alice, "threads.delete", json!({ "thread_id": thread_id }))
        .await;
    let forged = forged_token("x");
    assert_eq!(server.post_raw(Some(&forged), "{}").await.status, 401);

    // The model received the key (the mock logs bodies, not headers, so check the server's
    // side only): the server's logs are what must stay clean. (A settle time, not a wait for
    // a condition: the refused request leaves no line to wait for, and absence cannot be
    // polled.)
    sleep_ms(200).await;
    let logs = server.logs();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "verbose logs were captured"
    );
    for (what, secret) in [
        ("bearer token", alice.as_str()),
        ("forged token", forged.as_str()),
        ("model API key", api_key),
        ("database password", db_password),
    ] {
        assert!(!logs.contains(secret), "the {what} leaked into the logs");
    }
    // Token fragments either: the signature part alone must not appear.
    let signature = alice.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "a token signature leaked");
}

#[tokio::test]
async fn json_logs_carry_request_user_and_thread_ids() {
    let server = TestServer::start_with(&[("CHATKIT__LOG__FORMAT", "json"), ("RUST_LOG", "info")]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hello").await.thread_id();
    add_message(&server, &alice, &thread_id, "more")
        .await
        .assert_answered();
    // A request's log line names its thread and user.
    eventually("a request's log line names its thread and user", || {
        server.logs().lines().any(|line| {
            let spans = serde_json::from_str::<serde_json::Value>(line)
                .map(|l| l["spans"].to_string())
                .unwrap_or_default();
            spans.contains("request_id") && spans.contains(&thread_id) && spans.contains("alice")
        })
    })
    .await;
    // Every line is JSON, and the token is in none.
    let logs = server.logs();
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert!(!logs.contains(&alice));
}
