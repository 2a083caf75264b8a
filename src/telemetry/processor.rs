//! The span processor between the tracer and the OTLP exporter: a bounded queue that never
//! makes a request wait. A span that ends while the queue is full is dropped and counted
//! (`chatkit_trace_spans_dropped_total{reason="queue_full"}`); a batch the collector refuses or
//! cannot take in time is counted too (`reason="export_failed"`). One thread of its own, with
//! a small Tokio runtime for the exporter's HTTP client, sends the batches: a slow or dead
//! collector costs that thread's time, never a request's.
//!
//! Its sizes and delays are the standard `OTEL_BSP_*` variables ([`BatchSettings::from_env`]).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use chatkit_actors::metrics::METRICS;
use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// Queue and batch sizes, and how often and how long a batch is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct BatchSettings {
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub scheduled_delay: Duration,
    pub export_timeout: Duration,
}

impl BatchSettings {
    /// The OpenTelemetry defaults, changed by `OTEL_BSP_MAX_QUEUE_SIZE`,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY` and `OTEL_BSP_EXPORT_TIMEOUT`
    /// (milliseconds); values that do not parse, or zero sizes, keep the default.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        let number = |name: &str| {
            env(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        let max_queue_size = number("OTEL_BSP_MAX_QUEUE_SIZE").map_or(2048, |n| n as usize);
        let max_export_batch_size = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
            .map_or(512, |n| n as usize)
            .min(max_queue_size);
        BatchSettings {
            max_queue_size,
            max_export_batch_size,
            scheduled_delay: Duration::from_millis(
                number("OTEL_BSP_SCHEDULE_DELAY").unwrap_or(5000),
            ),
            export_timeout: Duration::from_millis(
                number("OTEL_BSP_EXPORT_TIMEOUT").unwrap_or(30_000),
            ),
        }
    }
}

enum Message {
    Span(Box<SpanData>),
    /// Send everything queued, then answer.
    Flush(mpsc::Sender<()>),
    /// Send everything queued, answer, and stop.
    Shutdown(mpsc::Sender<()>),
}

/// The tracer's processor: `on_end` only tries to queue.
#[derive(Debug)]
pub(super) struct BoundedBatchProcessor {
    queue: SyncSender<Message>,
}

impl BoundedBatchProcessor {
    /// Starts the export thread with `exporter` (its resource already set).
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        settings: BatchSettings,
    ) -> std::io::Result<Self> {
        let (queue, received) = mpsc::sync_channel(settings.max_queue_size);
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || run(exporter, received, settings))?;
        Ok(BoundedBatchProcessor { queue })
    }

    fn ask(
        &self,
        message: impl FnOnce(mpsc::Sender<()>) -> Message,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (done, wait) = mpsc::channel();
        self.queue
            .send(message(done))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        wait.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for BoundedBatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.queue.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => dropped("queue_full", 1),
            // Shut down: nothing more is exported.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Message::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.ask(Message::Shutdown, timeout)
    }
}

fn dropped(reason: &str, spans: usize) {
    METRICS
        .trace_spans_dropped
        .with_label_values(&[reason])
        .inc_by(spans as u64);
}

/// The export thread: a batch goes when it is full or `scheduled_delay` after the last one.
fn run<E: SpanExporter>(exporter: E, received: Receiver<Message>, settings: BatchSettings) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let export = |batch: &mut Vec<SpanData>| {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::take(batch);
        let count = spans.len();
        // The timer is made inside the runtime (its constructor needs one).
        let sent = runtime.block_on(async {
            tokio::time::timeout(settings.export_timeout, exporter.export(spans)).await
        });
        if !matches!(sent, Ok(Ok(()))) {
            dropped("export_failed", count);
        }
    };
    let mut batch = Vec::with_capacity(settings.max_export_batch_size);
    let mut due = Instant::now() + settings.scheduled_delay;
    loop {
        let wait = due.saturating_duration_since(Instant::now());
        match received.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                if batch.len() >= settings.max_export_batch_size {
                    export(&mut batch);
                    due = Instant::now() + settings.scheduled_delay;
                }
            }
            Ok(Message::Flush(done)) => {
                drain(
                    &received,
                    &mut batch,
                    settings.max_export_batch_size,
                    &export,
                );
                let _ = done.send(());
            }
            Ok(Message::Shutdown(done)) => {
                drain(
                    &received,
                    &mut batch,
                    settings.max_export_batch_size,
                    &export,
                );
                let _ = exporter.shutdown();
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                export(&mut batch);
                due = Instant::now() + settings.scheduled_delay;
            }
            Err(RecvTimeoutError::Disconnected) => {
                export(&mut batch);
                return;
            }
        }
    }
}

/// Sends every span queued now, in batches.
fn drain(
    received: &Receiver<Message>,
    batch: &mut Vec<SpanData>,
    max: usize,
    export: &impl Fn(&mut Vec<SpanData>),
) {
    while let Ok(message) = received.try_recv() {
        match message {
            Message::Span(span) => {
                batch.push(*span);
                if batch.len() >= max {
                    export(batch);
                }
            }
            // A second flush asked meanwhile is answered by this one.
            Message::Flush(done) | Message::Shutdown(done) => {
                let _ = done.send(());
            }
        }
    }
    export(batch);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> BatchSettings {
        BatchSettings::from_env(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn batch_settings_are_the_otel_defaults_changed_by_otel_bsp_variables() {
        let defaults = settings(&[]);
        assert_eq!(defaults.max_queue_size, 2048);
        assert_eq!(defaults.max_export_batch_size, 512);
        assert_eq!(defaults.scheduled_delay, Duration::from_secs(5));
        assert_eq!(defaults.export_timeout, Duration::from_secs(30));
        let set = settings(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "nonsense"),
        ]);
        assert_eq!(set.max_queue_size, 100);
        assert_eq!(set.max_export_batch_size, 100, "a batch fits in the queue");
        assert_eq!(set.scheduled_delay, Duration::from_millis(200));
        assert_eq!(set.export_timeout, Duration::from_secs(30));
    }
}
