//! `[[hosted_tools]]`: tools the model provider runs itself (web search, file search, image
//! generation, code interpreter, or a type the API adds later), offered on every Responses API
//! turn. Each entry is its `type` and that tool's own API parameters, passed through as
//! written; a `[[models]]` entry may offer only some of them (`hosted_tools = [types]`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{ModelApi, SectionSource};

/// One hosted tool, as the request's `tools` carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostedTool {
    /// The entry's `type` (`web_search`, `image_generation`, …).
    pub kind: String,
    /// The whole entry, `type` first, sent as written.
    pub spec: Value,
}

impl HostedTool {
    /// An integer parameter of the entry (`partial_images`).
    pub fn int_param(&self, key: &str) -> Option<i64> {
        self.spec.get(key)?.as_i64()
    }
}

/// The hosted tools a model offers (shared by every request of that model).
pub type HostedTools = Arc<[HostedTool]>;

/// A type name: lowercase ASCII letters, digits and underscores (what the API's types are).
fn valid_type(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `[[hosted_tools]]`, checked: a `type` each, no type twice, `partial_images` 0 to 3; none
/// allowed when the default model is on Chat Completions (which has no hosted tools).
pub(super) fn hosted_tools(
    source: &impl SectionSource,
    api: Option<ModelApi>,
    problems: &mut Vec<String>,
) -> Option<HostedTools> {
    let entries = source
        .list::<Map<String, Value>>("hosted_tools")
        .map_err(|p| problems.push(p))
        .ok()?;
    let before = problems.len();
    let mut tools: Vec<HostedTool> = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(kind) = entry
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            problems.push(
                "every [[hosted_tools]] entry needs a type, e.g. type = \"web_search\"".into(),
            );
            continue;
        };
        if !valid_type(&kind) {
            problems.push(format!(
                "hosted_tools.type {kind:?} must be lowercase letters, digits and underscores"
            ));
            continue;
        }
        if tools.iter().any(|t| t.kind == kind) {
            problems.push(format!("hosted_tools: type {kind:?} is configured twice"));
            continue;
        }
        if let Some(partials) = entry.get("partial_images") {
            if !partials.as_i64().is_some_and(|n| (0..=3).contains(&n)) {
                problems.push(format!(
                    "hosted_tools {kind:?}: partial_images must be an integer from 0 to 3"
                ));
            }
        }
        // `type` first, then the parameters in the order written.
        let mut spec = Map::with_capacity(entry.len());
        spec.insert("type".into(), Value::String(kind.clone()));
        spec.extend(entry.into_iter().filter(|(k, _)| k != "type"));
        tools.push(HostedTool {
            kind,
            spec: Value::Object(spec),
        });
    }
    if api == Some(ModelApi::ChatCompletions) && !tools.is_empty() {
        problems.push(
            "hosted_tools need model.api = \"responses\": the model is on Chat Completions, which has no hosted tools"
                .into(),
        );
    }
    (problems.len() == before).then(|| tools.into())
}

/// The hosted tools of a `[[models]]` entry: none on Chat Completions, else the configured
/// ones, or only the types it lists.
pub(super) fn for_model_entry(
    id: &str,
    api: ModelApi,
    listed: Option<&[String]>,
    configured: &HostedTools,
    problems: &mut Vec<String>,
) -> HostedTools {
    for kind in listed.into_iter().flatten() {
        if !configured.iter().any(|t| &t.kind == kind) {
            problems.push(format!(
                "models {id:?}: hosted_tools names {kind:?}, which no [[hosted_tools]] entry configures"
            ));
        }
    }
    if api == ModelApi::ChatCompletions {
        if listed.is_some_and(|l| !l.is_empty()) {
            problems.push(format!(
                "models {id:?}: hosted_tools need api = \"responses\" (Chat Completions has no hosted tools)"
            ));
        }
        return Arc::from([]);
    }
    match listed {
        None => configured.clone(),
        Some(listed) => configured
            .iter()
            .filter(|t| listed.contains(&t.kind))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Json(Value);

    impl SectionSource for Json {
        fn section<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, String> {
            serde_json::from_value(self.0[name].clone()).map_err(|e| e.to_string())
        }

        fn list<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, String> {
            match self.0.get(name) {
                Some(list) => serde_json::from_value(list.clone()).map_err(|e| e.to_string()),
                None => Ok(Vec::new()),
            }
        }
    }

    #[test]
    fn entries_pass_through_with_their_type_first() {
        let source = Json(json!({"hosted_tools": [
            {"type": "web_search"},
            {"vector_store_ids": ["vs_tides"], "type": "file_search", "max_num_results": 4},
            {"type": "image_generation", "partial_images": 1, "size": "1024x1024"},
        ]}));
        let mut problems = Vec::new();
        let tools = hosted_tools(&source, Some(ModelApi::Responses), &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            serde_json::to_string(&tools[1].spec).unwrap(),
            r#"{"type":"file_search","vector_store_ids":["vs_tides"],"max_num_results":4}"#
        );
        assert_eq!(tools[2].int_param("partial_images"), Some(1));
    }

    #[test]
    fn chat_completions_duplicates_and_bad_entries_are_refused_one_line_each() {
        let source = Json(json!({"hosted_tools": [
            {"type": "web_search"}, {"type": "web_search"}, {"size": "1x1"},
            {"type": "image_generation", "partial_images": 9}, {"type": "Web Search"},
        ]}));
        let mut problems = Vec::new();
        assert!(hosted_tools(&source, Some(ModelApi::ChatCompletions), &mut problems).is_none());
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems.iter().all(|p| !p.contains('\n')));
        assert!(problems[4].contains("model.api = \"responses\""));
        let none = Json(json!({}));
        let mut problems = Vec::new();
        let tools = hosted_tools(&none, Some(ModelApi::ChatCompletions), &mut problems);
        assert_eq!(tools.map(|t| t.len()), Some(0));
    }

    #[test]
    fn a_model_entry_restricts_by_type_and_chat_completions_gets_none() {
        let configured: HostedTools = ["web_search", "image_generation"]
            .iter()
            .map(|k| HostedTool {
                kind: k.to_string(),
                spec: json!({ "type": k }),
            })
            .collect();
        let mut problems = Vec::new();
        let only = ["image_generation".to_string()];
        let kinds = |tools: HostedTools| tools.iter().map(|t| t.kind.clone()).collect::<Vec<_>>();
        let got = for_model_entry(
            "a",
            ModelApi::Responses,
            Some(&only),
            &configured,
            &mut problems,
        );
        assert_eq!(kinds(got), ["image_generation"]);
        let got = for_model_entry("b", ModelApi::Responses, None, &configured, &mut problems);
        assert_eq!(kinds(got).len(), 2);
        let got = for_model_entry(
            "c",
            ModelApi::ChatCompletions,
            None,
            &configured,
            &mut problems,
        );
        assert!(got.is_empty());
        assert!(problems.is_empty(), "{problems:?}");
        let bad = ["file_search".to_string()];
        for_model_entry(
            "d",
            ModelApi::Responses,
            Some(&bad),
            &configured,
            &mut problems,
        );
        for_model_entry(
            "e",
            ModelApi::ChatCompletions,
            Some(&only),
            &configured,
            &mut problems,
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
