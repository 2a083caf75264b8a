//! A request's one deadline: counted from its arrival and shared by every wait it makes on
//! the database (pool, connect, lease, load, commit), across the actors it crosses.
//!
//! The deadline travels in the actors' messages; inside a future run with
//! [`Deadline::scope`], every [`crate::store::Store`] operation is cut at what remains of it
//! (or at `database.operation_timeout_secs`, whichever comes first).

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;

use tokio::time::Instant;

/// When a request must have been answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(Instant);

tokio::task_local! {
    static IN_FORCE: Deadline;
}

impl Deadline {
    /// The deadline of a request arriving now, given `budget` to answer.
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    pub fn from_instant(at: Instant) -> Self {
        Deadline(at)
    }

    pub fn instant(self) -> Instant {
        self.0
    }

    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn passed(self) -> bool {
        Instant::now() >= self.0
    }

    /// Runs `work` with this deadline in force for the database operations it makes.
    ///
    /// Not an `async fn`, nor is [`Self::bound`]: an `async fn` keeps its future argument in
    /// its own state and then moves it into the future it awaits, so each such wrapper
    /// doubled the size of a request's future (a turn's start was 35 KB) and copied it on
    /// its first poll.
    pub fn scope<F: Future>(self, work: F) -> impl Future<Output = F::Output> {
        IN_FORCE.scope(self, work)
    }

    /// Runs `work` with this deadline in force, and gives up on it when the deadline passes
    /// (`what` says what was being waited for).
    pub(crate) fn bound<T, E: From<DeadlinePassed>>(
        self,
        what: &'static str,
        work: impl Future<Output = Result<T, E>>,
    ) -> impl Future<Output = Result<T, E>> {
        tokio::time::timeout_at(self.0, self.scope(work)).map(move |timed| match timed {
            Ok(result) => result,
            Err(_) => Err(DeadlinePassed(what).into()),
        })
    }

    /// How long an operation allowed `limit` may take now: the lesser of `limit` and what
    /// remains of the deadline in force, if any.
    pub(crate) fn cap(limit: Duration) -> Duration {
        IN_FORCE
            .try_with(|deadline| deadline.remaining().min(limit))
            .unwrap_or(limit)
    }
}

/// A request's deadline passed while it waited for something (what, in words).
#[derive(Clone, Copy, Debug)]
pub struct DeadlinePassed(pub &'static str);

#[cfg(test)]
mod tests {
    use super::Deadline;
    use std::time::Duration;

    #[tokio::test]
    async fn the_deadline_in_force_caps_an_operation() {
        let limit = Duration::from_secs(5);
        assert_eq!(Deadline::cap(limit), limit, "no deadline in force");
        let deadline = Deadline::after(Duration::from_millis(300));
        let capped = deadline.scope(async { Deadline::cap(limit) }).await;
        assert!(capped <= Duration::from_millis(300), "{capped:?}");
        let long = Deadline::after(Duration::from_secs(60));
        assert_eq!(long.scope(async { Deadline::cap(limit) }).await, limit);
    }

    #[tokio::test]
    async fn a_passed_deadline_leaves_no_time() {
        let deadline = Deadline::after(Duration::ZERO);
        assert!(deadline.passed());
        let capped = deadline
            .scope(async { Deadline::cap(Duration::from_secs(5)) })
            .await;
        assert_eq!(capped, Duration::ZERO);
    }
}
