//! The traffic: virtual users spread over generator threads, each thread a current-thread tokio
//! runtime with a `LocalSet` and its own connection pool (the actix-web model). One runtime per
//! OS thread needs no work stealing and no cross-thread wakeups, and keeps tokio's features to
//! those the server already builds (no `rt-multi-thread`), so building the generator next to
//! the server compiles nothing twice.
//!
//! Modes (all bounded; the main thread decides the measured window, see `main.rs`):
//! * closed loop (`--concurrency N`): N virtual users, each sends its next turn when the last ended;
//! * open loop (`--rate R`): arrivals at a fixed rate; each takes an idle virtual user, or is
//!   counted as `generator:no_idle_user` when all are busy (the server is not keeping up);
//! * hold (`--hold`): every user sends one `threads.create` at once (spread over `--ramp`) and
//!   holds its stream to the end;
//! * fill (`--fill-threads N --fill-turns K`): users take thread slots from a shared counter
//!   and give each a K-turn history (create + K-1 follow-ups).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::Uri;

use crate::client::{
    build_client, run_turn, HttpClient, OpenStreams, Protocol, TurnErr, TurnOk, TurnSpec,
};
use crate::histogram::Histogram;

#[derive(Clone, Debug)]
pub enum Mode {
    Closed {
        concurrency: usize,
    },
    Open {
        rate: f64,
        users: usize,
        poisson: bool,
    },
    Hold {
        streams: usize,
    },
    Fill {
        threads: u64,
        turns_per_thread: u32,
        concurrency: usize,
    },
}

#[derive(Clone, Copy, Debug)]
pub enum Stop {
    Duration(Duration),
    Turns(u64),
    /// Hold and fill end when their work is done.
    WorkDone,
}

/// Everything the generator threads need to know, fixed for the run.
pub struct Plan {
    pub uri: Uri,
    pub protocol: Protocol,
    pub mode: Mode,
    pub stop: Stop,
    pub warmup: Duration,
    pub ramp: Duration,
    pub new_thread_ratio: f64,
    pub tool_ratio: f64,
    /// Share of turns whose client leaves after the first text delta.
    pub cancel_ratio: f64,
    pub timeout: Duration,
    /// Closed loop: how long a virtual user waits after a failed turn.
    pub error_pause: Duration,
    pub threads: usize,
    pub max_threads_per_user: usize,
    pub message: String,
    pub model: String,
    pub seed: u64,
    /// One token per user; virtual user i is user `i % tokens.len()` (empty: no header).
    pub tokens: Vec<HeaderValue>,
}

impl Plan {
    /// Virtual users in the run.
    pub fn virtual_users(&self) -> usize {
        match self.mode {
            Mode::Closed { concurrency } => concurrency,
            Mode::Open { users, .. } => users,
            Mode::Hold { streams } => streams,
            Mode::Fill { concurrency, .. } => concurrency,
        }
    }
}

/// Shared between generator threads and the main thread.
pub struct Shared {
    pub t0: Instant,
    /// Start of the measured window (`t0 + warmup`).
    pub ws: Instant,
    /// End of the window in duration mode (unused otherwise).
    pub we: Option<Instant>,
    /// Set by the main thread: send no new turns.
    pub stop_issuing: AtomicBool,
    /// Set by the main thread after the drain: drop what is still in flight.
    pub abort: AtomicBool,
    /// Measured turns started (for `--turns`).
    pub measured_issued: AtomicU64,
    /// Virtual-user loops and open-loop turns still running, over all threads.
    pub active: AtomicUsize,
    pub completed_all: AtomicU64,
    pub fill_next: AtomicU64,
    pub open: OpenStreams,
}

impl Shared {
    pub fn new(plan: &Plan) -> Shared {
        let t0 = Instant::now();
        let ws = t0 + plan.warmup;
        let we = match plan.stop {
            Stop::Duration(d) => Some(ws + d),
            _ => None,
        };
        Shared {
            t0,
            ws,
            we,
            stop_issuing: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            measured_issued: AtomicU64::new(0),
            // Each generator thread holds one count until its tasks are spawned, so the main
            // thread never sees zero before the work has started.
            active: AtomicUsize::new(plan.threads),
            completed_all: AtomicU64::new(0),
            fill_next: AtomicU64::new(0),
            open: OpenStreams::default(),
        }
    }
}

