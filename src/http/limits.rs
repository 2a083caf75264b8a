//! Abuse limits on one instance: per-user request rate (token bucket), per-user concurrent
//! streams, and a global cap on open streams. Refusals are 429 JSON with `Retry-After`.
//! (Across a cluster each instance enforces its own share; see `specs/limits.md`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// `limits.*` settings; 0 disables a limit.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    pub requests_per_minute: u32,
    pub max_streams_per_user: usize,
    pub max_open_streams: usize,
}

/// Why a request was refused, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub reason: &'static str,
    pub retry_after_secs: u64,
}

struct UserState {
    streams: usize,
    tokens: f64,
    refilled: Instant,
}

pub struct Limiter {
    settings: LimitSettings,
    users: Mutex<HashMap<String, UserState>>,
    open_streams: AtomicUsize,
}

/// Entries kept before idle users are forgotten (bounds memory under many users).
const MAX_TRACKED_USERS: usize = 100_000;

impl Limiter {
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        Arc::new(Limiter {
            settings,
            users: Mutex::new(HashMap::new()),
            open_streams: AtomicUsize::new(0),
        })
    }

    fn capacity(&self) -> f64 {
        self.settings.requests_per_minute as f64
    }

    fn with_user<R>(&self, user: &str, f: impl FnOnce(&mut UserState) -> R) -> R {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if users.len() >= MAX_TRACKED_USERS && !users.contains_key(user) {
            let capacity = self.capacity();
            let now = Instant::now();
            users.retain(|_, s| {
                s.streams > 0
                    || (s.tokens + now.duration_since(s.refilled).as_secs_f64() * capacity / 60.0)
                        < capacity
            });
        }
        let capacity = self.capacity();
        let state = users.entry(user.to_string()).or_insert_with(|| UserState {
            streams: 0,
            tokens: capacity,
            refilled: Instant::now(),
        });
        f(state)
    }

    /// One request of `user`; refused when the bucket is empty.
    pub fn check_rate(&self, user: &str) -> Result<(), Limited> {
        if self.settings.requests_per_minute == 0 {
            return Ok(());
        }
        let capacity = self.capacity();
        self.with_user(user, |state| {
            let now = Instant::now();
            let refill = now.duration_since(state.refilled).as_secs_f64() * capacity / 60.0;
            state.tokens = (state.tokens + refill).min(capacity);
            state.refilled = now;
            if state.tokens >= 1.0 {
                state.tokens -= 1.0;
                Ok(())
            } else {
                let wait = (1.0 - state.tokens) * 60.0 / capacity;
                Err(Limited {
                    reason: "too many requests",
                    retry_after_secs: wait.ceil().max(1.0) as u64,
                })
            }
        })
    }

    /// A slot for one open stream of `user`, released when the permit drops.
    pub fn acquire_stream(self: &Arc<Self>, user: &str) -> Result<StreamPermit, Limited> {
        let max_open = self.settings.max_open_streams;
        if max_open > 0 && self.open_streams.fetch_add(1, Ordering::AcqRel) >= max_open {
            self.open_streams.fetch_sub(1, Ordering::AcqRel);
            return Err(Limited {
                reason: "the server has too many open streams",
                retry_after_secs: 1,
            });
        }
        if max_open == 0 {
            self.open_streams.fetch_add(1, Ordering::AcqRel);
        }
        let per_user = self.settings.max_streams_per_user;
        let admitted = self.with_user(user, |state| {
            if per_user > 0 && state.streams >= per_user {
                false
            } else {
                state.streams += 1;
                true
            }
        });
        if !admitted {
            self.open_streams.fetch_sub(1, Ordering::AcqRel);
            return Err(Limited {
                reason: "too many open streams for this user",
                retry_after_secs: 1,
            });
        }
        Ok(StreamPermit {
            limiter: self.clone(),
            user: user.to_string(),
        })
    }

    pub fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::Acquire)
    }
}

/// Held by a streaming response for as long as its body lives.
pub struct StreamPermit {
    limiter: Arc<Limiter>,
    user: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.limiter.open_streams.fetch_sub(1, Ordering::AcqRel);
        self.limiter.with_user(&self.user, |state| {
            state.streams = state.streams.saturating_sub(1)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rpm: u32, per_user: usize, open: usize) -> Arc<Limiter> {
        Limiter::new(LimitSettings {
            requests_per_minute: rpm,
            max_streams_per_user: per_user,
            max_open_streams: open,
        })
    }

    #[test]
    fn rate_is_a_token_bucket_per_user() {
        let l = limiter(3, 0, 0);
        for _ in 0..3 {
            assert!(l.check_rate("a").is_ok());
        }
        let refused = l.check_rate("a").unwrap_err();
        assert_eq!(refused.retry_after_secs, 20);
        assert!(l.check_rate("b").is_ok(), "users are independent");
    }

    #[test]
    fn streams_are_released_when_permits_drop() {
        let l = limiter(0, 2, 3);
        let a1 = l.acquire_stream("a").unwrap();
        let _a2 = l.acquire_stream("a").unwrap();
        assert!(l.acquire_stream("a").is_err(), "per-user cap");
        let _b1 = l.acquire_stream("b").unwrap();
        assert!(l.acquire_stream("c").is_err(), "global cap");
        drop(a1);
        assert_eq!(l.open_streams(), 2);
        assert!(l.acquire_stream("c").is_ok());
    }
}
