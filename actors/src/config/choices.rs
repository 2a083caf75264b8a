//! What the composer may choose: the model picker (`[[models]]`), the tool menu
//! (`[[tool_choices]]`), and dictation (`[transcription]`).

use std::collections::HashSet;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::Deserialize;

use super::reasoning::{read_choice, ReasoningEffort, ReasoningSummary};
use super::{
    AgentSettings, ModelChoice, ModelSettings, SectionSource, ToolChoiceMode, ToolChoiceSpec,
    TranscriptionSettings,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    id: String,
    label: Option<String>,
    model: String,
    base_url: Option<String>,
    reasoning_effort: Option<String>,
    reasoning_summary: Option<String>,
    api: Option<super::ModelApi>,
    timeout_secs: Option<NonZeroU64>,
    /// Only these `[[hosted_tools]]` types (all when absent).
    hosted_tools: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolChoiceEntry {
    id: String,
    label: Option<String>,
    force: Option<String>,
    instructions: Option<String>,
    tools: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TranscriptionSection {
    enabled: bool,
    model: String,
    base_url: Option<String>,
    max_bytes: NonZeroUsize,
    requests_per_minute: u32,
    timeout_secs: NonZeroU64,
}

/// An id the client sends: 1 to 64 printable ASCII characters without spaces.
fn valid_choice_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
}

fn http_url(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// An entry's own reasoning settings (none inherited from the default model).
struct EntryReasoning {
    effort: Option<ReasoningEffort>,
    summary: Option<ReasoningSummary>,
}

/// `[[models]]`: each entry the default model's settings with its own overrides.
pub(super) fn model_choices(
    source: &impl SectionSource,
    default: Option<&ModelSettings>,
    problems: &mut Vec<String>,
) -> Option<Vec<ModelChoice>> {
    let entries = source
        .list::<ModelEntry>("models")
        .map_err(|p| problems.push(p))
        .ok()?;
    let before = problems.len();
    let mut seen = HashSet::new();
    let mut choices = Vec::new();
    for entry in entries {
        if !valid_choice_id(&entry.id) {
            problems.push(format!(
                "models.id {:?} must be 1 to 64 printable characters without spaces",
                entry.id
            ));
        } else if !seen.insert(entry.id.clone()) {
            problems.push(format!("models.id {:?} is used twice", entry.id));
        }
        if entry.model.trim().is_empty() {
            problems.push(format!("models {:?}: model must not be empty", entry.id));
        }
        if let Some(url) = &entry.base_url {
            if !http_url(url) {
                problems.push(format!(
                    "models {:?}: base_url {url:?} is not an http(s) URL",
                    entry.id
                ));
            }
        }
        let reasoning = EntryReasoning {
            effort: read_choice(
                &format!("models {:?}: reasoning_effort", entry.id),
                entry.reasoning_effort.as_deref(),
                problems,
            ),
            summary: read_choice(
                &format!("models {:?}: reasoning_summary", entry.id),
                entry.reasoning_summary.as_deref(),
                problems,
            ),
        };
        if let Some(default) = default {
            let mut settings = entry_settings(default, &entry, reasoning);
            settings.hosted_tools = super::hosted::for_model_entry(
                &entry.id,
                settings.api,
                entry.hosted_tools.as_deref(),
                &default.hosted_tools,
                problems,
            );
            choices.push(ModelChoice {
                label: entry.label.clone().unwrap_or_else(|| entry.id.clone()),
                id: entry.id.clone(),
                settings,
            });
        }
    }
    (problems.len() == before && default.is_some()).then_some(choices)
}

/// An entry's settings: the default model's connection (URL, key, timeout, API,
/// instructions) with the entry's overrides. Reasoning settings are not inherited: another
/// model may refuse them (Chat Completions models such as gpt-4o-mini refuse
/// `reasoning_effort`), so an entry sends only those it sets.
fn entry_settings(
    default: &ModelSettings,
    entry: &ModelEntry,
    reasoning: EntryReasoning,
) -> ModelSettings {
    let mut settings = default.clone();
    settings.name = entry.model.clone();
    if let Some(url) = &entry.base_url {
        settings.base_url = url.clone();
    }
    settings.reasoning_effort = reasoning.effort;
    settings.reasoning_summary = reasoning.summary;
    if let Some(api) = entry.api {
        settings.api = api;
    }
    if let Some(timeout) = entry.timeout_secs {
        settings.timeout = Duration::from_secs(timeout.get());
    }
    settings
}

/// `[[tool_choices]]`: a forced tool, or a profile; tool names must name a configured MCP
/// server (`<server>__<tool>`), client tool, or hosted tool type (`image_generation`).
pub(super) fn tool_choices(
    source: &impl SectionSource,
    agent: Option<&AgentSettings>,
    hosted: &[super::HostedTool],
    problems: &mut Vec<String>,
) -> Option<Vec<ToolChoiceSpec>> {
    let entries = source
        .list::<ToolChoiceEntry>("tool_choices")
        .map_err(|p| problems.push(p))
        .ok()?;
    let agent = agent?;
    let before = problems.len();
    let known_tool = |name: &str| {
        agent.client_tools.iter().any(|t| t.name == name)
            || name.split_once("__").is_some_and(|(server, tool)| {
                !tool.is_empty() && agent.mcp_servers.iter().any(|s| s.name == server)
            })
    };
    let mut seen = HashSet::new();
    let mut choices = Vec::new();
    for entry in entries {
        let id = entry.id.clone();
        if !valid_choice_id(&id) {
            problems.push(format!(
                "tool_choices.id {id:?} must be 1 to 64 printable characters without spaces"
            ));
        } else if !seen.insert(id.clone()) {
            problems.push(format!("tool_choices.id {id:?} is used twice"));
        }
        let profile = entry.instructions.is_some() || entry.tools.is_some();
        let mode = match (entry.force, profile) {
            (Some(_), true) => {
                problems.push(format!(
                    "tool_choices {id:?}: force a tool, or give instructions and/or tools, not both"
                ));
                continue;
            }
            (None, false) => {
                problems.push(format!(
                    "tool_choices {id:?}: needs force = \"<server>__<tool>\", or instructions and/or tools"
                ));
                continue;
            }
            (Some(tool), false) => {
                if !known_tool(&tool) && !hosted.iter().any(|t| t.kind == tool) {
                    problems.push(format!(
                        "tool_choices {id:?}: force {tool:?} names no configured MCP server (<server>__<tool>), client tool or hosted tool"
                    ));
                }
                ToolChoiceMode::Force(tool)
            }
            (None, true) => {
                for tool in entry.tools.iter().flatten() {
                    if !known_tool(tool) {
                        problems.push(format!(
                            "tool_choices {id:?}: tool {tool:?} names no configured MCP server (<server>__<tool>) or client tool"
                        ));
                    }
                }
                ToolChoiceMode::Profile {
                    instructions: entry.instructions,
                    tools: entry.tools,
                }
            }
        };
        choices.push(ToolChoiceSpec {
            label: entry.label.unwrap_or_else(|| id.clone()),
            id,
            mode,
        });
    }
    (problems.len() == before).then_some(choices)
}

/// `[transcription]`.
pub(super) fn transcription(
    source: &impl SectionSource,
    model: Option<&ModelSettings>,
    problems: &mut Vec<String>,
) -> Option<TranscriptionSettings> {
    let raw = super::read_section::<TranscriptionSection>(source, "transcription", problems)?;
    if let Some(url) = &raw.base_url {
        if !http_url(url) {
            problems.push(format!(
                "transcription.base_url {url:?} is not an http(s) URL"
            ));
            return None;
        }
    }
    if raw.model.trim().is_empty() {
        problems.push("transcription.model must not be empty".into());
        return None;
    }
    Some(TranscriptionSettings {
        enabled: raw.enabled,
        model: raw.model,
        base_url: raw.base_url.or_else(|| model.map(|m| m.base_url.clone()))?,
        max_bytes: raw.max_bytes.get(),
        requests_per_minute: raw.requests_per_minute,
        timeout: Duration::from_secs(raw.timeout_secs.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sections from one JSON document.
    struct Json(serde_json::Value);

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

    fn reasoning_default() -> ModelSettings {
        ModelSettings {
            base_url: "https://api.openai.com/v1".into(),
            name: "o4-mini".into(),
            api_key: None,
            timeout: Duration::from_secs(60),
            instructions: "Be brief.".into(),
            http2_prior_knowledge: false,
            reasoning_effort: Some(ReasoningEffort::Medium),
            reasoning_summary: Some(ReasoningSummary::Auto),
            api: super::super::ModelApi::Responses,
            hosted_tools: std::sync::Arc::from([]),
        }
    }

    #[test]
    fn an_entry_sends_only_the_reasoning_settings_it_sets() {
        let source = Json(serde_json::json!({ "models": [
            { "id": "fast", "model": "gpt-4o-mini", "api": "chat_completions" },
            { "id": "deep", "model": "o3", "reasoning_effort": "high" },
        ]}));
        let default = reasoning_default();
        let mut problems = Vec::new();
        let choices = model_choices(&source, Some(&default), &mut problems).expect("valid");
        assert!(problems.is_empty(), "{problems:?}");
        let fast = &choices[0].settings;
        assert_eq!(fast.name, "gpt-4o-mini");
        assert_eq!(fast.reasoning_effort, None, "not the default's \"medium\"");
        assert_eq!(fast.reasoning_summary, None);
        // The connection is still the default's.
        assert_eq!(fast.base_url, default.base_url);
        assert_eq!(fast.instructions, default.instructions);
        let deep = &choices[1].settings;
        assert_eq!(deep.reasoning_effort, Some(ReasoningEffort::High));
        assert_eq!(deep.reasoning_summary, None);
        assert_eq!(deep.api, super::super::ModelApi::Responses);
    }
}
