//! Retry (§8.10) and idle retirement of thread actors.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn retry_after_item_regenerates_from_that_message() {
    let server = TestServer::start();
    let alice = token("alice");
    let first = create_thread(&server, &alice, "first question").await;
    let thread_id = first.thread_id();
    let first_user = first.done_items()[0]["id"].as_str().unwrap().to_string();
    let first_answer = first.done_items()[1]["id"].as_str().unwrap().to_string();
    let second = add_message(&server, &alice, &thread_id, "second question").await;
    assert_eq!(second.status, 200);

    let retry = server
        .stream(
            &alice,
            "threads.retry_after_item",
            json!({ "thread_id": thread_id, "item_id": first_user }),
        )
        .await;
    let kinds = retry.kinds();
    assert_eq!(
        kinds[0], "stream_options",
        "no removal events (§13.4): {kinds:?}"
    );
    assert_eq!(kinds.last().unwrap(), "thread.item.done");
    let new_answer = retry.done_items()[0]["id"].as_str().unwrap().to_string();
    assert_ne!(new_answer, first_answer);

    let items = server
        .call(
            &alice,
            "items.list",
            json!({ "thread_id": thread_id, "order": "asc" }),
            Kind::ItemsPage,
        )
        .await;
    let ids: Vec<&str> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first_user.as_str(), new_answer.as_str()]);

    // The model was asked again with only the first question.
    let request = shared()
        .mock
        .requests()
        .into_iter()
        .rev()
        .find(|r| r["messages"].as_array().unwrap().last().unwrap()["content"] == "first question")
        .unwrap();
    assert!(
        !request.to_string().contains("second question"),
        "{request}"
    );

    // Retrying after a non-user item is refused; an unknown id gives an empty stream.
    let reply = server
        .post(&alice, &json!({ "type": "threads.retry_after_item", "params": { "thread_id": thread_id, "item_id": new_answer } }))
        .await;
    reply.assert_error(400, "invalid_params");
    assert!(reply.text.contains("is not a user message"));
    let empty = server
        .stream(
            &alice,
            "threads.retry_after_item",
            json!({ "thread_id": thread_id, "item_id": "msg_unknown" }),
        )
        .await;
    assert_eq!((empty.status, empty.raw.as_str()), (200, ""));
}

#[tokio::test]
async fn idle_actors_retire_and_come_back_with_their_history() {
    let server = TestServer::start_with(&[("CHATKIT__ACTORS__IDLE_TIMEOUT_SECS", "1")]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "the password is swordfish")
        .await
        .thread_id();
    eventually("the idle actor retires", || {
        server.logs().contains("idle thread actor retires")
    })
    .await;
    let next = add_message(&server, &alice, &thread_id, "what is the password?").await;
    assert_eq!(next.kinds().last().unwrap(), "thread.item.done");
    let request = shared()
        .mock
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.to_string().contains("what is the password?"))
        .unwrap();
    assert!(
        request.to_string().contains("the password is swordfish"),
        "history reloaded from Postgres"
    );
}
