//! The operators of `ctrflow ingest` between the Kafka source and object storage:
//!
//! ```text
//! KafkaSource -> Decoder -+-> PartSink (landing / late) -+-> EpochCoordinator -> manifests,
//!                         +-> PartSink (dead letter) ----+   day close, offset confirmation
//! ```

mod buffer;
pub mod coordinator;
pub mod decode;
pub mod sink;

pub use buffer::{PartBuffer, PartKey, PartRows};
pub use coordinator::{
    CoordinatorConfig, CoordinatorStats, EpochCoordinator, ManifestOffsets, landed_offsets,
};
pub use sink::{ClosedDays, PartSink, SinkAck, SinkConfig};

/// The key of a partition in epoch manifests' `max_event_time_ms` and in the coordinator's
/// watermark bookkeeping: `topic/partition`.
pub(crate) fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}
