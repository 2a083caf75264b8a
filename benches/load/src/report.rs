//! The results: one JSON document (`--json`, the input of compare.sh / memory.sh) and the
//! same figures as a table for people.

use std::time::Duration;

use serde_json::{json, Value};

use crate::histogram::Histogram;
use crate::procstat::{Snapshot, Watcher};
use crate::runner::{Mode, Plan, Shared, Stats, Stop};

pub struct Inputs<'a> {
    pub label: &'a str,
    pub url: &'a str,
    pub plan: &'a Plan,
    pub shared: &'a Shared,
    pub stats: &'a Stats,
    pub window: Duration,
    pub aborted_in_flight: usize,
    pub watcher: &'a Watcher,
    pub start: &'a Snapshot,
    pub end: &'a Snapshot,
    pub rss_peaks: &'a [u64],
    pub hwm: &'a [u64],
}

pub struct Report {
    doc: Value,
}

pub fn describe(plan: &Plan, label: &str) -> String {
    let mode = match &plan.mode {
        Mode::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
        Mode::Open {
            rate,
            users,
            poisson,
        } => {
            format!(
                "open loop, {rate}/s{} over {users} users",
                if *poisson { " (poisson)" } else { "" }
            )
        }
        Mode::Hold { streams } => format!("hold {streams} streams"),
        Mode::Fill {
            threads,
            turns_per_thread,
            concurrency,
        } => {
            format!("fill {threads} threads × {turns_per_thread} turns, concurrency {concurrency}")
        }
    };
    let stop = match plan.stop {
        Stop::Duration(d) => format!("{:.0} s", d.as_secs_f64()),
        Stop::Turns(n) => format!("{n} turns"),
        Stop::WorkDone => "until done".into(),
    };
    let name = if label.is_empty() {
        String::new()
    } else {
        format!("[{label}] ")
    };
    format!(
        "{name}{mode}, {stop} after {:.0} s warm-up, {} thread(s)",
        plan.warmup.as_secs_f64(),
        plan.threads
    )
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 100.0).round() / 100.0
}

fn percentiles(h: &Histogram) -> Value {
    json!({
        "count": h.count(),
        "p50": ms(h.quantile(0.50)),
        "p90": ms(h.quantile(0.90)),
        "p99": ms(h.quantile(0.99)),
        "max": ms(h.max()),
        "mean": (h.mean() / 10.0).round() / 100.0,
    })
}

