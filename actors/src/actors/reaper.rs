//! A `threads.create` whose commit timed out was answered with an error (nothing was
//! acknowledged), but its COMMIT may still complete once the database runs again: the client
//! never heard of that thread, and its retry creates another. So the instance that gave up
//! on the commit comes back for it: when the database answers again and the thread exists
//! after all, it is deleted (through its actor, fenced by the lease like any write). The
//! client retrying meanwhile gets a new thread: never a duplicate (specs/persistence.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::env::EngineEnv;
use super::routing::{ToThread, Unacknowledged};
use super::thread::Delete;
use crate::deadline::Deadline;

/// How long the instance keeps coming back for it (a database down longer than this is an
/// outage an operator sees; the thread then stays, with one unanswered message).
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
const FIRST_LOOK: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(5);
/// A missing thread is looked for once more after this (its COMMIT may still be on its way).
const SECOND_LOOK: Duration = Duration::from_secs(5);

/// Comes back for `lost` until the database answers whether it exists; deletes it then.
pub(crate) async fn reap(
    env: Arc<EngineEnv>,
    registry: Recipient<ToThread<Delete>>,
    lost: Unacknowledged,
) {
    let started = Instant::now();
    let mut interval = FIRST_LOOK;
    let mut missing = 0;
    while started.elapsed() < GIVE_UP_AFTER {
        tokio::time::sleep(interval).await;
        match env
            .store
            .load_item(lost.thread_id.as_str(), lost.item_id.as_str())
            .await
        {
            Ok(Some(_)) => {
                let delete = Delete {
                    user_id: lost.user_id.clone(),
                    deadline: Deadline::after(env.store.operation_timeout()),
                };
                let deleted = match registry
                    .send(ToThread::existing(&lost.thread_id, delete))
                    .await
                {
                    Ok(answer) => answer,
                    Err(_) => return, // the registry stopped: the engine shuts down
                };
                match deleted {
                    Ok(()) => {
                        tracing::info!(thread_id = %lost.thread_id, "deleted a thread whose creation was not acknowledged (its commit completed late)");
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(thread_id = %lost.thread_id, %error, "could not delete the unacknowledged thread yet");
                    }
                }
            }
            Ok(None) => {
                missing += 1;
                if missing >= 2 {
                    return;
                }
                interval = SECOND_LOOK;
                continue;
            }
            Err(error) => {
                tracing::debug!(thread_id = %lost.thread_id, %error, "database not back yet");
            }
        }
        interval = (interval * 2).min(MAX_INTERVAL);
    }
    tracing::warn!(thread_id = %lost.thread_id, "gave up on a thread whose creation was not acknowledged; it may remain with one unanswered message");
}
