//! CPU and memory of the processes under test, read from /proc.
//!
//! A watched group is a list of root pids plus all their live descendants (a Postgres
//! postmaster and its backends, a launcher script and its Python servers). CPU of a group is
//! utime + stime + cutime + cstime summed over its members, so a child that exits and is
//! reaped by a member stays counted. RSS is the sum of members' resident pages, sampled every
//! 200 ms; `VmHWM` (lifetime peak of each root) is read at the end as a cross-check.

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `LABEL=PID[,PID…]`: one group of processes reported together.
#[derive(Clone, Debug)]
pub struct Group {
    pub label: String,
    pub roots: Vec<u32>,
}

impl Group {
    pub fn parse(label: &str, pids: &str) -> Result<Group, String> {
        let roots = pids
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("bad pid {s:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if roots.is_empty() {
            return Err(format!("no pid for {label}"));
        }
        Ok(Group {
            label: label.to_owned(),
            roots,
        })
    }
}

struct ProcEntry {
    ppid: u32,
    ticks: u64,
    rss_pages: u64,
}

/// Fields of /proc/PID/stat after the `(comm)`: state is field 3, so index = field - 3.
fn parse_stat(text: &str) -> Option<ProcEntry> {
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let num = |field: usize| f.get(field - 3).and_then(|s| s.parse::<u64>().ok());
    Some(ProcEntry {
        ppid: num(4)? as u32,
        ticks: num(14)? + num(15)? + num(16)? + num(17)?,
        rss_pages: num(24)?,
    })
}

fn scan_all() -> HashMap<u32, ProcEntry> {
    let mut out = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some(e) = parse_stat(&text) {
                out.insert(pid, e);
            }
        }
    }
    out
}

/// CPU seconds and resident bytes of each group at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub cpu_secs: Vec<f64>,
    pub rss_bytes: Vec<u64>,
    /// Whether any root of the group was alive.
    pub alive: Vec<bool>,
    /// This generator process.
    pub self_cpu_secs: f64,
    /// Whole machine, from /proc/stat: busy, total and steal (time the hypervisor gave this
    /// VM's CPUs to others while it wanted them; counted in busy), in seconds of CPU time.
    pub machine: MachineCpu,
}

pub struct Watcher {
    groups: Vec<Group>,
    tck: f64,
    page: u64,
}

impl Watcher {
    pub fn new(groups: Vec<Group>) -> Watcher {
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Watcher {
            groups,
            tck: if tck > 0 { tck as f64 } else { 100.0 },
            page: if page > 0 { page as u64 } else { 4096 },
        }
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot {
            self_cpu_secs: fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|t| parse_stat(&t))
                .map(|e| e.ticks as f64 / self.tck)
                .unwrap_or(0.0),
            machine: machine_cpu(self.tck),
            ..Snapshot::default()
        };
        if self.groups.is_empty() {
            return snap;
        }
        let all = scan_all();
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, e) in &all {
            children.entry(e.ppid).or_default().push(*pid);
        }
        for g in &self.groups {
            let (mut ticks, mut pages, mut alive) = (0u64, 0u64, false);
            let mut stack: Vec<u32> = g.roots.clone();
            let mut seen = std::collections::HashSet::new();
            while let Some(pid) = stack.pop() {
                if !seen.insert(pid) {
                    continue;
                }
                if let Some(e) = all.get(&pid) {
                    ticks += e.ticks;
                    pages += e.rss_pages;
                    if g.roots.contains(&pid) {
                        alive = true;
                    }
                }
                if let Some(kids) = children.get(&pid) {
                    stack.extend(kids);
                }
            }
            snap.cpu_secs.push(ticks as f64 / self.tck);
            snap.rss_bytes.push(pages * self.page);
            snap.alive.push(alive);
        }
        snap
    }

    /// Sum of `VmHWM` of each group's roots (their lifetime peak resident size), in bytes.
    pub fn hwm_bytes(&self) -> Vec<u64> {
        self.groups
            .iter()
            .map(|g| {
                g.roots
                    .iter()
                    .map(|pid| status_kib(*pid, "VmHWM:") * 1024)
                    .sum()
            })
            .collect()
    }
}

fn status_kib(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_ascii_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
            })
        })
        .unwrap_or(0)
}

/// CPU time of the whole machine since boot, in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    pub busy: f64,
    pub total: f64,
    pub steal: f64,
}

fn machine_cpu(tck: f64) -> MachineCpu {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return MachineCpu::default();
    };
    let Some(line) = text.lines().next() else {
        return MachineCpu::default();
    };
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    MachineCpu {
        busy: (total - idle) as f64 / tck,
        total: total as f64 / tck,
        steal: v.get(7).copied().unwrap_or(0) as f64 / tck,
    }
}

/// Samples RSS in the background; keeps each group's peak while `measuring` is set.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    pub measuring: Arc<AtomicBool>,
    peaks: Arc<Mutex<Vec<u64>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(watcher: Arc<Watcher>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let measuring = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(vec![0u64; watcher.groups().len()]));
        let handle = if watcher.groups().is_empty() {
            None
        } else {
            let (stop, measuring, peaks) = (stop.clone(), measuring.clone(), peaks.clone());
            Some(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if measuring.load(Ordering::Relaxed) {
                        let snap = watcher.snapshot();
                        let mut p = peaks.lock().unwrap();
                        for (peak, rss) in p.iter_mut().zip(snap.rss_bytes) {
                            *peak = (*peak).max(rss);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }))
        };
        RssSampler {
            stop,
            measuring,
            peaks,
            handle,
        }
    }

    pub fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let peaks = self.peaks.lock().unwrap().clone();
        peaks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let line = "1234 (tokio rt (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 11 7 3 2 20 0 4 0 100 2000000 321 18446744073709551615";
        let e = parse_stat(line).unwrap();
        assert_eq!(e.ppid, 1);
        assert_eq!(e.ticks, 11 + 7 + 3 + 2);
        assert_eq!(e.rss_pages, 321);
    }

    #[test]
    fn watches_itself() {
        let w = Watcher::new(vec![Group {
            label: "me".into(),
            roots: vec![std::process::id()],
        }]);
        let s = w.snapshot();
        assert!(s.alive[0]);
        assert!(s.rss_bytes[0] > 0);
    }
}
