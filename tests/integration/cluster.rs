//! Several instances sharing one Postgres, requests landing anywhere (no sticky sessions):
//! threads hand over between instances, one response per thread cluster-wide, a dead
//! instance's threads continue elsewhere, and the admin endpoints see the whole cluster.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

fn node(schema: &str, name: &str) -> TestServer {
    TestServer::start_node(schema, name, &[])
}

async fn admin_get(server: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    get_json(&server.url(path), token).await
}

/// Two instances on a new schema.
fn two_nodes() -> [TestServer; 2] {
    let schema = new_schema();
    [node(&schema, "node-1"), node(&schema, "node-2")]
}

#[tokio::test]
async fn turns_alternate_between_instances_with_history_intact() {
    let nodes = two_nodes();
    let alice = token("alice");
    let first = answered_thread(&nodes[0], &alice, "turn 0").await;
    let thread_id = first.thread_id();
    let mut announced: Vec<Value> = first.done_items();
    for turn in 1..7 {
        let server = &nodes[turn % 2];
        let text = format!("turn {turn}");
        let stream = add_message(server, &alice, &thread_id, &text).await;
        stream.assert_answered();
        announced.extend(stream.done_items());
        // The model saw every earlier turn: the new owner reloaded the history.
        let request = shared()
            .mock
            .last_request_containing(&format!("\"{text}\""));
        let users: Vec<String> = request["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect();
        let expected: Vec<String> = (0..=turn).map(|t| format!("turn {t}")).collect();
        assert_eq!(users, expected);
    }
    // Every item once, in order, byte for byte, read from either node.
    for server in &nodes {
        let page = server.items_asc(&alice, &thread_id).await;
        assert_eq!(page["data"].as_array().unwrap(), &announced);
    }
}

#[tokio::test]
async fn one_response_per_thread_across_the_cluster() {
    let nodes = two_nodes();
    let alice = token("alice");
    let thread_id = create_thread(&nodes[0], &alice, "hello").await.thread_id();
    // A slow answer on node 1; a second stream for the thread on node 2 is a 409.
    let slow = add_message(&nodes[0], &alice, &thread_id, "slow 30");
    let other = async {
        sleep_ms(400).await;
        add_message(&nodes[1], &alice, &thread_id, "me too").await
    };
    let (slow, other) = tokio::join!(slow, other);
    slow.assert_answered();
    other.reply.assert_error(409, "thread_busy");
    // Racing two streams on both nodes many times: never two answers at once.
    for round in 0..5 {
        let (text_a, text_b) = (format!("race a {round}"), format!("race b {round}"));
        let a = add_message(&nodes[0], &alice, &thread_id, &text_a);
        let b = add_message(&nodes[1], &alice, &thread_id, &text_b);
        let (a, b) = tokio::join!(a, b);
        let ok = [&a, &b].iter().filter(|s| s.status == 200).count();
        assert!(ok >= 1, "round {round}: at least one turn runs");
        for s in [&a, &b] {
            if s.status != 200 {
                assert!(
                    s.reply.status == 409 || s.reply.status == 503,
                    "round {round}: {}",
                    s.reply.text
                );
            } else {
                s.assert_answered();
            }
        }
    }
    // The transcript alternates user/assistant: no interleaved responses.
    let page = nodes[1].items_asc(&alice, &thread_id).await;
    let kinds: Vec<&str> = field_of(&page, "type");
    for pair in kinds.chunks(2) {
        assert_eq!(pair, ["user_message", "assistant_message"], "{kinds:?}");
    }
}

#[tokio::test]
async fn a_dead_instances_threads_continue_elsewhere() {
    let schema = new_schema();
    let mut first = node(&schema, "node-1");
    let second = node(&schema, "node-2");
    let (alice, created) = alice_starts(&first, "hello").await;
    let thread_id = created.thread_id();
    let mut live = first
        .open_message_stream(&alice, &thread_id, "slow 40")
        .await;
    live.read_events(5).await;
    let acknowledged: Vec<Value> = created
        .done_items()
        .into_iter()
        .chain(live.done_items())
        .collect();
    first.kill();
    drop(live);
    let started = std::time::Instant::now();
    let next = add_message(&second, &alice, &thread_id, "anyone?").await;
    next.assert_answered();
    assert!(
        started.elapsed().as_secs() < 3,
        "took over without waiting for the lease to expire"
    );
    let page = second.items_asc(&alice, &thread_id).await;
    let stored = page_data(&page);
    assert_eq!(&stored[..acknowledged.len()], &acknowledged[..]);
    assert_eq!(
        stored.len(),
        acknowledged.len() + 2,
        "nothing half-written from the dead instance"
    );
}

#[tokio::test]
async fn admin_endpoints_list_the_whole_cluster() {
    let nodes = two_nodes();
    let alice = token("alice");
    let bob = token("bob");
    let a = create_thread(&nodes[0], &alice, "a").await.thread_id();
    let b = create_thread(&nodes[1], &bob, "b").await.thread_id();
    let admin = admin_token();

    let (status, body) = admin_get(&nodes[0], "/admin/threads", Some(&admin)).await;
    assert_eq!(status, 200, "{body}");
    let rows = body["data"].as_array().unwrap();
    let owner = |id: &str| {
        rows.iter()
            .find(|r| r["thread_id"] == id)
            .map(|r| r["instance_id"].as_str().unwrap().to_string())
    };
    assert_eq!(owner(&a).as_deref(), Some("node-1"));
    assert_eq!(owner(&b).as_deref(), Some("node-2"));
    let row = rows.iter().find(|r| r["thread_id"] == a).unwrap();
    assert_eq!(row["user_id"], "alice");
    assert_eq!(row["item_count"], 2);
    assert!(row["state"] == "idle" || row["state"] == "streaming");
    assert!(row["live_since"].is_string() && row["last_activity"].is_string());

    let (_, filtered) = admin_get(&nodes[1], "/admin/threads?instance=node-2", Some(&admin)).await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    let (_, by_user) = admin_get(&nodes[1], "/admin/threads?user=alice", Some(&admin)).await;
    assert_eq!(by_user["data"][0]["thread_id"], json!(a));
    let (_, page1) = admin_get(&nodes[0], "/admin/threads?limit=1", Some(&admin)).await;
    assert_eq!(page1["has_more"], true);
    let after = page1["after"].as_str().unwrap().to_string();
    let (_, page2) = admin_get(
        &nodes[0],
        &format!("/admin/threads?limit=1&after={after}"),
        Some(&admin),
    )
    .await;
    assert_eq!(page2["has_more"], false);
    assert_ne!(page1["data"][0]["thread_id"], page2["data"][0]["thread_id"]);

    let (status, instances) = admin_get(&nodes[1], "/admin/instances", Some(&admin)).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = field_of(&instances, "instance_id");
    assert_eq!(ids, ["node-1", "node-2"]);
    assert_eq!(instances["data"][0]["live_threads"], 1);

    // A user token is forbidden, no token is unauthorized.
    assert_eq!(
        admin_get(&nodes[0], "/admin/threads", Some(&alice)).await.0,
        403
    );
    assert_eq!(
        admin_get(&nodes[0], "/admin/instances", Some(&alice))
            .await
            .0,
        403
    );
    assert_eq!(admin_get(&nodes[0], "/admin/threads", None).await.0, 401);
    assert_eq!(
        admin_get(&nodes[0], "/admin/threads?state=weird", Some(&admin))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn a_stale_lease_of_a_live_instance_is_handed_over_at_once() {
    let nodes = two_nodes();
    let alice = token("alice");
    let schema = &nodes[0].schema;
    let thread_id = create_thread(&nodes[1], &alice, "hello").await.thread_id();
    // node-1 holds the lease without a live actor (as after a failed release).
    shared().postgres.psql(&format!(
        "UPDATE {schema}.thread_leases SET instance_id = 'node-1', fencing = fencing + 1, state = 'idle' WHERE thread_id = '{thread_id}'"
    ));
    // node-2's actor still believes it owns the thread: its next write is fenced out and the
    // thread is handed back from node-1 (which has no actor and just drops its row).
    let started = std::time::Instant::now();
    Patience::tries(3)
        .every(Duration::ZERO)
        .until("node-2 answers on the thread again", async || {
            let stream = add_message(&nodes[1], &alice, &thread_id, "still mine?").await;
            stream.reply.status_is(200)
        })
        .await;
    assert!(
        started.elapsed().as_secs() < 4,
        "no waiting for a timeout: {:?}",
        started.elapsed()
    );
    let owner = shared().postgres.psql(&format!(
        "SELECT instance_id FROM {schema}.thread_leases WHERE thread_id = '{thread_id}'"
    ));
    assert_eq!(owner, "node-2");
    // The fenced-out attempt rolled back whole (its lease check fails in the server, whose
    // COMMIT was already sent): the message is stored once, by the attempt that answered.
    let stored = shared().postgres.psql(&format!(
        "SELECT count(*) FROM {schema}.items WHERE thread_id = '{thread_id}' AND body LIKE '%still mine?%'"
    ));
    assert_eq!(stored, "1");
}

#[tokio::test]
async fn hand_overs_work_with_the_listen_connection_on_its_own_url() {
    // database.listen_url: the LISTEN connection on a URL of its own (a direct connection
    // beside a pooler); here the same server, so the hand-over path runs through it.
    let schema = new_schema();
    let url = shared().postgres.url();
    let listen = [("CHATKIT__DATABASE__LISTEN_URL", url.as_str())];
    let nodes = [
        TestServer::start_node(&schema, "node-1", &listen),
        TestServer::start_node(&schema, "node-2", &listen),
    ];
    let alice = token("alice");
    let thread_id = answered_thread(&nodes[0], &alice, "on node-1")
        .await
        .thread_id();
    let started = std::time::Instant::now();
    add_message(&nodes[1], &alice, &thread_id, "now node-2")
        .await
        .assert_answered();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "handed over at once (not after the 3 s lease): {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_answer_reaches_the_instance_whose_turn_waits_on_its_question() {
    let schema = new_schema();
    let ask_user = [
        ("CHATKIT__AGENT__ASK_USER", "true"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ];
    let nodes = [
        TestServer::start_node(&schema, "node-1", &ask_user),
        TestServer::start_node(&schema, "node-2", &ask_user),
    ];
    let alice = token("alice");
    let first = create_thread(&nodes[0], &alice, "ask me").await;
    let thread_id = first.thread_id();
    let question = first.events[3]["item"]["id"].clone();
    assert_eq!(first.events[3]["item"]["status"], "pending");
    // The answer lands on the other instance: it is sent along to node-1, whose turn goes on
    // with it and hands the thread over; node-2's stream tells what that turn stored.
    let params = json!({ "thread_id": thread_id, "item_id": question,
        "input": {"answers": {"color": {"values": ["Red"]}}} });
    let answered = nodes[1]
        .stream(&alice, "threads.add_structured_input", params)
        .await;
    assert_eq!(
        answered.kinds(),
        ["stream_options", "thread.item.replaced", "thread.item.done"]
    );
    assert_eq!(answered.events[1]["item"]["status"], "answered");
    assert!(answered.answer_text().contains("Which color?: Red"));
    let items = nodes[1].items_asc(&alice, &thread_id).await;
    assert_eq!(items["data"][1], answered.events[1]["item"]);

    // A question superseded from the other instance: skipped there, the message answered here.
    let asked = add_message(&nodes[1], &alice, &thread_id, "ask me").await;
    let question = asked.done_items().last().unwrap()["id"].clone();
    add_message(&nodes[0], &alice, &thread_id, "never mind")
        .await
        .assert_answered();
    let items = nodes[0].items_asc(&alice, &thread_id).await;
    let skipped = page_data(&items)
        .iter()
        .find(|i| i["id"] == question)
        .unwrap()
        .clone();
    assert_eq!(skipped["status"], "skipped");
}
