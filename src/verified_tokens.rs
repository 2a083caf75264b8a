//! Bearer tokens verified a moment ago, by their exact text. A client sends the same token with
//! every request; verifying it each time (header, signature, claims) was ≈ 2.4% of the server's
//! CPU per turn (`benches/results/profile-server-callers-s9-now.txt`). An entry counts while
//! the token is unexpired by the same rule as the full check (`exp` ≥ now − leeway) and at most
//! [`VERIFIED_FOR`] after its verification, so a key withdrawn from the JWKS stops admitting its
//! tokens within that time; a token that failed is never kept. Bounded: emptied when full.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chatkit_actors::UserId;

/// How long a verification counts at most.
pub const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Most tokens kept (a few hundred bytes each).
const MAX_TOKENS: usize = 10_000;

/// What a verified token said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user_id: UserId,
    pub is_admin: bool,
}

struct Entry {
    verified: Verified,
    /// The token's `exp` (Unix seconds).
    expires: u64,
    at: Instant,
}

pub struct VerifiedTokens {
    leeway_secs: u64,
    entries: Mutex<HashMap<Box<str>, Entry>>,
}

impl VerifiedTokens {
    pub fn new(leeway_secs: u64) -> Self {
        VerifiedTokens {
            leeway_secs,
            entries: Mutex::default(),
        }
    }

    /// What `token` said when it was verified, if that still counts.
    pub fn get(&self, token: &str) -> Option<Verified> {
        self.get_at(token, unix_now(), Instant::now())
    }

    /// Keeps what the verification of `token` (expiring at `expires`, Unix seconds) said.
    pub fn put(&self, token: &str, verified: Verified, expires: u64) {
        self.put_at(token, verified, expires, Instant::now());
    }

    fn get_at(&self, token: &str, now: u64, instant: Instant) -> Option<Verified> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(token)?;
        let counts = entry.expires >= now.saturating_sub(self.leeway_secs)
            && instant.saturating_duration_since(entry.at) < VERIFIED_FOR;
        if counts {
            return Some(entry.verified.clone());
        }
        entries.remove(token);
        None
    }

    fn put_at(&self, token: &str, verified: Verified, expires: u64, at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_TOKENS {
            entries.clear();
        }
        let entry = Entry {
            verified,
            expires,
            at,
        };
        entries.insert(token.into(), entry);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Verified {
        Verified {
            user_id: UserId::parse("alice").unwrap(),
            is_admin: false,
        }
    }

    #[test]
    fn a_token_counts_until_its_exp_with_the_leeway() {
        let tokens = VerifiedTokens::new(30);
        let at = Instant::now();
        tokens.put_at("t", alice(), 1_000, at);
        assert_eq!(tokens.get_at("t", 1_000, at), Some(alice()));
        assert_eq!(tokens.get_at("t", 1_030, at), Some(alice()));
        assert_eq!(tokens.get_at("t", 1_031, at), None);
        // Gone once it stopped counting.
        assert_eq!(tokens.get_at("t", 1_000, at), None);
    }

    #[test]
    fn a_verification_counts_for_a_minute_at_most() {
        let tokens = VerifiedTokens::new(0);
        let at = Instant::now();
        tokens.put_at("t", alice(), u64::MAX, at);
        let later = at + VERIFIED_FOR - Duration::from_millis(1);
        assert_eq!(tokens.get_at("t", 0, later), Some(alice()));
        assert_eq!(tokens.get_at("t", 0, at + VERIFIED_FOR), None);
    }

    #[test]
    fn only_the_exact_token_matches_and_the_cache_stays_bounded() {
        let tokens = VerifiedTokens::new(0);
        let at = Instant::now();
        tokens.put_at("abc", alice(), u64::MAX, at);
        assert_eq!(tokens.get_at("abd", 0, at), None);
        assert_eq!(tokens.get_at("ab", 0, at), None);
        for i in 0..MAX_TOKENS + 5 {
            tokens.put_at(&format!("t{i}"), alice(), u64::MAX, at);
        }
        assert!(tokens.entries.lock().unwrap().len() <= MAX_TOKENS);
    }
}
