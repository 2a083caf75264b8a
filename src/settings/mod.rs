//! Configuration: `config/default.toml` (compiled in), then an optional `--config FILE`, then
//! `CHATKIT__SECTION__KEY` environment variables. The edge owns the `[server]`, `[database]`,
//! `[auth]`, `[limits]`, `[admin]`, `[metrics]`, `[log]` and `[telemetry]` sections; the engine deserializes
//! and checks its own (`chatkit_actors::config`). Keys that match no setting are refused
//! (`keys.rs`). Every problem is reported in one clear line, all at once; secrets are never
//! printed.

mod auth;
mod database;
mod keys;
mod server;
mod telemetry;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use chatkit_actors::config::{self as engine_config, read_section, EngineSettings, SectionSource};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use chatkit_actors::config::MODEL_API_KEY_ENV;
use database::{database_settings, RawDatabase};
pub use database::{DatabaseSettings, DatabaseTarget};
pub use server::ServerSettings;
use server::{server_settings, RawServer};
pub use telemetry::TelemetrySettings;
use telemetry::{telemetry_settings, RawTelemetry};

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// The prefix of environment variables that set keys (`CHATKIT__SERVER__BIND`).
const ENV_PREFIX: &str = "CHATKIT";
const ENV_SEPARATOR: &str = "__";

#[derive(Deserialize)]
struct RawLimits {
    requests_per_minute: u32,
    max_streams_per_user: usize,
    max_open_streams: usize,
}

#[derive(Deserialize)]
struct RawAdmin {
    claim: String,
    value: String,
}

#[derive(Deserialize)]
struct RawMetrics {
    enabled: bool,
    bind: String,
}

#[derive(Deserialize)]
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
    pub engine: EngineSettings,
    pub limits: crate::http::limits::LimitSettings,
    /// Where `/metrics` is served, if enabled.
    pub metrics_bind: Option<SocketAddr>,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
    /// Settings that work but are probably not what the operator wants, one line each (said
    /// at start-up and by `check-config`).
    pub warnings: Vec<String>,
    /// The warning that the model cannot answer as configured (also shown by the playground).
    pub model_warning: Option<String>,
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

/// The merged layers, read section by section so that one bad section does not hide the
/// problems of the others.
struct Layers {
    config: config::Config,
    /// The configuration file's directory (relative paths in it are relative to it).
    base_dir: std::path::PathBuf,
}

impl SectionSource for Layers {
    fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, String> {
        let value = match self.config.get::<config::Value>(name) {
            Ok(value) => value,
            // A section with no keys (`[mcp]` with only comments) is an empty table.
            Err(config::ConfigError::NotFound(_)) => {
                config::Value::new(None, config::ValueKind::Table(config::Map::new()))
            }
            Err(e) => return Err(one_line(&e.to_string())),
        };
        // config's own value deserializer (it reads "8" from the environment as a number),
        // with the path of the key at fault (config appends "for key `…`" naming only the
        // last part; we name it in full).
        Layers::deserialize(value, name)
    }

    fn list<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, String> {
        match self.config.get::<config::Value>(name) {
            Ok(value) => Layers::deserialize(value, name),
            Err(config::ConfigError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(one_line(&e.to_string())),
        }
    }

    fn base_dir(&self) -> std::path::PathBuf {
        self.base_dir.clone()
    }
}

impl Layers {
    fn deserialize<T: DeserializeOwned>(value: config::Value, name: &str) -> Result<T, String> {
        serde_path_to_error::deserialize(value).map_err(|error| {
            let key = match error.path().to_string() {
                path if path == "." || path.is_empty() => name.to_string(),
                path => format!("{name}.{path}"),
            };
            let inner = one_line(&error.into_inner().to_string());
            let inner = inner.split(" for key `").next().unwrap_or_default();
            if inner.contains("expected a nonzero") {
                format!("{key} must be positive")
            } else {
                format!("{key}: {inner}")
            }
        })
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Settings {
    /// Loads defaults, the optional file and the environment, then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given (tests).
    pub fn load_from(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut problems = Vec::new();
        let known = keys::KnownKeys::from_defaults(DEFAULTS);
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(SettingsError(vec![format!(
                    "config file {} does not exist",
                    path.display()
                )]));
            }
            let source = config::File::from(path.to_path_buf()).format(config::FileFormat::Toml);
            match config::Config::builder().add_source(source.clone()).build() {
                Ok(alone) => known.check_file(&alone, path, &mut problems),
                Err(e) => return Err(SettingsError(vec![one_line(&e.to_string())])),
            }
            builder = builder.add_source(source);
        }
        known.check_env(&env, ENV_PREFIX, ENV_SEPARATOR, &mut problems);
        let env_source = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            // Lists from the environment are comma-separated (only these keys are lists).
            .list_separator(",")
            .with_list_parse_key("attachments.allowed_types")
            .with_list_parse_key("server.cors_allowed_origins")
            .with_list_parse_key("server.trusted_proxies")
            .with_list_parse_key("database.replica_urls")
            .source(Some(env.iter().cloned().collect()));
        let layers = builder
            .add_source(env_source)
            .build()
            .map_err(|e| SettingsError(vec![one_line(&e.to_string())]))?;
        let api_key = env
            .iter()
            .find(|(name, _)| name == MODEL_API_KEY_ENV)
            .map(|(_, key)| key.clone());
        let base_dir = file
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| std::path::PathBuf::from("."));
        let layers = Layers {
            config: layers,
            base_dir,
        };
        validate(&layers, api_key, problems)
    }
}

