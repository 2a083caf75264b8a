//! The engine's configuration: the `[model]`, `[actors]`, `[persistence]`, `[titles]`,
//! `[agent]`, `[mcp]`, `[stream]` and `[cluster]` sections, deserialized here (serde enums and
//! non-zero types refuse nonsense while parsing) and checked here, so the edge only says where
//! the sections come from. Every problem is reported, one line each, never only the first.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

mod agent;
mod attachments;
mod choices;
mod hosted;
mod reasoning;
mod sections;
mod widgets;
pub use agent::valid_name;
pub use hosted::{HostedTool, HostedTools};
pub use reasoning::{ReasoningEffort, ReasoningSummary};
pub use sections::{load, read_section};
pub use widgets::{ActionThen, ConfiguredTool, WidgetActionSpec, WidgetSettings};

/// The environment variable holding the model API key (never read from files).
pub const MODEL_API_KEY_ENV: &str = "OPENAI_API_KEY";

/// Where the sections come from (the edge's layered configuration).
pub trait SectionSource {
    /// The section `name`, deserialized; the error is one line naming the key at fault.
    fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, String>;

    /// The list of tables `[[name]]` (empty when absent), deserialized entry by entry.
    fn list<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, String>;

    /// What relative paths in the configuration (widget templates) are relative to: the
    /// directory of the configuration file.
    fn base_dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(".")
    }
}

/// Everything the engine needs, validated.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub model: ModelSettings,
    /// Items of history kept in memory and sent to the model (`model.history_limit`).
    pub history_limit: u32,
    pub actors: ActorSettings,
    pub batch: BatchSettings,
    pub titles: TitleSettings,
    pub agent: AgentSettings,
    /// `stream_options.allow_cancel` (protocol §4).
    pub allow_cancel: bool,
    /// What a turn does when its client goes away (`stream.on_disconnect`).
    pub on_disconnect: OnDisconnect,
    pub cluster: ClusterSettings,
    pub attachments: AttachmentSettings,
    /// What `inference_options.model` may name (`[[models]]`); none: the default only.
    pub models: Vec<ModelChoice>,
    /// What `inference_options.tool_choice.id` may name (`[[tool_choices]]`).
    pub tool_choices: Vec<ToolChoiceSpec>,
    pub transcription: TranscriptionSettings,
    /// `[[widgets]]` and `[[widget_actions]]` (`specs/widgets.md`).
    pub widgets: WidgetSettings,
    /// `[[hosted_tools]]`: every one configured (each model offers its own share).
    pub hosted_tools: HostedTools,
}

/// One entry of the composer's model picker (`[[models]]`): the default model's settings with
/// this entry's overrides.
#[derive(Clone, Debug)]
pub struct ModelChoice {
    pub id: String,
    pub label: String,
    pub settings: ModelSettings,
}

/// One entry of the composer's tool menu (`[[tool_choices]]`): a tool the first model call
/// must call, or a profile (instructions and the tools offered).
#[derive(Clone, Debug)]
pub struct ToolChoiceSpec {
    pub id: String,
    pub label: String,
    pub mode: ToolChoiceMode,
}

#[derive(Clone, Debug)]
pub enum ToolChoiceMode {
    /// `<mcp server>__<tool>` or a client tool's name.
    Force(String),
    Profile {
        /// Replace the default instructions.
        instructions: Option<String>,
        /// Only these tools are offered (`<mcp server>__<tool>` or client tool names).
        tools: Option<Vec<String>>,
    },
}

/// Dictation (`input.transcribe`, `[transcription]`).
#[derive(Clone, Debug)]
pub struct TranscriptionSettings {
    pub enabled: bool,
    /// The transcription model (`whisper-1`, `gpt-4o-transcribe`…).
    pub model: String,
    /// The OpenAI-compatible server (`/audio/transcriptions` under it); defaults to the model's.
    pub base_url: String,
    /// Largest audio accepted, in bytes (decoded).
    pub max_bytes: usize,
    /// Requests per minute per user (0: no limit besides the general one).
    pub requests_per_minute: u32,
    pub timeout: Duration,
}

/// How to reach the model (`[model]`).
#[derive(Clone)]
pub struct ModelSettings {
    pub base_url: String,
    pub name: String,
    /// From the environment only; never logged (Debug is redacted below).
    pub api_key: Option<String>,
    /// Longest wait for the response headers and for each chunk after that.
    pub timeout: Duration,
    /// Prepended as a system message when not empty.
    pub instructions: String,
    /// Speak HTTP/2 without negotiation (h2c) to a plain-http model server: every stream of
    /// the process shares one connection. (Over https, HTTP/2 is negotiated by ALPN anyway.)
    pub http2_prior_knowledge: bool,
    /// `reasoning_effort` sent with every request.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Reasoning summaries asked of the Responses API.
    pub reasoning_summary: Option<ReasoningSummary>,
    pub api: ModelApi,
    /// The provider's own tools this model offers (Responses API only, `[[hosted_tools]]`).
    pub hosted_tools: HostedTools,
}

/// Which OpenAI API a model is spoken to with (`model.api`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelApi {
    #[default]
    ChatCompletions,
    Responses,
}

impl std::fmt::Debug for ModelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSettings")
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Thread actors (`[actors]`).
#[derive(Clone, Debug)]
pub struct ActorSettings {
    /// A thread actor with no request for this long retires.
    pub idle_timeout: Duration,
    /// Arbiters (threads) that host thread actors.
    pub arbiters: usize,
    /// Capacity of each turn's event channel to the HTTP layer.
    pub stream_buffer: usize,
    /// At most this many thread actors stay live; the least recently used idle ones retire.
    pub max_live: usize,
}

