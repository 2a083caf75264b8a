//! The Responses API (`model.api = "responses"`): our history sent statelessly (`store:
//! false`; encrypted reasoning items handed back within a turn), and the streamed events
//! turned into the same [`ModelEvent`]s as Chat Completions chunks, plus reasoning
//! summaries and citations (protocol §8.3, §8.5).

use std::borrow::Cow;
use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::hosted_events::{container_file, hosted_event, HostedEvent};
use super::ModelEvent;
use crate::protocol::{Annotation, AnnotationTag};

/// One streamed event turned into events (the parse `sse::events` is given).
pub(super) fn parse_event(data: &[u8], out: &mut VecDeque<ModelEvent>) -> serde_json::Result<()> {
    if is_unread(data) {
        return Ok(());
    }
    let event: StreamEvent = super::sse::json(data)?;
    event.push_events(out);
    Ok(())
}

/// Events that carry nothing we read (their text or item also comes in the events we do
/// read). `response.created` and `.in_progress` repeat the whole request's instructions and
/// tools; together these were a third of a Responses turn's parsing.
const UNREAD_EVENTS: [&str; 9] = [
    "response.created",
    "response.in_progress",
    "response.queued",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.done",
    "response.reasoning_summary_text.done",
    "response.reasoning_summary_part.done",
    "response.function_call_arguments.done",
];

/// An event of [`UNREAD_EVENTS`], told by its leading `{"type":"…"` (OpenAI writes `type`
/// first) and left unparsed; an event written otherwise is parsed, and its type then ignored.
fn is_unread(data: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(br#"{"type":""#) else {
        return false;
    };
    let Some(end) = memchr::memchr(b'"', rest) else {
        return false;
    };
    let kind = &rest[..end];
    UNREAD_EVENTS.iter().any(|unread| unread.as_bytes() == kind)
}

/// One streamed event, as lenient as the chunks: only what we read, read where it lies in the
/// event's bytes (an event's type, its item's id, the payloads we pass on or skip).
#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    delta: Option<Cow<'a, str>>,
    output_index: Option<u32>,
    summary_index: Option<u32>,
    /// The output item of `response.output_item.*`: parsed by [`Self::item`] unless it is the
    /// answer's message (its text came as deltas).
    #[serde(borrow)]
    item: Option<&'a RawValue>,
    annotation: Option<Value>,
    /// The whole response so far (`response.created`, `.in_progress`, `.completed`, …): read
    /// only by the events that end the response.
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    item_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_image_b64: Option<Cow<'a, str>>,
    partial_image_index: Option<u32>,
}

impl StreamEvent<'_> {
    fn push_events(self, out: &mut VecDeque<ModelEvent>) {
        let item = self.item();
        if self.push_hosted(item.as_ref(), out) {
            return;
        }
        let index = self.output_index.unwrap_or(0);
        match &*self.kind {
            "response.output_text.delta" => {
                if let Some(delta) = self.delta.filter(|d| !d.is_empty()) {
                    out.push_back(ModelEvent::TextDelta(delta.into_owned()));
                }
            }
            // Each summary part is a thought: parts after the first start a new paragraph.
            "response.reasoning_summary_part.added" if self.summary_index.unwrap_or(0) > 0 => {
                out.push_back(ModelEvent::ReasoningDelta("\n\n".into()));
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(delta) = self.delta.filter(|d| !d.is_empty()) {
                    out.push_back(ModelEvent::ReasoningDelta(delta.into_owned()));
                }
            }
            "response.output_item.added" => {
                if let Some(call) = item.as_ref().and_then(|item| call_started(item, index)) {
                    out.push_back(call);
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(delta) = self.delta {
                    out.push_back(ModelEvent::ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments: delta.into_owned(),
                    });
                }
            }
            "response.output_text.annotation.added" => {
                if let Some(file) = self.annotation.as_ref().and_then(container_file) {
                    out.push_back(ModelEvent::Hosted(file));
                } else if let Some(annotation) = self.annotation.as_ref().and_then(citation) {
                    out.push_back(ModelEvent::Annotation(annotation));
                }
            }
            "response.output_item.done" => {
                let Some(item) = item else { return };
                if item["type"] == "reasoning" && item.get("encrypted_content").is_some() {
                    out.push_back(ModelEvent::ReasoningItem(handback(item)));
                }
            }
            _ => self.push_ending(out),
        }
    }
}

