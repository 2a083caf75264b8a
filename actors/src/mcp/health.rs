//! Whether each configured tool server answers. A server is up while it answers HTTP at its
//! URL (a `HEAD` without credentials; whatever the status: one that refuses a caller's token is up, and that caller's turns
//! go on without its tools). A failure seen by a turn has the server probed; while it does
//! not answer it is down: turns leave it out without trying it (no turn waits on a dead
//! server), and it is probed again with a growing delay until it answers. Its state is a
//! metric (`chatkit_mcp_server_up`), each change of state one log line, and `/readyz` lists
//! it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::McpServerConfig;
use crate::metrics::METRICS;

/// The first delay before a down server is probed again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The delay before the probe after `failures` failed ones.
pub(crate) fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF)
}

#[derive(Default)]
struct State {
    down: bool,
    /// A probe loop runs for this server.
    probing: bool,
    /// When it last answered a probe: an up server is probed at most once per
    /// [`MIN_PROBE_INTERVAL`] (a server refusing every caller's token fails every turn).
    answered_at: Option<Instant>,
}

/// The least time between two probes of a server that answers.
const MIN_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The tool servers' states, shared by every thread actor.
pub struct ServerHealth {
    states: Mutex<HashMap<String, State>>,
    http: reqwest::Client,
}

impl ServerHealth {
    /// Every configured server, up until shown otherwise.
    pub fn new(servers: &[McpServerConfig]) -> Arc<Self> {
        let states = servers
            .iter()
            .map(|s| {
                METRICS.mcp_server_up.with_label_values(&[&s.name]).set(1);
                (s.name.clone(), State::default())
            })
            .collect();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROBE_TIMEOUT)
            .build()
            .expect("the HTTP client for tool server probes starts");
        Arc::new(ServerHealth {
            states: Mutex::new(states),
            http,
        })
    }

    /// Whether turns leave `server` out (it is down).
    pub fn is_down(&self, server: &str) -> bool {
        self.lock().get(server).is_some_and(|s| s.down)
    }

    /// Each configured server and whether it is up.
    pub fn states(&self) -> Vec<(String, bool)> {
        let mut states: Vec<(String, bool)> = self
            .lock()
            .iter()
            .map(|(name, s)| (name.clone(), !s.down))
            .collect();
        states.sort();
        states
    }

    /// Probes every server once (at start: the metric and `/readyz` tell the truth from the
    /// first moment).
    pub fn probe_all(self: &Arc<Self>, servers: &[McpServerConfig]) {
        for server in servers {
            self.report_failure(server);
        }
    }

    /// A turn could not use `server`: probe it (once at a time) and keep probing while it does
    /// not answer. Must run inside a Tokio runtime.
    pub fn report_failure(self: &Arc<Self>, server: &McpServerConfig) {
        let wait = {
            let mut states = self.lock();
            let state = states.entry(server.name.clone()).or_default();
            if state.probing {
                return;
            }
            state.probing = true;
            // An up server is probed at most once per interval: this probe waits its turn.
            state.answered_at.map_or(Duration::ZERO, |at| {
                (at + MIN_PROBE_INTERVAL).saturating_duration_since(Instant::now())
            })
        };
        tokio::spawn(self.clone().probe_until_up(server.clone(), wait));
    }

    /// Probes `server` after `wait`; marks it down and probes again, with a growing delay, until it
    /// answers.
    async fn probe_until_up(self: Arc<Self>, server: McpServerConfig, wait: Duration) {
        tokio::time::sleep(wait).await;
        let mut failures = 0;
        loop {
            // A HEAD without credentials: any answer, 401 and 405 included, is an answer.
            let answered = self.http.head(&server.url).send().await.is_ok();
            self.set_state(&server.name, !answered);
            if answered {
                return;
            }
            failures += 1;
            tokio::time::sleep_until(Instant::now() + backoff(failures)).await;
        }
    }

    fn set_state(&self, server: &str, down: bool) {
        let mut states = self.lock();
        let state = states.entry(server.to_string()).or_default();
        if state.down != down {
            if down {
                tracing::warn!(%server, "tool server is down; turns go on without its tools");
            } else {
                tracing::info!(%server, "tool server is up again");
            }
        }
        state.down = down;
        state.probing = down;
        if !down {
            state.answered_at = Some(Instant::now());
        }
        METRICS
            .mcp_server_up
            .with_label_values(&[server])
            .set(i64::from(!down));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff, FIRST_BACKOFF, MAX_BACKOFF};
    use std::time::Duration;

    #[test]
    fn the_delay_doubles_up_to_its_bound() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(3), FIRST_BACKOFF * 4);
        assert_eq!(backoff(40), MAX_BACKOFF);
        assert!(backoff(7) <= Duration::from_secs(30));
    }
}
