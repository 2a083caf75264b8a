//! Retry (protocol §8.10) and idle retirement of thread actors.

use serde_json::json;

use crate::harness::*;

/// `threads.retry_after_item` after `item_id` (any status: see [`Stream::status`]).
async fn retry_after(server: &TestServer, token: &str, thread_id: &str, item_id: &str) -> Stream {
    let params = json!({ "thread_id": thread_id, "item_id": item_id });
    server
        .stream(token, "threads.retry_after_item", params)
        .await
}

#[tokio::test]
async fn retry_after_item_regenerates_from_that_message() {
    let server = TestServer::start();
    let (alice, first) = alice_starts(&server, "first question").await;
    let thread_id = first.thread_id();
    let first_user = first.done_id(0);
    let first_answer = first.done_id(1);
    let second = add_message(&server, &alice, &thread_id, "second question").await;
    assert_eq!(second.status, 200);

    let retry = retry_after(&server, &alice, &thread_id, &first_user).await;
    let kinds = retry.kinds();
    assert_eq!(
        kinds[0], "stream_options",
        "no removal events (protocol §13.4): {kinds:?}"
    );
    assert_eq!(kinds.last().unwrap(), "thread.item.done");
    let new_answer = retry.done_id(0);
    assert_ne!(new_answer, first_answer);

    let items = server.items_asc(&alice, &thread_id).await;
    let ids: Vec<&str> = field_of(&items, "id");
    assert_eq!(ids, [first_user.as_str(), new_answer.as_str()]);

    // The model was asked again with only the first question.
    let request = shared().mock.last_request_asking("first question");
    assert!(
        !request.to_string().contains("second question"),
        "{request}"
    );

    // Retrying after a non-user item is refused; an unknown id gives an empty stream.
    let refused = retry_after(&server, &alice, &thread_id, &new_answer).await;
    refused.reply.assert_error(400, "invalid_params");
    assert!(refused.reply.text.contains("is not a user message"));
    let empty = retry_after(&server, &alice, &thread_id, "msg_unknown").await;
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
        server.log_count("idle thread actor retires") >= 1
    })
    .await;
    // It gave its lease up (in a group commit): another instance could take the thread now.
    let lease = format!(
        "SELECT count(*) FROM {}.thread_leases WHERE thread_id = '{thread_id}'",
        server.schema
    );
    eventually("the retired actor's lease is released", || {
        shared().postgres.psql(&lease).trim() == "0"
    })
    .await;
    let next = add_message(&server, &alice, &thread_id, "what is the password?").await;
    next.assert_answered();
    let request = shared()
        .mock
        .last_request_containing("what is the password?");
    assert!(
        request.to_string().contains("the password is swordfish"),
        "history reloaded from Postgres"
    );
}

