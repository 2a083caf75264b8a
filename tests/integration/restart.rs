//! A server killed (SIGKILL) in the middle of a conversation loses nothing it acknowledged.

use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn kill_mid_stream_then_restart_loses_nothing_acknowledged() {
    let mut server = TestServer::start();
    let (alice, first) = alice_starts(&server, "hello").await;
    let thread_id = first.thread_id();
    let mut acknowledged: Vec<Value> = first.done_items();

    // A slow answer: kill the process while it streams.
    let mut live = server
        .open_message_stream(&alice, &thread_id, "slow 40")
        .await;
    assert!(live.read_events(6).await >= 6);
    acknowledged.extend(live.done_items());
    server.kill();
    drop(live);

    server.restart();
    let thread = server.get_thread(&alice, &thread_id).await;
    let stored: &Vec<Value> = page_data(&thread["items"]);
    assert_eq!(
        stored, &acknowledged,
        "every acknowledged item survives, byte for byte, once"
    );
    let raw_count = shared().postgres.psql(&format!(
        "SELECT count(*) FROM {}.items WHERE thread_id = '{thread_id}'",
        server.schema
    ));
    assert_eq!(
        raw_count,
        acknowledged.len().to_string(),
        "no half-written answer"
    );

    // The conversation goes on after the restart, with the history intact.
    let next = add_message(&server, &alice, &thread_id, "still there?").await;
    assert_eq!(next.status, 200);
    next.assert_answered();
    let request = shared().mock.last_request_containing("still there?");
    let contents = message_fields(&request, "content");
    assert!(contents.contains(&"hello"));
    assert!(contents.contains(&"slow 40"));
}
