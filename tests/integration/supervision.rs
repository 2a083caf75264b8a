//! Real faults: the database goes away in the middle of a turn. The client of that turn gets
//! an in-band error, requests during the outage get a clean 503 JSON, the failed thread actor
//! is restarted from Postgres, other threads are untouched, and service recovers by itself.

use serde_json::json;

use crate::harness::postgres::TestPostgres;
use crate::harness::*;

#[tokio::test]
async fn database_outage_mid_turn_restarts_the_actor_and_recovers() {
    let pg = TestPostgres::start_private("outage");
    let server = TestServer::start_with(&[
        ("CHATKIT__DATABASE__URL", &pg.url()),
        ("CHATKIT__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
    ]);
    let alice = token("alice");
    let bob = token("bob");
    let a = create_thread(&server, &alice, "thread a").await;
    let a_id = a.thread_id();
    let b_id = create_thread(&server, &bob, "thread b").await.thread_id();

    let body = json!({ "type": "threads.add_user_message", "params": { "thread_id": a_id, "input": text_input("slow 30") } });
    let mut live = server.open_stream(&alice, &body).await;
    assert!(live.read_events(5).await >= 5);
    pg.stop_server();
    live.read_events(1000).await;
    let last = live.events.last().unwrap().clone();
    assert_eq!(
        last,
        json!({ "type": "error", "code": "stream.error", "allow_retry": true })
    );
    let acknowledged_a: Vec<_> = a
        .done_items()
        .into_iter()
        .chain(live.done_items())
        .collect();

    // During the outage: a clean 503 before any stream, JSON reads too.
    let during = add_message(&server, &bob, &b_id, "hello?").await;
    during.reply.assert_error(503, "unavailable");
    assert_eq!(during.reply.headers["retry-after"], "1");
    let read = server
        .post(&bob, &json!({ "type": "threads.list", "params": {} }))
        .await;
    read.assert_error(503, "unavailable");

    // The database comes back; the server recovers without a restart.
    pg.start_server();
    let mut recovered = false;
    for _ in 0..100 {
        let reply = server
            .post(&bob, &json!({ "type": "threads.list", "params": {} }))
            .await;
        if reply.status == 200 {
            recovered = true;
            break;
        }
        sleep_ms(100).await;
    }
    assert!(recovered, "service recovered after the database came back");

    // Thread A continues from what Postgres holds: the acknowledged items, nothing half-written.
    let thread = server
        .call(
            &alice,
            "threads.get_by_id",
            json!({ "thread_id": a_id }),
            Kind::Thread,
        )
        .await;
    assert_eq!(thread["items"]["data"].as_array().unwrap(), &acknowledged_a);
    let next = add_message(&server, &alice, &a_id, "are we good?").await;
    next.assert_answered();
    let next_b = add_message(&server, &bob, &b_id, "hello again").await;
    next_b.assert_answered();
    assert!(
        server
            .logs()
            .contains("restarting; reloading from Postgres"),
        "the supervisor restarted the actor"
    );
}
