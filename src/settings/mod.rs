//! Configuration: `config/default.toml` (compiled in), then an optional `--config FILE`, then
//! `CHATKIT__SECTION__KEY` environment variables. The edge owns the `[server]`, `[database]`,
//! `[auth]`, `[limits]`, `[admin]`, `[metrics]` and `[log]` sections; the engine deserializes
//! and checks its own (`chatkit_actors::config`). Keys that match no setting are refused
//! (`keys.rs`). Every problem is reported in one clear line, all at once; secrets are never
//! printed.

mod auth;
mod database;
mod keys;
mod server;

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
    let admin = read_section::<RawAdmin>(layers, "admin", &mut problems);
    if admin
        .as_ref()
        .is_some_and(|a| a.claim.is_empty() || a.value.is_empty())
    {
        problems.push("admin.claim and admin.value must not be empty".into());
    }
    let auth = read_section::<auth::RawAuth>(layers, "auth", &mut problems)
        .and_then(|raw| auth::validate_auth(&raw, &mut problems))
        .zip(admin)
        .map(|(mut auth, admin)| {
            auth.admin_claim = admin.claim;
            auth.admin_value = admin.value;
            auth
        });
    let limits = read_section::<RawLimits>(layers, "limits", &mut problems).map(|raw| {
        crate::http::limits::LimitSettings {
            requests_per_minute: raw.requests_per_minute,
            max_streams_per_user: raw.max_streams_per_user,
            max_open_streams: raw.max_open_streams,
        }
    });
    let metrics_bind = read_section::<RawMetrics>(layers, "metrics", &mut problems).map(|raw| {
        if !raw.enabled {
            return None;
        }
        SocketAddr::from_str(&raw.bind)
            .map_err(|_| {
                problems.push(format!(
                    "metrics.bind {:?} is not an IP:port address",
                    raw.bind
                ))
            })
            .ok()
    });
    let log = read_section::<RawLog>(layers, "log", &mut problems).and_then(|raw| {
        let json = match raw.format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                problems.push(format!("log.format {other:?} must be \"text\" or \"json\""));
                return None;
            }
        };
        Some(LogSettings {
            json,
            level: raw.level,
        })
    });
    let engine = engine_config::load(layers, api_key, &mut problems, &mut warnings);
    let model_warning = warnings
        .iter()
        .find(|w| w.starts_with("model is not configured"))
        .cloned();
    match (server, database, auth, limits, metrics_bind, log, engine) {
        (
            Some(server),
            Some(database),
            Some(auth),
            Some(limits),
            Some(metrics_bind),
            Some(log),
            Some(engine),
        ) if problems.is_empty() => Ok(Settings {
            server,
            database,
            auth,
            engine,
            limits,
            metrics_bind,
            log,
            warnings,
            model_warning,
        }),
        _ => Err(SettingsError(problems)),
    }
}
