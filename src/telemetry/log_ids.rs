//! `trace_id` and `span_id` on each log line written inside a traced span, so that a line
//! leads to its trace: `trace_id=… span_id=… ` before a text line, two more fields in a JSON
//! line.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// A log line format with the current trace and span ids.
pub(super) struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    pub fn text(inner: F) -> Self {
        WithTraceIds { inner, json: false }
    }

    pub fn json(inner: F) -> Self {
        WithTraceIds { inner, json: true }
    }
}

/// The ids of the span the event happens in, if it is traced.
fn current_ids() -> Option<(String, String)> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid()
        .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
}

/// `{"trace_id":…,"span_id":…,` + the rest of a JSON object line.
fn json_with_ids(line: &str, trace_id: &str, span_id: &str) -> Option<String> {
    let rest = line.strip_prefix('{')?;
    let separator = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    Some(format!(
        "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"{separator}{rest}"
    ))
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = current_ids() else {
            return self.inner.format_event(ctx, writer, event);
        };
        if !self.json {
            write!(writer, "trace_id={trace_id} span_id={span_id} ")?;
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match json_with_ids(&line, &trace_id, &span_id) {
            Some(with_ids) => writer.write_str(&with_ids),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json_with_ids;

    #[test]
    fn ids_lead_a_json_line() {
        assert_eq!(
            json_with_ids("{\"level\":\"INFO\"}\n", "t", "s").unwrap(),
            "{\"trace_id\":\"t\",\"span_id\":\"s\",\"level\":\"INFO\"}\n"
        );
        assert_eq!(
            json_with_ids("{}", "t", "s").unwrap(),
            "{\"trace_id\":\"t\",\"span_id\":\"s\"}"
        );
        assert_eq!(json_with_ids("not json", "t", "s"), None);
    }
}
