//! Reads on a streaming standby (`database.replica_urls`): the client's reads run there once
//! it has replayed what the primary had written, so a client always reads its own writes; a
//! standby that falls behind or goes away leaves the reads to the primary.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::postgres::TestPostgres;
use crate::harness::*;

/// The count of `chatkit_replica_reads_total{outcome}` in the metrics text.
fn replica_reads(metrics: &str, outcome: &str) -> u64 {
    let prefix = format!("chatkit_replica_reads_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Median of the durations, in ms.
fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// `rounds` turns on `thread_id`, each followed at once by the reads a client makes: the
/// thread list and the items, which must show what the turn just stored. The read latencies.
async fn turns_then_reads(
    server: &TestServer,
    token: &str,
    thread_id: &str,
    rounds: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for round in 0..rounds {
        let text = format!("round {round}");
        let stream = add_message(server, token, thread_id, &text).await;
        stream.assert_answered();
        let answer_id = stream.done_items().last().unwrap()["id"].clone();
        let started = Instant::now();
        let items = server.items(token, thread_id).await;
        latencies.push(started.elapsed());
        let newest = &page_data(&items)[0];
        assert_eq!(
            newest["id"], answer_id,
            "round {round}: the answer just announced is read back"
        );
        let threads = server.list_threads(token, json!({})).await;
        assert!(field_of(&threads, "id").contains(&thread_id));
    }
    latencies
}

#[tokio::test]
async fn reads_go_to_a_caught_up_standby_and_never_miss_the_callers_writes() {
    let primary = TestPostgres::start_private("replica-primary");
    let standby = primary.standby("replica-standby");
    let with_standby = TestServer::start_with(&[
        ("CHATKIT__DATABASE__URL", &primary.url()),
        ("CHATKIT__DATABASE__REPLICA_URLS", &standby.url()),
        ("CHATKIT__DATABASE__REPLICA_MAX_WAIT_MS", "200"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ]);
    let alice = token("alice");
    let first = create_thread(&with_standby, &alice, "hello").await;
    first.assert_answered();
    let thread_id = first.thread_id();
    // A brand-new thread is in the list read right after its creation.
    let threads = with_standby.list_threads(&alice, json!({})).await;
    assert_eq!(field_of(&threads, "id"), [thread_id.as_str()]);

    let on_standby = turns_then_reads(&with_standby, &alice, &thread_id, 40).await;
    let metrics = with_standby.metrics().await;
    // Each turn's reads: the thread list, and the items (their ownership checked on the same
    // connection).
    let replica = replica_reads(&metrics, "replica");
    assert!(
        replica >= 80,
        "the reads ran on the standby: {replica}\n{metrics}"
    );
    assert_eq!(replica_reads(&metrics, "behind"), 0, "{metrics}");

    // The same turns and reads on the primary alone, for comparison.
    let primary_only = TestServer::start_with(&[
        ("CHATKIT__DATABASE__URL", &primary.url()),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ]);
    let bob = token("bob");
    let bobs = create_thread(&primary_only, &bob, "hello")
        .await
        .thread_id();
    let on_primary = turns_then_reads(&primary_only, &bob, &bobs, 40).await;
    eprintln!(
        "replica reads: 40 turns each read back at once ({replica} reads on the standby, none behind); items.list p50 {:.2} ms with the standby vs {:.2} ms on the primary alone",
        median_ms(on_standby),
        median_ms(on_primary)
    );

    // A standby that stops replaying: reads wait at most the bound, then use the primary,
    // and still see every write.
    standby.psql("SELECT pg_wal_replay_pause()");
    turns_then_reads(&with_standby, &alice, &thread_id, 3).await;
    let metrics = with_standby.metrics().await;
    assert!(replica_reads(&metrics, "behind") >= 3, "{metrics}");
    standby.psql("SELECT pg_wal_replay_resume()");

    // A standby that is gone: reads go to the primary.
    standby.stop_server();
    turns_then_reads(&with_standby, &alice, &thread_id, 2).await;
    let metrics = with_standby.metrics().await;
    assert!(replica_reads(&metrics, "unreachable") >= 2, "{metrics}");
    assert_eq!(with_standby.log_count("panic"), 0);
}

#[test]
fn replica_urls_are_checked_at_start_up() {
    let (code, _, stderr) = crate::startup::chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__DATABASE__URL", "postgres://u@h/db"),
            (
                "CHATKIT__DATABASE__REPLICA_URLS",
                "postgres://u:hunter2-replica@[bad",
            ),
        ],
        &["check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("database.replica_urls[0] is not a valid"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2-replica"),
        "a password was printed: {stderr}"
    );
    let (code, _, stderr) = crate::startup::chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            ("CHATKIT__DATABASE__REPLICA_URLS", "postgres://u@standby/db"),
        ],
        &["check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("database.replica_urls needs database.url"),
        "{stderr}"
    );
}
