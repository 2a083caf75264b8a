//! A real high-availability PostgreSQL (issue 17): Patroni with etcd (Debian packages), a
//! primary and a synchronous standby on loopback, the server on a multi-host URL with
//! `target_session_attrs=read-write`, conversations running through: a switchover; every
//! process of the new primary's node killed (failover); that node restarted (it rejoins as the
//! synchronous standby, rewound by Patroni) and a switchover back to it; a stall (strict
//! synchronous mode, the synchronous standby's node frozen with SIGSTOP: every commit waits for
//! a standby that is absent), then the standby back. The same again with the pool going
//! through PgBouncer in transaction mode, repointed at each new primary. Figures per step:
//! seconds without a completed turn, the first turn after the change, acknowledged and lost
//! items (every acknowledged item is checked on the primary after every step).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::pgbouncer::{Backend, PgBouncer};
use crate::harness::*;

const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

struct Node {
    name: String,
    pg_port: u16,
    rest_port: u16,
    dir: PathBuf,
    /// Its Patroni configuration file and log (appended to at each start).
    config: PathBuf,
    log: PathBuf,
    patroni: Option<Child>,
}

impl Node {
    fn rest(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.rest_port)
    }

    /// Starts its Patroni (which starts its PostgreSQL).
    fn start(&mut self, patroni_bin: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = as_postgres(patroni_bin)
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start patroni");
        register_child(child.id());
        self.patroni = Some(child);
    }

    /// The postmaster (from its pid file) and its children; none when it is not running.
    fn postgres_processes(&self) -> Vec<i32> {
        let pid_file = self.dir.join("data/postmaster.pid");
        let Some(postmaster) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        else {
            return Vec::new();
        };
        let mut pids = children_of(postmaster);
        pids.push(postmaster);
        pids
    }

    /// `signal` to Patroni's process group (Patroni is not its PostgreSQL's parent).
    fn signal_patroni(&self, signal: libc::c_int) {
        if let Some(child) = &self.patroni {
            unsafe { libc::kill(-(child.id() as i32), signal) };
        }
    }

    /// SIGKILL to Patroni's process group and to the postmaster and its children.
    fn kill(&mut self) {
        self.signal_patroni(libc::SIGKILL);
        if let Some(child) = &mut self.patroni {
            let _ = child.wait();
        }
        self.patroni = None;
        for pid in self.postgres_processes() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// Freezes the whole node (SIGSTOP): Patroni first, so that it does not see its
    /// PostgreSQL stop, then the postmaster and every child. Connections stay open and nothing
    /// answers, as with a node that hangs.
    fn pause(&self) {
        self.signal_patroni(libc::SIGSTOP);
        for pid in self.postgres_processes() {
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
    }

    /// Lets a paused node run again (SIGCONT), PostgreSQL first.
    fn resume(&self) {
        for pid in self.postgres_processes() {
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        self.signal_patroni(libc::SIGCONT);
    }

    /// Whether its log says Patroni ran `pg_rewind`.
    fn rewound(&self) -> bool {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .contains("running pg_rewind from")
    }
}

/// etcd and two Patroni nodes, stopped and removed on drop.
struct PatroniCluster {
    dir: PathBuf,
    patroni_bin: String,
    etcd: Child,
    nodes: Vec<Node>,
    /// Its REST API calls give up after 2 s (a frozen node accepts connections and never
    /// answers).
    http: reqwest::Client,
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
      use_pg_rewind: true
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
        // etcd runs as `postgres` and creates its data directory in there.
        chown_postgres(&dir);
        let etcd_log = std::fs::File::create(dir.join("etcd.log")).unwrap();
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
            .stdout(etcd_log.try_clone().unwrap())
            .stderr(etcd_log)
            .spawn()
            .expect("start etcd");
        register_child(etcd.id());
        let mut cluster = PatroniCluster {
            dir: dir.clone(),
            patroni_bin,
            etcd,
            nodes: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        };
        for n in 1..=2 {
            let node_dir = dir.join(format!("node{n}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut node = Node {
                name: format!("node{n}"),
                pg_port: free_low_port(),
                rest_port: free_low_port(),
                dir: node_dir,
                config: dir.join(format!("node{n}.yml")),
                log: dir.join(format!("node{n}.log")),
                patroni: None,
            };
            std::fs::write(&node.config, patroni_config(&node, etcd_port)).unwrap();
            chown_postgres(&dir);
            node.start(&cluster.patroni_bin);
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
        for (i, node) in self.nodes.iter().enumerate() {
            if node.patroni.is_none() {
                continue;
            }
            if let Ok(reply) = self.http.get(node.rest("/primary")).send().await {
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
        // Patroni answers once the switchover is done: no 2 s limit here.
        let reply = reqwest::Client::new()
            .post(self.nodes[leader].rest("/switchover"))
            .json(&json!({
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

    /// Patroni's strict synchronous mode on or off (`PATCH /config`, the cluster's dynamic
    /// configuration): on, the primary never stops waiting for a synchronous standby, even
    /// when none is left (`synchronous_standby_names = '*'`).
    async fn set_strict_synchronous_mode(&self, asked: usize, strict: bool) {
        let reply = self
            .http
            .patch(self.nodes[asked].rest("/config"))
            .json(&json!({ "synchronous_mode": true, "synchronous_mode_strict": strict }))
            .send()
            .await
            .expect("Patroni answers");
        let status = reply.status();
        let config: Value = reply.json().await.unwrap_or_default();
        assert!(
            status.is_success() && config["synchronous_mode_strict"] == strict,
            "PATCH /config: {status} {config}"
        );
    }

    /// The cluster's members as node `asked` reports them (none when it does not answer).
    async fn members(&self, asked: usize) -> Vec<Value> {
        let Ok(reply) = self
            .http
            .get(self.nodes[asked].rest("/cluster"))
            .send()
            .await
        else {
            return Vec::new();
        };
        reply
            .json::<Value>()
            .await
            .ok()
            .and_then(|c| c["members"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until `node` streams as the synchronous standby (as the other node's Patroni
    /// reports it); when it first did.
    async fn wait_for_sync_standby(&self, node: usize) -> Instant {
        let name = self.nodes[node].name.clone();
        Patience::within(Duration::from_secs(90))
            .every(Duration::from_millis(250))
            .until(
                &format!("{name} (back) as synchronous standby"),
                async || {
                    self.members(1 - node)
                        .await
                        .iter()
                        .any(|m| m["name"] == name.as_str() && m["role"] == "sync_standby")
                },
            )
            .await;
        Instant::now()
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

    /// `sql` on node `node` through psql (without blocking the conversations running on
    /// this test's runtime): its output, trimmed.
    async fn psql(&self, node: usize, sql: &str) -> String {
        let out = tokio::process::Command::new(format!("{BIN_DIR}/psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.nodes[node].pg_port.to_string(),
            ])
            .args(["-U", "postgres", "-d", "postgres", "-At", "-c", sql])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// How many of `acknowledged` node `node` does not have, byte for byte (one query).
    async fn missing(&self, node: usize, schema: &str, acknowledged: &[Value]) -> usize {
        let rows = self
            .psql(
                node,
                &format!("SELECT thread_id || ' ' || id || ' ' || body FROM {schema}.items"),
            )
            .await;
        // Ids have no spaces, and a body is one line of JSON.
        let stored: HashMap<(&str, &str), &str> = rows
            .lines()
            .filter_map(|row| {
                let mut fields = row.splitn(3, ' ');
                Some(((fields.next()?, fields.next()?), fields.next()?))
            })
            .collect();
        acknowledged
            .iter()
            .filter(|item| {
                let key = (
                    item["thread_id"].as_str().unwrap(),
                    item["id"].as_str().unwrap(),
                );
                let body = stored
                    .get(&key)
                    .and_then(|b| serde_json::from_str::<Value>(b).ok());
                body.as_ref() != Some(*item)
            })
            .count()
    }
}

/// One request of a conversation.
struct Request {
    started: Instant,
    ended: Instant,
    /// 0: no answer within [`HUNG`].
    status: u16,
    /// Its turn ended with a stored answer.
    answered: bool,
    /// A 200 stream that ended with the in-band error.
    cut: bool,
    retry_after: Option<String>,
}

impl Request {
    fn took(&self) -> Duration {
        self.ended.duration_since(self.started)
    }
}

/// A request not answered within this is counted as hanging (and given up).
const HUNG: Duration = Duration::from_secs(30);

/// What the conversations saw: every acknowledged item, and when turns completed.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<Value>,
    completed_at: Vec<Instant>,
    threads: Vec<String>,
    refused: usize,
    /// Requests answered with another status than 200, by status.
    statuses: std::collections::BTreeMap<u16, usize>,
    requests: Vec<Request>,
}

impl Seen {
    /// The requests in flight at some moment between `from` and `to`.
    fn during(&self, from: Instant, to: Instant) -> impl Iterator<Item = &Request> {
        self.requests
            .iter()
            .filter(move |r| r.started < to && r.ended > from)
    }

    /// The first turn completed after `after`, if any.
    fn first_turn_after(&self, after: Instant) -> Option<Instant> {
        self.completed_at.iter().copied().find(|t| *t > after)
    }

    /// The last turn completed up to `at` (`at` itself when none was).
    fn last_turn_before(&self, at: Instant) -> Instant {
        self.completed_at
            .iter()
            .copied()
            .filter(|t| *t <= at)
            .max()
            .unwrap_or(at)
    }
}

/// One user's conversation until `stop`: a thread, then messages; whatever the server
/// acknowledged (each `thread.item.done`) is recorded, and every request with its timing.
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
        let started = Instant::now();
        let reply =
            tokio::time::timeout(HUNG, server.post_raw(Some(&token), body.to_string())).await;
        let Ok(reply) = reply else {
            let mut seen = seen.lock().unwrap();
            seen.refused += 1;
            seen.requests.push(Request {
                started,
                ended: Instant::now(),
                status: 0,
                answered: false,
                cut: false,
                retry_after: None,
            });
            turn += 1;
            continue;
        };
        let status = reply.status;
        let ok = status == 200;
        let retry_after = reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        {
            let stream = Stream::parse(reply);
            let done = stream.done_items();
            let mut seen = seen.lock().unwrap();
            seen.acknowledged.extend(done.iter().cloned());
            let answered = ok
                && done
                    .last()
                    .is_some_and(|i| i["type"] == "assistant_message");
            let ended = Instant::now();
            seen.requests.push(Request {
                started,
                ended,
                status,
                answered,
                cut: ok && stream.last_kind() == "error",
                retry_after,
            });
            if answered {
                seen.completed_at.push(ended);
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

/// How one change went: when it started, when the database was back (the new primary
/// answering as such, or the frozen standby let run again), the first turn completed after
/// that and the last one before the change.
struct Change {
    started: Instant,
    back_at: Instant,
    first_turn: Instant,
    last_turn_before: Instant,
}

impl Change {
    /// Seconds without a completed turn.
    fn outage(&self) -> Duration {
        self.first_turn.duration_since(self.last_turn_before)
    }

    fn back_after(&self) -> Duration {
        self.back_at.duration_since(self.started)
    }

    /// From the database being back to the first turn (0 when a turn came first).
    fn first_turn_after_back(&self) -> Duration {
        self.first_turn.saturating_duration_since(self.back_at)
    }
}

/// Waits for the first turn completed after `after` (30 s at most).
async fn first_turn_after(seen: &Mutex<Seen>, after: Instant, what: &str) -> Instant {
    loop {
        if let Some(t) = seen.lock().unwrap().first_turn_after(after) {
            return t;
        }
        assert!(
            after.elapsed() < Duration::from_secs(30),
            "no turn completed after {what}"
        );
        sleep_ms(50).await;
    }
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
    let first_turn = first_turn_after(seen, promoted_at, "the promotion").await;
    let last_turn_before = seen.lock().unwrap().last_turn_before(started);
    Change {
        started,
        back_at: promoted_at,
        first_turn,
        last_turn_before,
    }
}

/// The figures of one step: its change, and (checked on the primary when the step ended)
/// the items acknowledged so far and how many of them the primary lacks.
struct Step {
    what: &'static str,
    change: Change,
    /// What "back" means for this step.
    back: &'static str,
    acknowledged: usize,
    lost: usize,
    /// Requests in flight during the step (from the change to the first turn after) that were
    /// refused or cut, and the longest of all.
    refused: usize,
    longest: Duration,
    /// More to say.
    detail: String,
}

impl Step {
    /// Checks every item acknowledged so far on `primary` and gathers the step's figures.
    async fn checked(
        what: &'static str,
        back: &'static str,
        change: Change,
        cluster: &PatroniCluster,
        primary: usize,
        schema: &str,
        seen: &Mutex<Seen>,
    ) -> Step {
        let (acknowledged, refused, longest) = {
            let seen = seen.lock().unwrap();
            let during: Vec<&Request> = seen.during(change.started, change.first_turn).collect();
            (
                seen.acknowledged.clone(),
                during.iter().filter(|r| !r.answered).count(),
                during.iter().map(|r| r.took()).max().unwrap_or_default(),
            )
        };
        let lost = cluster.missing(primary, schema, &acknowledged).await;
        Step {
            what,
            change,
            back,
            acknowledged: acknowledged.len(),
            lost,
            refused,
            longest,
            detail: String::new(),
        }
    }

    fn print(&self, label: &str) {
        eprintln!(
            "{label}: figures: {}: outage {:.1} s without a completed turn; {} after {:.1} s, first turn {:.2} s after that; {} items acknowledged so far, {} lost; {} requests refused or cut, the longest {:.1} s{}",
            self.what,
            self.change.outage().as_secs_f64(),
            self.back,
            self.change.back_after().as_secs_f64(),
            self.change.first_turn_after_back().as_secs_f64(),
            self.acknowledged,
            self.lost,
            self.refused,
            self.longest.as_secs_f64(),
            self.detail,
        );
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
async fn switchovers_a_kill_9_failover_and_a_stall_lose_nothing_acknowledged() {
    let _one = ONE_CLUSTER.lock().await;
    let mut cluster = PatroniCluster::start().await;
    let url = cluster.url();
    let mut settings = vec![("CHATKIT__DATABASE__URL", url.as_str())];
    settings.extend_from_slice(&FAILOVER_SETTINGS);
    let server = Arc::new(TestServer::start_with(&settings));
    survive_failovers_and_a_stall(&mut cluster, server, "direct").await;
}

/// The same steps through PgBouncer in transaction mode (issue 17): PgBouncer points at one node;
/// when another becomes the primary, a watcher (what an operator's Patroni `on_role_change`
/// callback would do) points it at the new primary and reloads it. The pool has no prepared
/// statements; the LISTEN connection goes to the cluster directly (multi-host URL).
#[tokio::test]
async fn through_pgbouncer_switchovers_a_failover_and_a_stall_lose_nothing_acknowledged() {
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
    survive_failovers_and_a_stall(&mut cluster, server, "through PgBouncer").await;
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

/// Conversations on `server` (4 users) through four steps, every item acknowledged so far
/// checked on the primary (byte for byte) after each:
/// 1. a planned switchover to the synchronous standby;
/// 2. every process of the new primary's node killed (kill -9): the old primary, back as
///    synchronous standby, takes over (after Patroni's `ttl`);
/// 3. the killed node restarted: it rejoins as the synchronous standby (Patroni rewinds it),
///    and a planned switchover goes back to it;
/// 4. a stall: strict synchronous mode, and the synchronous standby's node frozen (SIGSTOP)
///    until Patroni has given up on it and the primary waits for any standby (`*`), so every
///    commit waits for a standby that is absent; then the node runs again.
///
/// Prints a figures line per step and asserts: nothing acknowledged lost, refusals are 503
/// with `Retry-After` (or the in-band error on a stream), no request hangs, requests during the
/// stall end within 10 s and reads within 4 s, turns come back within 5 s of each new primary
/// (or of the frozen standby running again), every thread takes new messages.
async fn survive_failovers_and_a_stall(
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
    let schema = server.schema.clone();
    let mut steps = Vec::new();

    // 1. A planned switchover to the synchronous standby.
    let first = cluster.primary().await.expect("a primary");
    let other = 1 - first;
    let switched = cluster.switchover(first, other).await;
    let change = measure(cluster, &seen, switched, other).await;
    let step = Step::checked(
        "switchover",
        "new primary",
        change,
        cluster,
        other,
        &schema,
        &seen,
    );
    steps.push(step.await);
    cluster.wait_for_sync_standby(first).await;

    // 2. Every process of the (new) primary's node killed at once: the old primary, back as
    // synchronous standby, takes over again.
    let killed_at = Instant::now();
    cluster.nodes[other].kill();
    let change = measure(cluster, &seen, killed_at, first).await;
    let step = Step::checked(
        "failover (kill -9)",
        "new primary",
        change,
        cluster,
        first,
        &schema,
        &seen,
    );
    steps.push(step.await);

    // 3. The killed node starts again: Patroni rewinds it (it was a primary that crashed) and
    // it follows as the synchronous standby; then a switchover back to it.
    let restarted_at = Instant::now();
    let patroni_bin = cluster.patroni_bin.clone();
    cluster.nodes[other].start(&patroni_bin);
    let rejoined_after = cluster
        .wait_for_sync_standby(other)
        .await
        .duration_since(restarted_at);
    let switched = cluster.switchover(first, other).await;
    let change = measure(cluster, &seen, switched, other).await;
    let mut step = Step::checked(
        "switchover back to the killed node",
        "new primary",
        change,
        cluster,
        other,
        &schema,
        &seen,
    )
    .await;
    step.detail = format!(
        "; it had rejoined as synchronous standby {:.1} s after its restart ({})",
        rejoined_after.as_secs_f64(),
        if cluster.nodes[other].rewound() {
            "pg_rewind"
        } else {
            "no rewind needed"
        }
    );
    steps.push(step);
    cluster.wait_for_sync_standby(first).await;

    // 4. A stall: strict synchronous mode, and the synchronous standby's node frozen. Commits
    // are written on the primary and wait for the standby; when its Patroni no longer answers
    // (its member key expires after `ttl`), the primary's Patroni waits for any standby
    // (`synchronous_standby_names = '*'`) instead of none, as strict mode says.
    let (primary, standby) = (other, first);
    cluster.set_strict_synchronous_mode(primary, true).await;
    let reader = token("ha-user-0");
    let frozen_at = Instant::now();
    cluster.nodes[standby].pause();
    // Reads meanwhile: answered at once or refused fast, never waiting with the commits.
    let mut reads: Vec<(u16, Duration)> = Vec::new();
    let mut given_up_at = None;
    loop {
        let asked = Instant::now();
        let read =
            tokio::time::timeout(HUNG, server.post_op(&reader, "threads.list", json!({}))).await;
        reads.push((read.map_or(0, |r| r.status), asked.elapsed()));
        if given_up_at.is_none()
            && cluster
                .psql(primary, "SHOW synchronous_standby_names")
                .await
                == "*"
        {
            given_up_at = Some(Instant::now());
        }
        if given_up_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(2)) {
            break;
        }
        assert!(
            frozen_at.elapsed() < Duration::from_secs(40),
            "Patroni never gave up on the frozen standby"
        );
        sleep_ms(500).await;
    }
    let given_up_after = given_up_at.unwrap().duration_since(frozen_at);
    let resumed_at = Instant::now();
    cluster.nodes[standby].resume();
    let streaming_at = cluster.wait_for_sync_standby(standby).await;
    let first_turn = first_turn_after(&seen, resumed_at, "the standby's return").await;
    cluster.set_strict_synchronous_mode(primary, false).await;
    let change = Change {
        started: frozen_at,
        back_at: resumed_at,
        first_turn,
        last_turn_before: seen.lock().unwrap().last_turn_before(frozen_at),
    };
    let (frozen_503, frozen_cut, frozen_answered, frozen_took) = {
        let seen = seen.lock().unwrap();
        let during: Vec<&Request> = seen.during(frozen_at, resumed_at).collect();
        (
            during.iter().filter(|r| r.status == 503).count(),
            during.iter().filter(|r| r.cut).count(),
            // Answered while frozen, beyond what was already done when it froze.
            during
                .iter()
                .filter(|r| {
                    r.answered
                        && r.ended > frozen_at + Duration::from_secs(1)
                        && r.ended < resumed_at
                })
                .count(),
            {
                let mut took: Vec<Duration> = during.iter().map(|r| r.took()).collect();
                took.sort();
                took
            },
        )
    };
    let frozen_longest = frozen_took.last().copied().unwrap_or_default();
    let mut step = Step::checked(
        "stall (synchronous standby frozen, strict mode)",
        "the standby running again (SIGCONT)",
        change,
        cluster,
        primary,
        &schema,
        &seen,
    )
    .await;
    let slowest_read = reads.iter().map(|r| r.1).max().unwrap_or_default();
    step.detail = format!(
        "; frozen {:.1} s (Patroni gave up on it after {:.1} s: the primary waited for any standby), listed as synchronous standby again {:.1} s after SIGCONT; of {} requests in flight while frozen: {frozen_503} got 503, {frozen_cut} were cut in-band, {frozen_answered} answered, in {:.1} s (median), {:.1} s at most; {} reads: {} answered, {} refused, the slowest {:.2} s",
        resumed_at.duration_since(frozen_at).as_secs_f64(),
        given_up_after.as_secs_f64(),
        streaming_at.duration_since(resumed_at).as_secs_f64(),
        frozen_took.len(),
        frozen_took
            .get(frozen_took.len() / 2)
            .copied()
            .unwrap_or_default()
            .as_secs_f64(),
        frozen_longest.as_secs_f64(),
        reads.len(),
        reads.iter().filter(|r| r.0 == 200).count(),
        reads.iter().filter(|r| r.0 == 503).count(),
        slowest_read.as_secs_f64(),
    );
    steps.push(step);

    sleep_ms(2_000).await;
    stop.store(true, Ordering::Relaxed);
    for user in users {
        user.await.unwrap();
    }

    // Every acknowledged item is on the last primary, byte for byte.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let lost = cluster.missing(primary, &schema, &seen.acknowledged).await;
    for step in &steps {
        step.print(label);
    }
    let hung = seen.requests.iter().filter(|r| r.status == 0).count();
    let longest = seen.requests.iter().map(Request::took).max();
    eprintln!(
        "{label}: {} turns completed, {} refused or cut (statuses other than 200: {:?}; {hung} requests hung), the longest request {:.1} s; {} items acknowledged, {lost} lost",
        seen.completed_at.len(),
        seen.refused,
        seen.statuses,
        longest.unwrap_or_default().as_secs_f64(),
        seen.acknowledged.len()
    );
    assert_eq!(lost, 0, "acknowledged items missing at the end");
    for step in &steps {
        assert_eq!(
            step.lost, 0,
            "acknowledged items missing after {}",
            step.what
        );
        assert!(
            step.change.first_turn_after_back() < Duration::from_secs(5),
            "{}: first turn {:?} after {}",
            step.what,
            step.change.first_turn_after_back(),
            step.back
        );
    }
    assert_eq!(hung, 0, "requests without an answer within {HUNG:?}");
    assert!(
        seen.statuses
            .keys()
            .all(|status| *status < 500 || *status == 503),
        "refusals are 503 (Retry-After), never another 5xx: {:?}",
        seen.statuses
    );
    assert!(
        seen.requests
            .iter()
            .filter(|r| r.status == 503)
            .all(|r| r.retry_after.as_deref() == Some("1")),
        "every 503 says Retry-After: 1"
    );
    // The stall: commits really waited (nothing answered while frozen), every request in
    // flight was refused or cut within the deadlines (a write waits at most 2 s, a commit
    // queued behind another twice that), reads did not wait with the commits.
    assert_eq!(
        frozen_answered, 0,
        "turns answered while the standby was frozen"
    );
    assert!(
        frozen_503 + frozen_cut >= 4,
        "every conversation refused while frozen: {frozen_503} 503, {frozen_cut} cut"
    );
    assert!(
        frozen_longest < Duration::from_secs(10),
        "a request took {frozen_longest:?} while the standby was frozen"
    );
    assert!(
        reads.iter().all(|r| r.0 == 200 || r.0 == 503),
        "reads while frozen: {reads:?}"
    );
    assert!(
        slowest_read < Duration::from_secs(4),
        "reads while frozen: {reads:?}"
    );
    // Every thread takes new messages.
    for thread in seen.threads {
        let owner = cluster
            .psql(
                primary,
                &format!("SELECT user_id FROM {schema}.threads WHERE id = '{thread}'"),
            )
            .await;
        let reply = add_message(&server, &token(&owner), &thread, "still here?").await;
        reply.assert_answered();
    }
}
