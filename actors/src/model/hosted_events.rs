//! The Responses events of the provider's hosted tools (image generation, web search, file
//! search, code interpreter) as [`HostedEvent`]s, and what a finished call's item says: the
//! image's bytes or why there are none, the queries and sources of a search, the code and
//! the files it made.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

/// Which hosted tool a call is (the `type` label of `chatkit_hosted_tool_calls_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostedKind {
    ImageGeneration,
    WebSearch,
    FileSearch,
    CodeInterpreter,
}

impl HostedKind {
    /// The kind of an output item's `type` (`image_generation_call`, …).
    pub fn of_item(item_type: &str) -> Option<HostedKind> {
        Some(match item_type {
            "image_generation_call" => HostedKind::ImageGeneration,
            "web_search_call" => HostedKind::WebSearch,
            "file_search_call" => HostedKind::FileSearch,
            "code_interpreter_call" => HostedKind::CodeInterpreter,
            _ => return None,
        })
    }

    /// The kind of a progress event's prefix (`response.web_search_call.searching`).
    fn of_event(event: &str) -> Option<(HostedKind, &str)> {
        let rest = event.strip_prefix("response.")?;
        let (call, status) = rest.split_once('.')?;
        let kind = HostedKind::of_item(call)?;
        Some((kind, status))
    }

    /// The tool's type, as configured and as the metric labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            HostedKind::ImageGeneration => "image_generation",
            HostedKind::WebSearch => "web_search",
            HostedKind::FileSearch => "file_search",
            HostedKind::CodeInterpreter => "code_interpreter",
        }
    }
}

/// One step of a hosted tool call.
#[derive(Clone, Debug, PartialEq)]
pub enum HostedEvent {
    /// The call's item appeared (`response.output_item.added`).
    Started { kind: HostedKind, call_id: String },
    /// The call's status changed (`in_progress`, `searching`, `generating`, `interpreting`).
    Progress {
        kind: HostedKind,
        call_id: String,
        status: String,
    },
    /// A partial image, base64 (`response.image_generation_call.partial_image`).
    PartialImage {
        call_id: String,
        index: u32,
        b64: String,
    },
    /// A piece of the code the interpreter will run.
    CodeDelta { call_id: String, delta: String },
    /// The call's item as the provider finished it (`response.output_item.done`).
    Done { kind: HostedKind, item: Value },
    /// The answer cites a file the code interpreter made (`container_file_citation`): its
    /// bytes are the provider's until fetched.
    ContainerFile {
        container_id: String,
        file_id: String,
        filename: String,
        /// Where the citation marker goes (`end_index`).
        index: Option<i64>,
    },
}

/// The hosted-tool event of a streamed Responses event, if it is one. `item` is the output
/// item of `output_item.added`/`done`.
pub(super) fn hosted_event(
    event_type: &str,
    item: Option<&Value>,
    item_id: Option<&str>,
    delta: Option<&str>,
    partial: Option<(u32, &str)>,
) -> Option<HostedEvent> {
    match event_type {
        "response.output_item.added" | "response.output_item.done" => {
            let item = item?;
            let kind = HostedKind::of_item(item["type"].as_str()?)?;
            if event_type == "response.output_item.done" {
                return Some(HostedEvent::Done {
                    kind,
                    item: item.clone(),
                });
            }
            Some(HostedEvent::Started {
                kind,
                call_id: item["id"].as_str()?.to_string(),
            })
        }
        "response.image_generation_call.partial_image" => {
            let (index, b64) = partial?;
            Some(HostedEvent::PartialImage {
                call_id: item_id?.to_string(),
                index,
                b64: b64.to_string(),
            })
        }
        "response.code_interpreter_call_code.delta" => Some(HostedEvent::CodeDelta {
            call_id: item_id?.to_string(),
            delta: delta?.to_string(),
        }),
        _ => {
            let (kind, status) = HostedKind::of_event(event_type)?;
            // `completed` is told by the item's `done`, with what it found.
            (status != "completed").then(|| HostedEvent::Progress {
                kind,
                call_id: item_id.unwrap_or_default().to_string(),
                status: status.to_string(),
            })
        }
    }
}

/// A `container_file_citation` annotation, as the file it names.
pub(super) fn container_file(annotation: &Value) -> Option<HostedEvent> {
    (annotation["type"] == "container_file_citation").then_some(())?;
    Some(HostedEvent::ContainerFile {
        container_id: annotation["container_id"].as_str()?.to_string(),
        file_id: annotation["file_id"].as_str()?.to_string(),
        filename: annotation["filename"].as_str()?.to_string(),
        index: annotation["end_index"].as_i64(),
    })
}

