//! The model's streamed answer read as server-sent events, straight from the response body:
//! each event's `data` parsed into [`ModelEvent`]s where it lies, borrowing from its bytes.
//!
//! async-openai's own streaming spawned a task per response, handed every event through an
//! unbounded channel and parsed lines with nom into owned strings (≈ 5% of the server's CPU
//! for an 8-token reply, `benches/results/profile-server-s9.txt`); this reads the same events
//! on the turn's own task, and each event's fields (its type, ids, the model's name) are read
//! from the body's bytes rather than copied out first. `decoder.rs` splits the bytes into
//! events; here `[DONE]` ends the events, and the end of the body is taken if it is already
//! there (else `transport.rs` reads it in the background, so an HTTP/2 stream is not reset).

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};

use super::{ModelError, ModelEvent, ModelStream};

mod decoder;
use decoder::SseDecoder;

/// Turns one event's data into model events (Chat Completions chunks, Responses events).
pub(super) type Parse = fn(&[u8], &mut VecDeque<ModelEvent>) -> serde_json::Result<()>;

/// How long a stream waits for the end of the body once the model sent its finish reason.
const DRAIN_AFTER_FINISH: Duration = Duration::from_secs(1);

/// An event's data read as JSON. Checked as UTF-8 once, then read as a `str`: serde_json's
/// byte reader checks every string it reads again (keys included), which was ≈ 3% of the
/// server's instructions per turn. Invalid UTF-8 gets the byte reader's own error.
pub(super) fn json<'a, T: serde::Deserialize<'a>>(data: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(data) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(data),
    }
}

/// The events of `response`'s event stream, each event's data turned into events by `parse`:
/// each wait for the body bounded by `timeout`; after the finish reason, the rest of the body
/// is read (briefly, nothing more parsed) rather than dropped — an HTTP/2 stream dropped early
/// is reset, and a peer that sees many resets closes the connection every other stream
/// shares. The first error ends the events; a [`ModelEvent::Failed`] is one.
pub(super) fn events(response: reqwest::Response, parse: Parse, timeout: Duration) -> ModelStream {
    let state = Reading {
        body: Box::pin(response.bytes_stream()),
        decoder: SseDecoder::default(),
        parse,
        timeout,
        queued: VecDeque::new(),
        failure: None,
        finished: false,
        done: false,
        ended: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.queued.pop_front() {
                if let ModelEvent::Failed(message) = event {
                    (state.ended, state.failure) = (true, None);
                    state.queued.clear();
                    return Some((Err(ModelError::Protocol(message)), state));
                }
                return Some((Ok(event), state));
            }
            if let Some(error) = state.failure.take() {
                state.ended = true;
                return Some((Err(error), state));
            }
            if state.ended {
                return None;
            }
            let next = if state.done {
                // After `[DONE]` only the end of the body is left: taken when it is already
                // here, else left to `transport::FinishOnDrop` (a provider that keeps the
                // body open must not hold the turn).
                state.body.next().now_or_never()?
            } else {
                let wait = if state.finished {
                    DRAIN_AFTER_FINISH
                } else {
                    state.timeout
                };
                match tokio::time::timeout(wait, state.body.next()).await {
                    Ok(next) => next,
                    Err(_) if state.finished => return None,
                    Err(_) => {
                        state.ended = true;
                        return Some((Err(ModelError::Timeout(state.timeout)), state));
                    }
                }
            };
            state.take(next);
        }
    }))
}

/// Where reading a response's events stands.
struct Reading {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    decoder: SseDecoder,
    parse: Parse,
    timeout: Duration,
    /// Events parsed and not yet handed out.
    queued: VecDeque<ModelEvent>,
    /// The error to hand out once the events before it are.
    failure: Option<ModelError>,
    /// The model sent its finish reason: later events are not parsed.
    finished: bool,
    /// `[DONE]` came: the rest of the body is read, not decoded.
    done: bool,
    /// Nothing is read any more.
    ended: bool,
}

