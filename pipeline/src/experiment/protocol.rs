//! The evaluation protocol: which ad events are the test set, and the pooled metrics of one
//! run over them.
//!
//! - **Test set**: the last `test-fraction` of ad events by event time. The cut is the event
//!   time of the first test event; every ad event at or after it is a test event (ties at the
//!   cut all belong to the test set, so it can be a few rows larger than the fraction).
//! - **Scoring**: day `D`'s test events are scored by the A-CTR version of `D`, which the daily
//!   job trained on days before `D` only (checked against its manifest here). Its predictions
//!   are read back from `reports/{D}/predictions/actr.parquet` and pooled over the test period.
//! - **Completeness**: every test event must have been scored exactly once; a run with a
//!   missing day or a different count is an error, not a smaller test set.

use std::collections::BTreeMap;

use arrow::array::{Array, Float64Array, TimestampMillisecondArray, UInt8Array, UInt64Array};
use arrow::array::{ArrayRef, RecordBatch};
use ctrflow_models::metrics;
use ctrflow_schemas::{EventDate, KeyLayout, ModelKind, ModelVersion};
use ctrflow_storage::Storage;
use serde::{Deserialize, Serialize};

use super::ExperimentError;
use crate::daily::state::Published;

/// The test split of an archive's ad events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSplit {
    /// Ad events in the archive.
    pub ad_events: u64,
    /// Event time (ms) of the first test event.
    pub cut_ms: i64,
    /// Test events per day, from the cut's day on.
    pub per_day: BTreeMap<EventDate, u64>,
}

impl TestSplit {
    /// The split of `times` (every ad event's time, in any order) that keeps the last
    /// `fraction` as the test set.
    pub fn from_times(mut times: Vec<i64>, fraction: f64) -> Result<TestSplit, ExperimentError> {
        if times.is_empty() {
            return Err(ExperimentError::Data("the archive has no ad events".into()));
        }
        times.sort_unstable();
        let n = times.len();
        // At least one event on each side.
        let first_test = ((n as f64) * (1.0 - fraction)).floor() as usize;
        let first_test = first_test.clamp(1, n - 1);
        let cut_ms = times[first_test];
        let mut per_day = BTreeMap::new();
        for &t in times.iter().filter(|&&t| t >= cut_ms) {
            let day = EventDate::from_timestamp_ms(t).ok_or_else(|| {
                ExperimentError::Data(format!("event time {t} ms is not a representable date"))
            })?;
            *per_day.entry(day).or_insert(0u64) += 1;
        }
        Ok(TestSplit {
            ad_events: n as u64,
            cut_ms,
            per_day,
        })
    }

    /// Number of test events.
    pub fn test_events(&self) -> u64 {
        self.per_day.values().sum()
    }

    /// The test day whose start divides the test events most evenly, and the number of test
    /// events before it (with a single test day: the day after it, and all of them).
    pub fn halfway(&self) -> Result<(EventDate, u64), ExperimentError> {
        let total = self.test_events();
        let mut before = 0u64;
        let mut best: Option<(EventDate, u64)> = None;
        for (i, (&day, &n)) in self.per_day.iter().enumerate() {
            let distance = |b: u64| b.abs_diff(total - b);
            if i > 0 && best.is_none_or(|(_, b)| distance(before) < distance(b)) {
                best = Some((day, before));
            }
            before += n;
        }
        match best {
            Some(b) => Ok(b),
            None => self
                .per_day
                .keys()
                .next_back()
                .map(|d| (d.succ(), total))
                .ok_or_else(|| ExperimentError::Data("no test days".into())),
        }
    }

    /// Test days grouped into at most `k` consecutive stretches of about equal test events:
    /// each day goes to stretch `floor(events before it * k / total)`. Returns per stretch its
    /// first and last day and the range of test-event indices it covers.
    pub fn segments(&self, k: usize) -> Vec<(EventDate, EventDate, std::ops::Range<usize>)> {
        let total = self.test_events().max(1);
        let mut out: Vec<(EventDate, EventDate, std::ops::Range<usize>)> = Vec::new();
        let mut before = 0u64;
        let mut current = usize::MAX;
        for (&day, &n) in &self.per_day {
            let index = ((before * k as u64) / total) as usize;
            let end = (before + n) as usize;
            match out.last_mut() {
                Some(last) if index == current => {
                    last.1 = day;
                    last.2.end = end;
                }
                _ => {
                    out.push((day, day, before as usize..end));
                    current = index;
                }
            }
            before += n;
        }
        out
    }

