//! The hashed holdout of `evaluate-on = "holdout"`: a fixed share of a window's rows, chosen by
//! a hash of the event id (stable across runs, machines and Rust versions), is kept out of
//! training and used for evaluation instead of the next day.

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use ctrflow_schemas::columns::EVENT_ID;

use super::error::{DailyError, Result};

/// Which side of the split a reader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The rows outside the holdout (training).
    Train,
    /// The holdout rows (evaluation).
    Eval,
}

/// A holdout of `percent` % of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdout {
    /// Share of rows held out, 1..=50.
    pub percent: u32,
    /// The side kept.
    pub side: Side,
}

/// FNV-1a over the bytes, then the SplitMix finaliser: a stable hash.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ctrflow_models::mix64(h)
}

/// Whether the event `event_id` is in a holdout of `percent` %.
pub fn is_held_out(event_id: &str, percent: u32) -> bool {
    stable_hash(event_id.as_bytes()) % 100 < u64::from(percent)
}

impl Holdout {
    /// The rows of `batch` on this side of the split.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let bad = |reason: String| DailyError::Invalid(format!("holdout split: {reason}"));
        let column = batch
            .column_by_name(EVENT_ID)
            .ok_or_else(|| bad(format!("no `{EVENT_ID}` column")))?;
        let keep_held_out = self.side == Side::Eval;
        let keep = |id: &str| Some(is_held_out(id, self.percent) == keep_held_out);
        // Parquet files hold Utf8; DataFusion may hand the column over as a string view.
        let mask: BooleanArray = if let Some(ids) = column.as_string_opt::<i32>() {
            (0..ids.len()).map(|i| keep(ids.value(i))).collect()
        } else if let Some(ids) = column.as_string_view_opt() {
            (0..ids.len()).map(|i| keep(ids.value(i))).collect()
        } else {
            return Err(bad(format!(
                "`{EVENT_ID}` is {}, not a string",
                column.data_type()
            )));
        };
        filter_record_batch(batch, &mask).map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stable_and_close_to_the_share() {
        let held = (0..20_000)
            .filter(|i| is_held_out(&format!("evt-{i}"), 5))
            .count();
        assert!((800..1_200).contains(&held), "{held} of 20000 at 5%");
        // Fixed values: the split must not change between versions.
        assert_eq!(stable_hash(b"evt-1"), stable_hash(b"evt-1"));
        assert_ne!(stable_hash(b"evt-1"), stable_hash(b"evt-2"));
        let a: Vec<bool> = (0..50).map(|i| is_held_out(&format!("e{i}"), 30)).collect();
        let b: Vec<bool> = (0..50).map(|i| is_held_out(&format!("e{i}"), 30)).collect();
        assert_eq!(a, b);
    }
}
