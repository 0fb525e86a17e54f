//! Training features straight from Arrow event batches.
//!
//! [`FeatureBatch::from_record_batch`] reads the event columns once each (one downcast per
//! column, list offsets and values sliced directly, no per-row `Event`), and
//! [`FeatureBatch::fill_from_record_batch`] does the same into an existing batch so its vectors
//! keep their capacity from one batch to the next.
//!
//! | feature | source column(s) | form |
//! |---|---|---|
//! | ids | `user_id`, `item_id`, `category_id` (UInt64) | `Vec<u64>` each, `[B]` |
//! | context | `position` (UInt32), `hour` (UInt8), `device` (UInt8, 0..=3) | `[B, 6]` row-major: `1 / (1 + position)`, `hour / 23`, one-hot device (4) |
//! | short sequence | `hist_item_ids` (List<UInt64>, most recent first) | first `short-len` ids (default 50), ragged |
//! | long sequence | `hist_item_ids` | first `long-len` ids (default 1000), ragged; longer histories are truncated (most recent kept) and counted |
//! | behaviour categories | `hist_category_ids` (List<UInt64>, aligned with `hist_item_ids`) | the categories of the short and long behaviours above, aligned with their ids |
//! | content | `item_content` (FixedSizeList<Float32, W>, nullable; optional column) | `[B, W]` row-major; a null vector reads zeros; `W = 0` without the column |
//! | label | `label` (UInt8) | `[B]` f32, 1.0 for any non-zero label |
//! | day | `event_time` (Timestamp ms) | the latest event's UTC day, for table recency |
//! | row days | `event_time` | each row's UTC day, `[B]`, for point-in-time historical snapshots |
//!
//! Sequences are stored ragged ([`Sequence`]: flat ids + offsets) and padded only when they
//! become tensors; the mask is "position < the row's length" (sequences are prefixes). An empty
//! history is an empty row. A row whose `hist_category_ids` is not as long as its `hist_item_ids`
//! is an error naming the column (ingest never lands one). A batch without both history columns
//! (read with them projected away, for a network that takes no sequences, such as TPM) has
//! empty sequences and [`FeatureBatch::without_sequences`] set; a trainer whose network reads
//! sequences rejects it, naming `hist_item_ids`.

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, ListArray, PrimitiveArray, RecordBatch,
    TimestampMillisecondArray,
};
use arrow::datatypes::{ArrowPrimitiveType, UInt8Type, UInt32Type, UInt64Type};
use ctrflow_schemas::columns;
use serde::{Deserialize, Serialize};

use crate::embedding::Day;
use crate::error::{ModelsError, Result};

/// Width of the dense context vector [`FeatureBatch::context`]: `1 / (1 + position)`,
/// `hour / 23` and a one-hot device code (unknown, iOS, Android, web).
pub const CONTEXT_WIDTH: usize = 6;

/// How event batches become features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeatureConfig {
    /// Length `S` of the short (recent) behaviour sequence, the DIN branch (default 50).
    #[serde(default = "default_short_len")]
    pub short_len: usize,
    /// Length `L` of the long behaviour sequence, the ETA branch (default 1000). Longer
    /// histories keep their `L` most recent behaviours; the rest is counted as truncated.
    #[serde(default = "default_long_len")]
    pub long_len: usize,
}

fn default_short_len() -> usize {
    50
}
fn default_long_len() -> usize {
    1000
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            short_len: default_short_len(),
            long_len: default_long_len(),
        }
    }
}

/// A ragged batch of id sequences: row `b` is `ids[offsets[b]..offsets[b + 1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequence {
    /// All rows' ids, concatenated.
    pub ids: Vec<u64>,
    /// The category of each id in `ids` (same length), or empty when the batch has no
    /// behaviour categories (hand-built batches; networks that do not read them).
    pub categories: Vec<u64>,
    /// `B + 1` offsets into `ids`, starting at 0.
    pub offsets: Vec<u32>,
    /// The padded length `S` or `L` this sequence becomes as a tensor (every row is at most
    /// this long).
    pub max_len: usize,
}

