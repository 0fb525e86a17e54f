//! Structured logs on stderr (stdout is reserved for command output such as query results).

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `RUST_LOG` overrides the configured level. Calling it twice
/// (tests) is harmless.
pub fn init(config: &LogConfig, verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn".to_string(),
        (false, 0) => config.level.clone(),
        (false, 1) => "debug".to_string(),
        (false, _) => "trace".to_string(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
