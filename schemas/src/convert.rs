//! Conversions between [`Event`] rows and Arrow record batches of the [`EventSchema`].
//!
//! [`EventBatchBuilder`] appends column by column into Arrow builders (no intermediate row
//! buffers); [`events_from_batch`] turns a batch back into rows, checking every column's type and
//! nullability so a foreign file gets a clear error rather than a panic.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListBuilder, Float32Builder, ListBuilder, RecordBatch,
    StringBuilder, TimestampMillisecondBuilder, UInt8Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{
    DataType, Float32Type, TimestampMillisecondType, UInt8Type, UInt32Type, UInt64Type,
};

use crate::schema::{content_item_field, list_item_field};
use crate::{
    CategoryId, Device, Domain, Event, EventSchema, EventTime, ItemId, SchemaError, UserId, columns,
};

/// Builds record batches of the event schema from rows, column-wise.
#[derive(Debug)]
pub struct EventBatchBuilder {
    schema: EventSchema,
    event_id: StringBuilder,
    event_time: TimestampMillisecondBuilder,
    domain: StringBuilder,
    user_id: UInt64Builder,
    item_id: UInt64Builder,
    category_id: UInt64Builder,
    position: UInt32Builder,
    hour: UInt8Builder,
    device: UInt8Builder,
    hist_item_ids: ListBuilder<UInt64Builder>,
    hist_category_ids: ListBuilder<UInt64Builder>,
    item_content: FixedSizeListBuilder<Float32Builder>,
    label: UInt8Builder,
    rows: usize,
}