impl Sequence {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The ids of row `b`, most recent first.
    pub fn row(&self, b: usize) -> &[u64] {
        &self.ids[self.offsets[b] as usize..self.offsets[b + 1] as usize]
    }

    /// The length of row `b`.
    pub fn len_of(&self, b: usize) -> usize {
        (self.offsets[b + 1] - self.offsets[b]) as usize
    }

    /// The padded `[B, max_len]` 0/1 mask, true at real behaviours.
    pub fn mask(&self) -> Vec<bool> {
        let mut mask = Vec::with_capacity(self.rows() * self.max_len);
        for b in 0..self.rows() {
            let len = self.len_of(b);
            mask.extend((0..self.max_len).map(|j| j < len));
        }
        mask
    }

    /// The categories of row `b`'s behaviours (empty when the batch has none).
    pub fn row_categories(&self, b: usize) -> &[u64] {
        if self.categories.is_empty() {
            &[]
        } else {
            &self.categories[self.offsets[b] as usize..self.offsets[b + 1] as usize]
        }
    }

    fn reset(&mut self, max_len: usize) {
        self.ids.clear();
        self.categories.clear();
        self.offsets.clear();
        self.offsets.push(0);
        self.max_len = max_len;
    }

    fn push_row(&mut self, ids: &[u64], categories: &[u64]) {
        self.ids.extend_from_slice(ids);
        self.categories.extend_from_slice(categories);
        self.offsets.push(self.ids.len() as u32);
    }
}

/// The features of one training (or evaluation) batch of `B` rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureBatch {
    /// `user_id`, `[B]`.
    pub user_ids: Vec<u64>,
    /// `item_id` (the candidate), `[B]`.
    pub item_ids: Vec<u64>,
    /// `category_id` of the candidate, `[B]`.
    pub category_ids: Vec<u64>,
    /// Dense context `[B, CONTEXT_WIDTH]` row-major (see the module docs).
    pub context: Vec<f32>,
    /// The candidate's content vector `[B, content_width]` row-major (zeros where absent).
    pub content: Vec<f32>,
    /// Width `W` of [`content`](Self::content); 0 when the batch has no `item_content` column.
    pub content_width: usize,
    /// The first `short-len` behaviours.
    pub short: Sequence,
    /// The first `long-len` behaviours.
    pub long: Sequence,
    /// 0/1 labels, `[B]`.
    pub labels: Vec<f32>,
    /// The UTC day of the latest event in the batch (the tables' recency clock).
    pub day: Day,
    /// Each row's UTC event day, `[B]` (which TPM snapshots a row may read, see
    /// [`PointInTime`](crate::train::PointInTime)).
    pub days: Vec<Day>,
    /// The batch was read without the history columns: every sequence is empty, and only a
    /// network that reads no sequences may train on or score it.
    pub without_sequences: bool,
    /// Rows whose history was longer than `long-len`.
    pub truncated_rows: usize,
    /// Behaviour ids dropped by that truncation.
    pub truncated_ids: u64,
}

fn column<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or(ModelsError::Column {
        column: name,
        reason: "missing".into(),
    })
}

fn primitive<'a, T: ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a PrimitiveArray<T>> {
    let array = column(batch, name)?;
    let typed = array
        .as_any()
        .downcast_ref::<PrimitiveArray<T>>()
        .ok_or_else(|| ModelsError::Column {
            column: name,
            reason: format!("expected {}, found {}", T::DATA_TYPE, array.data_type()),
        })?;
    no_nulls(typed, name)?;
    Ok(typed)
}

