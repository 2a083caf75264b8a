//! A server killed (SIGKILL) in the middle of a conversation loses nothing it acknowledged.

use serde_json::{json, Value};

use crate::harness::*;

#[tokio::test]
async fn kill_mid_stream_then_restart_loses_nothing_acknowledged() {
    let mut server = TestServer::start();
    let alice = token("alice");
    let first = create_thread(&server, &alice, "hello").await;
    let thread_id = first.thread_id();
    let mut acknowledged: Vec<Value> = first.done_items();

    // A slow answer: kill the process while it streams.
    let body = json!({ "type": "threads.add_user_message", "params": { "thread_id": thread_id, "input": text_input("slow 40") } });
    let mut live = server.open_stream(&alice, &body).await;
    assert!(live.read_events(6).await >= 6);
    acknowledged.extend(live.done_items());
    server.kill();
    drop(live);

    server.restart();
    let thread = server
        .call(
            &alice,
            "threads.get_by_id",
            json!({ "thread_id": thread_id }),
            Kind::Thread,
        )
        .await;
    let stored: Vec<Value> = thread["items"]["data"].as_array().unwrap().clone();
    assert_eq!(
        stored, acknowledged,
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
    let contents: Vec<String> = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(contents.contains(&"hello".to_string()));
    assert!(contents.contains(&"slow 40".to_string()));
}