impl StreamEvent<'_> {
    /// The event's output item, unless there is none or it is an assistant message (whose
    /// text and annotations came as their own events: nothing of it is read).
    fn item(&self) -> Option<Value> {
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        let raw = self.item?.get();
        let head: Head = serde_json::from_str(raw).ok()?;
        if head.kind.as_deref() == Some("message") {
            return None;
        }
        serde_json::from_str(raw).ok()
    }

    /// An event of a hosted tool's call, if this is one (then nothing else is).
    fn push_hosted(&self, item: Option<&Value>, out: &mut VecDeque<ModelEvent>) -> bool {
        let partial = self
            .partial_image_index
            .zip(self.partial_image_b64.as_deref());
        let Some(hosted) = hosted_event(
            &self.kind,
            item,
            self.item_id.as_deref(),
            self.delta.as_deref(),
            partial,
        ) else {
            return false;
        };
        // A finished hosted call goes back with the next call of the turn (after function
        // tools), as it came: a reasoning item before it needs its following item.
        if let HostedEvent::Done { item, .. } = &hosted {
            out.push_back(ModelEvent::ReasoningItem(item.clone()));
        }
        out.push_back(ModelEvent::Hosted(hosted));
        true
    }

    /// How the response ended, if this event says it (other kinds are ignored).
    fn push_ending(self, out: &mut VecDeque<ModelEvent>) {
        let response = || {
            self.response
                .and_then(|raw| serde_json::from_str::<Ending>(raw.get()).ok())
                .unwrap_or_default()
        };
        match &*self.kind {
            "response.completed" => completed(response(), out),
            "response.incomplete" => out.push_back(ModelEvent::Finished {
                reason: "length".into(),
                model: response().model(),
            }),
            "response.failed" => {
                let message = response().error_message();
                out.push_back(ModelEvent::Failed(
                    message.unwrap_or_else(|| "the response failed".into()),
                ));
            }
            "error" => out.push_back(ModelEvent::Failed(
                self.message
                    .map_or_else(|| "error event".into(), Cow::into_owned),
            )),
            _ => {}
        }
    }
}

/// What the events that end a response read of it, each part on its own (one that is not
/// what we expect is left out, not the rest with it); the output's content is skipped unread.
#[derive(Default, Deserialize)]
struct Ending<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

impl<'a> Ending<'a> {
    fn part<T: Deserialize<'a>>(part: Option<&'a RawValue>) -> Option<T> {
        serde_json::from_str(part?.get()).ok()
    }

    fn model(&self) -> Option<String> {
        Self::part::<Cow<str>>(self.model).map(Cow::into_owned)
    }

    fn usage(&self) -> Option<(u64, u64)> {
        #[derive(Deserialize)]
        struct Usage {
            input_tokens: u64,
            output_tokens: u64,
        }
        Self::part::<Usage>(self.usage).map(|u| (u.input_tokens, u.output_tokens))
    }

    /// The output has a function call.
    fn called(&self) -> bool {
        #[derive(Deserialize)]
        struct OutputKind<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<Cow<'a, str>>,
        }
        Self::part::<Vec<OutputKind>>(self.output)
            .is_some_and(|o| o.iter().any(|i| i.kind.as_deref() == Some("function_call")))
    }

    fn error_message(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct ErrorBody<'a> {
            #[serde(borrow)]
            message: Option<Cow<'a, str>>,
        }
        Self::part::<ErrorBody>(self.error)?
            .message
            .map(Cow::into_owned)
    }
}

/// A function call the model starts (its arguments may follow in deltas).
fn call_started(item: &Value, index: u32) -> Option<ModelEvent> {
    (item["type"] == "function_call").then(|| ModelEvent::ToolCallDelta {
        index,
        id: item["call_id"].as_str().map(str::to_string),
        name: item["name"].as_str().map(str::to_string),
        arguments: item["arguments"].as_str().unwrap_or("").to_string(),
    })
}

/// The response completed: its usage, and why it finished (tool calls or text).
fn completed(response: Ending, out: &mut VecDeque<ModelEvent>) {
    if let Some((input, output)) = response.usage() {
        out.push_back(ModelEvent::Usage { input, output });
    }
    out.push_back(ModelEvent::Finished {
        reason: if response.called() {
            "tool_calls"
        } else {
            "stop"
        }
        .into(),
        model: response.model(),
    });
}

/// A reasoning item as the next request takes it back (without its status).
fn handback(mut item: Value) -> Value {
    if let Some(map) = item.as_object_mut() {
        map.remove("status");
    }
    item
}

