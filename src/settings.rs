//! Configuration: `config/default.toml` (compiled in), then an optional `--config FILE`, then
//! `CHATKIT__SECTION__KEY` environment variables. Everything is validated at start-up and each
//! problem is reported in one clear line; secrets are never printed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chatkit_actors::engine::{AgentSettings, ClientToolSpec, ToolDisplay};
use chatkit_actors::mcp::McpServerConfig;
use chatkit_actors::store::SchemaName;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// The environment variable holding the model API key (never read from files).
pub const MODEL_API_KEY_ENV: &str = "OPENAI_API_KEY";

#[derive(Debug, Deserialize)]
struct RawSettings {
    server: RawServer,
    database: RawDatabase,
    auth: RawAuth,
    model: RawModel,
    actors: RawActors,
    persistence: RawPersistence,
    titles: RawTitles,
    agent: RawAgent,
    #[serde(default)]
    mcp: RawMcp,
    stream: RawStream,
    metrics: RawMetrics,
    limits: RawLimits,
    cluster: RawCluster,
    admin: RawAdmin,
    log: RawLog,
}

#[derive(Debug, Deserialize)]
struct RawCluster {
    instance_id: Option<String>,
    lease_ttl_secs: u64,
    handover_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
struct RawAdmin {
    claim: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct RawLimits {
    requests_per_minute: u32,
    max_streams_per_user: usize,
    max_open_streams: usize,
}

#[derive(Debug, Deserialize)]
struct RawMetrics {
    enabled: bool,
    bind: String,
}

#[derive(Debug, Deserialize)]
struct RawServer {
    bind: String,
    max_body_bytes: u64,
    body_timeout_secs: u64,
    workers: usize,
    drain_timeout_secs: u64,
    mode: String,
    playground: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct RawDatabase {
    url: Option<String>,
    schema: String,
    embedded_dir: String,
    pool_size: usize,
    connect_timeout_secs: u64,
}

#[derive(Deserialize)]
struct RawAuth {
    algorithm: String,
    jwt_secret: Option<String>,
    public_key_pem: Option<String>,
    audience: Option<String>,
    issuer: Option<String>,
    leeway_secs: u64,
    max_token_bytes: usize,
    jwks_url: Option<String>,
    jwks_refresh_secs: u64,
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawAuth { <redacted> }")
    }
}

#[derive(Debug, Deserialize)]
struct RawModel {
    base_url: String,
    name: String,
    history_limit: u32,
    timeout_secs: u64,
    instructions: String,
    http2_prior_knowledge: bool,
    /// Present only to refuse it with a clear message.
    api_key: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RawActors {
    idle_timeout_secs: u64,
    arbiters: usize,
    stream_buffer: usize,
    max_live: usize,
}

#[derive(Debug, Deserialize)]
struct RawAgent {
    max_turns: u32,
    tool_display: String,
    #[serde(default)]
    client_tools: Vec<RawClientTool>,
}

#[derive(Debug, Deserialize)]
struct RawClientTool {
    name: String,
    description: Option<String>,
    parameters: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawMcp {
    #[serde(default)]
    servers: Vec<RawMcpServer>,
}

#[derive(Deserialize)]
struct RawMcpServer {
    name: String,
    url: String,
    #[serde(default = "default_mcp_timeout")]
    timeout_secs: u64,
    #[serde(default)]
    forward_user_token: bool,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_tools_cache")]
    tools_cache_secs: u64,
}

impl std::fmt::Debug for RawMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMcpServer")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

fn default_mcp_timeout() -> u64 {
    30
}

fn default_tools_cache() -> u64 {
    60
}

#[derive(Debug, Deserialize)]
struct RawTitles {
    enabled: bool,
    prompt: String,
    max_chars: usize,
}

#[derive(Debug, Deserialize)]
struct RawPersistence {
    max_batch: usize,
    flush_interval_ms: u64,
    max_in_flight: usize,
}

#[derive(Debug, Deserialize)]
struct RawStream {
    allow_cancel: bool,
}

#[derive(Debug, Deserialize)]
struct RawLog {
    format: String,
    level: String,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub model: ModelConfig,
    pub actors: ActorSettings,
    pub persistence: PersistenceSettings,
    pub titles: TitleConfig,
    pub agent: AgentSettings,
    pub allow_cancel: bool,
    pub limits: crate::http::limits::LimitSettings,
    pub cluster: chatkit_actors::engine::ClusterSettings,
    /// Where `/metrics` is served, if enabled.
    pub metrics_bind: Option<SocketAddr>,
    pub log: LogSettings,
}

#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub workers: usize,
    pub drain_timeout: Duration,
    pub development: bool,
    /// Serve the playground page at `/` (default: in development mode only).
    pub playground: bool,
}

#[derive(Clone)]
pub enum DatabaseTarget {
    /// A server we connect to.
    External(Box<tokio_postgres::Config>),
    /// A private cluster in this directory.
    Embedded(PathBuf),
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseTarget::External(_) => f.write_str("External(<redacted>)"),
            DatabaseTarget::Embedded(dir) => write!(f, "Embedded({})", dir.display()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub target: DatabaseTarget,
    pub schema: SchemaName,
    pub pool_size: usize,
    pub connect_timeout: Duration,
}

/// Key material and checks for JWT verification.
#[derive(Clone)]
pub struct AuthSettings {
    pub algorithm: Algorithm,
    /// The verification key, unless keys come from `jwks_url`.
    pub key: Option<DecodingKey>,
    pub jwks_url: Option<String>,
    pub jwks_refresh: Duration,
    /// Kept to mint development tokens with `dev-token` (HS only).
    pub hs_secret: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub leeway_secs: u64,
    pub max_token_bytes: usize,
    /// A token is an admin token when this claim has this value (or contains it).
    pub admin_claim: String,
    pub admin_value: String,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub base_url: String,
    pub name: String,
    pub history_limit: u32,
    pub timeout: Duration,
    pub instructions: String,
    pub http2_prior_knowledge: bool,
}

#[derive(Clone, Debug)]
pub struct ActorSettings {
    pub idle_timeout: Duration,
    pub arbiters: usize,
    pub stream_buffer: usize,
    pub max_live: usize,
}

#[derive(Clone, Debug)]
pub struct TitleConfig {
    pub enabled: bool,
    pub prompt: String,
    pub max_chars: usize,
}

#[derive(Clone, Debug)]
pub struct PersistenceSettings {
    pub max_batch: usize,
    pub flush_interval: Duration,
    pub max_in_flight: usize,
}

#[derive(Clone, Debug)]
pub struct LogSettings {
    pub json: bool,
    pub level: String,
}

/// Every problem found, one line each.
#[derive(Debug)]
pub struct SettingsError(pub Vec<String>);

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "configuration error: {problem}")?;
        }
        Ok(())
    }
}

