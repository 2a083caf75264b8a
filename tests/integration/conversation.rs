//! The happy path: create, follow up, read back, rename, delete, feedback; exact event order
//! and bytes (ids and timestamps aside).

use serde_json::{json, Value};

use crate::harness::*;

/// A thread as the stream shows it (no items), with its title once it has one.
fn thread(title: Option<&str>) -> Value {
    let thread = json!({
        "id": THREAD_ID,
        "created_at": TS,
        "status": { "type": "active" },
        "metadata": {},
        "items": { "data": [], "has_more": false }
    });
    match title {
        Some(title) => prepend("title", json!(title), thread),
        None => thread,
    }
}

fn user_message(text: &str) -> Value {
    json!({
        "id": MESSAGE_ID,
        "thread_id": THREAD_ID,
        "created_at": TS,
        "type": "user_message",
        "content": [{ "type": "input_text", "text": text }],
        "attachments": [],
        "inference_options": {}
    })
}

fn assistant_message(content: Value) -> Value {
    json!({
        "id": MESSAGE_ID,
        "thread_id": THREAD_ID,
        "created_at": TS,
        "type": "assistant_message",
        "content": content
    })
}

fn output_text(text: &str) -> Value {
    json!({ "annotations": [], "text": text, "type": "output_text" })
}

/// `thread.item.updated` of the answer: `assistant_message.<update>` with these fields.
fn answer_update(update: &str, fields: Value) -> Value {
    event(
        "thread.item.updated",
        json!({
            "item_id": MESSAGE_ID,
            "update": event(&format!("assistant_message.{update}"), fields)
        }),
    )
}

/// The events of the mock's default answer, `tok0 tok1 …` (`tokens` words).
fn answer_events(tokens: usize) -> Vec<Value> {
    let words: Vec<String> = (0..tokens).map(|i| format!("tok{i}")).collect();
    let text = words.join(" ");
    let mut events = vec![
        event(
            "thread.item.added",
            json!({ "item": assistant_message(json!([])) }),
        ),
        answer_update(
            "content_part.added",
            json!({ "content_index": 0, "content": output_text("") }),
        ),
    ];
    for (i, word) in words.iter().enumerate() {
        let delta = if i == 0 {
            word.clone()
        } else {
            format!(" {word}")
        };
        events.push(answer_update(
            "content_part.text_delta",
            json!({ "content_index": 0, "delta": delta }),
        ));
    }
    events.push(answer_update(
        "content_part.done",
        json!({ "content_index": 0, "content": output_text(&text) }),
    ));
    events.push(event(
        "thread.item.done",
        json!({ "item": assistant_message(json!([output_text(&text)])) }),
    ));
    events
}

/// The events of a turn before the answer: the user message, then the stream options.
fn turn_start_events(text: &str) -> Vec<Value> {
    vec![
        event("thread.item.done", json!({ "item": user_message(text) })),
        event(
            "stream_options",
            json!({ "stream_options": { "allow_cancel": true } }),
        ),
    ]
}

const TITLE: &str = "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7";

#[tokio::test]
async fn create_streams_the_exact_event_sequence() {
    let server = TestServer::start();
    let (alice, stream) = alice_starts(&server, "Hello there").await;
    assert_eq!(stream.reply.headers["cache-control"], "no-cache");
    let mut expected = vec![event("thread.created", json!({ "thread": thread(None) }))];
    expected.extend(turn_start_events("Hello there"));
    expected.extend(answer_events(8));
    // protocol §8.7: the generated title is saved and announced last.
    expected.push(event(
        "thread.updated",
        json!({ "thread": thread(Some(TITLE)) }),
    ));
    assert_frames(&stream.raw, &expected);
    let listed = server.list_threads(&alice, json!({})).await;
    assert_eq!(listed["data"][0]["title"], TITLE);

    // The assistant's added and done share one id; the user message has its own.
    let done = stream.done_items();
    assert_eq!(done.len(), 2);
    assert_eq!(stream.events[3]["item"]["id"], done[1]["id"]);
    assert_ne!(done[0]["id"], done[1]["id"]);
}

#[tokio::test]
async fn follow_up_sends_history_and_reads_back_in_order() {
    let server = TestServer::start();
    let (alice, first) = alice_starts(&server, "remember the word kiwi").await;
    let thread_id = first.thread_id();
    let second = add_message(&server, &alice, &thread_id, "what was the word?").await;
    assert_eq!(second.status, 200);
    let mut expected = turn_start_events("what was the word?");
    expected.extend(answer_events(8));
    assert_frames(&second.raw, &expected);

    // The model saw the whole conversation, from the actor's memory.
    let last = shared().mock.last_request_containing("what was the word?");
    assert_eq!(
        message_fields(&last, "role"),
        ["system", "user", "assistant", "user"]
    );
    assert_eq!(last["messages"][1]["content"], "remember the word kiwi");
    assert_eq!(last["messages"][2]["content"], TITLE);
    assert_eq!(last["stream"], true);

    // get_by_id: oldest first, exactly the items that were announced, byte for byte.
    let thread = server.get_thread(&alice, &thread_id).await;
    let items = thread["items"]["data"].as_array().unwrap();
    let announced: Vec<Value> = first
        .done_items()
        .into_iter()
        .chain(second.done_items())
        .collect();
    assert_eq!(items, &announced);
    assert_eq!(thread["items"]["has_more"], false);
    assert_eq!(thread["title"], TITLE);
    assert_eq!(thread["metadata"], json!({}));

    // items.list defaults to newest first.
    let page = server.items(&alice, &thread_id).await;
    let ids: Vec<&Value> = page_data(&page).iter().map(|i| &i["id"]).collect();
    let mut expected_ids: Vec<&Value> = announced.iter().map(|i| &i["id"]).collect();
    expected_ids.reverse();
    assert_eq!(ids, expected_ids);
}

