//! Behind PgBouncer in transaction mode (issue 17): two instances whose pools go through
//! PgBouncer (`database.prepared_statements = false`, three server connections shared by every
//! pooled connection) and whose LISTEN connections go to PostgreSQL directly
//! (`database.listen_url`). Concurrent conversations moving between the instances (hand-overs
//! notified through PgBouncer), a rename, listings, reads, a delete and a restart: every turn
//! answered, no 5xx, everything announced stored in order, and PgBouncer really shared its
//! server connections. Then the same PgBouncer with prepared statements on: requests fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::harness::pgbouncer::{AdminConsole, Backend, PgBouncer, Pool};
use crate::harness::*;

/// Server connections PgBouncer may open: fewer than the instances' pooled connections.
const SERVER_CONNECTIONS: u32 = 3;

fn through(bouncer: &PgBouncer, prepared: bool) -> Vec<(&'static str, String)> {
    vec![
        ("CHATKIT__DATABASE__URL", bouncer.url()),
        ("CHATKIT__DATABASE__LISTEN_URL", shared().postgres.url()),
        (
            "CHATKIT__DATABASE__PREPARED_STATEMENTS",
            prepared.to_string(),
        ),
        ("CHATKIT__DATABASE__POOL_SIZE", "6".into()),
        ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0".into()),
    ]
}

