//! Users never see each other's threads: every op on another user's thread answers exactly
//! like an unknown thread.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn another_users_thread_looks_like_no_thread() {
    let server = TestServer::start();
    let alice = token("alice");
    let bob = token("bob");
    let stream = create_thread(&server, &alice, "secret plans").await;
    let thread_id = stream.thread_id();
    let user_item = stream.done_id(0);
    let unknown = "thr_000000000000000000000000";

    for (op, params) in [
        ("threads.get_by_id", json!({ "thread_id": thread_id })),
        ("items.list", json!({ "thread_id": thread_id })),
        (
            "threads.update",
            json!({ "thread_id": thread_id, "title": "pwned" }),
        ),
        ("threads.delete", json!({ "thread_id": thread_id })),
        (
            "items.feedback",
            json!({ "thread_id": thread_id, "item_ids": [user_item], "kind": "negative" }),
        ),
        (
            "threads.add_user_message",
            json!({ "thread_id": thread_id, "input": text_input("hi") }),
        ),
        (
            "threads.add_client_tool_output",
            json!({ "thread_id": thread_id, "result": {} }),
        ),
        (
            "threads.retry_after_item",
            json!({ "thread_id": thread_id, "item_id": user_item }),
        ),
    ] {
        let theirs = server.post_op(&bob, op, params.clone()).await;
        theirs.assert_error(404, "thread_not_found");
        // Byte-identical to the answer for a thread that does not exist.
        let mut params_unknown = params.clone();
        params_unknown["thread_id"] = json!(unknown);
        let missing = server.post_op(&bob, op, params_unknown).await;
        assert_eq!(
            (theirs.status, &theirs.text),
            (missing.status, &missing.text),
            "{op}"
        );
    }

    let bobs = server.list_threads(&bob, json!({})).await;
    assert_eq!(bobs, json!({ "data": [], "has_more": false }));

    // Alice's thread is untouched.
    let thread = server.get_thread(&alice, &thread_id).await;
    assert_eq!(
        thread["title"], "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7",
        "bob could not rename it"
    );
    assert_eq!(thread["items"]["data"].as_array().unwrap().len(), 2);
}