/// A `List<UInt64>` column and its values.
fn u64_list<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<(&'a ListArray, &'a PrimitiveArray<UInt64Type>)> {
    let list = column(batch, name)?;
    let list = list
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| ModelsError::Column {
            column: name,
            reason: format!("expected List<UInt64>, found {}", list.data_type()),
        })?;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<PrimitiveArray<UInt64Type>>()
        .ok_or_else(|| ModelsError::Column {
            column: name,
            reason: format!(
                "expected List<UInt64>, found List<{}>",
                list.values().data_type()
            ),
        })?;
    Ok((list, values))
}

fn no_nulls(array: &dyn Array, name: &'static str) -> Result<()> {
    if array.null_count() > 0 {
        return Err(ModelsError::Column {
            column: name,
            reason: format!(
                "{} null values in a non-nullable column",
                array.null_count()
            ),
        });
    }
    Ok(())
}

impl FeatureBatch {
    /// An empty batch; fill it with [`fill_from_record_batch`](Self::fill_from_record_batch).
    pub fn new() -> Self {
        Self::default()
    }

    /// The features of `batch` (see the module docs for the columns read).
    ///
    /// # Errors
    /// [`ModelsError::Column`] naming the column when one is missing, has another type, holds
    /// nulls, or holds an out-of-range value (a device code above 3).
    pub fn from_record_batch(batch: &RecordBatch, config: &FeatureConfig) -> Result<Self> {
        let mut features = Self::new();
        features.fill_from_record_batch(batch, config)?;
        Ok(features)
    }

