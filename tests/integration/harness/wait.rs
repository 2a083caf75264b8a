//! Waiting for something to hold. [`eventually`] polls a check until it holds or its
//! patience runs out, then fails naming what it waited for and what the last check saw. A
//! check is a plain closure or an async one (`async || …`, which may borrow mutably), and
//! returns `bool` or a `Result` (its last `Err` is shown on failure):
//!
//! ```ignore
//! eventually("the actor retires", || server.log_count("retires") >= 1).await;
//! eventually("the service is back", async || list().await.status_is(200)).await;
//! Patience::tries(3).every(Duration::ZERO).until("node-2 answers", async || …).await;
//! Patience::within(Duration::from_millis(500)).until("no turn in flight", …).await;
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// Sleeps `ms` milliseconds (for deliberate timing, not for waiting on a condition).
pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Polls `check` every 50 ms for up to 10 s; panics naming `what` if it never held.
pub async fn eventually<M>(what: &str, check: impl Check<M>) {
    Patience::default().until(what, check).await
}

/// How long and how often [`Patience::until`] checks.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    timeout: Duration,
    interval: Duration,
    tries: usize,
}

impl Default for Patience {
    /// 10 s, every 50 ms.
    fn default() -> Patience {
        Patience {
            timeout: Duration::from_secs(10),
            interval: Duration::from_millis(50),
            tries: usize::MAX,
        }
    }
}

impl Patience {
    /// Checks until `timeout` has passed (every 50 ms).
    pub fn within(timeout: Duration) -> Patience {
        Patience {
            timeout,
            ..Patience::default()
        }
    }

    /// Checks at most `tries` times, however long they take (every 50 ms).
    pub fn tries(tries: usize) -> Patience {
        Patience {
            timeout: Duration::MAX,
            interval: Duration::from_millis(50),
            tries,
        }
    }

    /// The pause between two checks.
    pub fn every(self, interval: Duration) -> Patience {
        Patience { interval, ..self }
    }

    /// Polls `check` until it holds; panics naming `what` and the last outcome otherwise.
    pub async fn until<M>(self, what: &str, mut check: impl Check<M>) {
        let started = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let last = match check.run().await {
                Ok(()) => return,
                Err(last) => last,
            };
            if tries >= self.tries || started.elapsed() >= self.timeout {
                panic!(
                    "gave up waiting for: {what} ({tries} checks in {:.1?}; the last one: {last})",
                    started.elapsed()
                );
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

/// What a check answers: `true`/`Ok` when it holds.
pub trait Outcome {
    fn holds(self) -> Result<(), String>;
}

impl Outcome for bool {
    fn holds(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".into())
        }
    }
}

impl<T, E: std::fmt::Debug> Outcome for Result<T, E> {
    fn holds(self) -> Result<(), String> {
        self.map(|_| ()).map_err(|e| format!("{e:?}"))
    }
}

/// A check [`eventually`] can poll: `FnMut() -> impl Outcome` or `AsyncFnMut() -> impl
/// Outcome`. `M` only tells the two apart (it is inferred).
pub trait Check<M> {
    fn run(&mut self) -> impl Future<Output = Result<(), String>>;
}

/// Marker of plain closures.
pub struct Blocking<R>(PhantomData<R>);
/// Marker of async closures.
pub struct Awaiting<R>(PhantomData<R>);

impl<F: FnMut() -> R, R: Outcome> Check<Blocking<R>> for F {
    async fn run(&mut self) -> Result<(), String> {
        self().holds()
    }
}

impl<F: AsyncFnMut() -> R, R: Outcome> Check<Awaiting<R>> for F {
    async fn run(&mut self) -> Result<(), String> {
        self().await.holds()
    }
}
