//! Logging: human-readable by default, JSON with `log.format = "json"`; `RUST_LOG` wins over
//! `log.level`. Tokens, keys and passwords are never passed to a log macro.

use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.level.clone()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if settings.json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    let _ = result;
}