#[tokio::test]
async fn rename_delete_and_feedback() {
    let server = TestServer::start();
    let (alice, stream) = alice_starts(&server, "hi").await;
    let thread_id = stream.thread_id();

    let renamed = server
        .call(
            &alice,
            "threads.update",
            json!({ "thread_id": thread_id, "title": "Greeting" }),
            Kind::Thread,
        )
        .await;
    assert_eq!(renamed["title"], "Greeting");
    assert_eq!(renamed["items"], json!({ "data": [], "has_more": false }));
    let listed = server.list_threads(&alice, json!({})).await;
    assert_eq!(listed["data"][0]["title"], "Greeting");

    let assistant_id = stream.done_id(1);
    let feedback =
        json!({ "thread_id": thread_id, "item_ids": [assistant_id], "kind": "positive" });
    let reply = server.post_op(&alice, "items.feedback", feedback).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "{}"));
    let stored = shared()
        .postgres
        .psql(&format!("SELECT kind FROM {}.feedback", server.schema));
    assert_eq!(stored, "positive");

    let reply = server
        .post_op(&alice, "threads.delete", json!({ "thread_id": thread_id }))
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "{}"));
    sdk::check(Kind::Empty, &reply.text);
    let reply = server
        .post_op(
            &alice,
            "threads.get_by_id",
            json!({ "thread_id": thread_id }),
        )
        .await;
    reply.assert_error(404, "thread_not_found");
    let count = shared()
        .postgres
        .psql(&format!("SELECT count(*) FROM {}.items", server.schema));
    assert_eq!(count, "0");
    // Debug-level logs of the whole session never contain the bearer token.
    let logs = server.logs();
    assert!(logs.contains("DEBUG"), "debug logs were captured");
    assert!(
        !logs.contains(&alice),
        "the bearer token leaked into the logs"
    );
}

#[tokio::test]
async fn second_stream_on_a_busy_thread_gets_409() {
    let server = TestServer::start();
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "hi").await.thread_id();
    // "slow 30" streams for about 1.5 s (50 ms between tokens).
    let slow = add_message(&server, &alice, &thread_id, "slow 30");
    let busy = async {
        sleep_ms(300).await;
        add_message(&server, &alice, &thread_id, "are you there?").await
    };
    let (slow, busy) = tokio::join!(slow, busy);
    busy.reply.assert_error(409, "thread_busy");
    assert_eq!(slow.status, 200);
    slow.assert_answered();
    // Once the first response ends, the thread takes the next message.
    let next = add_message(&server, &alice, &thread_id, "now?").await;
    assert_eq!(next.status, 200);
    next.assert_answered();
}

#[tokio::test]
async fn health_endpoints_answer_without_auth() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let healthz = |request_id: Option<&str>| {
        let mut request = http.get(server.url("/healthz"));
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        async move { request.send().await.unwrap() }
    };
    let health = healthz(None).await;
    assert_eq!(health.status(), 200);
    // Every response carries a request id: the caller's when well-formed, else a new one.
    assert!(health.headers().get("x-request-id").is_some());
    let echoed = healthz(Some("abc-123")).await;
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let replaced = healthz(Some("bad id!")).await;
    assert_ne!(replaced.headers()["x-request-id"], "bad id!");
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.text().await.unwrap(),
        r#"{"status":"ready","database":"up","tool_servers":{}}"#
    );
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener() {
    let server = TestServer::start();
    let alice = token("alice");
    create_thread(&server, &alice, "count me").await;
    let text = server.metrics().await;
    for needle in [
        "chatkit_http_requests_total{op=\"threads.create\",status=\"200\"} 1",
        "chatkit_turns_total{outcome=\"answered\"} 1",
        "chatkit_live_thread_actors 1",
        "chatkit_turns_in_flight 0",
        "chatkit_persistence_batch_writes_count",
        "chatkit_persistence_commit_seconds_bucket",
        "chatkit_time_to_first_token_seconds_count 1",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    assert!(!text.contains("alice"), "no user ids in metrics");
    let main_port = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(
        main_port.status(),
        404,
        "metrics are not on the public listener"
    );
}
