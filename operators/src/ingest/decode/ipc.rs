//! Arrow IPC stream payloads: one message holding one or more event-schema batches, every row of
//! which gets the message's provenance. The message is accepted or rejected as a whole: a
//! stream whose schema is not the event schema, that cannot be read, holds no rows or has one
//! row that breaks an invariant is rejected, and none of its rows is emitted.

use std::io::Cursor;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    Float32Type, Schema, TimestampMillisecondType, UInt8Type, UInt32Type, UInt64Type,
};
use arrow::ipc::reader::StreamReader;
use ctrflow_schemas::{SCHEMA_VERSION_METADATA_KEY, WIRE_SCHEMA_VERSION, columns};

use super::RejectReason;
use super::columns::{EventColumns, Limits, Provenance, Reject, Row, check_row};
use crate::OperatorError;

/// The first bytes of an Arrow IPC stream: the continuation marker of its first message.
pub(super) const IPC_CONTINUATION: [u8; 4] = [0xFF; 4];

/// Why an IPC message produced no rows: a rejection of the message, or an error that stops the
/// job.
#[derive(Debug)]
pub(super) enum Fail {
    Reject(Reject),
    Fatal(OperatorError),
}

impl From<Reject> for Fail {
    fn from(r: Reject) -> Self {
        Fail::Reject(r)
    }
}

impl From<OperatorError> for Fail {
    fn from(e: OperatorError) -> Self {
        Fail::Fatal(e)
    }
}

fn bad(detail: impl Into<String>) -> Fail {
    Fail::Reject(Reject::new(RejectReason::BadIpc, detail))
}

/// Appends and commits every row of the IPC stream in `payload`; returns how many. On failure
/// nothing of the message stays in `cols`.
pub(super) fn decode(
    cols: &mut EventColumns,
    payload: &[u8],
    expected: &Schema,
    limits: &Limits,
    prov: &Provenance<'_>,
) -> Result<usize, Fail> {
    let mark = cols.mark();
    let result = append_stream(cols, payload, expected, limits, prov);
    if result.is_err() {
        cols.rollback(mark);
    }
    result
}

fn append_stream(
    cols: &mut EventColumns,
    payload: &[u8],
    expected: &Schema,
    limits: &Limits,
    prov: &Provenance<'_>,
) -> Result<usize, Fail> {
    let reader = StreamReader::try_new(Cursor::new(payload), None)
        .map_err(|e| bad(format!("unreadable Arrow IPC stream: {e}")))?;
    check_schema(&reader.schema(), expected)?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| bad(format!("unreadable Arrow IPC batch: {e}")))?;
        rows += append_batch(cols, &batch, limits, prov, rows)?;
    }
    if rows == 0 {
        return Err(bad("the Arrow IPC stream holds no rows"));
    }
    Ok(rows)
}

/// Same column names, order, types (ignoring nested field names and metadata) and no nullable
/// column where the event schema has a non-null one; a declared schema version must be ours.
fn check_schema(actual: &Schema, expected: &Schema) -> Result<(), Fail> {
    if let Some(v) = actual.metadata().get(SCHEMA_VERSION_METADATA_KEY)
        && *v != WIRE_SCHEMA_VERSION.0.to_string()
    {
        return Err(Fail::Reject(Reject::new(
            RejectReason::UnsupportedSchemaVersion,
            format!("Arrow IPC stream of event schema version {v} (this build reads version 1)"),
        )));
    }
    if actual.fields().len() != expected.fields().len() {
        return Err(bad(format!(
            "Arrow IPC schema has {} columns, the event schema {}",
            actual.fields().len(),
            expected.fields().len()
        )));
    }
    for (a, e) in actual.fields().iter().zip(expected.fields()) {
        if a.name() != e.name()
            || !a.data_type().equals_datatype(e.data_type())
            || (a.is_nullable() && !e.is_nullable())
        {
            return Err(bad(format!(
                "Arrow IPC column `{}: {}{}` where the event schema has `{}: {}{}`",
                a.name(),
                a.data_type(),
                if a.is_nullable() { " (nullable)" } else { "" },
                e.name(),
                e.data_type(),
                if e.is_nullable() { " (nullable)" } else { "" },
            )));
        }
    }
    Ok(())
}

