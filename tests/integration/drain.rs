//! Shutdown with a short drain: a stream still running when the drain ends is cut, and the
//! engine stores what the cancellation rule stores (protocol §8.8) before its final flush.

use crate::harness::*;

#[tokio::test]
async fn sigterm_mid_stream_with_a_short_drain_stores_the_cut_answer_before_exit() {
    let mut server = TestServer::start_with(&[
        ("CHATKIT__SERVER__DRAIN_TIMEOUT_SECS", "1"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hi").await.thread_id();
    // 200 tokens, 50 ms apart: far longer than the drain.
    let mut live = server
        .open_message_stream(&alice, &thread_id, "slow 200")
        .await;
    assert!(live.read_events(7).await >= 7, "text is streaming");
    server.terminate();
    live.read_to_end().await;
    assert_ne!(
        live.events.last().unwrap()["type"],
        "thread.item.done",
        "the answer was cut by the drain"
    );
    let status = server.wait();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    let logs = server.logs();
    for trouble in [
        "did not answer at shutdown",
        "turns still running at shutdown",
    ] {
        assert!(
            !logs.contains(trouble),
            "the engine shut down in order: {trouble}"
        );
    }
    let stored = shared().postgres.psql(&format!(
        "SELECT kind FROM {}.items WHERE thread_id = '{thread_id}' ORDER BY created_at, seq",
        server.schema
    ));
    let kinds: Vec<&str> = stored.lines().collect();
    assert_eq!(
        kinds,
        [
            "user_message",
            "assistant_message",
            "user_message",
            "assistant_message",
            "sdk_hidden_context"
        ],
        "the partial answer and the cancellation marker were stored before exit"
    );
    server.restart();
    let items = server.items(&alice, &thread_id).await;
    let partial = &page_data(&items)[0];
    assert_eq!(partial["type"], "assistant_message");
    let text = partial["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("tok0"),
        "the streamed part was kept: {text:?}"
    );
}

/// With `stream.on_disconnect = "finish"` a turn whose client left runs on; shutdown still
/// stops it at once (the engine tells it), storing what the cancellation rule stores, rather
/// than waiting for a long answer nobody reads.
#[tokio::test]
async fn sigterm_stops_a_turn_running_on_without_its_client() {
    let mut server = TestServer::start_with(&[
        ("CHATKIT__SERVER__DRAIN_TIMEOUT_SECS", "1"),
        ("CHATKIT__STREAM__ON_DISCONNECT", "finish"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hi").await.thread_id();
    // 400 tokens, 50 ms apart: 20 s, far longer than the drain and shutdown's wait.
    let mut live = server
        .open_message_stream(&alice, &thread_id, "slow 400")
        .await;
    assert!(live.read_events(7).await >= 7, "text is streaming");
    drop(live);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let stopping = std::time::Instant::now();
    server.terminate();
    let status = server.wait();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(8),
        "stopped in {:?}",
        stopping.elapsed()
    );
    assert!(!server.logs().contains("turns still running at shutdown"));
    let stored = shared().postgres.psql(&format!(
        "SELECT kind FROM {}.items WHERE thread_id = '{thread_id}' ORDER BY created_at, seq",
        server.schema
    ));
    let kinds: Vec<&str> = stored.lines().collect();
    assert_eq!(
        kinds[2..],
        ["user_message", "assistant_message", "sdk_hidden_context"],
        "the partial answer and the cancellation marker were stored before exit"
    );
}

#[tokio::test]
async fn sigterm_while_a_question_waits_skips_it_and_exits_at_once() {
    let mut server = TestServer::start_with(&[
        ("CHATKIT__AGENT__ASK_USER", "true"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ]);
    let alice = token("alice");
    let first = create_thread(&server, &alice, "ask me").await;
    let thread_id = first.thread_id();
    assert_eq!(first.events[3]["item"]["status"], "pending");
    let started = std::time::Instant::now();
    server.terminate();
    let status = server.wait();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    // Not the 600 s the question would wait: the turn gave it up and the actor retired.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let stored = shared().postgres.psql(&format!(
        "SELECT body::jsonb->>'status' FROM {}.items WHERE thread_id = '{thread_id}' AND kind = 'structured_input'",
        server.schema
    ));
    assert_eq!(stored.trim(), "skipped");
}
