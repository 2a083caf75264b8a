//! The model's streamed answer read as server-sent events, straight from the response body:
//! each event's `data` deserialized into our lenient chunk types with no copy in between.
//!
//! async-openai's own streaming spawned a task per response, handed every event through an
//! unbounded channel and parsed lines with nom into owned strings (≈ 5% of the server's CPU
//! for an 8-token reply, `benches/results/profile-server-s9.txt`); this reads the same events
//! on the turn's own task. Lines end in LF, CRLF or CR; `data` lines of one event are joined
//! with LF; comments, `id`, `retry` and `event: keepalive` events are skipped; `[DONE]` ends the
//! events, and the end of the body is taken if it is already there (else `transport.rs` reads
//! it in the background, so an HTTP/2 stream is not reset).

use std::pin::Pin;

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use serde::de::DeserializeOwned;

use super::ModelError;

/// The chunks of a streamed answer, in order; the first error ends them.
pub(super) type ChunkStream<C> = Pin<Box<dyn Stream<Item = Result<C, ModelError>> + Send>>;

/// The chunks of `response`'s event stream, each event's data deserialized as `C`.
pub(super) fn chunks<C: DeserializeOwned + Send + 'static>(
    response: reqwest::Response,
) -> ChunkStream<C> {
    let state = Reading {
        body: Box::pin(response.bytes_stream()),
        decoder: SseDecoder::default(),
        done: false,
        ended: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if !state.done {
                if let Some(data) = state.decoder.next_data() {
                    if data == b"[DONE]" {
                        state.done = true;
                        continue;
                    }
                    let chunk = serde_json::from_slice::<C>(&data)
                        .map_err(|e| ModelError::Protocol(e.to_string()));
                    return Some((chunk, state));
                }
            }
            if state.ended {
                return None;
            }
            let next = if state.done {
                // After `[DONE]` only the end of the body is left: taken when it is already
                // here, else left to `transport::FinishOnDrop` (a provider that keeps the
                // body open must not hold the turn).
                match state.body.next().now_or_never() {
                    Some(next) => next,
                    None => return None,
                }
            } else {
                state.body.next().await
            };
            match next {
                Some(Ok(bytes)) if !state.done => state.decoder.push(&bytes),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let failed = !state.done;
                    (state.done, state.ended) = (true, true);
                    if failed {
                        return Some((Err(ModelError::Interrupted(e.to_string())), state));
                    }
                }
                None => {
                    state.ended = true;
                    state.decoder.end();
                }
            }
        }
    }))
}

/// Where reading a response's events stands.
struct Reading {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    decoder: SseDecoder,
    /// `[DONE]` came (or the stream failed): the rest of the body is read, not decoded.
    done: bool,
    /// The body ended.
    ended: bool,
}

/// Incremental event-stream decoder: bytes in, each dispatched event's data out.
#[derive(Default)]
pub(super) struct SseDecoder {
    /// Bytes not yet split into lines.
    pending: Vec<u8>,
    /// The data of the event being read (its `data` lines joined with LF).
    data: Vec<u8>,
    has_data: bool,
    /// The event being read is a keep-alive (`event: keepalive`): dropped when dispatched.
    keepalive: bool,
    /// Events dispatched and not yet taken.
    ready: std::collections::VecDeque<Vec<u8>>,
}

impl SseDecoder {
    /// Feeds the next bytes of the body.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pending.is_empty() {
            let used = self.lines(bytes);
            self.pending.extend_from_slice(&bytes[used..]);
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let used = self.lines(&pending);
        pending.drain(..used);
        self.pending = pending;
    }

    /// Reads the whole lines of `buf`; how many bytes they took.
    fn lines(&mut self, buf: &[u8]) -> usize {
        let mut start = 0;
        while let Some(offset) = buf[start..].iter().position(|&b| b == b'\n' || b == b'\r') {
            let end = start + offset;
            let next = match buf[end] {
                b'\r' if end + 1 == buf.len() => break, // a CR LF may be split between pushes
                b'\r' if buf[end + 1] == b'\n' => end + 2,
                _ => end + 1,
            };
            self.line(&buf[start..end]);
            start = next;
        }
        start
    }

    /// The body ended: the last line and an event without its closing blank line count
    /// (some servers omit the blank line after the last event).
    pub fn end(&mut self) {
        let last = std::mem::take(&mut self.pending);
        let last = last.strip_suffix(b"\r").unwrap_or(&last);
        if !last.is_empty() {
            self.line(last);
        }
        self.dispatch();
    }

    /// The data of the next dispatched event.
    pub fn next_data(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    fn line(&mut self, line: &[u8]) {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return; // a comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.keepalive = value == b"keepalive",
            _ => {} // id, retry and unknown fields
        }
    }

    fn dispatch(&mut self) {
        if self.has_data && !self.keepalive {
            self.ready.push_back(std::mem::take(&mut self.data));
        }
        self.data.clear();
        self.has_data = false;
        self.keepalive = false;
    }
}

