//! The happy path: create, follow up, read back, rename, delete, feedback; exact event order
//! and bytes (ids and timestamps aside).

use serde_json::json;

use crate::harness::*;

/// Replaces ids and timestamps so byte comparison sees only the shape.
fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        let next_id = ["thr_", "msg_", "shcx_"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min();
        let next_ts = rest
            .find("\"created_at\":\"")
            .map(|i| i + "\"created_at\":\"".len());
        match (next_id, next_ts) {
            (Some((i, p)), ts) if ts.is_none_or(|t| i < t) => {
                out.push_str(&rest[..i]);
                out.push_str(p);
                out.push_str("ID");
                let tail = &rest[i + p.len()..];
                let len = tail.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
                assert_eq!(
                    len,
                    24,
                    "ids carry 96 random bits: {}",
                    &rest[i..i + p.len() + len]
                );
                rest = &tail[len..];
            }
            (_, Some(t)) => {
                out.push_str(&rest[..t]);
                out.push_str("TS");
                let tail = &rest[t..];
                let end = tail.find('"').unwrap();
                let ts = &tail[..end];
                assert!(
                    ts.len() == 19 || (ts.len() == 26 && ts.as_bytes()[19] == b'.'),
                    "offset-less datetime: {ts}"
                );
                rest = &tail[end..];
            }
            _ => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
}

fn expected_answer_frames(tokens: usize) -> String {
    let msg = "msg_ID";
    let mut s = String::new();
    s.push_str(&format!("data: {{\"type\":\"thread.item.added\",\"item\":{{\"id\":\"{msg}\",\"thread_id\":\"thr_ID\",\"created_at\":\"TS\",\"type\":\"assistant_message\",\"content\":[]}}}}\n\n"));
    s.push_str(&format!("data: {{\"type\":\"thread.item.updated\",\"item_id\":\"{msg}\",\"update\":{{\"type\":\"assistant_message.content_part.added\",\"content_index\":0,\"content\":{{\"annotations\":[],\"text\":\"\",\"type\":\"output_text\"}}}}}}\n\n"));
    let words: Vec<String> = (0..tokens).map(|i| format!("tok{i}")).collect();
    for (i, w) in words.iter().enumerate() {
        let delta = if i == 0 { w.clone() } else { format!(" {w}") };
        s.push_str(&format!("data: {{\"type\":\"thread.item.updated\",\"item_id\":\"{msg}\",\"update\":{{\"type\":\"assistant_message.content_part.text_delta\",\"content_index\":0,\"delta\":\"{delta}\"}}}}\n\n"));
    }
    let text = words.join(" ");
    s.push_str(&format!("data: {{\"type\":\"thread.item.updated\",\"item_id\":\"{msg}\",\"update\":{{\"type\":\"assistant_message.content_part.done\",\"content_index\":0,\"content\":{{\"annotations\":[],\"text\":\"{text}\",\"type\":\"output_text\"}}}}}}\n\n"));
    s.push_str(&format!("data: {{\"type\":\"thread.item.done\",\"item\":{{\"id\":\"{msg}\",\"thread_id\":\"thr_ID\",\"created_at\":\"TS\",\"type\":\"assistant_message\",\"content\":[{{\"annotations\":[],\"text\":\"{text}\",\"type\":\"output_text\"}}]}}}}\n\n"));
    s
}

#[tokio::test]
async fn create_streams_the_exact_event_sequence() {
    let server = TestServer::start();
    let alice = token("alice");
    let stream = create_thread(&server, &alice, "Hello there").await;
    assert_eq!(stream.reply.headers["cache-control"], "no-cache");
    let mut expected = String::new();
    expected.push_str("data: {\"type\":\"thread.created\",\"thread\":{\"id\":\"thr_ID\",\"created_at\":\"TS\",\"status\":{\"type\":\"active\"},\"metadata\":{},\"items\":{\"data\":[],\"has_more\":false}}}\n\n");
    expected.push_str("data: {\"type\":\"thread.item.done\",\"item\":{\"id\":\"msg_ID\",\"thread_id\":\"thr_ID\",\"created_at\":\"TS\",\"type\":\"user_message\",\"content\":[{\"type\":\"input_text\",\"text\":\"Hello there\"}],\"attachments\":[],\"inference_options\":{}}}\n\n");
    expected.push_str(
        "data: {\"type\":\"stream_options\",\"stream_options\":{\"allow_cancel\":true}}\n\n",
    );
    expected.push_str(&expected_answer_frames(8));
    // §8.7: the generated title is saved and announced last.
    expected.push_str("data: {\"type\":\"thread.updated\",\"thread\":{\"title\":\"tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7\",\"id\":\"thr_ID\",\"created_at\":\"TS\",\"status\":{\"type\":\"active\"},\"metadata\":{},\"items\":{\"data\":[],\"has_more\":false}}}\n\n");
    assert_eq!(normalize(&stream.raw), expected);
    let listed = server
        .call(&alice, "threads.list", json!({}), Kind::ThreadsPage)
        .await;
    assert_eq!(
        listed["data"][0]["title"],
        "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    );

    // The assistant's added and done share one id; the user message has its own.
    let done = stream.done_items();
    assert_eq!(done.len(), 2);
    assert_eq!(stream.events[3]["item"]["id"], done[1]["id"]);
    assert_ne!(done[0]["id"], done[1]["id"]);
}

#[tokio::test]
async fn follow_up_sends_history_and_reads_back_in_order() {
    let server = TestServer::start();
    let alice = token("alice");
    let first = create_thread(&server, &alice, "remember the word kiwi").await;
    let thread_id = first.thread_id();
    let second = add_message(&server, &alice, &thread_id, "what was the word?").await;
    assert_eq!(second.status, 200);
    let mut expected = String::from("data: {\"type\":\"thread.item.done\",\"item\":{\"id\":\"msg_ID\",\"thread_id\":\"thr_ID\",\"created_at\":\"TS\",\"type\":\"user_message\",\"content\":[{\"type\":\"input_text\",\"text\":\"what was the word?\"}],\"attachments\":[],\"inference_options\":{}}}\n\n");
    expected.push_str(
        "data: {\"type\":\"stream_options\",\"stream_options\":{\"allow_cancel\":true}}\n\n",
    );
    expected.push_str(&expected_answer_frames(8));
    assert_eq!(normalize(&second.raw), expected);

    // The model saw the whole conversation, from the actor's memory.
    let requests = shared().mock.requests();
    let last = requests
        .iter()
        .rev()
        .find(|r| r.to_string().contains("what was the word?"))
        .expect("the mock saw the follow-up");
    let roles: Vec<&str> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(last["messages"][1]["content"], "remember the word kiwi");
    assert_eq!(
        last["messages"][2]["content"],
        "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    );
    assert_eq!(last["stream"], true);

    // get_by_id: oldest first, exactly the items that were announced, byte for byte.
    let thread = server
        .call(
            &alice,
            "threads.get_by_id",
            json!({ "thread_id": thread_id }),
            Kind::Thread,
        )
        .await;
    let items = thread["items"]["data"].as_array().unwrap();
    let announced: Vec<Value> = first
        .done_items()
        .into_iter()
        .chain(second.done_items())
        .collect();
    assert_eq!(items, &announced);
    assert_eq!(thread["items"]["has_more"], false);
    assert_eq!(thread["title"], "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7");
    assert_eq!(thread["metadata"], json!({}));

    // items.list defaults to newest first.
    let page = server
        .call(
            &alice,
            "items.list",
            json!({ "thread_id": thread_id }),
            Kind::ItemsPage,
        )
        .await;
    let ids: Vec<&Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["id"])
        .collect();
    let mut expected_ids: Vec<&Value> = announced.iter().map(|i| &i["id"]).collect();
    expected_ids.reverse();
    assert_eq!(ids, expected_ids);
}

use serde_json::Value;

#[tokio::test]
async fn rename_delete_and_feedback() {
    let server = TestServer::start();
    let alice = token("alice");
    let stream = create_thread(&server, &alice, "hi").await;
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
    let listed = server
        .call(&alice, "threads.list", json!({}), Kind::ThreadsPage)
        .await;
    assert_eq!(listed["data"][0]["title"], "Greeting");

    let assistant_id = stream.done_items()[1]["id"].as_str().unwrap().to_string();
    let reply = server
        .post(&alice, &json!({ "type": "items.feedback", "params": { "thread_id": thread_id, "item_ids": [assistant_id], "kind": "positive" } }))
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "{}"));
    let stored = shared()
        .postgres
        .psql(&format!("SELECT kind FROM {}.feedback", server.schema));
    assert_eq!(stored, "positive");

    let reply = server
        .post(
            &alice,
            &json!({ "type": "threads.delete", "params": { "thread_id": thread_id } }),
        )
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "{}"));
    sdk::check(Kind::Empty, &reply.text);
    let reply = server
        .post(
            &alice,
            &json!({ "type": "threads.get_by_id", "params": { "thread_id": thread_id } }),
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
    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // Every response carries a request id: the caller's when well-formed, else a new one.
    assert!(health.headers().get("x-request-id").is_some());
    let echoed = http
        .get(server.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let replaced = http
        .get(server.url("/healthz"))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id!");
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), r#"{"status":"ready"}"#);
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener() {
    let server = TestServer::start();
    let alice = token("alice");
    create_thread(&server, &alice, "count me").await;
    let url = server.metrics_url.clone().expect("a metrics listener");
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
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
