//! Whether and where traces are exported, and the tracer that exports them: OTLP over HTTP
//! (protobuf) with the reqwest client the server already has, the standard `OTEL_*`
//! variables read as every OpenTelemetry SDK reads them, and `service.name` = the configured
//! name unless the environment names the service.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanExporter as _};
use opentelemetry_sdk::Resource;

use super::processor::{BatchSettings, BoundedBatchProcessor};
use crate::settings::TelemetrySettings;

/// Where spans go.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// `telemetry.otlp_endpoint`, as the full URL of the traces path.
    Configured(String),
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`, read by the
    /// exporter itself.
    FromEnvironment,
}

/// Whether traces are exported, and where: on when the configuration or the environment names
/// a collector, unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
pub(super) fn target(
    configured: Option<&str>,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<Target> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    if set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none")) {
        return None;
    }
    if let Some(base) = configured {
        return Some(Target::Configured(traces_url(base)));
    }
    let from_env =
        set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"));
    from_env.map(|_| Target::FromEnvironment)
}

/// A base endpoint's traces URL, as the OTLP exporter spec builds it from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// Whether the environment names the service (then it wins over the configuration).
fn environment_names_service(env: &impl Fn(&str) -> Option<String>) -> bool {
    env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
            attributes
                .split(',')
                .any(|pair| pair.trim_start().starts_with("service.name="))
        })
}

/// The provider (kept to flush at exit) and its tracer.
pub(super) fn tracer(
    settings: &TelemetrySettings,
    target: Target,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(SdkTracerProvider, SdkTracer), String> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Target::Configured(url) = target {
        builder = builder.with_endpoint(url);
    }
    let mut exporter = builder
        .build()
        .map_err(|e| format!("the trace exporter cannot start: {e}"))?;
    let mut resource = Resource::builder();
    if !environment_names_service(env) {
        resource = resource.with_service_name(settings.service_name.clone());
    }
    let resource = resource.build();
    exporter.set_resource(&resource);
    let processor = BoundedBatchProcessor::start(exporter, BatchSettings::from_env(env))
        .map_err(|e| format!("the trace export thread cannot start: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("chatkit-rs");
    Ok((provider, tracer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn traces_are_on_when_the_configuration_or_the_environment_names_a_collector() {
        assert_eq!(target(None, &env(&[])), None);
        assert_eq!(
            target(Some("http://collector:4318/"), &env(&[])),
            Some(Target::Configured("http://collector:4318/v1/traces".into()))
        );
        let standard = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
        assert_eq!(target(None, &standard), Some(Target::FromEnvironment));
        let traces_only = env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]);
        assert_eq!(target(None, &traces_only), Some(Target::FromEnvironment));
        assert_eq!(
            target(None, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])),
            None
        );
    }

    #[test]
    fn the_sdk_switches_turn_traces_off() {
        let disabled = env(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
        ]);
        assert_eq!(target(Some("http://c"), &disabled), None);
        let none = env(&[("OTEL_TRACES_EXPORTER", "none")]);
        assert_eq!(target(Some("http://c"), &none), None);
    }

    #[test]
    fn the_environment_s_service_name_wins() {
        assert!(!environment_names_service(&env(&[])));
        assert!(environment_names_service(&env(&[(
            "OTEL_SERVICE_NAME",
            "chat-eu"
        )])));
        assert!(environment_names_service(&env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod, service.name=chat-eu"
        )])));
        assert!(!environment_names_service(&env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=chat"
        )])));
    }
}