    /// Replaces the contents with the features of `batch`, reusing the vectors' capacity. On
    /// error the contents are unspecified (but valid to refill).
    pub fn fill_from_record_batch<'a>(
        &mut self,
        batch: &'a RecordBatch,
        config: &FeatureConfig,
    ) -> Result<()> {
        let users = primitive::<UInt64Type>(batch, columns::USER_ID)?;
        let items = primitive::<UInt64Type>(batch, columns::ITEM_ID)?;
        let categories = primitive::<UInt64Type>(batch, columns::CATEGORY_ID)?;
        let positions = primitive::<UInt32Type>(batch, columns::POSITION)?;
        let hours = primitive::<UInt8Type>(batch, columns::HOUR)?;
        let devices = primitive::<UInt8Type>(batch, columns::DEVICE)?;
        let labels = primitive::<UInt8Type>(batch, columns::LABEL)?;
        let times = column(batch, columns::EVENT_TIME)?;
        let times = times
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| ModelsError::Column {
                column: columns::EVENT_TIME,
                reason: format!("expected Timestamp(ms), found {}", times.data_type()),
            })?;
        no_nulls(times, columns::EVENT_TIME)?;
        // Both history columns, or neither (projected away for a network without sequences).
        let histories = match (
            batch.column_by_name(columns::HIST_ITEM_IDS),
            batch.column_by_name(columns::HIST_CATEGORY_IDS),
        ) {
            (None, None) => None,
            _ => Some((
                u64_list(batch, columns::HIST_ITEM_IDS)?,
                u64_list(batch, columns::HIST_CATEGORY_IDS)?,
            )),
        };

        let rows = batch.num_rows();
        self.user_ids.clear();
        self.user_ids.extend_from_slice(users.values());
        self.item_ids.clear();
        self.item_ids.extend_from_slice(items.values());
        self.category_ids.clear();
        self.category_ids.extend_from_slice(categories.values());
        self.labels.clear();
        self.labels
            .extend(labels.values().iter().map(|&l| f32::from(u8::from(l != 0))));

        self.context.clear();
        self.context.reserve(rows * CONTEXT_WIDTH);
        for ((&position, &hour), &device) in positions
            .values()
            .iter()
            .zip(hours.values())
            .zip(devices.values())
        {
            if device > 3 {
                return Err(ModelsError::Column {
                    column: columns::DEVICE,
                    reason: format!("code {device} is not one of 0..=3"),
                });
            }
            self.context.push(1.0 / (1.0 + position as f32));
            self.context.push(f32::from(hour) / 23.0);
            let mut one_hot = [0.0f32; 4];
            one_hot[usize::from(device)] = 1.0;
            self.context.extend_from_slice(&one_hot);
        }

        let utc_day =
            |ms: i64| Day(u32::try_from(ms.div_euclid(86_400_000).max(0)).unwrap_or(u32::MAX));
        self.days.clear();
        self.days
            .extend(times.values().iter().map(|&ms| utc_day(ms)));
        self.day = self.days.iter().copied().max().unwrap_or(Day(0));

        self.fill_content(batch)?;

        // Sequences: slice the list offsets and values; a null list row is an empty history.
        self.short.reset(config.short_len);
        self.long.reset(config.long_len);
        self.truncated_rows = 0;
        self.truncated_ids = 0;
        self.without_sequences = histories.is_none();
        let Some(((history, history_values), (hist_categories, hist_category_values))) = histories
        else {
            for _ in 0..rows {
                self.short.push_row(&[], &[]);
                self.long.push_row(&[], &[]);
            }
            return Ok(());
        };
        let list_row = |list: &ListArray, values: &'a [u64], b: usize| -> &'a [u64] {
            if list.is_null(b) {
                &[]
            } else {
                let offsets = list.value_offsets();
                &values[offsets[b] as usize..offsets[b + 1] as usize]
            }
        };
        for b in 0..rows {
            let row = list_row(history, history_values.values(), b);
            let cats = list_row(hist_categories, hist_category_values.values(), b);
            if cats.len() != row.len() {
                return Err(ModelsError::Column {
                    column: columns::HIST_CATEGORY_IDS,
                    reason: format!(
                        "row {b} has {} categories for {} behaviours",
                        cats.len(),
                        row.len()
                    ),
                });
            }
            let short = row.len().min(config.short_len);
            self.short.push_row(&row[..short], &cats[..short]);
            if row.len() > config.long_len {
                self.truncated_rows += 1;
                self.truncated_ids += (row.len() - config.long_len) as u64;
            }
            let long = row.len().min(config.long_len);
            self.long.push_row(&row[..long], &cats[..long]);
        }
        Ok(())
    }

    /// The ids a training step looks up in the item table, in this order: the candidates, then
    /// (for a network that reads sequences) the short and the long behaviours.
    pub fn item_table_ids(&self, with_sequences: bool) -> [&[u64]; 3] {
        if with_sequences {
            [&self.item_ids, &self.short.ids, &self.long.ids]
        } else {
            [&self.item_ids, &[], &[]]
        }
    }

    /// Reads `item_content` (if the batch has it) into [`content`](Self::content).
    fn fill_content(&mut self, batch: &RecordBatch) -> Result<()> {
        self.content.clear();
        self.content_width = 0;
        let Some(array) = batch.column_by_name(columns::ITEM_CONTENT) else {
            return Ok(());
        };
        let content = array
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .ok_or_else(|| ModelsError::Column {
                column: columns::ITEM_CONTENT,
                reason: format!(
                    "expected FixedSizeList<Float32>, found {}",
                    array.data_type()
                ),
            })?;
        let values = content
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .ok_or_else(|| ModelsError::Column {
                column: columns::ITEM_CONTENT,
                reason: format!(
                    "expected FixedSizeList<Float32>, found FixedSizeList<{}>",
                    content.values().data_type()
                ),
            })?;
        let width = usize::try_from(content.value_length()).unwrap_or(0);
        self.content_width = width;
        let start = content.offset() * width;
        let flat = &values.values()[start..start + content.len() * width];
        if content.null_count() == 0 {
            self.content.extend_from_slice(flat);
        } else {
            self.content.reserve(flat.len());
            for (b, row) in flat
                .chunks_exact(width.max(1))
                .enumerate()
                .take(content.len())
            {
                if content.is_null(b) {
                    self.content.extend(std::iter::repeat_n(0.0, width));
                } else {
                    self.content.extend_from_slice(row);
                }
            }
        }
        Ok(())
    }

    /// Number of rows `B`.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}
