//! What the hosted tool calls of a turn look like (pure): a partial image's data URL and
//! progress (protocol §8.14), and the workflow task of a search or code call in each state.

use base64::Engine as _;

use super::events::{StatusIndicator, TaskKind, WorkflowTask};
use crate::model::{image_mime, search_summary, HostedKind};

/// A partial image as the client shows it (not kept anywhere).
pub(super) fn partial_data_url(b64: &str) -> String {
    let mime = base64::engine::general_purpose::STANDARD
        .decode(b64.get(..16).unwrap_or(b64).trim_end_matches('='))
        .map(|head| image_mime(&head))
        .unwrap_or("image/png");
    format!("data:{mime};base64,{b64}")
}

/// protocol §8.14: min(1, index / expected partial images), 0 when the count is unknown.
pub(super) fn partial_progress(index: u32, expected: Option<i64>) -> f64 {
    match expected {
        Some(expected) if expected > 0 => (f64::from(index) / expected as f64).min(1.0),
        _ => 0.0,
    }
}

/// The task of a search or code call in state `status` (`in_progress`, `searching`,
/// `interpreting`, `completed`, `failed`); `done` is the finished item and the code streamed.
pub(super) fn step_task(
    kind: HostedKind,
    status: &str,
    done: Option<(&serde_json::Value, Option<String>)>,
) -> WorkflowTask {
    let finished = matches!(status, "completed" | "failed");
    let mut task = WorkflowTask {
        status_indicator: if finished {
            StatusIndicator::Complete
        } else {
            StatusIndicator::Loading
        },
        kind: TaskKind::Custom,
        title: None,
        content: None,
        more: serde_json::Map::new(),
    };
    let (queries, sources) = done
        .as_ref()
        .map(|(item, _)| search_summary(item))
        .unwrap_or_default();
    let first = queries.first().cloned();
    let (title, query_title) = match (kind, status) {
        (_, "failed") => (failed_title(kind).to_string(), None),
        (HostedKind::WebSearch, "completed") => ("Searched the web".to_string(), first.clone()),
        (HostedKind::WebSearch, "searching") => ("Searching the web".to_string(), None),
        (HostedKind::WebSearch, _) => ("Web search".to_string(), None),
        (HostedKind::FileSearch, "completed") => ("Searched files".to_string(), first.clone()),
        (HostedKind::FileSearch, "searching") => ("Searching files".to_string(), None),
        (HostedKind::FileSearch, _) => ("File search".to_string(), None),
        (_, "completed") => ("Ran code".to_string(), None),
        (_, "interpreting") => ("Running code".to_string(), None),
        _ => ("Code".to_string(), None),
    };
    task.title = Some(match &query_title {
        Some(query) => format!("{title}: {query}"),
        None => title,
    });
    match kind {
        HostedKind::WebSearch => {
            task.kind = TaskKind::WebSearch;
            if let Some(query) = query_title {
                task.more.insert("title_query".into(), query.into());
            }
            task.more.insert("queries".into(), queries.into());
            task.more.insert("sources".into(), sources.into());
        }
        HostedKind::FileSearch => {
            task.kind = TaskKind::File;
            let files = done
                .as_ref()
                .map(|(item, _)| file_sources(item))
                .unwrap_or_default();
            task.more.insert("sources".into(), files.into());
        }
        HostedKind::CodeInterpreter | HostedKind::ImageGeneration => {
            task.content = done.and_then(|(item, streamed)| {
                item["code"].as_str().map(str::to_string).or(streamed)
            });
        }
    }
    task
}

fn failed_title(kind: HostedKind) -> &'static str {
    match kind {
        HostedKind::WebSearch => "Web search failed",
        HostedKind::FileSearch => "File search failed",
        _ => "Code failed",
    }
}

/// The files a file search returned (`results`, when the request asked for them).
fn file_sources(item: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut names: Vec<&str> = item["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["filename"].as_str())
        .collect();
    names.dedup();
    names
        .into_iter()
        .map(|name| serde_json::json!({"title": name, "type": "file", "filename": name}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_images_show_progress_and_their_type() {
        assert_eq!(partial_progress(0, Some(2)), 0.0);
        assert_eq!(partial_progress(1, Some(2)), 0.5);
        assert_eq!(partial_progress(5, Some(2)), 1.0);
        assert_eq!(partial_progress(1, None), 0.0);
        assert!(
            partial_data_url("iVBORw0KGgoAAAANSUhEUg==").starts_with("data:image/png;base64,iVBOR")
        );
        assert!(partial_data_url("/9j/4AAQSkZJRgABAQ").starts_with("data:image/jpeg;base64,"));
    }

    #[test]
    fn a_web_search_task_names_its_query_and_sources_when_done() {
        let running = step_task(HostedKind::WebSearch, "searching", None).to_value();
        assert_eq!(
            running,
            json!({"status_indicator": "loading", "type": "web_search", "title": "Searching the web", "queries": [], "sources": []})
        );
        let item = json!({"id": "ws_1", "type": "web_search_call", "status": "completed",
            "action": {"type": "search", "query": "tide times", "sources": [{"type": "url", "url": "https://t.example/"}]}});
        let done = step_task(HostedKind::WebSearch, "completed", Some((&item, None))).to_value();
        assert_eq!(
            done,
            json!({"status_indicator": "complete", "type": "web_search", "title": "Searched the web: tide times",
                   "title_query": "tide times", "queries": ["tide times"],
                   "sources": [{"title": "https://t.example/", "type": "url", "url": "https://t.example/"}]})
        );
    }

    #[test]
    fn file_search_and_code_tasks() {
        let item = json!({"type": "file_search_call", "status": "completed", "queries": ["tides"],
            "results": [{"filename": "tides.pdf"}, {"filename": "tides.pdf"}]});
        let done = step_task(HostedKind::FileSearch, "completed", Some((&item, None))).to_value();
        assert_eq!(
            done,
            json!({"status_indicator": "complete", "type": "file", "title": "Searched files: tides",
                   "sources": [{"title": "tides.pdf", "type": "file", "filename": "tides.pdf"}]})
        );
        let code =
            json!({"type": "code_interpreter_call", "status": "completed", "code": "print(1)"});
        let done = step_task(
            HostedKind::CodeInterpreter,
            "completed",
            Some((&code, None)),
        )
        .to_value();
        assert_eq!(
            done,
            json!({"status_indicator": "complete", "type": "custom", "title": "Ran code", "content": "print(1)"})
        );
        let failed = step_task(HostedKind::WebSearch, "failed", None).to_value();
        assert_eq!(failed["title"], "Web search failed");
    }
}
