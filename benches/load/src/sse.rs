//! Server-Sent Events as ChatKit (protocol §1.3) and Chat Completions write them: `data: <json>\n\n`.
//! The splitter hands out each event's `data` payload; the classifiers look at as little of
//! it as they can, so the generator's CPU stays small next to the server's: text deltas are
//! recognised by their leading bytes, and only the two or three frames per turn that carry
//! something we need (`thread.created`, `thread.item.done`, `error`) are parsed as JSON.

use bytes::{Buf, BytesMut};

/// Accumulates body chunks and yields complete events.
#[derive(Default)]
pub struct EventSplitter {
    buf: BytesMut,
    /// Where to resume looking for the blank line (bytes before it hold no terminator).
    scanned: usize,
}

impl EventSplitter {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The `data` payload of the next complete event (several `data:` lines joined by `\n`,
    /// as the SSE spec says), or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<Vec<u8>> {
        loop {
            let hay = &self.buf[self.scanned..];
            let Some(pos) = find_blank_line(hay) else {
                self.scanned = self.buf.len().saturating_sub(3);
                return None;
            };
            let (end, sep) = (self.scanned + pos.0, pos.1);
            let block = self.buf.split_to(end);
            self.buf.advance(sep);
            self.scanned = 0;
            let mut data: Vec<u8> = Vec::new();
            let mut any = false;
            for line in block[..].split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(rest) = line.strip_prefix(b"data:") {
                    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                    if any {
                        data.push(b'\n');
                    }
                    data.extend_from_slice(rest);
                    any = true;
                }
            }
            if any {
                return Some(data);
            }
            // A block with no data line (comment, keep-alive): skip it.
        }
    }

    /// Bytes left over after the last complete event (a truncated stream).
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

/// Offset of the first `\n\n` (or `\r\n\r\n`) and its length.
fn find_blank_line(hay: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < hay.len() {
        if hay[i] == b'\n' {
            if hay[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if hay[i + 1] == b'\r' && hay.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// What a ChatKit stream event means to the generator.
#[derive(Debug, PartialEq)]
pub enum ChatKitEvent {
    TextDelta,
    ThreadCreated {
        thread_id: String,
    },
    AssistantDone,
    /// A `client_tool_call` item ended the turn (the browser would run the tool).
    ClientToolCall,
    OtherItemDone,
    Error {
        code: String,
    },
    Other,
}

const UPDATED_PREFIX: &[u8] = br#"{"type":"thread.item.updated""#;
const TEXT_DELTA: &[u8] = br#""assistant_message.content_part.text_delta""#;

pub fn classify_chatkit(data: &[u8]) -> ChatKitEvent {
    // The hot path: text deltas, recognised without parsing.
    if data.starts_with(UPDATED_PREFIX) {
        return if contains(data, TEXT_DELTA) {
            ChatKitEvent::TextDelta
        } else {
            ChatKitEvent::Other
        };
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return ChatKitEvent::Error {
            code: "unparsable_event".into(),
        };
    };
    let str_at = |path: &[&str]| -> Option<&str> {
        let mut cur = &v;
        for key in path {
            cur = cur.get(*key)?;
        }
        cur.as_str()
    };
    match str_at(&["type"]) {
        Some("thread.item.updated") => match str_at(&["update", "type"]) {
            Some("assistant_message.content_part.text_delta") => ChatKitEvent::TextDelta,
            _ => ChatKitEvent::Other,
        },
        Some("thread.created") => ChatKitEvent::ThreadCreated {
            thread_id: str_at(&["thread", "id"]).unwrap_or_default().to_owned(),
        },
        Some("thread.item.done") => match str_at(&["item", "type"]) {
            Some("assistant_message") => ChatKitEvent::AssistantDone,
            Some("client_tool_call") => ChatKitEvent::ClientToolCall,
            _ => ChatKitEvent::OtherItemDone,
        },
        Some("error") => ChatKitEvent::Error {
            code: str_at(&["code"]).unwrap_or("unknown").to_owned(),
        },
        _ => ChatKitEvent::Other,
    }
}

/// A Chat Completions stream event: a chunk, or the `[DONE]` sentinel.
#[derive(Debug, PartialEq)]
pub enum OpenAiEvent {
    Chunk,
    Done,
    Error,
}

pub fn classify_openai(data: &[u8]) -> OpenAiEvent {
    if data == b"[DONE]" {
        OpenAiEvent::Done
    } else if data.starts_with(b"{\"error\"") {
        OpenAiEvent::Error
    } else {
        OpenAiEvent::Chunk
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_chunks() {
        let mut s = EventSplitter::default();
        s.push(b"data: {\"a\":1}\n");
        assert_eq!(s.next_event(), None);
        s.push(b"\ndata: [DO");
        assert_eq!(s.next_event().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(s.next_event(), None);
        s.push(b"NE]\n\n: comment\n\ndata: x\r\n\r\n");
        assert_eq!(s.next_event().as_deref(), Some(&b"[DONE]"[..]));
        assert_eq!(s.next_event().as_deref(), Some(&b"x"[..]));
        assert!(!s.has_partial());
    }

    #[test]
    fn classifies_chatkit_frames() {
        let delta = br#"{"type":"thread.item.updated","item_id":"msg_1","update":{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":"Hel"}}"#;
        assert_eq!(classify_chatkit(delta), ChatKitEvent::TextDelta);
        let added = br#"{"type":"thread.item.updated","item_id":"msg_1","update":{"type":"assistant_message.content_part.added","content_index":0,"content":{"annotations":[],"text":"","type":"output_text"}}}"#;
        assert_eq!(classify_chatkit(added), ChatKitEvent::Other);
        let created = br#"{"type":"thread.created","thread":{"id":"thr_5c","created_at":"2025-06-01T10:15:42","status":{"type":"active"},"metadata":{},"items":{"data":[],"has_more":false}}}"#;
        assert_eq!(
            classify_chatkit(created),
            ChatKitEvent::ThreadCreated {
                thread_id: "thr_5c".into()
            }
        );
        let done = br#"{"type":"thread.item.done","item":{"id":"msg_6","thread_id":"thr_5c","created_at":"2025","type":"assistant_message","content":[]}}"#;
        assert_eq!(classify_chatkit(done), ChatKitEvent::AssistantDone);
        let user = br#"{"type":"thread.item.done","item":{"id":"msg_0","type":"user_message","content":[]}}"#;
        assert_eq!(classify_chatkit(user), ChatKitEvent::OtherItemDone);
        let err = br#"{"type":"error","code":"stream.error","allow_retry":true}"#;
        assert_eq!(
            classify_chatkit(err),
            ChatKitEvent::Error {
                code: "stream.error".into()
            }
        );
    }
}
