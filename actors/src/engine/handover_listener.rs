//! The hand-over listener: a dedicated (non-pooled) connection that `LISTEN`s for other
//! instances asking for a thread live here, and passes each request to the registry. Its
//! presence in `pg_stat_activity` is also how other instances know this one is alive
//! (`specs/cluster.md`). It reconnects after a failure and ends when the engine shuts down.

use std::time::Duration;

use actix::Addr;
use futures::StreamExt;
use tokio::sync::watch;

use crate::actors::registry::{HandoverRequested, Registry};
use crate::store::cluster::{listener_application_name, HANDOVER_CHANNEL};
use crate::store::Store;

/// Runs until `stop` turns true.
pub(crate) async fn run(
    store: Store,
    registry: Addr<Registry>,
    instance_id: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut config = store.connection_config().clone();
    // Other instances look for this name to tell whether we are alive.
    config.application_name(listener_application_name(
        store.schema().as_str(),
        &instance_id,
    ));
    while !*stop.borrow() {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let statement = format!("LISTEN {HANDOVER_CHANNEL}");
                // The LISTEN's reply arrives through the connection, which we poll below.
                let mut listen = Box::pin(client.batch_execute(&statement));
                let mut listening = false;
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        result = &mut listen, if !listening => {
                            if let Err(error) = result {
                                tracing::warn!(%error, "LISTEN failed");
                                break;
                            }
                            listening = true;
                        }
                        message = messages.next() => match message {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(note))) => {
                                // `<owner> <thread id>[ <answer>]`: only the owner hands over.
                                if let Some((owner, rest)) = note.payload().split_once(' ') {
                                    if owner == instance_id {
                                        let (thread_id, answer) = match rest.split_once(' ') {
                                            Some((thread_id, answer)) => (thread_id, Some(answer.to_string())),
                                            None => (rest, None),
                                        };
                                        registry.do_send(HandoverRequested { thread_id: thread_id.to_string(), answer });
                                    }
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(error)) => {
                                tracing::warn!(%error, "hand-over listener lost its connection");
                                break;
                            }
                            None => break,
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "hand-over listener cannot connect"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