/// protocol §8.3: `url_citation` → a url source (`index` = `end_index`), `file_citation` → a
/// file source titled by its file name (`index` = the citation's index); others are dropped.
fn citation(annotation: &Value) -> Option<Annotation> {
    match annotation["type"].as_str()? {
        "url_citation" => {
            let url = annotation["url"].as_str()?;
            let title = annotation["title"].as_str().unwrap_or(url);
            Some(Annotation {
                kind: AnnotationTag,
                source: json!({ "title": title, "type": "url", "url": url }),
                index: annotation["end_index"].as_i64(),
            })
        }
        "file_citation" | "container_file_citation" => {
            let filename = annotation["filename"].as_str()?;
            let index = match annotation["type"].as_str() {
                Some("file_citation") => annotation["index"].as_i64(),
                _ => annotation["end_index"].as_i64(),
            };
            Some(Annotation {
                kind: AnnotationTag,
                source: json!({ "title": filename, "type": "file", "filename": filename }),
                index,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_events_are_told_by_their_leading_type_and_would_give_nothing_parsed() {
        for kind in UNREAD_EVENTS {
            let data = format!(
                r#"{{"type":"{kind}","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"x","text":"Hi","part":{{"type":"output_text","text":""}},"response":{{"id":"resp_1","status":"in_progress","instructions":"Be brief.","tools":[]}}}}"#
            );
            assert!(is_unread(data.as_bytes()), "{kind}");
            let mut parsed = VecDeque::new();
            let event: StreamEvent = super::super::sse::json(data.as_bytes()).unwrap();
            event.push_events(&mut parsed);
            assert!(parsed.is_empty(), "{kind} parsed gives {parsed:?}");
        }
        for read in [
            r#"{"type":"response.output_text.delta","delta":"x"}"#,
            r#"{"type":"response.completed","response":{}}"#,
            r#"{"type":"response.created.extra"}"#,
            r#"{"sequence_number":0,"type":"response.created"}"#,
            r#"{"type":"response.created"#,
        ] {
            assert!(!is_unread(read.as_bytes()), "{read}");
        }
    }

    fn events(lines: &[Value]) -> Vec<ModelEvent> {
        let mut out = VecDeque::new();
        for line in lines {
            parse_event(&serde_json::to_vec(line).unwrap(), &mut out).unwrap();
        }
        out.into_iter().collect()
    }

    #[test]
    fn text_reasoning_calls_and_citations_become_events() {
        let got = events(&[
            json!({"type": "response.created", "sequence_number": 0, "response": {}}),
            json!({"type": "response.reasoning_summary_part.added", "summary_index": 0}),
            json!({"type": "response.reasoning_summary_text.delta", "summary_index": 0, "delta": "First"}),
            json!({"type": "response.reasoning_summary_part.added", "summary_index": 1}),
            json!({"type": "response.reasoning_summary_text.delta", "summary_index": 1, "delta": "Second"}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc", "status": "completed"}}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "function_call", "call_id": "call_1", "name": "add_task", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{\"a\":1}"}),
            json!({"type": "response.output_text.delta", "output_index": 2, "delta": "See"}),
            json!({"type": "response.output_text.annotation.added", "annotation": {"type": "url_citation", "url": "https://e.x/", "title": "E", "start_index": 0, "end_index": 3}}),
            json!({"type": "response.output_text.annotation.added", "annotation": {"type": "mystery"}}),
            json!({"type": "response.completed", "response": {"model": "gpt-x-2026", "output": [{"type": "function_call"}], "usage": {"input_tokens": 12, "output_tokens": 5}}}),
        ]);
        assert_eq!(
            got,
            vec![
                ModelEvent::ReasoningDelta("First".into()),
                ModelEvent::ReasoningDelta("\n\n".into()),
                ModelEvent::ReasoningDelta("Second".into()),
                ModelEvent::ReasoningItem(
                    json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"})
                ),
                ModelEvent::ToolCallDelta {
                    index: 1,
                    id: Some("call_1".into()),
                    name: Some("add_task".into()),
                    arguments: String::new()
                },
                ModelEvent::ToolCallDelta {
                    index: 1,
                    id: None,
                    name: None,
                    arguments: "{\"a\":1}".into()
                },
                ModelEvent::TextDelta("See".into()),
                ModelEvent::Annotation(Annotation {
                    kind: AnnotationTag,
                    source: json!({"title": "E", "type": "url", "url": "https://e.x/"}),
                    index: Some(3),
                }),
                ModelEvent::Usage {
                    input: 12,
                    output: 5
                },
                ModelEvent::Finished {
                    reason: "tool_calls".into(),
                    model: Some("gpt-x-2026".into()),
                },
            ]
        );
    }

    #[test]
    fn a_finished_hosted_call_is_shown_and_handed_back() {
        let item = json!({"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}});
        let got = events(&[
            json!({"type": "response.output_item.done", "output_index": 1, "item": item.clone()}),
        ]);
        assert_eq!(
            got,
            vec![
                ModelEvent::ReasoningItem(item.clone()),
                ModelEvent::Hosted(HostedEvent::Done {
                    kind: super::super::HostedKind::WebSearch,
                    item
                }),
            ]
        );
    }
}
