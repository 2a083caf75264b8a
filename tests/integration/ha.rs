//! A real high-availability PostgreSQL (issue 17): Patroni with etcd (Debian packages), a
//! primary and a synchronous standby on loopback, the server on a multi-host URL with
//! `target_session_attrs=read-write`, conversations running; a switchover, then every process
//! of the primary's node is killed. The same again with the pool going through PgBouncer in
//! transaction mode, repointed at each new primary. Figures: seconds without a completed turn,
//! from the new primary accepting connections to the first turn, acknowledged and lost items.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::pgbouncer::{Backend, PgBouncer};
use crate::harness::*;

const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

struct Node {
    name: String,
    pg_port: u16,
    rest_port: u16,
    dir: PathBuf,
    patroni: Option<Child>,
}

impl Node {
    fn rest(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.rest_port)
    }

    /// SIGKILL to Patroni's process group and to the postmaster and its children.
    fn kill(&mut self) {
        if let Some(child) = &mut self.patroni {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
        self.patroni = None;
        let pid_file = self.dir.join("data/postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        {
            for child in children_of(pid) {
                unsafe { libc::kill(child, libc::SIGKILL) };
            }
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// etcd and two Patroni nodes, stopped and removed on drop.
struct PatroniCluster {
    dir: PathBuf,
    etcd: Child,
    nodes: Vec<Node>,
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        unsafe { libc::kill(-(self.etcd.id() as i32), libc::SIGKILL) };
        let _ = self.etcd.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn patroni_config(node: &Node, etcd_port: u16) -> String {
    let dir = node.dir.display();
    format!(
        r#"scope: chatkit-ha
name: {name}
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  host: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: 100
  initdb:
  - encoding: UTF8
  - locale: C
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {dir}/data
  bin_dir: {BIN_DIR}
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: '{dir}'
"#,
        name = node.name,
        rest = node.rest_port,
        pg = node.pg_port,
    )
}

impl PatroniCluster {
    async fn start() -> PatroniCluster {
        let etcd_bin = ensure_debian_binary(&["/usr/bin/etcd"], "etcd-server");
        let patroni_bin = ensure_debian_binary(&["/usr/bin/patroni"], "patroni");
        let dir = PathBuf::from(format!("/var/tmp/chatkit-it-ha-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let (etcd_port, peer_port) = (free_low_port(), free_low_port());
        let etcd = as_postgres(&etcd_bin)
            .args(["--name", "e0", "--data-dir"])
            .arg(dir.join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!("--initial-cluster=e0=http://127.0.0.1:{peer_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        register_child(etcd.id());
        let mut cluster = PatroniCluster {
            dir: dir.clone(),
            etcd,
            nodes: Vec::new(),
        };
        for n in 1..=2 {
            let node_dir = dir.join(format!("node{n}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut node = Node {
                name: format!("node{n}"),
                pg_port: free_low_port(),
                rest_port: free_low_port(),
                dir: node_dir,
                patroni: None,
            };
            let config = dir.join(format!("node{n}.yml"));
            std::fs::write(&config, patroni_config(&node, etcd_port)).unwrap();
            chown_postgres(&dir);
            let log = std::fs::File::create(dir.join(format!("node{n}.log"))).unwrap();
            let child = as_postgres(&patroni_bin)
                .arg(&config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start patroni");
            register_child(child.id());
            node.patroni = Some(child);
            cluster.nodes.push(node);
        }
        // A leader and a synchronous standby.
        Patience::within(Duration::from_secs(90))
            .every(Duration::from_millis(250))
            .until("a primary and a synchronous standby", async || {
                let members = cluster.members(0).await;
                let has = |role: &str| {
                    members.iter().any(|m| {
                        m["role"] == role
                            && matches!(m["state"].as_str(), Some("running" | "streaming"))
                    })
                };
                has("leader") && has("sync_standby")
            })
            .await;
        cluster
    }

    /// The node whose REST API says it is the primary.
    async fn primary(&self) -> Option<usize> {
        let http = reqwest::Client::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.patroni.is_none() {
                continue;
            }
            if let Ok(reply) = http.get(node.rest("/primary")).send().await {
                if reply.status().is_success() {
                    return Some(i);
                }
            }
        }
        None
    }

    /// A planned switchover from `leader` to `candidate` through Patroni's REST API; when it
    /// was asked for.
    async fn switchover(&self, leader: usize, candidate: usize) -> Instant {
        let asked = Instant::now();
        let reply = reqwest::Client::new()
            .post(self.nodes[leader].rest("/switchover"))
            .json(&serde_json::json!({
                "leader": self.nodes[leader].name,
                "candidate": self.nodes[candidate].name
            }))
            .send()
            .await
            .expect("Patroni answers");
        let status = reply.status();
        assert!(
            status.is_success(),
            "switchover refused: {}",
            reply.text().await.unwrap_or_default()
        );
        asked
    }

    /// The cluster's members as node `asked` reports them (none when it does not answer).
    async fn members(&self, asked: usize) -> Vec<Value> {
        let Ok(reply) = reqwest::get(self.nodes[asked].rest("/cluster")).await else {
            return Vec::new();
        };
        reply
            .json::<Value>()
            .await
            .ok()
            .and_then(|c| c["members"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until `node` streams as the synchronous standby again.
    async fn wait_for_sync_standby(&self, node: usize) {
        let name = self.nodes[node].name.clone();
        Patience::within(Duration::from_secs(90))
            .every(Duration::from_millis(250))
            .until(
                "the old primary is back as synchronous standby",
                async || {
                    self.members(1 - node)
                        .await
                        .iter()
                        .any(|m| m["name"] == name.as_str() && m["role"] == "sync_standby")
                },
            )
            .await;
    }

    /// Both nodes in one URL; only the writable one is used.
    fn url(&self) -> String {
        let ports: Vec<String> = self.nodes.iter().map(|n| n.pg_port.to_string()).collect();
        format!(
            "host={} port={} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2",
            vec!["127.0.0.1"; self.nodes.len()].join(","),
            ports.join(",")
        )
    }

    fn psql(&self, node: usize, sql: &str) -> String {
        let out = Command::new(format!("{BIN_DIR}/psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.nodes[node].pg_port.to_string(),
            ])
            .args(["-U", "postgres", "-d", "postgres", "-At", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// What the conversations saw: every acknowledged item, and when turns completed.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<Value>,
    completed_at: Vec<Instant>,
    threads: Vec<String>,
    refused: usize,
    /// Requests answered with another status than 200, by status.
    statuses: std::collections::BTreeMap<u16, usize>,
}

/// One user's conversation until `stop`: a thread, then messages; whatever the server
/// acknowledged (each `thread.item.done`) is recorded.
async fn converse(
    server: Arc<TestServer>,
    user: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let token = token(&user);
    let mut thread: Option<String> = None;
    let mut turn = 0;
    while !stop.load(Ordering::Relaxed) {
        let body = turn_request(thread.as_deref(), &format!("{user} turn {turn}"));
        let reply = server.post_raw(Some(&token), body.to_string()).await;
        let status = reply.status;
        let ok = status == 200;
        {
            let stream = Stream::parse(reply);
            let done = stream.done_items();
            let mut seen = seen.lock().unwrap();
            seen.acknowledged.extend(done.iter().cloned());
            if ok
                && done
                    .last()
                    .is_some_and(|i| i["type"] == "assistant_message")
            {
                seen.completed_at.push(Instant::now());
                if thread.is_none() {
                    let id = stream.thread_id();
                    seen.threads.push(id.clone());
                    thread = Some(id);
                }
            } else {
                seen.refused += 1;
                if !ok {
                    *seen.statuses.entry(status).or_default() += 1;
                }
                if thread.is_none() && !done.is_empty() {
                    let id = done[0]["thread_id"].as_str().unwrap().to_string();
                    seen.threads.push(id.clone());
                    thread = Some(id);
                }
            }
        }
        turn += 1;
        if !ok {
            sleep_ms(100).await;
        }
    }
}

/// How one change of primary went.
struct Change {
    promoted_after: Duration,
    first_turn_after_promotion: Duration,
    without_turns: Duration,
}

/// Waits for `expected` to be the primary after a change that started at `started`, then for
/// the first turn completed after that.
async fn measure(
    cluster: &PatroniCluster,
    seen: &Mutex<Seen>,
    started: Instant,
    expected: usize,
) -> Change {
    let deadline = started + Duration::from_secs(60);
    let promoted_at = loop {
        if cluster.primary().await == Some(expected) {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "node {expected} never became the primary"
        );
        sleep_ms(100).await;
    };
    let first_turn = loop {
        let done = seen
            .lock()
            .unwrap()
            .completed_at
            .iter()
            .copied()
            .find(|t| *t > promoted_at);
        if let Some(t) = done {
            break t;
        }
        assert!(
            promoted_at.elapsed() < Duration::from_secs(30),
            "no turn completed after the promotion"
        );
        sleep_ms(50).await;
    };
    let last_before = seen
        .lock()
        .unwrap()
        .completed_at
        .iter()
        .copied()
        .filter(|t| *t <= started)
        .max()
        .unwrap_or(started);
    Change {
        promoted_after: promoted_at.duration_since(started),
        first_turn_after_promotion: first_turn.duration_since(promoted_at),
        without_turns: first_turn.duration_since(last_before),
    }
}

/// Two Patroni clusters at once would compete for this machine's cores (and Patroni's timing
/// with them): the tests of this module take turns.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Settings of a server whose database may fail over: deadlines of 2 s, no titles, no rate
/// limit (the conversations send as fast as they are answered).
const FAILOVER_SETTINGS: [(&str, &str); 4] = [
    ("CHATKIT__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
    ("CHATKIT__DATABASE__OPERATION_TIMEOUT_SECS", "2"),
    ("CHATKIT__TITLES__ENABLED", "false"),
    ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0"),
];

#[tokio::test]
async fn switchover_and_killing_the_primary_node_lose_nothing_acknowledged() {
    let _one = ONE_CLUSTER.lock().await;
    let mut cluster = PatroniCluster::start().await;
    let url = cluster.url();
    let mut settings = vec![("CHATKIT__DATABASE__URL", url.as_str())];
    settings.extend_from_slice(&FAILOVER_SETTINGS);
    let server = Arc::new(TestServer::start_with(&settings));
    survive_a_switchover_and_a_failover(&mut cluster, server, "direct").await;
}

/// The same through PgBouncer in transaction mode (issue 17): PgBouncer points at one node;
/// when another becomes the primary, a watcher (what an operator's Patroni `on_role_change`
/// callback would do) points it at the new primary and reloads it. The pool has no prepared
/// statements; the LISTEN connection goes to the cluster directly (multi-host URL).
#[tokio::test]
async fn through_pgbouncer_a_switchover_and_a_failover_lose_nothing_acknowledged() {
    let _one = ONE_CLUSTER.lock().await;
    let mut cluster = PatroniCluster::start().await;
    let schema = new_schema();
    let primary = cluster.primary().await.expect("a primary");
    let bouncer = Arc::new(
        PgBouncer::start(
            Backend {
                host: "127.0.0.1".into(),
                port: cluster.nodes[primary].pg_port,
                user: "postgres".into(),
                dbname: "postgres".into(),
            },
            &schema,
            3,
        )
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(follow_the_primary(
        cluster
            .nodes
            .iter()
            .map(|n| (n.rest("/primary"), n.pg_port))
            .collect(),
        primary,
        bouncer.clone(),
        stop.clone(),
    ));
    let (bouncer_url, listen_url) = (bouncer.url(), cluster.url());
    let mut settings = vec![
        ("CHATKIT__DATABASE__URL", bouncer_url.as_str()),
        ("CHATKIT__DATABASE__LISTEN_URL", listen_url.as_str()),
        ("CHATKIT__DATABASE__PREPARED_STATEMENTS", "false"),
    ];
    settings.extend_from_slice(&FAILOVER_SETTINGS);
    let server = Arc::new(TestServer::start_on_schema(&schema, &settings));
    survive_a_switchover_and_a_failover(&mut cluster, server, "through PgBouncer").await;
    stop.store(true, Ordering::Relaxed);
    let reloads = watcher.await.unwrap();
    eprintln!("through PgBouncer: reloaded within {reloads} s of finding each new primary");
    let pool = bouncer.admin().pool().await;
    assert!(pool.servers <= 3, "{pool:?}");
}

/// Points PgBouncer at whichever node says it is the primary (Patroni's `GET /primary`),
/// checking every 100 ms until `stop`; how long after the new primary first answered each
/// reload came (seconds, one per change).
async fn follow_the_primary(
    nodes: Vec<(String, u16)>,
    mut current: usize,
    bouncer: Arc<PgBouncer>,
    stop: Arc<AtomicBool>,
) -> String {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut delays = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for (i, (primary_url, pg_port)) in nodes.iter().enumerate() {
            if i == current {
                continue;
            }
            let answered = Instant::now();
            let is_primary = http
                .get(primary_url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if is_primary {
                bouncer.point_at("127.0.0.1", *pg_port).await;
                delays.push(format!("{:.2}", answered.elapsed().as_secs_f64()));
                current = i;
            }
        }
        sleep_ms(100).await;
    }
    delays.join(", ")
}

/// Conversations on `server` (4 users) through a planned switchover and then a kill -9 of
/// every process of the new primary's node: prints the figures, and asserts that nothing
/// acknowledged was lost, that turns came back within 5 s of each new primary, and that every
/// thread takes new messages.
async fn survive_a_switchover_and_a_failover(
    cluster: &mut PatroniCluster,
    server: Arc<TestServer>,
    label: &str,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let users: Vec<_> = (0..4)
        .map(|u| {
            tokio::spawn(converse(
                server.clone(),
                format!("ha-user-{u}"),
                stop.clone(),
                seen.clone(),
            ))
        })
        .collect();
    sleep_ms(3_000).await;
    assert!(
        !seen.lock().unwrap().completed_at.is_empty(),
        "turns completed before any change"
    );

    // 1. A planned switchover to the synchronous standby.
    let first = cluster.primary().await.expect("a primary");
    let other = 1 - first;
    let switched = cluster.switchover(first, other).await;
    let switchover = measure(cluster, &seen, switched, other).await;
    cluster.wait_for_sync_standby(first).await;

    // 2. Every process of the (new) primary's node killed at once: the old primary, back as
    // synchronous standby, takes over again.
    let killed_at = Instant::now();
    cluster.nodes[other].kill();
    let failover = measure(cluster, &seen, killed_at, first).await;
    let survivor = first;
    sleep_ms(2_000).await;
    stop.store(true, Ordering::Relaxed);
    for user in users {
        user.await.unwrap();
    }

    // Every acknowledged item is on the new primary, byte for byte.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let schema = &server.schema;
    let mut lost = 0;
    for item in &seen.acknowledged {
        let id = item["id"].as_str().unwrap();
        let thread = item["thread_id"].as_str().unwrap();
        let stored = cluster.psql(
            survivor,
            &format!(
                "SELECT body FROM {schema}.items WHERE thread_id = '{thread}' AND id = '{id}'"
            ),
        );
        match serde_json::from_str::<Value>(&stored) {
            Ok(body) if &body == item => {}
            _ => lost += 1,
        }
    }
    for (what, change) in [
        ("switchover", &switchover),
        ("failover (kill -9)", &failover),
    ] {
        eprintln!(
            "{label}: {what}: new primary after {:.1} s; first turn {:.2} s after it; {:.1} s without a completed turn",
            change.promoted_after.as_secs_f64(),
            change.first_turn_after_promotion.as_secs_f64(),
            change.without_turns.as_secs_f64(),
        );
    }
    eprintln!(
        "{label}: {} turns completed, {} refused or cut (statuses other than 200: {:?}); {} items acknowledged, {lost} lost",
        seen.completed_at.len(),
        seen.refused,
        seen.statuses,
        seen.acknowledged.len()
    );
    assert_eq!(lost, 0, "acknowledged items missing after the failover");
    assert!(
        seen.statuses
            .keys()
            .all(|status| *status < 500 || *status == 503),
        "refusals are 503 (Retry-After), never another 5xx: {:?}",
        seen.statuses
    );
    for change in [&switchover, &failover] {
        assert!(
            change.first_turn_after_promotion < Duration::from_secs(5),
            "first turn {:?} after the new primary took over",
            change.first_turn_after_promotion
        );
    }
    // Every thread takes new messages.
    for thread in seen.threads {
        let owner = cluster.psql(
            survivor,
            &format!("SELECT user_id FROM {schema}.threads WHERE id = '{thread}'"),
        );
        let reply = add_message(&server, &token(&owner), &thread, "still here?").await;
        reply.assert_answered();
    }
}
