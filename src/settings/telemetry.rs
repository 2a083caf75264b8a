//! The `[telemetry]` section: where traces are exported (OTLP/HTTP), what they may contain, and
//! the service's name. The standard `OTEL_*` variables are read by `crate::telemetry`.

use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct RawTelemetry {
    otlp_endpoint: String,
    capture_content: bool,
    service_name: String,
}

#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://host:4318`), if configured here.
    pub otlp_endpoint: Option<String>,
    /// Prompt and answer text on model-call spans.
    pub capture_content: bool,
    /// `service.name` unless the environment names the service.
    pub service_name: String,
}

pub(super) fn telemetry_settings(raw: RawTelemetry) -> Result<TelemetrySettings, String> {
    let endpoint = raw.otlp_endpoint.trim();
    let otlp_endpoint = if endpoint.is_empty() {
        None
    } else {
        match url::Url::parse(endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(endpoint.to_string()),
            _ => {
                return Err(format!(
                    "telemetry.otlp_endpoint {endpoint:?} is not an http(s) URL"
                ))
            }
        }
    };
    if raw.service_name.trim().is_empty() {
        return Err("telemetry.service_name must not be empty".into());
    }
    Ok(TelemetrySettings {
        otlp_endpoint,
        capture_content: raw.capture_content,
        service_name: raw.service_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(endpoint: &str) -> RawTelemetry {
        RawTelemetry {
            otlp_endpoint: endpoint.into(),
            capture_content: false,
            service_name: "chatkit-rs".into(),
        }
    }

    #[test]
    fn the_endpoint_is_an_http_url_or_empty() {
        assert_eq!(telemetry_settings(raw("")).unwrap().otlp_endpoint, None);
        assert_eq!(
            telemetry_settings(raw("http://localhost:4318"))
                .unwrap()
                .otlp_endpoint
                .as_deref(),
            Some("http://localhost:4318")
        );
        assert_eq!(
            telemetry_settings(raw("localhost:4318")).err(),
            Some("telemetry.otlp_endpoint \"localhost:4318\" is not an http(s) URL".to_string())
        );
    }
}
