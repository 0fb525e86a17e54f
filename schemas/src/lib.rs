//! The vocabulary of ctrflow: typed ids, the event schema (Rust row type, Arrow schema, JSON wire
//! format and the conversions between them), manifests and the single [`KeyLayout`] that names
//! every object in storage.
//!
//! This crate does no I/O. Everything that crosses a process boundary (a Kafka message, a Parquet
//! file, a manifest in object storage) has its shape defined here, so producers and consumers
//! agree by construction.

mod convert;
mod error;
mod event;
mod ids;
mod layout;
mod manifest;
mod raw;
mod schema;

pub use convert::{EventBatchBuilder, events_from_batch};
pub use error::SchemaError;
pub use event::{Device, Event, EventTime, WIRE_SCHEMA_VERSION};
pub use ids::{
    CategoryId, Domain, Epoch, EventDate, ItemId, ModelKind, ModelVersion, SchemaVersion, UserId,
};
pub use layout::{EmbeddingTable, KeyLayout, PartName};
pub use manifest::{
    DataWindow, DayManifest, EmbeddingManifest, EpochCheckpoint, EpochManifest, FileEntry,
    FileRole, GateVerdict, LandedThrough, LatestPointer, Manifest, ModelManifest, ModelMetrics,
    OffsetRange, Parents, decode_manifest, encode_manifest, fingerprint,
};
pub use raw::{dead_letter_schema, provenance_fields, raw_columns, raw_message_schema};
pub use schema::{
    DEFAULT_CONTENT_DIM, DEFAULT_MAX_SEQ_LEN, EventSchema, SCHEMA_VERSION_METADATA_KEY, columns,
};
