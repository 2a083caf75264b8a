//! Progress notifications of a session, routed to the tool call that asked for them.
//!
//! rmcp picks each request's progress token itself (overriding any we set) and tells it only
//! once the request is sent, so a call registers its route right after sending; a notification
//! that arrives before that is kept (a few per session) and handed over on registration.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientRequest, ProgressToken, RequestId, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, ServiceError};
use serde_json::{Map, Value};

use super::ProgressSink;

/// Notifications kept for calls that have not registered yet.
const EARLY_KEPT: usize = 16;

#[derive(Default)]
struct Routes {
    sinks: HashMap<ProgressToken, ProgressSink>,
    early: VecDeque<(ProgressToken, Map<String, Value>)>,
}

/// The progress routes of one session (shared with its notification handler).
#[derive(Clone, Default)]
pub(super) struct ProgressRoutes(Arc<Mutex<Routes>>);

impl ProgressRoutes {
    /// A notification's `_meta` for `token`: to its call, or kept for a moment.
    pub fn deliver(&self, token: ProgressToken, meta: Map<String, Value>) {
        let mut routes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match routes.sinks.get(&token) {
            // A full sink (the client not reading) drops an intermediate state: each is whole.
            Some(sink) => {
                let _ = sink.try_send(meta);
            }
            None => {
                if routes.early.len() == EARLY_KEPT {
                    routes.early.pop_front();
                }
                routes.early.push_back((token, meta));
            }
        }
    }

    /// Routes `token`'s notifications to `sink` until the returned guard is dropped.
    pub fn route(&self, token: ProgressToken, sink: ProgressSink) -> RouteGuard {
        let mut routes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let early = std::mem::take(&mut routes.early);
        for (early_token, meta) in early {
            if early_token == token {
                let _ = sink.try_send(meta);
            } else {
                routes.early.push_back((early_token, meta));
            }
        }
        routes.sinks.insert(token.clone(), sink);
        RouteGuard {
            routes: self.clone(),
            token,
        }
    }
}

/// Removes a call's route when the call ends (or is abandoned).
pub(super) struct RouteGuard {
    routes: ProgressRoutes,
    token: ProgressToken,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        let removed = self
            .routes
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sinks
            .remove(&self.token);
        // The sender is dropped after the lock is released.
        drop(removed);
    }
}

/// `tools/call` with its progress notifications routed to `sink` while it runs; a call
/// abandoned (timed out, the turn cancelled) is cancelled on the server, as rmcp's own
/// `call_tool` does.
pub(super) async fn call_with_progress(
    peer: Peer<RoleClient>,
    params: CallToolRequestParams,
    routes: ProgressRoutes,
    sink: ProgressSink,
) -> Result<CallToolResult, ServiceError> {
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    let handle = peer
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await?;
    let _route = routes.route(handle.progress_token.clone(), sink);
    let mut abandoned = CancelOnDrop {
        peer: peer.clone(),
        id: Some(handle.id.clone()),
    };
    let answer = handle.await_response().await;
    abandoned.id = None;
    match answer? {
        ServerResult::CallToolResult(result) => Ok(result),
        _ => Err(ServiceError::UnexpectedResponse),
    }
}

/// Tells the server a request was abandoned (`notifications/cancelled`) unless disarmed.
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let peer = self.peer.clone();
            tokio::spawn(async move {
                let _ = peer
                    .notify_cancelled(CancelledNotificationParam::new(
                        Some(id),
                        Some("abandoned".into()),
                    ))
                    .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::NumberOrString;
    use serde_json::json;
    use tokio::sync::mpsc;

    fn token(n: i64) -> ProgressToken {
        ProgressToken(NumberOrString::Number(n))
    }

    fn meta(n: u64) -> Map<String, Value> {
        json!({ "n": n }).as_object().unwrap().clone()
    }

    #[test]
    fn early_notifications_reach_the_call_that_registers_later() {
        let routes = ProgressRoutes::default();
        routes.deliver(token(1), meta(0));
        routes.deliver(token(2), meta(9));
        let (sink, mut states) = mpsc::channel(8);
        let guard = routes.route(token(1), sink);
        routes.deliver(token(1), meta(1));
        assert_eq!(states.try_recv().unwrap(), meta(0));
        assert_eq!(states.try_recv().unwrap(), meta(1));
        drop(guard);
        routes.deliver(token(1), meta(2));
        assert!(states.try_recv().is_err(), "no route after the call ended");
        // Another call's early notification is still kept; old ones are bounded.
        for n in 0..40 {
            routes.deliver(token(3), meta(n));
        }
        let (sink, mut other) = mpsc::channel(64);
        let _guard = routes.route(token(3), sink);
        let mut got = 0;
        while other.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, EARLY_KEPT);
    }
}
