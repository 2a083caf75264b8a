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
    server
        .call(&alice, "threads.list", json!({}), Kind::ThreadsPage)
        .await;
    server
        .post(
            &alice,
            &json!({ "type": "threads.delete", "params": { "thread_id": thread_id } }),
        )
        .await;
    let forged = sign(
        jsonwebtoken::Algorithm::HS256,
        "forged-secret-forged-secret-0123456789",
        &json!({ "sub": "x", "exp": now() + 60 }),
    );
    assert_eq!(server.post_raw(Some(&forged), "{}").await.status, 401);

    // The model received the key (the mock logs bodies, not headers, so check the server's
    // side only): the server's logs are what must stay clean.
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
    sleep_ms(100).await;
    let logs = server.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(!lines.is_empty());
    let in_request: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["spans"].to_string().contains("request_id"))
        .collect();
    assert!(
        in_request
            .iter()
            .any(|l| l["spans"].to_string().contains(&thread_id)
                && l["spans"].to_string().contains("alice")),
        "a request's log line names its thread and user: {logs}"
    );
    assert!(!logs.contains(&alice));
}
