//! Logs and traces: the process's `tracing` subscriber, and OpenTelemetry spans exported over
//! OTLP/HTTP when `observability.otlp_endpoint` is set.
//!
//! Spans: one per HTTP request (`http_request`: route, status), one per tool call
//! (`tool_call`: client, tool, outcome, duration) and one per sandbox execution
//! (`execution`: execution id, calls, limit hit); a tool call made while serving a request is
//! that request's child. A caller's W3C `traceparent` becomes the request span's parent
//! ([`adopt_caller_trace`]), so codemode's spans join the caller's trace.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The exporter that sends spans, kept to flush them at exit.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Why traces cannot be exported.
#[derive(Debug, thiserror::Error)]
#[error("observability.otlp_endpoint: {0}")]
pub struct TelemetryError(String);

/// Installs the process's subscriber: logs on stderr (`RUST_LOG`, else `default_filter`; JSON
/// when `json`), and spans exported to the OTLP/HTTP collector at `otlp_endpoint`
/// (`http://collector:4318`; spans go to `<endpoint>/v1/traces`) when there is one.
///
/// # Errors
/// [`TelemetryError`] when the exporter cannot be built.
pub fn init(
    default_filter: &str,
    json: bool,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, TelemetryError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        logs.json().boxed()
    } else {
        logs.boxed()
    };
    let provider = otlp_endpoint.map(exporter).transpose()?;
    let spans = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("codemode")));
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // A second init (tests that start several services in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init();
    Ok(Telemetry { provider })
}

fn exporter(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("codemode")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "the last spans could not be exported");
        }
    }
}

/// Makes the caller's W3C trace context (`traceparent`, `tracestate` in `headers`) the parent
/// of `span`, when it sent one.
pub fn adopt_caller_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    // A malformed header leaves the span a root.
    let _ = span.set_parent(context);
}

/// The W3C trace context of the current span, for a request codemode sends upstream.
pub fn current_trace_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(
            &context,
            &mut opentelemetry_http::HeaderInjector(&mut headers),
        );
    });
    headers
}