    /// The day of the cut.
    pub fn first_day(&self) -> Option<EventDate> {
        self.per_day.keys().next().copied()
    }
}

/// Pooled metrics of one run over the test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pooled {
    /// AUC over every test event.
    pub auc: f64,
    /// Impression-weighted per-user AUC over users with both labels (`None` if none has).
    pub gauc: Option<f64>,
    /// Mean binary cross-entropy.
    pub logloss: f64,
    /// Mean prediction / mean label.
    pub calibration: f64,
    /// Test events scored.
    pub events: u64,
    /// AUC of the earlier half of the test period (the test days up to the one where half
    /// of the test events have been seen) and of the later half: where the variants part
    /// ways over time.
    pub halves: Halves,
    /// AUC over [`SEGMENTS`] consecutive stretches of test days with about equal numbers of
    /// test events, oldest first (for the results chart).
    pub segments: Vec<Segment>,
}

/// Number of test-period stretches in [`Pooled::segments`].
pub const SEGMENTS: usize = 6;

/// AUC over consecutive test days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// First test day of the stretch.
    pub from: EventDate,
    /// Last test day of the stretch.
    pub to: EventDate,
    /// Test events in it.
    pub events: u64,
    /// AUC over them (`None` with a single label).
    pub auc: Option<f64>,
}

/// AUC of the two halves of a test period, split at a day boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halves {
    /// The first day of the later half.
    pub split_day: EventDate,
    /// AUC over the days before `split_day` (`None` if it has a single label).
    pub early_auc: Option<f64>,
    /// Test events before `split_day`.
    pub early_events: u64,
    /// AUC from `split_day` on.
    pub late_auc: Option<f64>,
    /// Test events from `split_day` on.
    pub late_events: u64,
}

/// The test events' rows of one day's predictions file.
#[derive(Default)]
struct Rows {
    predictions: Vec<f64>,
    labels: Vec<u8>,
    users: Vec<u64>,
}

fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &str,
    key: &str,
) -> Result<&'a T, ExperimentError> {
    batch
        .column_by_name(name)
        .map(ArrayRef::as_ref)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| ExperimentError::Data(format!("{key}: column `{name}` missing or mistyped")))
}

/// Reads the test rows of `date` from the run in `models` into `rows`.
async fn read_day(
    models: &Storage,
    date: EventDate,
    cut_ms: i64,
    rows: &mut Rows,
) -> Result<u64, ExperimentError> {
    let key = KeyLayout.report_predictions(date, ModelKind::Actr);
    let mut read = 0;
    for batch in models.read_parquet(&key).await? {
        let times = column::<TimestampMillisecondArray>(&batch, "event_time", &key)?;
        let labels = column::<UInt8Array>(&batch, "label", &key)?;
        let users = column::<UInt64Array>(&batch, "user_id", &key)?;
        let predictions = column::<Float64Array>(&batch, "prediction", &key)?;
        for i in 0..batch.num_rows() {
            if times.value(i) < cut_ms {
                continue;
            }
            if predictions.is_null(i) {
                return Err(ExperimentError::Data(format!(
                    "{key}: row {i} has no prediction"
                )));
            }
            rows.predictions.push(predictions.value(i));
            rows.labels.push(labels.value(i));
            rows.users.push(users.value(i));
            read += 1;
        }
    }
    Ok(read)
}