fn validate(
    layers: &Layers,
    api_key: Option<String>,
    mut problems: Vec<String>,
) -> Result<Settings, SettingsError> {
    let mut warnings = Vec::new();
    let server = read_section::<RawServer>(layers, "server", &mut problems)
        .and_then(|raw| server_settings(raw, &mut problems));
    let database = read_section::<RawDatabase>(layers, "database", &mut problems)
        .and_then(|raw| database_settings(raw, &mut problems, &mut warnings));
    let auth = auth_with_admin(layers, &mut problems);
    let limits = read_section::<RawLimits>(layers, "limits", &mut problems).map(limit_settings);
    let metrics_bind = read_section::<RawMetrics>(layers, "metrics", &mut problems)
        .and_then(|raw| metrics_bind(&raw).map_err(|p| problems.push(p)).ok());
    let log = read_section::<RawLog>(layers, "log", &mut problems)
        .and_then(|raw| log_settings(raw).map_err(|p| problems.push(p)).ok());
    let telemetry = read_section::<RawTelemetry>(layers, "telemetry", &mut problems)
        .and_then(|raw| telemetry_settings(raw).map_err(|p| problems.push(p)).ok());
    let engine = engine_config::load(layers, api_key, &mut problems, &mut warnings);
    let model_warning = warnings
        .iter()
        .find(|w| w.starts_with("model is not configured"))
        .cloned();
    let settings = || {
        Some(Settings {
            server: server?,
            database: database?,
            auth: auth?,
            engine: engine?,
            limits: limits?,
            metrics_bind: metrics_bind?,
            log: log?,
            telemetry: telemetry?,
            warnings,
            model_warning,
        })
    };
    match settings() {
        Some(settings) if problems.is_empty() => Ok(settings),
        _ => Err(SettingsError(problems)),
    }
}

/// `[auth]` with the admin claim of `[admin]` (read first, so its problem comes first).
fn auth_with_admin(layers: &Layers, problems: &mut Vec<String>) -> Option<AuthSettings> {
    let admin = read_section::<RawAdmin>(layers, "admin", problems);
    if admin
        .as_ref()
        .is_some_and(|a| a.claim.is_empty() || a.value.is_empty())
    {
        problems.push("admin.claim and admin.value must not be empty".into());
    }
    let auth = read_section::<auth::RawAuth>(layers, "auth", problems)
        .and_then(|raw| auth::validate_auth(&raw, problems));
    let (mut auth, admin) = auth.zip(admin)?;
    auth.admin_claim = admin.claim;
    auth.admin_value = admin.value;
    Some(auth)
}

fn limit_settings(raw: RawLimits) -> crate::http::limits::LimitSettings {
    crate::http::limits::LimitSettings {
        requests_per_minute: raw.requests_per_minute,
        max_streams_per_user: raw.max_streams_per_user,
        max_open_streams: raw.max_open_streams,
    }
}

/// Where `/metrics` is served: `None` when metrics are off.
fn metrics_bind(raw: &RawMetrics) -> Result<Option<SocketAddr>, String> {
    if !raw.enabled {
        return Ok(None);
    }
    SocketAddr::from_str(&raw.bind)
        .map(Some)
        .map_err(|_| format!("metrics.bind {:?} is not an IP:port address", raw.bind))
}

fn log_settings(raw: RawLog) -> Result<LogSettings, String> {
    let json = match raw.format.as_str() {
        "text" => false,
        "json" => true,
        other => return Err(format!("log.format {other:?} must be \"text\" or \"json\"")),
    };
    Ok(LogSettings {
        json,
        level: raw.level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_served_on_an_address_only_when_enabled() {
        let metrics = |enabled, bind: &str| RawMetrics {
            enabled,
            bind: bind.into(),
        };
        assert_eq!(
            metrics_bind(&metrics(true, "127.0.0.1:9100")),
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9100))))
        );
        assert_eq!(metrics_bind(&metrics(false, "nowhere")), Ok(None));
        assert_eq!(
            metrics_bind(&metrics(true, "nowhere")),
            Err("metrics.bind \"nowhere\" is not an IP:port address".to_string())
        );
    }

    #[test]
    fn the_log_is_text_or_json() {
        let log = |format: &str| RawLog {
            format: format.into(),
            level: "info".into(),
        };
        assert!(!log_settings(log("text")).unwrap().json);
        assert!(log_settings(log("json")).unwrap().json);
        assert_eq!(
            log_settings(log("xml")).err(),
            Some("log.format \"xml\" must be \"text\" or \"json\"".to_string())
        );
    }

    #[test]
    fn every_section_s_problem_is_reported_at_once_in_section_order() {
        let env = [
            ("CHATKIT__SERVER__BIND", "nowhere"),
            ("CHATKIT__ADMIN__CLAIM", ""),
            ("CHATKIT__AUTH__JWT_SECRET", "short"),
            ("CHATKIT__METRICS__BIND", "nowhere"),
            ("CHATKIT__LOG__FORMAT", "xml"),
            ("CHATKIT__DATABASE__POOL_SIZE", "0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let problems = Settings::load_from(None, env).unwrap_err().0;
        assert_eq!(
            problems,
            [
                "server.bind \"nowhere\" is not an IP:port address",
                "database.pool_size must be positive",
                "admin.claim and admin.value must not be empty",
                "auth.jwt_secret must be at least 32 bytes long",
                "metrics.bind \"nowhere\" is not an IP:port address",
                "log.format \"xml\" must be \"text\" or \"json\"",
            ]
        );
    }
}