macro_rules! col {
    ($batch:expr, $i:expr, $conv:ident $(::<$t:ty>)?) => {
        $batch
            .column($i)
            .$conv$(::<$t>)?()
            .ok_or_else(|| bad(format!("column {} has an unexpected type", $i)))?
    };
}

fn append_batch(
    cols: &mut EventColumns,
    batch: &RecordBatch,
    limits: &Limits,
    prov: &Provenance<'_>,
    first_row: usize,
) -> Result<usize, Fail> {
    // Column order and types were checked against the event schema in `check_schema`.
    let event_id = col!(batch, 0, as_string_opt::<i32>);
    let event_time = col!(batch, 1, as_primitive_opt::<TimestampMillisecondType>);
    let domain = col!(batch, 2, as_string_opt::<i32>);
    let user_id = col!(batch, 3, as_primitive_opt::<UInt64Type>);
    let item_id = col!(batch, 4, as_primitive_opt::<UInt64Type>);
    let category_id = col!(batch, 5, as_primitive_opt::<UInt64Type>);
    let position = col!(batch, 6, as_primitive_opt::<UInt32Type>);
    let hour = col!(batch, 7, as_primitive_opt::<UInt8Type>);
    let device = col!(batch, 8, as_primitive_opt::<UInt8Type>);
    let items = col!(batch, 9, as_list_opt::<i32>);
    let cats = col!(batch, 10, as_list_opt::<i32>);
    let content = col!(batch, 11, as_fixed_size_list_opt);
    let label = col!(batch, 12, as_primitive_opt::<UInt8Type>);
    let item_values = items
        .values()
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| bad("hist_item_ids values are not UInt64"))?;
    let cat_values = cats
        .values()
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| bad("hist_category_ids values are not UInt64"))?;
    let content_values = content
        .values()
        .as_primitive_opt::<Float32Type>()
        .ok_or_else(|| bad("item_content values are not Float32"))?;
    for (name, nulls) in [
        (columns::HIST_ITEM_IDS, item_values.null_count()),
        (columns::HIST_CATEGORY_IDS, cat_values.null_count()),
    ] {
        if nulls > 0 {
            return Err(bad(format!("{name} holds {nulls} null ids")));
        }
    }
    let dim = limits.content_dim;
    let at = |i: usize, r: Reject| {
        Fail::Reject(Reject::new(
            r.reason,
            format!("Arrow IPC row {}: {}", first_row + i, r.detail),
        ))
    };
    for i in 0..batch.num_rows() {
        let domain_ad = match domain.value(i) {
            "natural" => false,
            "ad" => true,
            other => {
                let r = Reject::new(
                    RejectReason::WrongType,
                    format!("domain `{other}` is not `natural` or `ad`"),
                );
                return Err(at(i, r));
            }
        };
        if device.value(i) > 3 {
            let r = Reject::new(
                RejectReason::WrongType,
                format!("device code {} is not one of 0..=3", device.value(i)),
            );
            return Err(at(i, r));
        }
        let row = Row {
            event_time: event_time.value(i),
            domain_ad,
            user_id: user_id.value(i),
            item_id: item_id.value(i),
            category_id: category_id.value(i),
            position: position.value(i),
            hour: hour.value(i).into(),
            device: device.value(i),
            label: label.value(i).into(),
            content_present: content.is_valid(i),
        };
        let range = |offsets: &[i32]| offsets[i] as usize..offsets[i + 1] as usize;
        let row_items = &item_values.values()[range(items.value_offsets())];
        let row_cats = &cat_values.values()[range(cats.value_offsets())];
        let row_content: &[f32] = if row.content_present {
            let start = content.value_offset(i) as usize;
            if (start..start + dim).any(|j| content_values.is_null(j)) {
                return Err(at(
                    i,
                    Reject::new(RejectReason::BadIpc, "null in item_content"),
                ));
            }
            &content_values.values()[start..start + dim]
        } else {
            &[]
        };
        let id = event_id.value(i).as_bytes();
        check_row(
            &row,
            id,
            row_items.len(),
            row_cats.len(),
            row_content,
            limits,
        )
        .map_err(|r| at(i, r))?;
        cols.event_id.extend_from_slice(id);
        cols.hist_items.extend_from_slice(row_items);
        cols.hist_cats.extend_from_slice(row_cats);
        cols.content.extend_from_slice(row_content);
        cols.commit(&row, prov)?;
    }
    Ok(batch.num_rows())
}
