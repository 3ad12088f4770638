//! Structured logs on stderr: readable text, or one JSON object per line with the
//! span fields (slice, entry) on every line. Spans also go to an OTLP endpoint when
//! one is configured (see `mailqueue_contract::telemetry`).
use mailqueue_contract::telemetry;
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Installs the subscriber (level from `RUST_LOG`, default `info`). A second call is a
/// no-op, so tests may call commands repeatedly.
pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, not in log files.
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr);
    let fmt = match format {
        Format::Text => fmt.boxed(),
        Format::Json => fmt.json().with_current_span(true).with_span_list(true).boxed(),
    };
    // Mail keeps flowing without traces: a bad OTLP setting is logged, not fatal.
    let (otlp, otlp_error) = match telemetry::layer("mailqueue-runner") {
        Ok(layer) => (layer, None),
        Err(error) => (None, Some(error)),
    };
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otlp).try_init();
    if let Some(error) = otlp_error {
        tracing::warn!("{error}");
    }
}

/// Sends the spans not yet exported; call once before the process exits.
pub fn flush() {
    telemetry::shutdown();
}
