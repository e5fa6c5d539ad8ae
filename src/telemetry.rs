//! Logs to standard error, and — when `pantheon up` is given an OTLP endpoint
//! (`--otlp-endpoint`, or `OTEL_EXPORTER_OTLP_ENDPOINT`) — traces exported over OTLP/HTTP
//! (JSON, `<endpoint>/v1/traces`): the spans of the gateway, every phase and every agent call,
//! one trace per task (`events::trace` joins them through the events' traceparent). Off
//! unless configured: without an endpoint no span carries a trace and nothing is exported.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The crates whose spans are exported (at info and above).
const TRACED_CRATES: [&str; 4] = ["actors", "gateway", "pantheon", "events"];

/// The exporter, to flush and stop at exit.
pub(crate) struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports what is left and stops.
    pub(crate) async fn shutdown(self) {
        let provider = self.provider;
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            eprintln!("warning: traces not all exported: {error}");
        }
    }
}

/// Installs the log subscriber (`PANTHEON_LOG`, default `warn`) and, with `otlp_endpoint`,
/// the trace exporter naming itself `service`.
pub(crate) fn init(otlp_endpoint: Option<&str>, service: &str) -> anyhow::Result<Option<Telemetry>> {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_env("PANTHEON_LOG").unwrap_or_else(|_| "warn".into()),
        );
    let Some(endpoint) = otlp_endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        anyhow::bail!("the OTLP endpoint must be an http:// or https:// URL, not {endpoint:?}");
    }
    gateway::webhooks::install_crypto_provider();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_http_client(reqwest::Client::builder().no_proxy().build().context("the OTLP HTTP client")?)
        .build()
        .context("the OTLP exporter")?;
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service.to_string()).build())
        .build();
    let traced = TRACED_CRATES
        .iter()
        .fold(Targets::new(), |targets, name| targets.with_target(*name, LevelFilter::INFO));
    let traces = tracing_opentelemetry::layer().with_tracer(provider.tracer("pantheon")).with_filter(traced);
    tracing_subscriber::registry().with(logs).with(traces).init();
    Ok(Some(Telemetry { provider }))
}