/// What one generator thread saw; merged by the main thread.
#[derive(Default)]
pub struct Stats {
    pub ttft: Histogram,
    pub turn: Histogram,
    /// Turns started in the window and completed (any time before the drain ended).
    pub completed: u64,
    /// Turns (any start) completed inside [ws, we] (duration mode's throughput).
    pub completed_in_window: u64,
    pub warmup_completed: u64,
    pub warmup_errors: u64,
    pub errors: BTreeMap<String, (u64, String)>,
    pub deltas: u64,
    pub bytes: u64,
    pub created: u64,
    pub followups: u64,
    /// Turns the client left after their first text delta (not in `completed`).
    pub cancelled: u64,
    pub last_completion: Option<Instant>,
    pub threads_filled: u64,
}

impl Stats {
    pub fn merge(&mut self, o: Stats) {
        self.ttft.merge(&o.ttft);
        self.turn.merge(&o.turn);
        self.completed += o.completed;
        self.cancelled += o.cancelled;
        self.completed_in_window += o.completed_in_window;
        self.warmup_completed += o.warmup_completed;
        self.warmup_errors += o.warmup_errors;
        for (k, (n, sample)) in o.errors {
            let e = self.errors.entry(k).or_insert((0, sample));
            e.0 += n;
        }
        self.deltas += o.deltas;
        self.bytes += o.bytes;
        self.created += o.created;
        self.followups += o.followups;
        self.last_completion = self.last_completion.max(o.last_completion);
        self.threads_filled += o.threads_filled;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    fn error(&mut self, kind: String, detail: String) {
        self.errors.entry(kind).or_insert((0, detail)).0 += 1;
    }
}

/// splitmix64: enough randomness for choosing turn kinds, no dependency.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

struct VirtualUser {
    index: usize,
    token: Option<HeaderValue>,
    /// This user's own threads (newest last), for follow-ups.
    threads: VecDeque<String>,
    rng: Rng,
    sent: u64,
}

/// Which request a turn sends.
enum TurnKind {
    Create,
    FollowUp(String),
    Raw,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn input_json(text: &str) -> String {
    format!(
        r#"{{"content":[{{"type":"input_text","text":{}}}],"attachments":[],"inference_options":{{}}}}"#,
        json_str(text)
    )
}

impl VirtualUser {
    fn text(&mut self, plan: &Plan) -> String {
        self.sent += 1;
        if plan.tool_ratio > 0.0 && self.rng.unit() < plan.tool_ratio {
            format!("add task item {}-{}", self.index, self.sent)
        } else {
            plan.message.clone()
        }
    }

    fn choose(&mut self, plan: &Plan) -> TurnKind {
        if plan.protocol == Protocol::OpenAi {
            return TurnKind::Raw;
        }
        if self.threads.is_empty() || self.rng.unit() < plan.new_thread_ratio {
            TurnKind::Create
        } else {
            let i = self.rng.below(self.threads.len());
            TurnKind::FollowUp(self.threads[i].clone())
        }
    }

    fn body(&mut self, plan: &Plan, kind: &TurnKind) -> Bytes {
        let text = self.text(plan);
        let s = match kind {
            TurnKind::Create => {
                format!(
                    r#"{{"type":"threads.create","params":{{"input":{}}}}}"#,
                    input_json(&text)
                )
            }
            TurnKind::FollowUp(id) => format!(
                r#"{{"type":"threads.add_user_message","params":{{"thread_id":{},"input":{}}}}}"#,
                json_str(id),
                input_json(&text)
            ),
            TurnKind::Raw => format!(
                r#"{{"model":{},"stream":true,"messages":[{{"role":"user","content":{}}}]}}"#,
                json_str(&plan.model),
                json_str(&text)
            ),
        };
        Bytes::from(s)
    }