/// What a finished image generation call gave: the image's bytes, or why there are none.
pub fn image_result(item: &Value) -> Result<Vec<u8>, String> {
    let reason = || {
        item["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| match item["status"].as_str() {
                Some("failed") => "the image generation failed".into(),
                Some("incomplete") => "the image generation was cut short".into(),
                _ => "the provider sent no image".into(),
            })
    };
    if item["status"] == "failed" {
        return Err(reason());
    }
    let Some(b64) = item["result"].as_str().filter(|r| !r.is_empty()) else {
        return Err(reason());
    };
    STANDARD
        .decode(b64)
        .map_err(|_| "the provider sent an image that is not base64".to_string())
}

/// The media type of an image's bytes, by their signature (PNG unless they say otherwise).
pub fn image_mime(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else {
        "image/png"
    }
}

/// What a finished search call looked for and opened: its queries and, for a web search,
/// the URL sources the API lists (`action.sources`, when asked for).
pub fn search_summary(item: &Value) -> (Vec<String>, Vec<Value>) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|q| q.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let action = &item["action"];
    let mut queries = strings(&item["queries"]);
    if let Some(query) = action["query"].as_str() {
        queries.insert(0, query.to_string());
    }
    queries.extend(strings(&action["queries"]));
    queries.dedup();
    let mut sources: Vec<Value> = action["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["url"].as_str())
        .map(|url| json!({"title": url, "type": "url", "url": url}))
        .collect();
    if let Some(url) = action["url"].as_str() {
        sources.push(json!({"title": url, "type": "url", "url": url}));
    }
    (queries, sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosted_events_are_read_from_the_stream_events() {
        let added = json!({"id": "ig_1", "type": "image_generation_call", "status": "in_progress"});
        assert_eq!(
            hosted_event("response.output_item.added", Some(&added), None, None, None),
            Some(HostedEvent::Started {
                kind: HostedKind::ImageGeneration,
                call_id: "ig_1".into()
            })
        );
        assert_eq!(
            hosted_event(
                "response.image_generation_call.partial_image",
                None,
                Some("ig_1"),
                None,
                Some((0, "AAAA"))
            ),
            Some(HostedEvent::PartialImage {
                call_id: "ig_1".into(),
                index: 0,
                b64: "AAAA".into()
            })
        );
        assert_eq!(
            hosted_event(
                "response.web_search_call.searching",
                None,
                Some("ws_1"),
                None,
                None
            ),
            Some(HostedEvent::Progress {
                kind: HostedKind::WebSearch,
                call_id: "ws_1".into(),
                status: "searching".into()
            })
        );
        assert_eq!(
            hosted_event(
                "response.file_search_call.completed",
                None,
                Some("fs"),
                None,
                None
            ),
            None
        );
        let message = json!({"id": "msg_1", "type": "message"});
        assert_eq!(
            hosted_event(
                "response.output_item.added",
                Some(&message),
                None,
                None,
                None
            ),
            None
        );
        assert_eq!(
            hosted_event(
                "response.output_text.delta",
                None,
                Some("m"),
                Some("x"),
                None
            ),
            None
        );
    }

    #[test]
    fn an_image_is_its_bytes_or_the_reason_there_are_none() {
        let done =
            json!({"type": "image_generation_call", "status": "completed", "result": "iVBORw=="});
        assert_eq!(image_result(&done).unwrap(), [0x89, b'P', b'N', b'G']);
        assert_eq!(image_mime(&[0x89, b'P', b'N', b'G']), "image/png");
        let failed = json!({"type": "image_generation_call", "status": "failed", "error": {"message": "blocked by moderation"}});
        assert_eq!(image_result(&failed).unwrap_err(), "blocked by moderation");
        let empty = json!({"type": "image_generation_call", "status": "completed", "result": null});
        assert_eq!(
            image_result(&empty).unwrap_err(),
            "the provider sent no image"
        );
    }

    #[test]
    fn searches_name_their_queries_and_sources() {
        let web = json!({"type": "web_search_call", "status": "completed",
            "action": {"type": "search", "query": "tide times",
                       "sources": [{"type": "url", "url": "https://tides.example/"}]}});
        let (queries, sources) = search_summary(&web);
        assert_eq!(queries, ["tide times"]);
        assert_eq!(
            sources,
            [
                json!({"title": "https://tides.example/", "type": "url", "url": "https://tides.example/"})
            ]
        );
        let files =
            json!({"type": "file_search_call", "queries": ["tides", "moon"], "results": null});
        assert_eq!(search_summary(&files).0, ["tides", "moon"]);
    }
}
