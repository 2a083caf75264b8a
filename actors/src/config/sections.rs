//! The engine's sections as written in the configuration, and the checks that turn them
//! into [`EngineSettings`](super::EngineSettings).

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::agent::{agent_settings, valid_name, AgentSection, McpSection};
use super::reasoning::read_choice;
use super::{
    ActorSettings, BatchSettings, ClusterSettings, EngineSettings, ModelSettings, SectionSource,
    TitleSettings, MODEL_API_KEY_ENV,
};
use crate::ids::{new_id, prefix};

#[derive(Deserialize)]
struct ModelSection {
    base_url: String,
    name: String,
    history_limit: NonZeroU32,
    timeout_secs: NonZeroU64,
    instructions: String,
    http2_prior_knowledge: bool,
    reasoning_effort: Option<String>,
    reasoning_summary: Option<String>,
    api: super::ModelApi,
    /// Present only to refuse it with a clear message (keys come from the environment).
    api_key: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ActorsSection {
    idle_timeout_secs: NonZeroU64,
    /// 0 = one per core.
    arbiters: usize,
    stream_buffer: NonZeroUsize,
    max_live: NonZeroUsize,
}

#[derive(Deserialize)]
struct PersistenceSection {
    max_batch: NonZeroUsize,
    flush_interval_ms: u64,
    max_in_flight: NonZeroUsize,
}

#[derive(Deserialize)]
struct TitlesSection {
    enabled: bool,
    prompt: String,
    max_chars: NonZeroUsize,
}

#[derive(Deserialize)]
struct StreamSection {
    allow_cancel: bool,
    on_disconnect: super::OnDisconnect,
}

#[derive(Deserialize)]
struct ClusterSection {
    instance_id: Option<String>,
    lease_ttl_secs: NonZeroU64,
    handover_timeout_secs: u64,
}

/// The engine's settings read from `source`; `None` when anything is wrong, with every
/// problem pushed to `problems` and every warning (a working but doubtful setting) to
/// `warnings`. `api_key` comes from the environment (`OPENAI_API_KEY`).
pub fn load(
    source: &impl SectionSource,
    api_key: Option<String>,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<EngineSettings> {
    let model = read_section::<ModelSection>(source, "model", problems);
    let actors = read_section::<ActorsSection>(source, "actors", problems);
    let persistence = read_section::<PersistenceSection>(source, "persistence", problems);
    let titles = read_section::<TitlesSection>(source, "titles", problems);
    let agent = read_section::<AgentSection>(source, "agent", problems);
    let mcp = read_section::<McpSection>(source, "mcp", problems);
    let stream = read_section::<StreamSection>(source, "stream", problems);
    let cluster = read_section::<ClusterSection>(source, "cluster", problems);
    let attachments =
        read_section::<super::attachments::AttachmentsSection>(source, "attachments", problems);

    let mut model = model.and_then(|m| model_settings(m, api_key, problems, warnings));
    let hosted_tools =
        super::hosted::hosted_tools(source, model.as_ref().map(|(m, _)| m.api), problems);
    if let (Some((model, _)), Some(hosted)) = (model.as_mut(), hosted_tools.as_ref()) {
        model.hosted_tools = hosted.clone();
    }
    let history_limit = model.as_ref().map(|(_, limit)| *limit);
    let agent = agent
        .zip(mcp)
        .and_then(|(agent, mcp)| agent_settings(agent, mcp, problems, warnings));
    let cluster = cluster.and_then(|c| cluster_settings(c, problems));
    let attachments =
        attachments.and_then(|a| super::attachments::attachment_settings(a, problems));
    let default_model = model.as_ref().map(|(m, _)| m);
    let models = super::choices::model_choices(source, default_model, problems);
    let tool_choices = super::choices::tool_choices(
        source,
        agent.as_ref(),
        hosted_tools.as_deref().unwrap_or_default(),
        problems,
    );
    let transcription = super::choices::transcription(source, default_model, problems);
    let widgets = super::widgets::widget_settings(
        source,
        agent.as_ref().map(|a| a.mcp_servers.as_slice()),
        problems,
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Some(EngineSettings {
        model: model?.0,
        history_limit: history_limit?,
        actors: actors.map(|a| ActorSettings {
            idle_timeout: Duration::from_secs(a.idle_timeout_secs.get()),
            arbiters: if a.arbiters == 0 { cores } else { a.arbiters },
            stream_buffer: a.stream_buffer.get(),
            max_live: a.max_live.get(),
        })?,
        batch: persistence.map(|p| BatchSettings {
            max_batch: p.max_batch.get(),
            flush_interval: Duration::from_millis(p.flush_interval_ms),
            max_in_flight: p.max_in_flight.get(),
        })?,
        titles: titles.map(|t| TitleSettings {
            enabled: t.enabled,
            prompt: t.prompt,
            max_chars: t.max_chars.get(),
        })?,
        agent: agent?,
        allow_cancel: stream.as_ref()?.allow_cancel,
        on_disconnect: stream?.on_disconnect,
        cluster: cluster?,
        attachments: attachments?,
        models: models?,
        tool_choices: tool_choices?,
        transcription: transcription?,
        widgets: widgets?,
        hosted_tools: hosted_tools?,
    })
}

/// The section `name` from `source`, or `None` with its problem recorded.
pub fn read_section<T: DeserializeOwned>(
    source: &impl SectionSource,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    source
        .section(name)
        .map_err(|problem| problems.push(problem))
        .ok()
}

fn model_settings(
    raw: ModelSection,
    api_key: Option<String>,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<(ModelSettings, u32)> {
    let before = problems.len();
    let url = url::Url::parse(&raw.base_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    if url.is_none() {
        problems.push(format!(
            "model.base_url {:?} is not an http(s) URL",
            raw.base_url
        ));
    }
    if raw.api_key.is_some() {
        problems.push(format!(
            "model.api_key is not read from configuration; set {MODEL_API_KEY_ENV} in the environment"
        ));
    }
    if raw.name.trim().is_empty() {
        problems.push("model.name must not be empty".into());
    }
    let reasoning_effort = read_choice(
        "model.reasoning_effort",
        raw.reasoning_effort.as_deref(),
        problems,
    );
    let reasoning_summary = read_choice(
        "model.reasoning_summary",
        raw.reasoning_summary.as_deref(),
        problems,
    );
    let api_key = api_key.filter(|k| !k.is_empty());
    if let Some(warning) = url.and_then(|u| missing_key_warning(&u, api_key.is_some())) {
        warnings.push(warning);
    }
    (problems.len() == before).then(|| {
        (
            ModelSettings {
                base_url: raw.base_url,
                name: raw.name,
                api_key,
                timeout: Duration::from_secs(raw.timeout_secs.get()),
                instructions: raw.instructions,
                http2_prior_knowledge: raw.http2_prior_knowledge,
                reasoning_effort,
                reasoning_summary,
                api: raw.api,
                hosted_tools: std::sync::Arc::from([]),
            },
            raw.history_limit.get(),
        )
    })
}

/// OpenAI's API refuses every request without a key: say so at start, with the ways out.
fn missing_key_warning(base_url: &url::Url, has_key: bool) -> Option<String> {
    let host = base_url.host_str()?;
    let needs_key = host == "openai.com" || host.ends_with(".openai.com");
    (needs_key && !has_key).then(|| {
        format!(
            "model is not configured: model.base_url is {base_url} but {MODEL_API_KEY_ENV} is not set, \
             so every turn will fail; set {MODEL_API_KEY_ENV}, or point model.base_url \
             (CHATKIT__MODEL__BASE_URL) at another OpenAI-compatible server, or run the bundled mock \
             (cargo run --release -p mock-llm -- --port 18081, then CHATKIT__MODEL__BASE_URL=http://127.0.0.1:18081/v1)"
        )
    })
}

fn cluster_settings(raw: ClusterSection, problems: &mut Vec<String>) -> Option<ClusterSettings> {
    let instance_id = match raw
        .instance_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(id) if valid_name(id) && id.len() <= 48 => id.to_string(),
        Some(id) => {
            problems.push(format!(
                "cluster.instance_id {id:?} must match ^[A-Za-z0-9_-]{{1,48}}$"
            ));
            return None;
        }
        None => new_id(prefix::INSTANCE),
    };
    Some(ClusterSettings {
        instance_id,
        lease_ttl: Duration::from_secs(raw.lease_ttl_secs.get()),
        handover_timeout: Duration::from_secs(raw.handover_timeout_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_without_a_key_is_a_warning_naming_the_fixes() {
        let openai = url::Url::parse("https://api.openai.com/v1").unwrap();
        let warning = missing_key_warning(&openai, false).expect("warned");
        assert!(warning.contains(MODEL_API_KEY_ENV));
        assert!(warning.contains("model.base_url"));
        assert!(warning.contains("mock-llm"));
        assert!(!warning.contains('\n'));
        assert_eq!(missing_key_warning(&openai, true), None);
        let local = url::Url::parse("http://127.0.0.1:11434/v1").unwrap();
        assert_eq!(missing_key_warning(&local, false), None);
    }
}
