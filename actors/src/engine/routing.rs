//! Delivering a message to a thread's actor: the registry routes by thread id (starting the
//! actor if the thread is not live here), and when the actor met had just retired (idle, or
//! handed over) the message is built again and routed again.

use actix::prelude::*;

use crate::actors::registry::{Registry, Route};
use crate::actors::thread::ThreadActor;
use crate::error::EngineError;
use crate::ids::ThreadId;

/// How often a request re-routes when it meets an actor that just retired.
const ROUTE_ATTEMPTS: usize = 4;

/// Sends `make()` to the live actor of `thread_id`; a retired actor (closed mailbox, or an
/// answer of [`EngineError::Retired`]) makes it route again, a few times at most.
pub(crate) async fn deliver<M, T>(
    registry: &Addr<Registry>,
    thread_id: &ThreadId,
    make: impl Fn() -> M,
) -> Result<T, EngineError>
where
    M: Message<Result = Result<T, EngineError>> + Send + 'static,
    T: Send + 'static,
    ThreadActor: Handler<M>,
{
    for _ in 0..ROUTE_ATTEMPTS {
        let addr = registry
            .send(Route {
                thread_id: thread_id.clone(),
            })
            .await?;
        match addr.send(make()).await {
            Ok(Err(EngineError::Retired)) | Err(MailboxError::Closed) => continue,
            Ok(result) => return result,
            Err(MailboxError::Timeout) => {
                return Err(EngineError::Unavailable("thread actor timed out".into()))
            }
        }
    }
    Err(EngineError::Unavailable(
        "thread actor kept retiring".into(),
    ))
}
