//! [`DecodeConfig`]: the limits the decoder enforces and the bad-input ceiling, with documented
//! defaults and a [`validate`](DecodeConfig::validate) that names the offending field.

use std::time::Duration;

use ctrflow_schemas::{DEFAULT_CONTENT_DIM, DEFAULT_MAX_SEQ_LEN};
use serde::{Deserialize, Serialize};

use super::Decoder;
use crate::OperatorError;

/// Largest accepted `max-seq-len`.
const MAX_SEQ_LEN: usize = 1_000_000;
/// Largest accepted `content-dim`.
const MAX_CONTENT_DIM: usize = 4_096;
/// Largest accepted `max-event-age` and `max-future` (about 100 years): keeps the window
/// arithmetic in milliseconds far from `i64` overflow.
const MAX_WINDOW: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// Configuration of the decode + validate operator of `ctrflow ingest` (`ingest.decode` in the
/// service configuration). Every field has a default, so an empty table is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DecodeConfig {
    /// Longest accepted behaviour sequence (`hist_item_ids`, `hist_category_ids`), 0..=1000000.
    /// A longer one rejects the message (`sequence-too-long`); it is never truncated.
    /// Default 1000.
    pub max_seq_len: usize,
    /// Width of the `item_content` vector of the event schema, 1..=4096; a present vector of
    /// another width rejects the message (`bad-content`). Default 16.
    pub content_dim: usize,
    /// How far in the past `event_time` may be, relative to the decoder's clock (a human
    /// duration such as "30days" or "12h"; at most about 100 years). Older events are rejected
    /// (`event-time-out-of-window`). Default 30 days.
    #[serde(with = "humantime_serde")]
    pub max_event_age: Duration,
    /// How far in the future `event_time` may be (clock skew allowance, a human duration such
    /// as "1h"). Newer events are rejected (`event-time-out-of-window`). Default 1 hour.
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
    /// Ceiling on the share of rejected messages in one epoch, in 0..=1: above it the job stops
    /// at the epoch's barrier instead of landing mostly garbage. Default 0.05.
    pub max_bad_ratio: f64,
    /// The ceiling is judged for an epoch only when at least this many messages arrived in it,
    /// so a handful of bad messages in a quiet epoch does not stop the job. Default 1000.
    pub min_messages_for_ratio: u64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_seq_len: DEFAULT_MAX_SEQ_LEN,
            content_dim: DEFAULT_CONTENT_DIM,
            max_event_age: Duration::from_secs(30 * 24 * 3600),
            max_future: Duration::from_secs(3600),
            max_bad_ratio: 0.05,
            min_messages_for_ratio: 1000,
        }
    }
}

fn config_error(field: &str, reason: impl Into<String>) -> OperatorError {
    OperatorError::Config {
        field: format!("ingest.decode.{field}"),
        reason: reason.into(),
    }
}

impl DecodeConfig {
    /// Checks every field; the error names the first invalid one (`ingest.decode.<field>`) and
    /// the range it must be in.
    pub fn validate(&self) -> Result<(), OperatorError> {
        if self.max_seq_len > MAX_SEQ_LEN {
            return Err(config_error(
                "max-seq-len",
                format!("{} is not in 0..={MAX_SEQ_LEN}", self.max_seq_len),
            ));
        }
        if !(1..=MAX_CONTENT_DIM).contains(&self.content_dim) {
            return Err(config_error(
                "content-dim",
                format!("{} is not in 1..={MAX_CONTENT_DIM}", self.content_dim),
            ));
        }
        for (field, value) in [
            ("max-event-age", self.max_event_age),
            ("max-future", self.max_future),
        ] {
            if value > MAX_WINDOW {
                return Err(config_error(
                    field,
                    format!(
                        "{} is longer than {}",
                        humantime_serde::re::humantime::format_duration(value),
                        humantime_serde::re::humantime::format_duration(MAX_WINDOW)
                    ),
                ));
            }
        }
        if !(self.max_bad_ratio.is_finite() && (0.0..=1.0).contains(&self.max_bad_ratio)) {
            return Err(config_error(
                "max-bad-ratio",
                format!("{} is not in 0..=1", self.max_bad_ratio),
            ));
        }
        Ok(())
    }

    /// Validates the configuration and builds the running [`Decoder`].
    pub fn build(&self) -> Result<Decoder, OperatorError> {
        Decoder::new(self.clone())
    }

    /// `max-event-age` in milliseconds (validated configurations fit comfortably in `i64`).
    pub(super) fn max_event_age_ms(&self) -> i64 {
        i64::try_from(self.max_event_age.as_millis()).unwrap_or(i64::MAX)
    }

    /// `max-future` in milliseconds.
    pub(super) fn max_future_ms(&self) -> i64 {
        i64::try_from(self.max_future.as_millis()).unwrap_or(i64::MAX)
    }
}
