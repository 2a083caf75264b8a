//! `chatkit-load`: drives realistic ChatKit traffic at a server over HTTP and reports what a
//! capacity plan needs: completed turns per second, time to the first text delta, whole-turn
//! latency, errors by kind, and the CPU seconds and peak RSS of the processes under test
//! during the measured window (warm-up excluded).
//!
//! * [`runner`]: virtual users and the four traffic modes, one current-thread runtime per
//!   generator thread.
//! * [`client`]: one turn over HTTP (hyper, pooled, TCP_NODELAY) and its SSE stream.
//! * [`sse`]: event splitting and the cheap classification of ChatKit / Chat Completions events.
//! * [`histogram`]: log-linear latency histogram.
//! * [`procstat`]: CPU and RSS of watched process trees from /proc.
//! * [`jwt`]: HS256 tokens for virtual users (jsonwebtoken).
//! * [`report`]: the human table and the JSON document.

mod client;
mod histogram;
mod jwt;
mod procstat;
mod report;
mod runner;
mod sse;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hyper::header::HeaderValue;
use hyper::Uri;

use crate::client::Protocol;
use crate::procstat::{Group, RssSampler, Watcher};
use crate::runner::{generator_thread, Mode, Plan, Shared, Stats, Stop};

/// Load generator for ChatKit servers (POST /chatkit, SSE answers).
#[derive(Parser, Debug)]
#[command(name = "chatkit-load", version, about, long_about = None)]
struct Cli {
    /// Target: the server's /chatkit URL, or with --raw-openai the mock's
    /// /v1/chat/completions URL. Loopback only.
    #[arg(long)]
    url: String,
    /// HS256 secret of the server; each user gets a token with sub = user-N. Without it no
    /// Authorization header is sent.
    #[arg(long)]
    jwt_secret: Option<String>,
    /// Distinct users (tokens); virtual user i acts as user-(i mod users). 0 = one per virtual user.
    #[arg(long, default_value_t = 0)]
    users: usize,
    /// Closed loop: this many virtual users, each sending its next turn when the last ended
    /// (default 64 unless --rate).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Open loop: turns started per second, whatever the answers do.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// With --rate: exponential inter-arrival times instead of evenly spaced ones.
    #[arg(long)]
    poisson: bool,
    /// Measured window in seconds (after the warm-up). Default 20 unless --turns.
    #[arg(long, conflicts_with = "turns")]
    duration: Option<f64>,
    /// Stop after this many measured turns instead of after a duration.
    #[arg(long)]
    turns: Option<u64>,
    /// Seconds of traffic before the measured window (excluded from every figure).
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Probability that a turn starts a new thread (threads.create) instead of following up
    /// on one of the user's own threads (threads.add_user_message).
    #[arg(long, default_value_t = 0.2)]
    new_thread_ratio: f64,
    /// Probability that a turn is a tool turn ("add task <x>": the model calls add_task).
    #[arg(long, default_value_t = 0.0)]
    tool_ratio: f64,
    /// Share of turns (ChatKit) whose client leaves after the first text delta, so the
    /// server cancels them (protocol §8.8); counted as `cancelled`, not as completed.
    #[arg(long, default_value_t = 0.0)]
    cancel_ratio: f64,
    /// Generator threads (each a current-thread runtime with its own connection pool).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds a turn may take before it counts as a `timeout` error.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Closed loop: milliseconds a virtual user pauses after a failed turn (no busy loop
    /// against a refusing server).
    #[arg(long, default_value_t = 10.0)]
    error_pause_ms: f64,
    /// Talk Chat Completions streaming to an OpenAI-compatible server (the mock alone).
    #[arg(long)]
    raw_openai: bool,
    /// Model name sent with --raw-openai.
    #[arg(long, default_value = "mock-model")]
    model: String,
    /// Hold mode: every virtual user opens one stream (threads.create) at once and holds it to
    /// the end; --concurrency is the number of streams.
    #[arg(long, conflicts_with_all = ["rate", "duration", "turns", "fill_threads"])]
    hold: bool,
    /// Fill mode: give this many threads a --fill-turns history each, --concurrency at a time.
    #[arg(long, conflicts_with_all = ["rate", "duration", "turns"])]
    fill_threads: Option<u64>,
    /// Turns per thread in fill mode (a turn = one user + one assistant message).
    #[arg(long, default_value_t = 10)]
    fill_turns: u32,
    /// Spread the virtual users' first turns over this many seconds.
    #[arg(long, default_value_t = 0.0)]
    ramp: f64,
    /// Threads remembered per virtual user for follow-ups (oldest forgotten).
    #[arg(long, default_value_t = 8)]
    max_threads_per_user: usize,
    /// Text of an ordinary user message.
    #[arg(long, default_value = "Hello! Can you help me plan my week?")]
    message: String,
    /// Pids of the server under test (comma-separated; each with its descendants).
    #[arg(long)]
    server_pid: Option<String>,
    /// More watched processes, LABEL=PID[,PID...] (e.g. db=1234 mock=5678); repeatable.
    #[arg(long = "pid", value_name = "LABEL=PIDS")]
    pids: Vec<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A name for this run in the outputs.
    #[arg(long, default_value = "")]
    label: String,
    /// Seconds to let turns in flight finish after the window before dropping them.
    #[arg(long, default_value_t = 30.0)]
    drain: f64,
    /// Hard limit on the whole run in seconds (hold, fill and --turns modes).
    #[arg(long, default_value_t = 900.0)]
    max_secs: f64,
    /// Seed of the turn-kind choices.
    #[arg(long, default_value_t = 0x00C0_FFEE)]
    seed: u64,
    /// Do not print the table (JSON only).
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("chatkit-load: {msg}");
            ExitCode::from(2)
        }
    }
}

