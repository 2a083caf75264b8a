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

/// One conversation turn: `Ok(true)` answered, `Ok(false)` refused cleanly (503 JSON before
/// a stream, or an in-band error), `Err` for anything else (a 5xx other than 503, a broken
/// response without an in-band error...).
async fn clean_turn(
    server: &TestServer,
    token: &str,
    thread: &mut Option<String>,
    text: &str,
) -> Result<bool, String> {
    let body = match thread {
        None => json!({ "type": "threads.create", "params": { "input": text_input(text) } }),
        Some(id) => {
            json!({ "type": "threads.add_user_message", "params": { "thread_id": id, "input": text_input(text) } })
        }
    };
    let reply = server.post(token, &body).await;
    match reply.status {
        200 => {
            let stream = Stream::parse(reply);
            if thread.is_none() {
                *thread = Some(stream.thread_id());
            }
            let kinds = stream.kinds();
            match kinds.last().map(String::as_str) {
                Some("thread.item.done") | Some("thread.updated") => Ok(true),
                Some("error") => Ok(false),
                other => Err(format!("stream ended with {other:?}: {kinds:?}")),
            }
        }
        503 => {
            reply.assert_error(503, "unavailable");
            Ok(false)
        }
        other => Err(format!("HTTP {other}: {}", reply.text)),
    }
}

#[tokio::test]
async fn killed_backends_and_a_postgres_restart_under_load_fail_cleanly_and_recover() {
    let pg = std::sync::Arc::new(TestPostgres::start_private("load"));
    let server = std::sync::Arc::new(TestServer::start_with(&[
        ("CHATKIT__DATABASE__URL", &pg.url()),
        ("CHATKIT__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ]));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for u in 0..6 {
        let (server, stop) = (server.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let token = token(&format!("load-{u}"));
            let mut thread = None;
            let (mut answered, mut refused) = (0, 0);
            let mut turn = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match clean_turn(&server, &token, &mut thread, &format!("turn {turn}")).await {
                    Ok(true) => answered += 1,
                    Ok(false) => refused += 1,
                    Err(e) => panic!("client {u}: {e}"),
                }
                turn += 1;
            }
            (answered, refused, thread)
        }));
    }
    sleep_ms(500).await;
    // Killed backends, three times.
    for _ in 0..3 {
        pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'chatkit-rs'");
        sleep_ms(300).await;
    }
    // A full restart of Postgres.
    pg.stop_server();
    sleep_ms(700).await;
    pg.start_server();
    sleep_ms(1500).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut totals = (0, 0);
    let mut threads = Vec::new();
    for client in clients {
        let (answered, refused, thread) = client.await.unwrap();
        totals.0 += answered;
        totals.1 += refused;
        threads.push(thread);
    }
    assert!(totals.0 > 20, "the load made progress: {totals:?}");
    // Recovered by itself: every thread answers again.
    for (u, thread) in threads.into_iter().enumerate() {
        let mut thread = thread;
        let token = token(&format!("load-{u}"));
        let mut ok = false;
        for _ in 0..50 {
            if clean_turn(&server, &token, &mut thread, "after").await == Ok(true) {
                ok = true;
                break;
            }
            sleep_ms(100).await;
        }
        assert!(ok, "client {u} recovered");
    }
    eprintln!(
        "postgres faults under load: {} turns answered, {} refused cleanly, 0 other failures",
        totals.0, totals.1
    );
}