#[cfg(test)]
mod tests {
    use super::SseDecoder;
    use futures::StreamExt;

    /// A response whose body is `parts`, then (`open`) never ends.
    fn response(parts: &[&'static str], open: bool) -> reqwest::Response {
        let parts: Vec<reqwest::Result<bytes::Bytes>> = parts
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

    async fn read_all(response: reqwest::Response) -> Vec<Result<serde_json::Value, String>> {
        let stream = super::chunks::<serde_json::Value>(response);
        let all = stream
            .map(|c| c.map_err(|e| e.to_string()))
            .collect::<Vec<_>>();
        tokio::time::timeout(std::time::Duration::from_secs(5), all)
            .await
            .expect("the events end")
    }

    #[tokio::test]
    async fn done_ends_the_chunks_even_when_the_body_stays_open() {
        let parts = ["data: {\"a\":1}\n\nda", "ta: [DONE]\n\n"];
        let chunks = read_all(response(&parts, true)).await;
        assert_eq!(chunks, [Ok(serde_json::json!({"a": 1}))]);
        let chunks = read_all(response(&parts, false)).await;
        assert_eq!(chunks, [Ok(serde_json::json!({"a": 1}))]);
    }

    #[tokio::test]
    async fn a_body_that_ends_without_done_ends_the_chunks_and_bad_json_is_an_error() {
        let chunks = read_all(response(&["data: {\"a\":1}\n\ndata: {\"b\""], false)).await;
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0], Ok(serde_json::json!({"a": 1})));
        assert!(
            chunks[1].as_ref().unwrap_err().contains("unexpected"),
            "{chunks:?}"
        );
    }

    fn events(pushes: &[&[u8]], end: bool) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for bytes in pushes {
            decoder.push(bytes);
            while let Some(data) = decoder.next_data() {
                out.push(String::from_utf8(data).unwrap());
            }
        }
        if end {
            decoder.end();
            while let Some(data) = decoder.next_data() {
                out.push(String::from_utf8(data).unwrap());
            }
        }
        out
    }

    #[test]
    fn each_blank_line_dispatches_the_data_before_it() {
        let body = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        assert_eq!(events(&[body], false), ["{\"a\":1}", "{\"b\":2}", "[DONE]"]);
    }

    #[test]
    fn events_split_anywhere_between_reads_come_out_whole() {
        let body = b"event: response.output_text.delta\r\ndata: {\"x\":\"\xc3\xa9\"}\r\n\r\ndata: 2\r\n\r\n";
        let whole = events(&[body], false);
        assert_eq!(whole, ["{\"x\":\"\u{e9}\"}", "2"]);
        for cut in 1..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(events(&[a, b], false), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(events(&bytes, false), whole);
    }

    #[test]
    fn lf_crlf_and_cr_all_end_lines() {
        assert_eq!(
            events(&[b"data: a\rdata: b\r\rdata: c\n\n"], false),
            ["a\nb", "c"]
        );
        assert_eq!(events(&[b"data: a\r\n\r\n"], false), ["a"]);
        // A CR at the end of a read waits for the next one: a CR LF split in two is one end.
        assert_eq!(events(&[b"data: a\r", b"\n\r\n"], false), ["a"]);
    }

    #[test]
    fn comments_keepalives_and_other_fields_are_skipped() {
        let body = b": ping\n\nevent: keepalive\ndata: {}\n\nid: 7\nretry: 10\nbogus\ndata:x\n\n";
        assert_eq!(events(&[body], false), ["x"]);
    }

    #[test]
    fn data_lines_of_one_event_join_with_lf_and_one_leading_space_goes() {
        assert_eq!(
            events(&[b"data:  two spaces\ndata:\ndata: c\n\n"], false),
            [" two spaces\n\nc"]
        );
    }

    #[test]
    fn an_event_without_its_blank_line_counts_when_the_body_ends() {
        assert_eq!(events(&[b"data: last"], false), Vec::<String>::new());
        assert_eq!(events(&[b"data: last"], true), ["last"]);
        assert_eq!(events(&[b"data: last\r"], true), ["last"]);
        assert_eq!(events(&[b"data: a\n\n"], true), ["a"]);
    }
}