    /// Applies a turn's outcome to the user's thread list.
    fn learn(&mut self, plan: &Plan, kind: &TurnKind, result: &Result<TurnOk, TurnErr>) {
        match (kind, result) {
            (TurnKind::Create, Ok(ok)) => {
                if let Some(id) = &ok.thread_id {
                    self.threads.push_back(id.clone());
                    while self.threads.len() > plan.max_threads_per_user.max(1) {
                        self.threads.pop_front();
                    }
                }
            }
            (TurnKind::FollowUp(id), Err(e)) if e.forget_thread => self.threads.retain(|t| t != id),
            _ => {}
        }
    }
}

/// Per generator thread: its client, plan, shared state, and the stats it fills.
struct Ctx {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    client: HttpClient,
    stats: RefCell<Stats>,
    /// Tasks of this thread still running.
    local_active: Cell<usize>,
}

impl Ctx {
    /// Runs one turn and records it. Returns the outcome for the caller's bookkeeping.
    async fn turn(
        &self,
        vu: &mut VirtualUser,
        kind: &TurnKind,
        start: Instant,
    ) -> Result<TurnOk, TurnErr> {
        let body = vu.body(&self.plan, kind);
        let leave = self.plan.cancel_ratio > 0.0 && vu.rng.unit() < self.plan.cancel_ratio;
        let turn = TurnSpec {
            body,
            protocol: self.plan.protocol,
            start,
            leave_after_first_delta: leave,
        };
        let fut = run_turn(
            &self.client,
            &self.plan.uri,
            vu.token.as_ref(),
            turn,
            &self.shared.open,
        );
        let result = match tokio::time::timeout(self.plan.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(TurnErr {
                kind: "timeout".into(),
                detail: format!("no complete answer within {:?}", self.plan.timeout),
                forget_thread: false,
            }),
        };
        vu.learn(&self.plan, kind, &result);
        self.record(start, kind, &result);
        result
    }

    fn record(&self, start: Instant, kind: &TurnKind, result: &Result<TurnOk, TurnErr>) {
        let now = Instant::now();
        let shared = &self.shared;
        let measured = start >= shared.ws;
        let mut st = self.stats.borrow_mut();
        match result {
            Ok(ok) => {
                shared.completed_all.fetch_add(1, Ordering::Relaxed);
                if let Some(we) = shared.we {
                    if now >= shared.ws && now <= we {
                        st.completed_in_window += 1;
                    }
                }
                if measured && ok.cancelled {
                    st.cancelled += 1;
                    if let Some(t) = ok.ttft {
                        st.ttft.record(t.as_micros() as u64);
                    }
                } else if measured {
                    st.completed += 1;
                    st.turn.record(ok.total.as_micros() as u64);
                    if let Some(t) = ok.ttft {
                        st.ttft.record(t.as_micros() as u64);
                    }
                    st.deltas += ok.deltas as u64;
                    st.bytes += ok.bytes;
                    match kind {
                        TurnKind::Create => st.created += 1,
                        TurnKind::FollowUp(_) => st.followups += 1,
                        TurnKind::Raw => {}
                    }
                    st.last_completion = st.last_completion.max(Some(now));
                } else {
                    st.warmup_completed += 1;
                }
            }
            Err(e) => {
                if measured {
                    st.error(e.kind.clone(), e.detail.clone());
                    st.last_completion = st.last_completion.max(Some(now));
                } else {
                    st.warmup_errors += 1;
                }
            }
        }
    }

    /// Whether another turn may start now (and, with `--turns`, claims its slot).
    fn may_issue(&self) -> bool {
        if self.shared.stop_issuing.load(Ordering::Relaxed) {
            return false;
        }
        if let Stop::Turns(n) = self.plan.stop {
            if Instant::now() >= self.shared.ws {
                return self.shared.measured_issued.fetch_add(1, Ordering::Relaxed) < n;
            }
        }
        true
    }

    fn task_started(&self) {
        self.local_active.set(self.local_active.get() + 1);
        self.shared.active.fetch_add(1, Ordering::SeqCst);
    }