fn node(schema: &str, name: &str, settings: &[(&'static str, String)]) -> TestServer {
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestServer::start_node(schema, name, &settings)
}

/// A turn whose last announced item is the answer, with no in-band error.
fn answered(stream: &Stream) -> bool {
    let kinds = stream.kinds();
    stream
        .done_items()
        .last()
        .is_some_and(|i| i["type"] == "assistant_message")
        && !kinds.iter().any(|k| k == "error")
}

/// One user's conversation of `turns` turns, turn `n` on instance `(offset + n) % len`:
/// consecutive turns of a thread change instance (a hand-over each). The thread id and the
/// announced items, or the first turn not answered.
async fn conversation(
    addrs: Vec<String>,
    user: String,
    offset: usize,
    turns: usize,
) -> Result<(String, Vec<Value>), String> {
    let http = reqwest::Client::new();
    let token = token(&user);
    let mut thread: Option<String> = None;
    let mut announced = Vec::new();
    for turn in 0..turns {
        let addr = &addrs[(offset + turn) % addrs.len()];
        let body = turn_request(thread.as_deref(), &format!("{user} turn {turn}"));
        let stream = post_stream(&http, &format!("http://{addr}"), &token, &body)
            .await
            .map_err(|e| format!("{user} turn {turn}: {e}"))?;
        if !answered(&stream) {
            return Err(format!(
                "{user} turn {turn}: not answered: {:?}",
                stream.kinds()
            ));
        }
        thread.get_or_insert_with(|| stream.thread_id());
        announced.extend(stream.done_items());
    }
    Ok((thread.unwrap(), announced))
}

/// The bodies of a thread's stored items, in their order.
fn stored(schema: &str, thread_id: &str) -> Vec<Value> {
    shared()
        .postgres
        .psql(&format!(
            "SELECT string_agg(body, E'\\n' ORDER BY created_at, seq) FROM {schema}.items WHERE thread_id = '{thread_id}'"
        ))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The largest pool PgBouncer showed while `run` ran (sampled every 50 ms).
async fn sampling<T>(admin: &AdminConsole, run: impl std::future::Future<Output = T>) -> (T, Pool) {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (admin, stop) = (admin.clone(), stop.clone());
        tokio::spawn(async move {
            let mut most = Pool::default();
            while !stop.load(Ordering::Relaxed) {
                let now = admin.pool().await;
                most.clients = most.clients.max(now.clients);
                most.waiting = most.waiting.max(now.waiting);
                most.servers = most.servers.max(now.servers);
                sleep_ms(50).await;
            }
            most
        })
    };
    let result = run.await;
    stop.store(true, Ordering::Relaxed);
    (result, sampler.await.unwrap())
}

fn stat(stats: &BTreeMap<String, String>, column: &str) -> i64 {
    stats
        .get(column)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("SHOW STATS has no {column}: {stats:?}"))
}

#[tokio::test]
async fn two_instances_through_pgbouncer_in_transaction_mode() {
    let started = Instant::now();
    let schema = new_schema();
    let (socket_dir, pg_port) = shared().postgres.socket();
    let bouncer = PgBouncer::start(
        Backend {
            host: socket_dir.display().to_string(),
            port: pg_port,
            user: chatkit_server::embedded_pg::ROLE.into(),
            dbname: chatkit_server::embedded_pg::DATABASE.into(),
        },
        &schema,
        SERVER_CONNECTIONS,
    )
    .await;
    let admin = bouncer.admin();
    let settings = through(&bouncer, false);
    let mut nodes = [
        node(&schema, "pgb-1", &settings),
        node(&schema, "pgb-2", &settings),
    ];
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();

    // Concurrent conversations, every turn on the other instance than the one before.
    const USERS: usize = 8;
    const TURNS: usize = 5;
    let (threads, busiest) = sampling(&admin, async {
        let runs: Vec<_> = (0..USERS)
            .map(|u| {
                tokio::spawn(conversation(
                    addrs.clone(),
                    format!("pgb-user-{u}"),
                    u,
                    TURNS,
                ))
            })
            .collect();
        let mut threads = Vec::new();
        for run in runs {
            threads.push(run.await.unwrap().expect("every turn answered"));
        }
        threads
    })
    .await;
    for (thread_id, announced) in &threads {
        assert_eq!(&stored(&schema, thread_id), announced, "thread {thread_id}");
    }
    assert!(
        nodes
            .iter()
            .any(|n| n.logs().contains("handing the thread over")),
        "threads moved between the instances (hand-overs notified through PgBouncer)"
    );

    // Reads and thread operations through the pool.
    let (first, first_items) = &threads[0];
    let owner = token("pgb-user-0");
    let renamed = nodes[0]
        .call(
            &owner,
            "threads.update",
            json!({ "thread_id": first, "title": "Through PgBouncer" }),
            Kind::Thread,
        )
        .await;
    assert_eq!(renamed["title"], "Through PgBouncer");
    let listed = nodes[1].list_threads(&owner, json!({})).await;
    assert_eq!(field_of(&listed, "id"), vec![first.as_str()]);
    assert_eq!(listed["data"][0]["title"], "Through PgBouncer");
    let thread = nodes[1].get_thread(&owner, first).await;
    assert_eq!(thread["title"], "Through PgBouncer");
    assert_eq!(&thread["items"]["data"], &json!(first_items));
    let items = nodes[0].items_asc(&owner, first).await;
    assert_eq!(&items["data"], &json!(first_items));
    let (deleted, _) = &threads[1];
    let other = token("pgb-user-1");
    let reply = nodes[1]
        .post_op(&other, "threads.delete", json!({ "thread_id": deleted }))
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "{}"));
    let gone = nodes[0]
        .post_op(&other, "threads.get_by_id", json!({ "thread_id": deleted }))
        .await;
    gone.assert_error(404, "thread_not_found");
    assert_eq!(stored(&schema, deleted), Vec::<Value>::new());

    // A restart (kill -9, then the same settings): its threads continue on either instance.
    nodes[1].restart();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    for (u, (thread_id, announced)) in threads.iter().enumerate().skip(2) {
        let user = format!("pgb-user-{u}");
        let http = reqwest::Client::new();
        let mut announced = announced.clone();
        for (turn, addr) in addrs.iter().enumerate() {
            let body = add_message_request(thread_id, &format!("{user} after the restart {turn}"));
            let stream = post_stream(&http, &format!("http://{addr}"), &token(&user), &body)
                .await
                .expect("answered after the restart");
            assert!(answered(&stream), "{:?}", stream.kinds());
            announced.extend(stream.done_items());
        }
        assert_eq!(stored(&schema, thread_id), announced, "thread {thread_id}");
    }

    // PgBouncer shared its few server connections among more client connections.
    let pool = admin.pool().await;
    let stats = admin.row("SHOW STATS").await;
    let (transactions, queries) = (
        stat(&stats, "total_xact_count"),
        stat(&stats, "total_query_count"),
    );
    let turns = USERS * TURNS + (USERS - 2) * 2;
    eprintln!(
        "pgbouncer: {turns} turns in {:.1} s; at most {} client connections ({} waiting) on at most {} server connections (pool {}); now {} clients, {} servers; {transactions} transactions, {queries} queries",
        started.elapsed().as_secs_f64(),
        busiest.clients,
        busiest.waiting,
        busiest.servers,
        SERVER_CONNECTIONS,
        pool.clients,
        pool.servers,
    );
    assert!(
        busiest.servers <= i64::from(SERVER_CONNECTIONS)
            && pool.servers <= i64::from(SERVER_CONNECTIONS),
        "PgBouncer kept to its pool: {busiest:?}, {pool:?}"
    );
    assert!(
        busiest.clients > busiest.servers,
        "more client connections than server connections: {busiest:?}"
    );
    assert!(transactions > turns as i64, "{transactions} transactions");

    // An instance on another schema than the one PgBouncer's connect_query sets refuses to
    // start (its statements would find no tables, or another deployment's).
    let other = new_schema();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    match TestServer::try_start_node(&other, "pgb-other", &settings) {
        Ok(_) => panic!("started on a schema its pool does not use"),
        Err(log) => assert!(
            log.contains(&format!("use schema {schema} instead of {other}"))
                && log.contains("connect_query"),
            "{log}"
        ),
    }

    // The same PgBouncer with prepared statements on: named statements land on server
    // connections that do not have them, and requests fail.
    let prepared = through(&bouncer, true);
    let prepared: Vec<(&str, &str)> = prepared.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let broken = match TestServer::try_start_node(&schema, "pgb-prepared", &prepared) {
        Ok(server) => server,
        Err(log) => {
            let why = log.lines().find(|l| l.contains("prepared statement"));
            eprintln!("pgbouncer: with prepared statements the instance does not start: {why:?}");
            assert!(
                log.contains("prepared statement"),
                "it names the missing prepared statement: {log}"
            );
            return;
        }
    };
    let runs: Vec<_> = (0..6)
        .map(|u| {
            tokio::spawn(conversation(
                vec![broken.addr.clone()],
                format!("pgb-prepared-{u}"),
                0,
                4,
            ))
        })
        .collect();
    let mut failed = Vec::new();
    for run in runs {
        if let Err(why) = run.await.unwrap() {
            failed.push(why);
        }
    }
    eprintln!(
        "pgbouncer: with prepared statements, {} of 6 conversations failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(!failed.is_empty(), "prepared statements broke something");
    assert!(
        broken.logs().contains("prepared statement"),
        "the server's log names the missing prepared statement"
    );
}