#[tokio::test]
async fn titles_come_once_and_a_rename_wins() {
    let server = TestServer::start();
    let (alice, first) = alice_starts(&server, "plan a trip to Lisbon").await;
    assert_eq!(first.last_kind(), "thread.updated");
    let thread_id = first.thread_id();
    let request = shared().mock.last_request_where("asking for a title", |r| {
        r["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .contains("short title")
    });
    assert!(request.to_string().contains("plan a trip to Lisbon"));
    // No second title.
    let second = add_message(&server, &alice, &thread_id, "and Porto?").await;
    assert!(!second.kinds().contains(&"thread.updated".to_string()));
    second.assert_answered();

    // Titles can be turned off.
    let quiet = TestServer::start_with(&[("CHATKIT__TITLES__ENABLED", "false")]);
    let stream = create_thread(&quiet, &alice, "no title please").await;
    assert_eq!(stream.last_kind(), "thread.item.done");
    let listed = quiet.list_threads(&alice, json!({})).await;
    assert!(listed["data"][0].get("title").is_none());
}

#[tokio::test]
async fn locked_and_closed_threads_refuse_new_messages() {
    let server = TestServer::start_with(&[("CHATKIT__ACTORS__IDLE_TIMEOUT_SECS", "1")]);
    let alice = token("alice");
    let locked = create_thread(&server, &alice, "one").await.thread_id();
    let closed = create_thread(&server, &alice, "two").await.thread_id();
    let pg = &shared().postgres;
    pg.psql(&format!(
        "UPDATE {s}.threads SET status = '{{\"type\":\"locked\",\"reason\":\"Escalated\"}}' WHERE id = '{locked}';
         UPDATE {s}.threads SET status = '{{\"type\":\"closed\"}}' WHERE id = '{closed}'",
        s = server.schema
    ));
    // Let the actors retire so they reload the changed status.
    eventually("both actors retired", || {
        server.log_count("idle thread actor retires") >= 2
    })
    .await;
    let reply = add_message(&server, &alice, &locked, "hello?").await;
    reply.reply.assert_error(409, "thread_locked");
    assert!(reply.reply.text.contains("Escalated"));
    let reply = add_message(&server, &alice, &closed, "hello?").await;
    reply.reply.assert_error(409, "thread_closed");
    let thread = server.get_thread(&alice, &locked).await;
    assert_eq!(
        thread["status"],
        json!({ "type": "locked", "reason": "Escalated" })
    );
    assert_eq!(
        thread["items"]["data"].as_array().unwrap().len(),
        2,
        "nothing was added"
    );
}

#[tokio::test]
async fn at_most_max_live_actors_stay_in_memory() {
    let server = TestServer::start_with(&[("CHATKIT__ACTORS__MAX_LIVE", "2")]);
    let alice = token("alice");
    let texts: Vec<String> = (0..4).map(|i| format!("thread {i}")).collect();
    let threads = create_threads(&server, &alice, &texts).await;
    eventually("least recently used actors retired", || {
        server.log_count("least recently used thread actor retires") >= 2
    })
    .await;
    // The oldest thread comes back transparently with its history.
    let next = add_message(&server, &alice, &threads[0], "back again").await;
    next.assert_answered();
    let request = shared().mock.last_request_containing("back again");
    assert!(request.to_string().contains("thread 0"));
}

#[tokio::test]
async fn model_timeout_is_an_in_band_error() {
    let slow_model = MockModel::start(&["--delay-ms", "1500"]);
    let server =
        TestServer::start_with_model(&slow_model, &[("CHATKIT__MODEL__TIMEOUT_SECS", "1")]);
    let (_, stream) = alice_starts(&server, "hello").await;
    stream.assert_ends_in_error();
}

#[tokio::test]
async fn sigterm_lets_the_stream_in_flight_finish() {
    let mut server = TestServer::start();
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hi").await.thread_id();
    let mut live = server
        .open_message_stream(&alice, &thread_id, "slow 20")
        .await;
    assert!(live.read_events(4).await >= 4);
    server.terminate();
    live.read_to_end().await;
    assert_eq!(
        live.events.last().unwrap()["type"],
        "thread.item.done",
        "the answer completed"
    );
    assert_eq!(
        live.events.last().unwrap()["item"]["type"],
        "assistant_message"
    );
    let status = server.wait();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    // Everything was flushed: a new process sees the complete answer.
    server.restart();
    let items = server.items(&alice, &thread_id).await;
    assert_eq!(items["data"][0]["type"], "assistant_message");
    assert_eq!(page_data(&items).len(), 4);
}

#[tokio::test]
async fn retry_reaches_beyond_the_history_kept_in_memory() {
    let server = TestServer::start_with(&[("CHATKIT__MODEL__HISTORY_LIMIT", "4")]);
    let (alice, first) = alice_starts(&server, "q1").await;
    let thread_id = first.thread_id();
    let mut user_ids = vec![first.done_id(0)];
    for q in ["q2", "q3", "q4", "q5"] {
        let s = add_message(&server, &alice, &thread_id, q).await;
        s.assert_answered();
        user_ids.push(s.done_id(0));
    }
    // 10 items; memory holds the newest 4. Retry after q2 (items 3 and 4 of 10).
    let retry = retry_after(&server, &alice, &thread_id, &user_ids[1]).await;
    retry.assert_answered();
    let items = server.items_asc(&alice, &thread_id).await;
    let texts: Vec<&str> = page_data(&items)
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(texts[0], "q1");
    assert_eq!(texts[2], "q2");
    let request = shared().mock.last_request_asking("q2");
    assert!(
        !request.to_string().contains("q3"),
        "the model saw only the history up to q2"
    );
    // The next turn sees the shortened thread.
    let next = add_message(&server, &alice, &thread_id, "q6").await;
    next.assert_answered();
    let request = shared().mock.last_request_containing("\"q6\"");
    assert!(!request.to_string().contains("q5"));
    assert!(request.to_string().contains("q2"));
}