    fn task_ended(&self) {
        self.local_active.set(self.local_active.get() - 1);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs generator thread `idx` with its share of virtual users until the work is done or the
/// main thread aborts. Returns its stats.
pub fn generator_thread(idx: usize, plan: Arc<Plan>, shared: Arc<Shared>) -> Stats {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let ctx = Rc::new(Ctx {
        client: local.block_on(&rt, async { build_client() }),
        plan: plan.clone(),
        shared: shared.clone(),
        stats: RefCell::new(Stats::default()),
        local_active: Cell::new(0),
    });
    let n = plan.virtual_users();
    let users: Vec<VirtualUser> = (idx..n)
        .step_by(plan.threads)
        .map(|i| VirtualUser {
            index: i,
            token: if plan.tokens.is_empty() {
                None
            } else {
                Some(plan.tokens[i % plan.tokens.len()].clone())
            },
            threads: VecDeque::new(),
            rng: Rng(plan.seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407)),
            sent: 0,
        })
        .collect();

    local.block_on(&rt, async {
        match plan.mode.clone() {
            Mode::Open { rate, poisson, .. } => {
                ctx.task_started();
                let c = ctx.clone();
                tokio::task::spawn_local(async move {
                    open_loop(c.clone(), users, rate, poisson, idx).await;
                    c.task_ended();
                });
            }
            mode => {
                for vu in users {
                    let c = ctx.clone();
                    let offset = if n > 1 {
                        plan.ramp.mul_f64(vu.index as f64 / n as f64)
                    } else {
                        Duration::ZERO
                    };
                    ctx.task_started();
                    let mode = mode.clone();
                    tokio::task::spawn_local(async move {
                        tokio::time::sleep_until((c.shared.t0 + offset).into()).await;
                        match mode {
                            Mode::Fill {
                                threads,
                                turns_per_thread,
                                ..
                            } => fill_user(&c, vu, threads, turns_per_thread).await,
                            Mode::Hold { .. } => {
                                let mut vu = vu;
                                if c.may_issue() {
                                    let _ =
                                        c.turn(&mut vu, &TurnKind::Create, Instant::now()).await;
                                }
                            }
                            _ => closed_user(&c, vu).await,
                        }
                        c.task_ended();
                    });
                }
            }
        }
        shared.active.fetch_sub(1, Ordering::SeqCst); // setup done (see `Shared::new`)
                                                      // Until this thread's tasks are done, or the main thread gives up on them.
        while ctx.local_active.get() > 0 && !shared.abort.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    drop(local); // cancels whatever is left
    Rc::try_unwrap(ctx)
        .map(|c| c.stats.into_inner())
        .unwrap_or_else(|c| c.stats.take())
}

async fn closed_user(ctx: &Ctx, mut vu: VirtualUser) {
    while ctx.may_issue() {
        let kind = vu.choose(&ctx.plan);
        if ctx.turn(&mut vu, &kind, Instant::now()).await.is_err() {
            // A refused or failing server answers at once: pause instead of spinning.
            tokio::time::sleep(ctx.plan.error_pause).await;
        }
    }
}

async fn fill_user(ctx: &Ctx, mut vu: VirtualUser, threads: u64, turns: u32) {
    loop {
        if ctx.shared.stop_issuing.load(Ordering::Relaxed)
            || ctx.shared.fill_next.fetch_add(1, Ordering::Relaxed) >= threads
        {
            return;
        }
        let mut thread_id: Option<String> = None;
        let mut filled = true;
        for k in 0..turns {
            let kind = match &thread_id {
                None if k == 0 => TurnKind::Create,
                Some(id) => TurnKind::FollowUp(id.clone()),
                None => unreachable!(),
            };
            match ctx.turn(&mut vu, &kind, Instant::now()).await {
                Ok(ok) if k == 0 => match ok.thread_id {
                    Some(id) => thread_id = Some(id),
                    None => {
                        filled = false;
                        break;
                    }
                },
                Ok(_) => {}
                Err(_) => {
                    filled = false;
                    break;
                }
            }
        }
        if filled {
            ctx.stats.borrow_mut().threads_filled += 1;
        }
        vu.threads.clear();
    }
}

async fn open_loop(ctx: Rc<Ctx>, users: Vec<VirtualUser>, rate: f64, poisson: bool, idx: usize) {
    let per_thread = rate / ctx.plan.threads as f64;
    let mean = Duration::from_secs_f64(1.0 / per_thread);
    let idle: Rc<RefCell<Vec<VirtualUser>>> = Rc::new(RefCell::new(users));
    let mut rng = Rng(ctx.plan.seed ^ 0x5151 ^ idx as u64);
    // Threads interleave their arrivals instead of firing together.
    let mut next = ctx.shared.t0 + mean.mul_f64(idx as f64 / ctx.plan.threads as f64);
    loop {
        tokio::time::sleep_until(next.into()).await;
        if !ctx.may_issue() {
            break;
        }
        let vu = idle.borrow_mut().pop();
        match vu {
            Some(mut vu) => {
                let (c, idle, start) = (ctx.clone(), idle.clone(), next);
                ctx.task_started();
                tokio::task::spawn_local(async move {
                    let kind = vu.choose(&c.plan);
                    let _ = c.turn(&mut vu, &kind, start).await;
                    idle.borrow_mut().push(vu);
                    c.task_ended();
                });
            }
            None => {
                let err = Err(TurnErr {
                    kind: "generator:no_idle_user".into(),
                    detail: "every virtual user had a turn in flight; raise --users".into(),
                    forget_thread: false,
                });
                ctx.record(next, &TurnKind::Raw, &err);
            }
        }
        next += if poisson {
            mean.mul_f64(-(1.0 - rng.unit()).ln())
        } else {
            mean
        };
    }
}