impl EventBatchBuilder {
    /// A builder sized for about `capacity` rows.
    pub fn new(schema: EventSchema, capacity: usize) -> Self {
        let dim = schema.content_dim();
        EventBatchBuilder {
            event_id: StringBuilder::with_capacity(capacity, capacity * 16),
            event_time: TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            domain: StringBuilder::with_capacity(capacity, capacity * 7),
            user_id: UInt64Builder::with_capacity(capacity),
            item_id: UInt64Builder::with_capacity(capacity),
            category_id: UInt64Builder::with_capacity(capacity),
            position: UInt32Builder::with_capacity(capacity),
            hour: UInt8Builder::with_capacity(capacity),
            device: UInt8Builder::with_capacity(capacity),
            hist_item_ids: ListBuilder::with_capacity(UInt64Builder::new(), capacity)
                .with_field(list_item_field()),
            hist_category_ids: ListBuilder::with_capacity(UInt64Builder::new(), capacity)
                .with_field(list_item_field()),
            item_content: FixedSizeListBuilder::with_capacity(
                Float32Builder::new(),
                dim as i32,
                capacity,
            )
            .with_field(content_item_field()),
            label: UInt8Builder::with_capacity(capacity),
            rows: 0,
            schema,
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no rows are pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event. Fails (appending nothing) when the event breaks an invariant of
    /// [`Event::check`] or its content vector has the wrong width.
    pub fn push(&mut self, e: &Event) -> Result<(), SchemaError> {
        e.check()?;
        let dim = self.schema.content_dim();
        if let Some(v) = &e.item_content
            && v.len() != dim
        {
            return Err(SchemaError::InvalidField {
                field: "item_content",
                reason: format!("has {} values, the schema expects {dim}", v.len()),
            });
        }
        self.event_id.append_value(&e.event_id);
        self.event_time.append_value(e.event_time.0);
        self.domain.append_value(e.domain.as_str());
        self.user_id.append_value(e.user_id.0);
        self.item_id.append_value(e.item_id.0);
        self.category_id.append_value(e.category_id.0);
        self.position.append_value(e.position);
        self.hour.append_value(e.hour);
        self.device.append_value(e.device.code());
        let items = self.hist_item_ids.values();
        for id in &e.hist_item_ids {
            items.append_value(id.0);
        }
        self.hist_item_ids.append(true);
        let cats = self.hist_category_ids.values();
        for id in &e.hist_category_ids {
            cats.append_value(id.0);
        }
        self.hist_category_ids.append(true);
        match &e.item_content {
            Some(v) => {
                self.item_content.values().append_slice(v);
                self.item_content.append(true);
            }
            None => {
                // A null slot of a fixed-size list still occupies `dim` child values.
                self.item_content.values().append_nulls(dim);
                self.item_content.append(false);
            }
        }
        self.label.append_value(e.label);
        self.rows += 1;
        Ok(())
    }

    /// Builds a batch of the rows pushed so far and resets the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, SchemaError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.domain.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.item_id.finish()),
            Arc::new(self.category_id.finish()),
            Arc::new(self.position.finish()),
            Arc::new(self.hour.finish()),
            Arc::new(self.device.finish()),
            Arc::new(self.hist_item_ids.finish()),
            Arc::new(self.hist_category_ids.finish()),
            Arc::new(self.item_content.finish()),
            Arc::new(self.label.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(self.schema.arrow().clone(), columns).map_err(|source| {
            SchemaError::Arrow {
                context: "building an event batch",
                source,
            }
        })
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, SchemaError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| SchemaError::Column {
            column: name.to_string(),
            reason: "missing".into(),
        })?;
    if name != columns::ITEM_CONTENT && col.null_count() > 0 {
        return Err(SchemaError::Column {
            column: name.to_string(),
            reason: format!("{} null values in a non-null column", col.null_count()),
        });
    }
    Ok(col)
}

fn type_error(name: &str, expected: &str, found: &DataType) -> SchemaError {
    SchemaError::Column {
        column: name.to_string(),
        reason: format!("expected {expected}, found {found}"),
    }
}

macro_rules! typed {
    ($batch:expr, $name:expr, $ty:ty, $expected:expr) => {{
        let c = column($batch, $name)?;
        c.as_primitive_opt::<$ty>()
            .ok_or_else(|| type_error($name, $expected, c.data_type()))?
    }};
}

/// Reads every row of an event batch back into [`Event`]s.
pub fn events_from_batch(batch: &RecordBatch) -> Result<Vec<Event>, SchemaError> {
    use columns::*;
    let event_id = {
        let c = column(batch, EVENT_ID)?;
        c.as_string_opt::<i32>()
            .ok_or_else(|| type_error(EVENT_ID, "Utf8", c.data_type()))?
    };
    let domain = {
        let c = column(batch, DOMAIN)?;
        c.as_string_opt::<i32>()
            .ok_or_else(|| type_error(DOMAIN, "Utf8", c.data_type()))?
    };
    let event_time = typed!(batch, EVENT_TIME, TimestampMillisecondType, "Timestamp(ms)");
    let user_id = typed!(batch, USER_ID, UInt64Type, "UInt64");
    let item_id = typed!(batch, ITEM_ID, UInt64Type, "UInt64");
    let category_id = typed!(batch, CATEGORY_ID, UInt64Type, "UInt64");
    let position = typed!(batch, POSITION, UInt32Type, "UInt32");
    let hour = typed!(batch, HOUR, UInt8Type, "UInt8");
    let device = typed!(batch, DEVICE, UInt8Type, "UInt8");
    let label = typed!(batch, LABEL, UInt8Type, "UInt8");
    let list = |name: &str| -> Result<_, SchemaError> {
        let c = column(batch, name)?;
        let l = c
            .as_list_opt::<i32>()
            .ok_or_else(|| type_error(name, "List<UInt64>", c.data_type()))?;
        let values = l
            .values()
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| type_error(name, "List<UInt64>", c.data_type()))?
            .clone();
        Ok((l.clone(), values))
    };
    let (hist_items, hist_item_values) = list(HIST_ITEM_IDS)?;
    let (hist_cats, hist_cat_values) = list(HIST_CATEGORY_IDS)?;
    let content = {
        let c = column(batch, ITEM_CONTENT)?;
        let l = c
            .as_fixed_size_list_opt()
            .ok_or_else(|| type_error(ITEM_CONTENT, "FixedSizeList<Float32>", c.data_type()))?;
        let values = l
            .values()
            .as_primitive_opt::<Float32Type>()
            .ok_or_else(|| type_error(ITEM_CONTENT, "FixedSizeList<Float32>", c.data_type()))?
            .clone();
        (l.clone(), values)
    };

    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let range = |offsets: &[i32]| offsets[row] as usize..offsets[row + 1] as usize;
        let items = range(hist_items.value_offsets());
        let cats = range(hist_cats.value_offsets());
        let item_content = if content.0.is_null(row) {
            None
        } else {
            let dim = content.0.value_length() as usize;
            Some(content.1.values()[row * dim..(row + 1) * dim].to_vec())
        };
        let event = Event {
            event_id: event_id.value(row).to_string(),
            event_time: EventTime(event_time.value(row)),
            domain: domain.value(row).parse::<Domain>()?,
            user_id: UserId(user_id.value(row)),
            item_id: ItemId(item_id.value(row)),
            category_id: CategoryId(category_id.value(row)),
            position: position.value(row),
            hour: hour.value(row),
            device: Device::from_code(device.value(row))?,
            hist_item_ids: hist_item_values.values()[items]
                .iter()
                .map(|&i| ItemId(i))
                .collect(),
            hist_category_ids: hist_cat_values.values()[cats]
                .iter()
                .map(|&i| CategoryId(i))
                .collect(),
            item_content,
            label: label.value(row),
        };
        out.push(event);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample_event;

    #[test]
    fn rows_round_trip_through_arrow_including_empty_and_long_sequences() {
        let schema = EventSchema::new(4);
        let events = vec![
            sample_event(0, None),
            sample_event(1, Some(vec![0.25, -1.0, 3.5, 0.0])),
            sample_event(1000, None),
            sample_event(7, Some(vec![1.0; 4])),
        ];
        let mut b = EventBatchBuilder::new(schema.clone(), 2);
        for e in &events {
            b.push(e).expect("push");
        }
        assert_eq!(b.len(), 4);
        let batch = b.finish().expect("finish");
        assert!(b.is_empty());
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(batch.schema(), *schema.arrow());
        assert_eq!(events_from_batch(&batch).expect("read back"), events);
        assert!(batch.column(11).is_null(0) && !batch.column(11).is_null(1));
    }

    #[test]
    fn empty_batches_are_valid() {
        let mut b = EventBatchBuilder::new(EventSchema::default(), 0);
        let batch = b.finish().expect("finish");
        assert_eq!(batch.num_rows(), 0);
        assert!(events_from_batch(&batch).expect("read").is_empty());
    }

    #[test]
    fn wrong_content_width_and_bad_columns_are_rejected_by_name() {
        let mut b = EventBatchBuilder::new(EventSchema::new(4), 1);
        let err = b
            .push(&sample_event(1, Some(vec![1.0; 3])))
            .expect_err("width 3");
        assert!(err.to_string().contains("item_content"), "{err}");
        assert!(b.is_empty());

        let batch = {
            b.push(&sample_event(2, None)).expect("push");
            b.finish().expect("finish")
        };
        let without_label = batch
            .project(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
            .expect("project");
        let err = events_from_batch(&without_label).expect_err("no label");
        assert!(err.to_string().contains("label"), "{err}");
    }
}