/// Group commit (`[persistence]`).
#[derive(Clone, Debug)]
pub struct BatchSettings {
    pub max_batch: usize,
    pub flush_interval: Duration,
    /// Flushes (transactions) running at once.
    pub max_in_flight: usize,
}

/// Automatic thread titles (protocol §8.7, §11.3): generated after the first answer of an
/// untitled thread, saved, and announced with `thread.updated`.
#[derive(Clone, Debug)]
pub struct TitleSettings {
    pub enabled: bool,
    pub prompt: String,
    pub max_chars: usize,
}

/// Tools and the tool loop (`[agent]`, `[[mcp.servers]]`).
#[derive(Clone, Debug)]
pub struct AgentSettings {
    /// Model calls per turn at most (each round of tool calls is one).
    pub max_model_calls: u32,
    pub tool_display: ToolDisplay,
    /// Tools the browser runs (protocol §6.3): the turn ends with a pending `client_tool_call`.
    pub client_tools: Vec<ClientToolSpec>,
    pub mcp_servers: Vec<McpServerConfig>,
    /// Offer the model the `ask_user` tool: its questions become a `structured_input` item.
    pub ask_user: bool,
    /// How long a question to the user waits for its answer (`ask_timeout_secs`).
    pub ask_timeout: Duration,
}

/// The tool `agent.ask_user` offers the model.
pub const ASK_USER_TOOL: &str = "ask_user";

/// How server tool calls show in the transcript.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolDisplay {
    /// Invisible, as in the reference.
    #[default]
    Hidden,
    /// `progress_update` events naming the tool while it runs.
    Progress,
    /// A persisted `workflow` item with one task per call (protocol §8.5).
    Workflow,
}

/// What a turn does when the client reading its stream goes away (`stream.on_disconnect`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDisconnect {
    /// As the official SDK: the turn stops and stores what the cancellation rule stores
    /// (protocol §8.8); the composer's stop button stops the model.
    #[default]
    Cancel,
    /// The turn runs to its end and stores everything though nobody listens: a page reloaded
    /// mid-answer finds the whole answer once it is stored. The stop button only stops the
    /// display.
    Finish,
}

/// A client-side tool offered to the model.
#[derive(Clone, Debug)]
pub struct ClientToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// JSON schema of the arguments.
    pub parameters: crate::tool_schema::ToolSchema,
}

/// One configured MCP server (`[[mcp.servers]]`).
#[derive(Clone, Debug)]
pub struct McpServerConfig {
    pub name: String,
    pub url: String,
    pub timeout: Duration,
    /// Send the caller's bearer token on every request of the session.
    pub forward_user_token: bool,
    /// Static extra headers (e.g. an API key of the tool server itself).
    pub headers: Vec<(String, String)>,
    /// How long a `tools/list` answer is shared with other threads of the same caller
    /// (`tools_cache_secs`; zero: every thread lists the tools on its own session).
    pub tools_cache: Duration,
    /// Where its tools' widgets come from (`widgets`, `specs/widgets.md`).
    pub widgets: WidgetMode,
}

/// `[[mcp.servers]] widgets`: how a server's tool results carry widgets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidgetMode {
    /// In the result's `_meta["chatkit/widget"]` (or through a configured template).
    #[default]
    Meta,
    /// The result itself is the widget root (`structuredContent` or its first text block).
    Result,
}

/// Several instances sharing one Postgres (`[cluster]`, `specs/cluster.md`).
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// This instance's id (unique in the cluster).
    pub instance_id: String,
    /// A lease not renewed for this long is free to take.
    pub lease_ttl: Duration,
    /// How long a request waits for another instance to hand a thread over.
    pub handover_timeout: Duration,
}

/// Attachments (`[attachments]`, protocol §3.14, §7.3).
#[derive(Clone)]
pub struct AttachmentSettings {
    /// `attachments.create`, uploads and attachment ids in messages; off: 400 for all three.
    pub enabled: bool,
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// What one user's attachments may take in all (0: no limit).
    pub max_bytes_per_user: u64,
    /// Attachments one message may carry.
    pub max_per_message: usize,
    /// Media types accepted (`type/subtype`, or `type/*`), lowercase.
    pub allowed_types: Vec<String>,
    /// The origin of the URLs handed out (`https://chat.example.com`), when the request's own
    /// `Host` is not what browsers reach (a proxy that rewrites it).
    pub public_url: Option<String>,
    /// Key of the URL signatures; `None`: one kept in the database, shared by every instance.
    pub signing_key: Option<Vec<u8>>,
    /// How long a two-phase upload URL is valid.
    pub upload_url_ttl: Duration,
    /// Preview and download URLs are valid for at least this long (and at most twice it: they
    /// stay the same within a window, so browsers cache them).
    pub url_ttl: Duration,
    /// Uploads never used in a message are deleted after this long.
    pub unused_ttl: Duration,
    /// Longest time a client may take to send an upload.
    pub upload_timeout: Duration,
    /// Text files are given to the model up to this many bytes.
    pub max_text_bytes_to_model: usize,
}

impl std::fmt::Debug for AttachmentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentSettings")
            .field("enabled", &self.enabled)
            .field("max_bytes", &self.max_bytes)
            .field("allowed_types", &self.allowed_types)
            .field("public_url", &self.public_url)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}
