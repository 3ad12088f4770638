//! Span export over OTLP/HTTP, shared by the operator and the runner. Off unless the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set: without them no
//! exporter, no background thread, no per-span cost.
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, SpanExporter};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::sync::Mutex;
use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"];

/// The provider behind the installed layer, kept so that `shutdown` can send what is batched.
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up trace export to the OTLP endpoint (OTEL_EXPORTER_OTLP_*): {0}")]
    Exporter(ExporterBuildError),
}

/// True when an OTLP endpoint is configured in the environment.
pub fn enabled() -> bool {
    ENDPOINT_VARS.iter().any(|var| std::env::var_os(var).is_some_and(|value| !value.is_empty()))
}

/// The layer exporting spans as `service` (its `service.name`), or `None` when export is off or
/// a layer was already made in this process.
pub fn layer<S>(service: &'static str) -> Result<Option<impl Layer<S>>, TelemetryError>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    if !enabled() {
        return Ok(None);
    }
    let mut installed = PROVIDER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if installed.is_some() {
        return Ok(None);
    }
    // Endpoint, headers and timeout come from the standard OTEL_EXPORTER_OTLP_* variables.
    let exporter = SpanExporter::builder().with_http().build().map_err(TelemetryError::Exporter)?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer(service);
    *installed = Some(provider);
    // The exporter's own HTTP client traces too: exporting those spans would feed on itself.
    let quiet_exporter = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF);
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(quiet_exporter)))
}

/// Sends the spans still batched and stops the exporter; a no-op when export is off. Blocks
/// until the endpoint answered or timed out, so call it outside async tasks.
pub fn shutdown() {
    let provider = PROVIDER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    if let Some(provider) = provider {
        if let Err(error) = provider.shutdown() {
            tracing::warn!("spans may be lost: cannot flush them to the OTLP endpoint: {error}");
        }
    }
}
