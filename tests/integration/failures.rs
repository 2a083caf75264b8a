//! The model failing, the client leaving: in-band errors, consistent threads.

use crate::harness::*;

#[tokio::test]
async fn model_http_error_is_an_in_band_error_and_the_thread_stays_usable() {
    let server = TestServer::start();
    let (alice, stream) = alice_starts(&server, "fail please").await;
    assert_eq!(stream.kinds(), FAILED_BEFORE_ANSWER);
    assert_eq!(stream.events[3], stream_error());
    let thread_id = stream.thread_id();
    let next = add_message(&server, &alice, &thread_id, "hello again").await;
    next.assert_answered();
    let items = server.items_asc(&alice, &thread_id).await;
    let kinds: Vec<&str> = field_of(&items, "type");
    assert_eq!(kinds, ["user_message", "user_message", "assistant_message"]);
}

#[tokio::test]
async fn model_cut_mid_stream_keeps_no_partial_answer() {
    let server = TestServer::start();
    let (alice, stream) = alice_starts(&server, "midfail now").await;
    stream.assert_ends_in_error();
    let kinds = stream.kinds();
    assert!(kinds.iter().any(|k| k.ends_with("text_delta")), "{kinds:?}");
    let thread_id = stream.thread_id();
    let items = server.items(&alice, &thread_id).await;
    assert_eq!(
        page_data(&items).len(),
        1,
        "only the user message (protocol §8.9)"
    );
    let next = add_message(&server, &alice, &thread_id, "again").await;
    next.assert_answered();
}

#[tokio::test]
async fn unreachable_model_is_an_in_band_error() {
    let server = TestServer::start_with(&[("CHATKIT__MODEL__BASE_URL", "http://127.0.0.1:9/v1")]);
    let (_, stream) = alice_starts(&server, "anyone?").await;
    assert_eq!(stream.kinds(), FAILED_BEFORE_ANSWER);
}

#[tokio::test]
async fn client_disconnect_stores_the_partial_answer_and_the_hidden_marker() {
    let server = TestServer::start();
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hi").await.thread_id();
    let mut live = server
        .open_message_stream(&alice, &thread_id, "slow 60")
        .await;
    // user done, stream_options, added, part added, 3 deltas.
    assert_eq!(live.read_events(7).await, 7);
    drop(live);

    let pg = &shared().postgres;
    let schema = server.schema.clone();
    let marker_sql = format!(
        "SELECT body FROM {schema}.items WHERE thread_id = '{thread_id}' AND kind = 'sdk_hidden_context'"
    );
    eventually("the cancellation marker is stored", || {
        !pg.psql(&marker_sql).is_empty()
    })
    .await;
    let marker: serde_json::Value = serde_json::from_str(&pg.psql(&marker_sql)).unwrap();
    assert_eq!(
        marker["content"],
        "The user cancelled the stream. Stop responding to the prior request."
    );

    let items = server.items_asc(&alice, &thread_id).await;
    let data = page_data(&items);
    assert_eq!(data.len(), 4, "hidden marker filtered: {data:?}");
    let partial = data[3]["content"][0]["text"].as_str().unwrap();
    assert!(partial.starts_with("tok0 tok1"), "{partial}");
    assert!(!partial.contains("tok59"), "the answer was cut: {partial}");

    // The thread takes the next message at once; the model sees the marker.
    let next = add_message(&server, &alice, &thread_id, "sorry, go on").await;
    next.assert_answered();
    let request = shared().mock.last_request_containing("sorry, go on");
    assert!(request
        .to_string()
        .contains("The user cancelled the stream."));
}

/// Issue 26, a reload that loses nothing: with `stream.on_disconnect = "finish"` a client
/// that leaves mid-answer does not stop the turn; the whole answer is stored (no cancellation
/// marker), a message sent meanwhile gets 409, and the thread goes on afterwards.
#[tokio::test]
async fn with_on_disconnect_finish_a_client_leaving_mid_answer_finds_the_whole_answer() {
    let server = TestServer::start_with(&[
        ("CHATKIT__STREAM__ON_DISCONNECT", "finish"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hi").await.thread_id();
    let mut live = server
        .open_message_stream(&alice, &thread_id, "slow 30")
        .await;
    // user done, stream_options, added, part added, 3 deltas.
    assert_eq!(live.read_events(7).await, 7);
    drop(live);

    // The reloaded page: the turn still runs; a new message waits for it.
    let meanwhile = server
        .post(&alice, &add_message_request(&thread_id, "are you there?"))
        .await;
    meanwhile.assert_error(409, "thread_busy");

    eventually("the whole answer is stored", || {
        let answers = shared().postgres.psql(&format!(
            "SELECT body FROM {}.items WHERE thread_id = '{thread_id}' AND kind = 'assistant_message'",
            server.schema
        ));
        answers.contains("tok29")
    })
    .await;
    let items = server.items_asc(&alice, &thread_id).await;
    let data = page_data(&items);
    assert_eq!(data.len(), 4, "{data:?}");
    let answer = data[3]["content"][0]["text"].as_str().unwrap();
    assert!(
        answer.starts_with("tok0 tok1") && answer.ends_with("tok29"),
        "{answer}"
    );
    let markers = shared().postgres.psql(&format!(
        "SELECT count(*) FROM {}.items WHERE thread_id = '{thread_id}' AND kind = 'sdk_hidden_context'",
        server.schema
    ));
    assert_eq!(markers.trim(), "0", "nothing was cancelled");

    let next = add_message(&server, &alice, &thread_id, "thanks").await;
    next.assert_answered();
    let request = shared().mock.last_request_containing("thanks");
    assert!(!request
        .to_string()
        .contains("The user cancelled the stream."));
}

#[tokio::test]
async fn resending_a_message_whose_answer_failed_answers_it_without_a_copy() {
    let server = TestServer::start_with(&[("CHATKIT__TITLES__ENABLED", "false")]);
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hi").await.thread_id();
    let first = add_message(&server, &alice, &thread_id, "midfail now").await;
    first.assert_ends_in_error();
    let user_message = first.done_items()[0].clone();
    // The same message again (the client's retry): the stored one is announced and answered
    // again, nothing is stored twice (specs/persistence.md).
    let again = add_message(&server, &alice, &thread_id, "midfail now").await;
    again.assert_ends_in_error();
    assert_eq!(again.done_items()[0], user_message);
    let items = server.items_asc(&alice, &thread_id).await;
    let texts: Vec<&str> = page_data(&items)
        .iter()
        .filter(|i| i["type"] == "user_message")
        .map(|i| i["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hi", "midfail now"]);
    // A different message is a new one, as always.
    add_message(&server, &alice, &thread_id, "and now?")
        .await
        .assert_answered();
}
