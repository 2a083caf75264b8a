//! Abuse limits: per-user request rate and concurrent streams, global open streams; 429 JSON
//! with Retry-After.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn request_rate_is_limited_per_user() {
    let server = TestServer::start_with(&[("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "5")]);
    let alice = token("alice");
    let list = op_request("threads.list", json!({}));
    for _ in 0..5 {
        assert_eq!(server.post(&alice, &list).await.status, 200);
    }
    let refused = server.post(&alice, &list).await;
    refused.assert_error(429, "rate_limited");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    // Another user is not affected.
    assert_eq!(server.post(&token("bob"), &list).await.status, 200);
}

#[tokio::test]
async fn concurrent_streams_are_limited_per_user_and_globally() {
    let server = TestServer::start_with(&[
        ("CHATKIT__LIMITS__MAX_STREAMS_PER_USER", "1"),
        ("CHATKIT__LIMITS__MAX_OPEN_STREAMS", "2"),
    ]);
    let alice = token("alice");
    let slow = create_request("slow 20");
    let mut live = server.open_stream(&alice, &slow).await;
    live.read_events(3).await;
    // A second stream of the same user, even on a new thread: 429, not 409.
    let second = create_thread_raw(&server, &alice, "hi").await;
    second.assert_error(429, "rate_limited");
    // Bob takes the second global slot; carol finds none.
    let mut bob = server.open_stream(&token("bob"), &slow).await;
    bob.read_events(3).await;
    create_thread_raw(&server, &token("carol"), "hi")
        .await
        .assert_error(429, "rate_limited");
    // Dropping a stream frees its slots.
    drop(live);
    drop(bob);
    Patience::tries(50)
        .every(Duration::from_millis(100))
        .until("slots were released when the clients left", async || {
            create_thread_raw(&server, &alice, "again")
                .await
                .status_is(200)
        })
        .await;
}

async fn create_thread_raw(server: &TestServer, token: &str, text: &str) -> Reply {
    server.post(token, &create_request(text)).await
}