impl Reading {
    /// The body's next piece (or its end, or its failure), decoded.
    fn take(&mut self, next: Option<reqwest::Result<Bytes>>) {
        let bytes = match next {
            Some(Ok(_)) if self.done => return,
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(e)) => {
                // Broken off before the finish: the answer is incomplete.
                if !self.done && !self.finished {
                    self.failure = Some(ModelError::Interrupted(e.to_string()));
                }
                self.ended = true;
                return;
            }
            None => {
                self.ended = true;
                None
            }
        };
        let Reading {
            decoder,
            parse,
            queued,
            failure,
            finished,
            done,
            ..
        } = self;
        let mut on_data = |data: &[u8]| {
            if *done || failure.is_some() {
                return;
            }
            if data == b"[DONE]" {
                *done = true;
                return;
            }
            if *finished {
                return;
            }
            let before = queued.len();
            match parse(data, queued) {
                Ok(()) => {
                    *finished = queued
                        .range(before..)
                        .any(|e| matches!(e, ModelEvent::Finished { .. }));
                }
                Err(e) => *failure = Some(ModelError::Protocol(e.to_string())),
            }
        };
        match bytes {
            Some(bytes) => decoder.push(&bytes, &mut on_data),
            None => decoder.end(&mut on_data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_is_read_as_json_from_text_and_invalid_utf8_is_an_error() {
        let read: serde_json::Value = json("{\"k\":\"déjà 😀\"}".as_bytes()).unwrap();
        assert_eq!(read["k"], "déjà 😀");
        let borrowed: std::collections::HashMap<&str, &str> = json(b"{\"k\":\"v\"}").unwrap();
        assert_eq!(borrowed["k"], "v");
        let invalid = json::<serde_json::Value>(b"{\"k\":\"\xff\"}").unwrap_err();
        assert!(invalid.to_string().contains("unicode"), "{invalid}");
        assert!(json::<serde_json::Value>(b"{\"k\":").is_err());
    }

    /// A response whose body is `parts`, then (`open`) never ends.
    fn response(parts: &[&'static str], open: bool) -> reqwest::Response {
        let parts: Vec<Result<bytes::Bytes, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(bytes::Bytes::from_static(p.as_bytes())))
            .collect();
        let body = futures::stream::iter(parts);
        let body = if open {
            reqwest::Body::wrap_stream(body.chain(futures::stream::pending()))
        } else {
            reqwest::Body::wrap_stream(body)
        };
        http::Response::new(body).into()
    }

    /// The test's events: `{"t": x}` a text delta, `{"finish": r}` a finish, `{"fail": m}` a
    /// failure, anything else JSON no event.
    fn parse(data: &[u8], out: &mut VecDeque<ModelEvent>) -> serde_json::Result<()> {
        let value: serde_json::Value = serde_json::from_slice(data)?;
        let text = |key: &str| value[key].as_str().map(str::to_string);
        if let Some(t) = text("t") {
            out.push_back(ModelEvent::TextDelta(t));
        } else if let Some(reason) = text("finish") {
            out.push_back(ModelEvent::Finished {
                reason,
                model: None,
            });
            out.push_back(ModelEvent::TextDelta("same event".into()));
        } else if let Some(message) = text("fail") {
            out.push_back(ModelEvent::Failed(message));
        }
        Ok(())
    }

    /// The events of a response, as text: `t:<delta>`, `finish`, `error:<message>`.
    async fn read_all(response: reqwest::Response, timeout: Duration) -> Vec<String> {
        let all = super::events(response, parse, timeout)
            .map(|event| match event {
                Ok(ModelEvent::TextDelta(t)) => format!("t:{t}"),
                Ok(ModelEvent::Finished { .. }) => "finish".into(),
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("error:{e}"),
            })
            .collect::<Vec<_>>();
        tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .expect("the events end")
    }

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn done_ends_the_events_even_when_the_body_stays_open() {
        let parts = [
            "data: {\"t\":\"a\"}\n\nda",
            "ta: [DONE]\n\ndata: {\"t\":\"b\"}\n\n",
        ];
        assert_eq!(read_all(response(&parts, true), LONG).await, ["t:a"]);
        assert_eq!(read_all(response(&parts, false), LONG).await, ["t:a"]);
    }

    #[tokio::test]
    async fn a_body_that_ends_without_done_ends_the_events_and_bad_json_is_the_last() {
        let body = ["data: {\"t\":\"a\"}\n\ndata: {\"b\"\n\ndata: {\"t\":\"c\"}\n\n"];
        let got = read_all(response(&body, false), LONG).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], "t:a");
        assert!(
            got[1].starts_with("error:") && got[1].contains("expected"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn after_the_finish_nothing_more_is_parsed_and_an_open_body_is_left_after_a_while() {
        let body = [
            "data: {\"t\":\"a\"}\n\ndata: {\"finish\":\"stop\"}\n\n",
            "data: {\"t\":\"late\"}\n\ndata: {\"b\"\n\n",
        ];
        let started = std::time::Instant::now();
        let got = read_all(response(&body, true), LONG).await;
        assert_eq!(got, ["t:a", "finish", "t:same event"]);
        let waited = started.elapsed();
        assert!(waited >= DRAIN_AFTER_FINISH && waited < LONG, "{waited:?}");

        // `[DONE]` after the finish: the body is left at once, open or not.
        let done = ["data: {\"finish\":\"stop\"}\n\ndata: [DONE]\n\n"];
        let started = std::time::Instant::now();
        let got = read_all(response(&done, true), LONG).await;
        assert_eq!(got, ["finish", "t:same event"]);
        assert!(
            started.elapsed() < DRAIN_AFTER_FINISH / 2,
            "waited for the body's end"
        );
    }

    #[tokio::test]
    async fn a_failed_event_is_the_last_and_an_idle_body_times_out() {
        let body = ["data: {\"t\":\"a\"}\n\ndata: {\"fail\":\"no\"}\n\ndata: {\"t\":\"b\"}\n\n"];
        let got = read_all(response(&body, true), LONG).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[1].starts_with("error:") && got[1].contains("no"),
            "{got:?}"
        );

        let idle = Duration::from_millis(50);
        let got = read_all(response(&["data: {\"t\":\"a\"}\n\n"], true), idle).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].contains("time"), "{got:?}");
        let cut = read_all(broken(&["data: {\"t\":\"a\"}\n\n"]), LONG).await;
        assert_eq!(cut.len(), 2, "{cut:?}");
        assert!(cut[1].starts_with("error:"), "{cut:?}");
        let cut_after_finish = read_all(broken(&["data: {\"finish\":\"stop\"}\n\n"]), LONG).await;
        assert_eq!(cut_after_finish, ["finish", "t:same event"]);
    }

    /// A response whose body is `parts`, then fails.
    fn broken(parts: &[&'static str]) -> reqwest::Response {
        let mut body: Vec<Result<bytes::Bytes, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(bytes::Bytes::from_static(p.as_bytes())))
            .collect();
        body.push(Err(std::io::Error::other("reset")));
        http::Response::new(reqwest::Body::wrap_stream(futures::stream::iter(body))).into()
    }
}
