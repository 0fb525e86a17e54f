//! Arrow schemas of the ingest path around the event schema:
//!
//! - **raw messages** ([`raw_message_schema`]): what a source hands to the decoder, one row per
//!   Kafka message (topic, partition, offset, broker timestamp, payload bytes);
//! - **provenance columns** ([`provenance_fields`]): `_topic`, `_partition`, `_offset` appended to
//!   decoded event batches so sinks can name files by offsets, dropped (zero-copy projection)
//!   before anything is written;
//! - **dead letters** ([`dead_letter_schema`]): rejected messages with their raw payload and the
//!   reason, written under `dead-letter/` and queryable as the SQL table `dead_letter`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Column names of raw-message and dead-letter batches.
pub mod raw_columns {
    /// Kafka topic.
    pub const TOPIC: &str = "topic";
    /// Kafka partition.
    pub const PARTITION: &str = "partition";
    /// Kafka offset.
    pub const OFFSET: &str = "offset";
    /// Broker/producer timestamp, ms.
    pub const TIMESTAMP: &str = "timestamp";
    /// Message bytes.
    pub const PAYLOAD: &str = "payload";
    /// Machine-readable rejection reason (e.g. `bad-json`).
    pub const REASON: &str = "reason";
    /// Human-readable rejection detail.
    pub const DETAIL: &str = "detail";
    /// When the message was rejected, ms.
    pub const REJECTED_AT: &str = "rejected_at";
    /// Provenance column: topic.
    pub const P_TOPIC: &str = "_topic";
    /// Provenance column: partition.
    pub const P_PARTITION: &str = "_partition";
    /// Provenance column: offset.
    pub const P_OFFSET: &str = "_offset";
}

/// One row per consumed message. The payload is a `BinaryView` column: its values stay in the
/// buffers the source received them in (no copy into one contiguous Arrow buffer).
pub fn raw_message_schema() -> SchemaRef {
    use raw_columns::*;
    Arc::new(Schema::new(vec![
        Field::new(TOPIC, DataType::Utf8, false),
        Field::new(PARTITION, DataType::Int32, false),
        Field::new(OFFSET, DataType::Int64, false),
        Field::new(TIMESTAMP, DataType::Int64, true),
        Field::new(PAYLOAD, DataType::BinaryView, true),
    ]))
}

/// `_topic`, `_partition`, `_offset`, appended to event batches on the ingest path.
pub fn provenance_fields() -> [Field; 3] {
    use raw_columns::*;
    [
        Field::new(P_TOPIC, DataType::Utf8, false),
        Field::new(P_PARTITION, DataType::Int32, false),
        Field::new(P_OFFSET, DataType::Int64, false),
    ]
}

/// One row per rejected message.
pub fn dead_letter_schema() -> SchemaRef {
    use raw_columns::*;
    Arc::new(Schema::new(vec![
        Field::new(TOPIC, DataType::Utf8, false),
        Field::new(PARTITION, DataType::Int32, false),
        Field::new(OFFSET, DataType::Int64, false),
        Field::new(TIMESTAMP, DataType::Int64, true),
        Field::new(PAYLOAD, DataType::Binary, true),
        Field::new(REASON, DataType::Utf8, false),
        Field::new(DETAIL, DataType::Utf8, false),
        Field::new(
            REJECTED_AT,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]))
}