impl Settings {
    /// Loads defaults, the optional file and the environment, then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(SettingsError(vec![format!(
                    "config file {} does not exist",
                    path.display()
                )]));
            }
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("CHATKIT")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let raw: RawSettings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| SettingsError(vec![e.to_string()]))?;
        validate(raw)
    }
}

fn validate(raw: RawSettings) -> Result<Settings, SettingsError> {
    let mut problems = Vec::new();

    let bind = SocketAddr::from_str(&raw.server.bind).unwrap_or_else(|_| {
        problems.push(format!(
            "server.bind {:?} is not an IP:port address",
            raw.server.bind
        ));
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let development = match raw.server.mode.as_str() {
        "production" => false,
        "development" => true,
        other => {
            problems.push(format!(
                "server.mode {other:?} must be \"production\" or \"development\""
            ));
            false
        }
    };
    if development && !bind.ip().is_loopback() {
        problems.push("server.mode = \"development\" only binds to a loopback address".into());
    }
    if raw.server.max_body_bytes == 0 {
        problems.push("server.max_body_bytes must be positive".into());
    }
    if raw.server.body_timeout_secs == 0 {
        problems.push("server.body_timeout_secs must be positive".into());
    }

    let schema = SchemaName::parse(&raw.database.schema).unwrap_or_else(|p| {
        problems.push(p);
        SchemaName::parse("chatkit").expect("valid")
    });
    let target = match raw.database.url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => match tokio_postgres::Config::from_str(url) {
            Ok(config) => DatabaseTarget::External(Box::new(config)),
            Err(_) => {
                // The URL may hold a password: never echo it.
                problems.push("database.url is not a valid PostgreSQL connection string".into());
                DatabaseTarget::Embedded(PathBuf::new())
            }
        },
        _ => DatabaseTarget::Embedded(PathBuf::from(&raw.database.embedded_dir)),
    };
    if raw.database.pool_size == 0 {
        problems.push("database.pool_size must be positive".into());
    }

    let mut auth = validate_auth(&raw.auth, &mut problems);
    if raw.admin.claim.is_empty() || raw.admin.value.is_empty() {
        problems.push("admin.claim and admin.value must not be empty".into());
    }
    if let Some(auth) = auth.as_mut() {
        auth.admin_claim = raw.admin.claim.clone();
        auth.admin_value = raw.admin.value.clone();
    }
    let instance_id = match raw
        .cluster
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
            String::new()
        }
        None => chatkit_actors::ids::new_id("inst"),
    };
    if raw.cluster.lease_ttl_secs == 0 {
        problems.push("cluster.lease_ttl_secs must be positive".into());
    }

    match url::Url::parse(&raw.model.base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
        _ => problems.push(format!(
            "model.base_url {:?} is not an http(s) URL",
            raw.model.base_url
        )),
    }
    if raw.model.api_key.is_some() {
        problems.push(format!(
            "model.api_key is not read from configuration; set {MODEL_API_KEY_ENV} in the environment"
        ));
    }
    if raw.model.name.trim().is_empty() {
        problems.push("model.name must not be empty".into());
    }
    if raw.model.history_limit == 0 {
        problems.push("model.history_limit must be positive".into());
    }
    if raw.model.timeout_secs == 0 {
        problems.push("model.timeout_secs must be positive".into());
    }
    if raw.actors.stream_buffer == 0 {
        problems.push("actors.stream_buffer must be positive".into());
    }
    if raw.actors.idle_timeout_secs == 0 {
        problems.push("actors.idle_timeout_secs must be positive".into());
    }
    if raw.actors.max_live == 0 {
        problems.push("actors.max_live must be positive".into());
    }
    if raw.titles.max_chars == 0 {
        problems.push("titles.max_chars must be positive".into());
    }
    if raw.persistence.max_batch == 0 {
        problems.push("persistence.max_batch must be positive".into());
    }
    let agent = validate_agent(&raw.agent, raw.mcp.servers, &mut problems);
    let metrics_bind = if raw.metrics.enabled {
        match SocketAddr::from_str(&raw.metrics.bind) {
            Ok(addr) => Some(addr),
            Err(_) => {
                problems.push(format!(
                    "metrics.bind {:?} is not an IP:port address",
                    raw.metrics.bind
                ));
                None
            }
        }
    } else {
        None
    };
    let json = match raw.log.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            problems.push(format!("log.format {other:?} must be \"text\" or \"json\""));
            false
        }
    };

    if !problems.is_empty() {
        return Err(SettingsError(problems));
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(Settings {
        server: ServerSettings {
            bind,
            max_body_bytes: raw.server.max_body_bytes as usize,
            body_timeout: Duration::from_secs(raw.server.body_timeout_secs),
            workers: if raw.server.workers == 0 {
                cores
            } else {
                raw.server.workers
            },
            drain_timeout: Duration::from_secs(raw.server.drain_timeout_secs),
            development,
            playground: raw.server.playground.unwrap_or(development),
        },
        database: DatabaseSettings {
            target,
            schema,
            pool_size: raw.database.pool_size,
            connect_timeout: Duration::from_secs(raw.database.connect_timeout_secs.max(1)),
        },
        auth: auth.expect("no problems means auth is valid"),
        model: ModelConfig {
            base_url: raw.model.base_url,
            name: raw.model.name,
            history_limit: raw.model.history_limit,
            timeout: Duration::from_secs(raw.model.timeout_secs),
            instructions: raw.model.instructions,
            http2_prior_knowledge: raw.model.http2_prior_knowledge,
        },
        actors: ActorSettings {
            idle_timeout: Duration::from_secs(raw.actors.idle_timeout_secs),
            arbiters: if raw.actors.arbiters == 0 {
                cores
            } else {
                raw.actors.arbiters
            },
            stream_buffer: raw.actors.stream_buffer,
            max_live: raw.actors.max_live,
        },
        titles: TitleConfig {
            enabled: raw.titles.enabled,
            prompt: raw.titles.prompt,
            max_chars: raw.titles.max_chars,
        },
        persistence: PersistenceSettings {
            max_batch: raw.persistence.max_batch,
            flush_interval: Duration::from_millis(raw.persistence.flush_interval_ms),
            max_in_flight: raw.persistence.max_in_flight.max(1),
        },
        agent,
        allow_cancel: raw.stream.allow_cancel,
        metrics_bind,
        cluster: chatkit_actors::engine::ClusterSettings {
            instance_id,
            lease_ttl: Duration::from_secs(raw.cluster.lease_ttl_secs.max(1)),
            handover_timeout: Duration::from_secs(raw.cluster.handover_timeout_secs),
        },
        limits: crate::http::limits::LimitSettings {
            requests_per_minute: raw.limits.requests_per_minute,
            max_streams_per_user: raw.limits.max_streams_per_user,
            max_open_streams: raw.limits.max_open_streams,
        },
        log: LogSettings {
            json,
            level: raw.log.level,
        },
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn validate_agent(
    raw: &RawAgent,
    servers: Vec<RawMcpServer>,
    problems: &mut Vec<String>,
) -> AgentSettings {
    let tool_display = match raw.tool_display.as_str() {
        "hidden" => ToolDisplay::Hidden,
        "progress" => ToolDisplay::Progress,
        "workflow" => ToolDisplay::Workflow,
        other => {
            problems.push(format!(
                "agent.tool_display {other:?} must be \"hidden\", \"progress\" or \"workflow\""
            ));
            ToolDisplay::Hidden
        }
    };
    if raw.max_turns == 0 {
        problems.push("agent.max_turns must be positive".into());
    }
    let mut client_tools = Vec::new();
    for tool in &raw.client_tools {
        if !valid_name(&tool.name) {
            problems.push(format!(
                "agent.client_tools name {:?} must match ^[A-Za-z0-9_-]{{1,64}}$",
                tool.name
            ));
            continue;
        }
        let parameters = match tool.parameters.as_deref() {
            None => serde_json::json!({ "type": "object", "properties": {} }),
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value @ serde_json::Value::Object(_)) => value,
                _ => {
                    problems.push(format!(
                        "agent.client_tools {}: parameters must be a JSON schema object",
                        tool.name
                    ));
                    continue;
                }
            },
        };
        client_tools.push(ClientToolSpec {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters,
        });
    }
    let mut mcp_servers: Vec<McpServerConfig> = Vec::new();
    for server in servers {
        if !valid_name(&server.name) || mcp_servers.iter().any(|s| s.name == server.name) {
            problems.push(format!(
                "mcp.servers name {:?} must be unique and match ^[A-Za-z0-9_-]{{1,64}}$",
                server.name
            ));
            continue;
        }
        match url::Url::parse(&server.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => {
                problems.push(format!(
                    "mcp.servers {}: url is not an http(s) URL",
                    server.name
                ));
                continue;
            }
        }
        if server.timeout_secs == 0 {
            problems.push(format!(
                "mcp.servers {}: timeout_secs must be positive",
                server.name
            ));
        }
        mcp_servers.push(McpServerConfig {
            name: server.name,
            url: server.url,
            timeout: Duration::from_secs(server.timeout_secs.max(1)),
            forward_user_token: server.forward_user_token,
            headers: server.headers.into_iter().collect(),
            tools_cache: Duration::from_secs(server.tools_cache_secs),
        });
    }
    AgentSettings {
        max_turns: raw.max_turns,
        tool_display,
        client_tools,
        mcp_servers,
    }
}

fn validate_auth(raw: &RawAuth, problems: &mut Vec<String>) -> Option<AuthSettings> {
    let algorithm = match Algorithm::from_str(&raw.algorithm) {
        Ok(Algorithm::EdDSA) | Err(_) => {
            problems.push(format!(
                "auth.algorithm {:?} must be one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384",
                raw.algorithm
            ));
            return None;
        }
        Ok(alg) => alg,
    };
    let secret = raw.jwt_secret.as_deref().filter(|s| !s.is_empty());
    let pem = raw
        .public_key_pem
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let is_hmac = matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    );
    let jwks_url = raw
        .jwks_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(url) = jwks_url {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => problems.push("auth.jwks_url is not an http(s) URL".into()),
        }
        if is_hmac {
            problems.push(format!(
                "auth.jwks_url needs an asymmetric auth.algorithm, not {}",
                raw.algorithm
            ));
        }
        if pem.is_some() {
            problems.push("set either auth.jwks_url or auth.public_key_pem, not both".into());
        }
        if raw.jwks_refresh_secs == 0 {
            problems.push("auth.jwks_refresh_secs must be positive".into());
        }
    }
    let key = if jwks_url.is_some() {
        None
    } else if is_hmac {
        match secret {
            None => {
                problems.push(format!(
                    "auth.jwt_secret is required for {} (set CHATKIT__AUTH__JWT_SECRET)",
                    raw.algorithm
                ));
                return None;
            }
            Some(s) if s.len() < 32 => {
                problems.push("auth.jwt_secret must be at least 32 bytes long".into());
                return None;
            }
            Some(s) => Some(DecodingKey::from_secret(s.as_bytes())),
        }
    } else {
        let Some(pem) = pem else {
            problems.push(format!(
                "auth.public_key_pem or auth.jwks_url is required for {} (set CHATKIT__AUTH__PUBLIC_KEY_PEM or CHATKIT__AUTH__JWKS_URL)",
                raw.algorithm
            ));
            return None;
        };
        let parsed = if matches!(algorithm, Algorithm::ES256 | Algorithm::ES384) {
            DecodingKey::from_ec_pem(pem.as_bytes())
        } else {
            DecodingKey::from_rsa_pem(pem.as_bytes())
        };
        match parsed {
            Ok(key) => Some(key),
            Err(_) => {
                problems.push(format!(
                    "auth.public_key_pem is not a valid {} public key",
                    raw.algorithm
                ));
                return None;
            }
        }
    };
    if raw.max_token_bytes < 64 {
        problems.push("auth.max_token_bytes is too small".into());
    }
    Some(AuthSettings {
        algorithm,
        key,
        jwks_url: jwks_url.map(str::to_string),
        jwks_refresh: Duration::from_secs(raw.jwks_refresh_secs.max(1)),
        hs_secret: if is_hmac {
            secret.map(str::to_string)
        } else {
            None
        },
        audience: raw.audience.clone().filter(|a| !a.is_empty()),
        issuer: raw.issuer.clone().filter(|i| !i.is_empty()),
        leeway_secs: raw.leeway_secs,
        max_token_bytes: raw.max_token_bytes,
        admin_claim: String::new(),
        admin_value: String::new(),
    })
}