fn is_loopback(uri: &Uri) -> bool {
    matches!(
        uri.host(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    ) || uri.host().is_some_and(|h| h.starts_with("127."))
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let uri: Uri = cli.url.parse().map_err(|e| format!("--url: {e}"))?;
    if uri.scheme_str() != Some("http") || !is_loopback(&uri) {
        return Err("--url must be a loopback http:// URL".into());
    }
    if cli.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let protocol = if cli.raw_openai {
        Protocol::OpenAi
    } else {
        Protocol::ChatKit
    };
    let concurrency = cli.concurrency.unwrap_or(64);
    let (mode, stop) = if cli.hold {
        (
            Mode::Hold {
                streams: concurrency,
            },
            Stop::WorkDone,
        )
    } else if let Some(threads) = cli.fill_threads {
        if protocol == Protocol::OpenAi {
            return Err("--fill-threads needs a ChatKit server".into());
        }
        let m = Mode::Fill {
            threads,
            turns_per_thread: cli.fill_turns.max(1),
            concurrency,
        };
        (m, Stop::WorkDone)
    } else {
        let stop = match (cli.turns, cli.duration) {
            (Some(n), _) => Stop::Turns(n),
            (None, d) => Stop::Duration(Duration::from_secs_f64(d.unwrap_or(20.0))),
        };
        match cli.rate {
            Some(rate) if rate > 0.0 => {
                let users = if cli.users > 0 {
                    cli.users.max(1)
                } else {
                    1000
                };
                (
                    Mode::Open {
                        rate,
                        users,
                        poisson: cli.poisson,
                    },
                    stop,
                )
            }
            Some(_) => return Err("--rate must be positive".into()),
            None => (Mode::Closed { concurrency }, stop),
        }
    };
    let warmup = match mode {
        Mode::Hold { .. } | Mode::Fill { .. } => Duration::ZERO,
        _ => Duration::from_secs_f64(cli.warmup.max(0.0)),
    };

    let mut plan = Plan {
        uri,
        protocol,
        mode,
        stop,
        warmup,
        ramp: Duration::from_secs_f64(cli.ramp.max(0.0)),
        new_thread_ratio: cli.new_thread_ratio.clamp(0.0, 1.0),
        tool_ratio: cli.tool_ratio.clamp(0.0, 1.0),
        cancel_ratio: cli.cancel_ratio.clamp(0.0, 1.0),
        timeout: Duration::from_secs_f64(cli.timeout),
        error_pause: Duration::from_secs_f64(cli.error_pause_ms.max(0.0) / 1000.0),
        threads: cli.threads,
        max_threads_per_user: cli.max_threads_per_user,
        message: cli.message.clone(),
        model: cli.model.clone(),
        seed: cli.seed,
        tokens: Vec::new(),
    };
    let vus = plan.virtual_users();
    if let Some(secret) = &cli.jwt_secret {
        let users = match plan.mode {
            Mode::Open { users, .. } => users,
            _ if cli.users > 0 => cli.users,
            _ => vus,
        };
        plan.tokens = (0..users.max(1))
            .map(|i| {
                let t = jwt::sign_hs256(secret.as_bytes(), &format!("user-{i}"), 86_400);
                HeaderValue::from_str(&format!("Bearer {t}")).expect("token is ASCII")
            })
            .collect();
    }

    let mut groups = Vec::new();
    if let Some(p) = &cli.server_pid {
        groups.push(Group::parse("server", p)?);
    }
    for spec in &cli.pids {
        let (label, pids) = spec
            .split_once('=')
            .ok_or_else(|| format!("--pid {spec:?}: want LABEL=PIDS"))?;
        groups.push(Group::parse(label, pids)?);
    }
    let watcher = Arc::new(Watcher::new(groups));
    if !cli.quiet {
        eprintln!(
            "chatkit-load: {} → {}",
            report::describe(&plan, &cli.label),
            cli.url
        );
    }

    // ---- run ------------------------------------------------------------------------------
    let plan = Arc::new(plan);
    let shared = Arc::new(Shared::new(&plan));
    let sampler = RssSampler::start(watcher.clone());
    let before_all = watcher.snapshot();
    let workers: Vec<_> = (0..plan.threads)
        .map(|i| {
            let (p, s) = (plan.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || generator_thread(i, p, s))
                .expect("spawn generator thread")
        })
        .collect();

    sleep_until(shared.ws);
    let start_snap = if warmup.is_zero() {
        before_all
    } else {
        watcher.snapshot()
    };
    sampler.measuring.store(true, Ordering::Relaxed);
    let deadline = shared.t0 + Duration::from_secs_f64(cli.max_secs);
    let window_end = match shared.we {
        Some(we) => {
            sleep_until(we);
            we
        }
        None => {
            while shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            Instant::now()
        }
    };
    let end_snap = watcher.snapshot();
    sampler.measuring.store(false, Ordering::Relaxed);
    shared.stop_issuing.store(true, Ordering::Relaxed);
    let drain_deadline = Instant::now() + Duration::from_secs_f64(cli.drain.max(0.0));
    while shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let aborted = shared.active.load(Ordering::SeqCst);
    shared.abort.store(true, Ordering::Relaxed);
    let mut stats = Stats::default();
    for w in workers {
        stats.merge(
            w.join()
                .map_err(|_| "a generator thread panicked".to_string())?,
        );
    }
    let rss_peaks = sampler.finish();
    let hwm = watcher.hwm_bytes();

    // In count modes the window ends with the last measured turn.
    let window_end = match (shared.we, stats.last_completion) {
        (None, Some(last)) if last < window_end => last.max(shared.ws),
        _ => window_end,
    };
    let window = window_end.saturating_duration_since(shared.ws);
    let result = report::Report::build(report::Inputs {
        label: &cli.label,
        url: &cli.url,
        plan: &plan,
        shared: &shared,
        stats: &stats,
        window,
        aborted_in_flight: aborted,
        watcher: &watcher,
        start: &start_snap,
        end: &end_snap,
        rss_peaks: &rss_peaks,
        hwm: &hwm,
    });
    if !cli.quiet {
        println!("{}", result.table());
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, result.json().to_string() + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if stats.completed == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