fn mib(b: u64) -> f64 {
    (b as f64 / 1048576.0 * 10.0).round() / 10.0
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

impl Report {
    pub fn build(i: Inputs<'_>) -> Report {
        let st = i.stats;
        let secs = i.window.as_secs_f64();
        let throughput_turns = match i.plan.stop {
            Stop::Duration(_) => st.completed_in_window,
            _ => st.completed,
        };
        let per_sec = if secs > 0.0 {
            throughput_turns as f64 / secs
        } else {
            0.0
        };
        let mut processes = serde_json::Map::new();
        for (k, g) in i.watcher.groups().iter().enumerate() {
            let cpu = i.end.cpu_secs.get(k).copied().unwrap_or(0.0)
                - i.start.cpu_secs.get(k).copied().unwrap_or(0.0);
            let per_turn_ms = if throughput_turns > 0 {
                cpu * 1000.0 / throughput_turns as f64
            } else {
                0.0
            };
            processes.insert(
                g.label.clone(),
                json!({
                    "pids": g.roots,
                    "alive_at_end": i.end.alive.get(k).copied().unwrap_or(false),
                    "cpu_secs": round(cpu, 3),
                    "cpu_cores": round(if secs > 0.0 { cpu / secs } else { 0.0 }, 3),
                    "cpu_ms_per_turn": round(per_turn_ms, 4),
                    "rss_start_mib": mib(i.start.rss_bytes.get(k).copied().unwrap_or(0)),
                    "rss_end_mib": mib(i.end.rss_bytes.get(k).copied().unwrap_or(0)),
                    "rss_peak_mib": mib(i.rss_peaks.get(k).copied().unwrap_or(0).max(i.end.rss_bytes.get(k).copied().unwrap_or(0))),
                    "vm_hwm_mib": mib(i.hwm.get(k).copied().unwrap_or(0)),
                }),
            );
        }
        let (m0, m1) = (i.start.machine, i.end.machine);
        let (busy0, total0, busy1, total1) = (m0.busy, m0.total, m1.busy, m1.total);
        let share = |part: f64| {
            if total1 > total0 {
                part / (total1 - total0) * 100.0
            } else {
                0.0
            }
        };
        let machine_busy = share(busy1 - busy0);
        // CPU time the hypervisor gave to other VMs while this one wanted it: on a shared
        // host, the runs with much of it are the noisy ones.
        let steal = m1.steal - m0.steal;
        let machine_steal = share(steal);
        // CPU burnt by neither the watched processes nor the generator: other tenants of the
        // machine (builds, tests). Large values mean the figures are noisy.
        let watched: f64 = (0..i.watcher.groups().len())
            .map(|k| {
                i.end.cpu_secs.get(k).copied().unwrap_or(0.0)
                    - i.start.cpu_secs.get(k).copied().unwrap_or(0.0)
            })
            .sum();
        let generator = i.end.self_cpu_secs - i.start.self_cpu_secs;
        let other_cores = if secs > 0.0 {
            ((busy1 - busy0) - steal - watched - generator).max(0.0) / secs
        } else {
            0.0
        };
        let errors: serde_json::Map<String, Value> = st
            .errors
            .iter()
            .map(|(k, (n, sample))| (k.clone(), json!({ "count": n, "sample": sample })))
            .collect();
        let (mode, concurrency, rate) = match &i.plan.mode {
            Mode::Closed { concurrency } => ("concurrency", Some(*concurrency), None),
            Mode::Open { rate, .. } => ("rate", None, Some(*rate)),
            Mode::Hold { streams } => ("hold", Some(*streams), None),
            Mode::Fill { concurrency, .. } => ("fill", Some(*concurrency), None),
        };
        let fill = match &i.plan.mode {
            Mode::Fill {
                threads,
                turns_per_thread,
                ..
            } => json!({
                "threads": threads, "turns_per_thread": turns_per_thread, "threads_filled": st.threads_filled,
            }),
            _ => Value::Null,
        };
        let doc = json!({
            "label": i.label,
            "url": i.url,
            "protocol": match i.plan.protocol { crate::client::Protocol::ChatKit => "chatkit", crate::client::Protocol::OpenAi => "openai" },
            "mode": mode,
            "concurrency": concurrency,
            "rate": rate,
            "virtual_users": i.plan.virtual_users(),
            "users": i.plan.tokens.len(),
            "generator_threads": i.plan.threads,
            "new_thread_ratio": i.plan.new_thread_ratio,
            "tool_ratio": i.plan.tool_ratio,
            "warmup_secs": i.plan.warmup.as_secs_f64(),
            "window_secs": round(secs, 3),
            "turns": {
                "completed": st.completed,
                "completed_in_window": throughput_turns,
                "per_sec": round(per_sec, 2),
                "errors": st.error_count(),
                "created_threads": st.created,
                "followups": st.followups,
                "cancelled": st.cancelled,
                "warmup_completed": st.warmup_completed,
                "warmup_errors": st.warmup_errors,
                "completed_all": i.shared.completed_all.load(std::sync::atomic::Ordering::Relaxed),
                "aborted_in_flight_at_end": i.aborted_in_flight,
                "deltas_per_turn": round(if st.completed > 0 { st.deltas as f64 / st.completed as f64 } else { 0.0 }, 2),
                "bytes_per_turn": st.bytes.checked_div(st.completed).unwrap_or(0),
            },
            "ttft_ms": percentiles(&st.ttft),
            "turn_ms": percentiles(&st.turn),
            "errors": errors,
            "open_streams_peak": i.shared.open.peak(),
            "processes": processes,
            "generator_cpu_secs": round(i.end.self_cpu_secs - i.start.self_cpu_secs, 3),
            "machine_cpu_busy_pct": round(machine_busy, 1),
            "machine_cpu_steal_pct": round(machine_steal, 1),
            "other_cpu_cores": round(other_cores, 2),
            "fill": fill,
        });
        Report { doc }
    }

    pub fn json(&self) -> &Value {
        &self.doc
    }

    pub fn table(&self) -> String {
        use std::fmt::Write;
        let d = &self.doc;
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        let mut s = String::new();
        let t = &d["turns"];
        let _ = writeln!(s, "window               {:.1} s", f(&d["window_secs"]));
        let _ = writeln!(
            s,
            "completed turns      {}  ({:.1} turns/s; {} new threads, {} follow-ups)",
            t["completed_in_window"],
            f(&t["per_sec"]),
            t["created_threads"],
            t["followups"]
        );
        let _ = writeln!(
            s,
            "errors               {}  (warm-up: {} ok, {} errors; dropped in flight at end: {})",
            t["errors"], t["warmup_completed"], t["warmup_errors"], t["aborted_in_flight_at_end"]
        );
        if let Some(errs) = d["errors"].as_object() {
            for (k, v) in errs {
                let _ = writeln!(
                    s,
                    "  {:<30} {:>8}  e.g. {}",
                    k,
                    v["count"],
                    v["sample"].as_str().unwrap_or("")
                );
            }
        }
        let _ = writeln!(
            s,
            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "p50", "p90", "p99", "max", "mean"
        );
        for (name, key) in [("first text delta", "ttft_ms"), ("whole turn", "turn_ms")] {
            let h = &d[key];
            let _ = writeln!(
                s,
                "{:<20} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                name,
                f(&h["p50"]),
                f(&h["p90"]),
                f(&h["p99"]),
                f(&h["max"]),
                f(&h["mean"])
            );
        }
        let _ = writeln!(
            s,
            "deltas per turn      {:.1}   open streams peak {}",
            f(&t["deltas_per_turn"]),
            d["open_streams_peak"]
        );
        if let Some(procs) = d["processes"].as_object() {
            if !procs.is_empty() {
                let _ = writeln!(
                    s,
                    "{:<12} {:>9} {:>7} {:>10} {:>10} {:>10} {:>10}",
                    "process", "cpu s", "cores", "ms/turn", "rss start", "rss peak", "VmHWM"
                );
                for (k, p) in procs {
                    let _ = writeln!(
                        s,
                        "{:<12} {:>9.2} {:>7.2} {:>10.3} {:>9.1}M {:>9.1}M {:>9.1}M{}",
                        k,
                        f(&p["cpu_secs"]),
                        f(&p["cpu_cores"]),
                        f(&p["cpu_ms_per_turn"]),
                        f(&p["rss_start_mib"]),
                        f(&p["rss_peak_mib"]),
                        f(&p["vm_hwm_mib"]),
                        if p["alive_at_end"].as_bool() == Some(false) {
                            "  (gone at end!)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        let _ = write!(
            s,
            "generator cpu        {:.2} s   machine busy {:.0} % (stolen by the host {:.1} %)   other processes {:.2} cores",
            f(&d["generator_cpu_secs"]),
            f(&d["machine_cpu_busy_pct"]),
            f(&d["machine_cpu_steal_pct"]),
            f(&d["other_cpu_cores"])
        );
        if !d["fill"].is_null() {
            let _ = write!(
                s,
                "\nthreads filled       {} of {}",
                d["fill"]["threads_filled"], d["fill"]["threads"]
            );
        }
        s
    }
}