/// Pools the A-CTR predictions of the run in `models` over `split`'s test days, after checking
/// that each day was scored by a version trained only on earlier days and that every test
/// event was scored once.
pub async fn pool(
    models: &Storage,
    landing: &Storage,
    split: &TestSplit,
) -> Result<Pooled, ExperimentError> {
    let published = Published::load(models, landing).await?;
    let mut rows = Rows::default();
    for (&date, &expected) in &split.per_day {
        let version = ModelVersion::for_date(date);
        let manifest = published
            .manifest(ModelKind::Actr, &version)
            .ok_or_else(|| {
                ExperimentError::Incomplete(format!(
                    "no A-CTR version {version} scored test day {date} ({expected} test events)"
                ))
            })?;
        if manifest.data_window.to >= date {
            return Err(ExperimentError::Protocol(format!(
                "A-CTR {version} trained on data up to {}, not before the day it scores ({date})",
                manifest.data_window.to
            )));
        }
        let read = read_day(models, date, split.cut_ms, &mut rows).await?;
        if read != expected {
            return Err(ExperimentError::Protocol(format!(
                "test day {date}: {read} events scored, the archive has {expected}"
            )));
        }
    }
    let e = metrics::evaluate(&rows.predictions, &rows.labels, &rows.users)
        .map_err(|e| ExperimentError::Data(format!("pooled metrics: {e}")))?;
    let (split_day, at) = split.halfway()?;
    let at = at as usize;
    let auc_of = |range: std::ops::Range<usize>| {
        metrics::auc(&rows.predictions[range.clone()], &rows.labels[range]).ok()
    };
    let n = rows.labels.len();
    let segments = split
        .segments(SEGMENTS)
        .into_iter()
        .map(|(from, to, range)| Segment {
            from,
            to,
            events: range.len() as u64,
            auc: auc_of(range).filter(|a| a.is_finite()),
        })
        .collect();
    Ok(Pooled {
        auc: e.auc,
        gauc: e.gauc.is_finite().then_some(e.gauc),
        logloss: e.logloss,
        calibration: e.calibration,
        events: e.samples as u64,
        halves: Halves {
            split_day,
            early_auc: auc_of(0..at).filter(|a| a.is_finite()),
            early_events: at as u64,
            late_auc: auc_of(at..n).filter(|a| a.is_finite()),
            late_events: (n - at) as u64,
        },
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn the_test_set_is_the_last_fraction_by_time_with_ties_at_the_cut_included() {
        // Ten events over three days, out of order; the last 20% by time are the two of day 2.
        let times = vec![
            5,
            DAY + 1,
            2 * DAY + 9,
            1,
            DAY + 2,
            2 * DAY + 3,
            3,
            2,
            DAY,
            4,
        ];
        let split = TestSplit::from_times(times, 0.2).expect("split");
        assert_eq!(split.ad_events, 10);
        assert_eq!(split.cut_ms, 2 * DAY + 3);
        assert_eq!(split.test_events(), 2);
        assert_eq!(split.first_day(), EventDate::from_timestamp_ms(2 * DAY));
        // Ties at the cut all go to the test set.
        let split = TestSplit::from_times(vec![1, 2, 3, 3, 3], 0.2).expect("split");
        assert_eq!(split.cut_ms, 3);
        assert_eq!(split.test_events(), 3);
        // Halfway: the day boundary that divides the test events most evenly.
        let split = TestSplit::from_times(
            vec![0, 0, 0, 0, 0, 1, 1, DAY + 1, 2 * DAY, 2 * DAY, 3 * DAY],
            0.5,
        )
        .expect("split");
        // Test: day 0 (two events at 1 ms), day 1 (1), day 2 (2), day 3 (1): 6 events.
        assert_eq!(split.test_events(), 6);
        assert_eq!(
            split.halfway().expect("halfway"),
            (EventDate::from_timestamp_ms(2 * DAY).expect("day"), 3)
        );
        // Two stretches: days 0-1 (3 events) and days 2-3 (3 events).
        let segments = split.segments(2);
        let day = |n: i64| EventDate::from_timestamp_ms(n * DAY).expect("day");
        assert_eq!(
            segments,
            vec![(day(0), day(1), 0..3), (day(2), day(3), 3..6)]
        );
        // More stretches than days: one per day.
        assert_eq!(split.segments(10).len(), 4);
        // Never an empty side.
        let split = TestSplit::from_times(vec![1, 2], 0.0).expect("split");
        assert_eq!(split.test_events(), 1);
        assert!(TestSplit::from_times(Vec::new(), 0.2).is_err());
    }
}
