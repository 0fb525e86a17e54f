//! Kafka: the consumer-group source and the producer. rdkafka types never leave this module: the
//! public API speaks ctrflow types, Arrow batches and std/tokio types.
//!
//! - [`KafkaConfig`]: brokers, topics (one per domain), batching and epoch limits, librdkafka
//!   pass-through properties with secrets redacted from every rendering.
//! - [`KafkaSource`]: a [`Source`](crate::dataflow::Source) over both topics in one consumer group,
//!   emitting [`raw_message_schema`](ctrflow_schemas::raw_message_schema) batches and epoch
//!   barriers, committing offsets only for epochs the landing side confirmed durable.
//! - [`KafkaProducer`]: delivery-confirmed, rate-limited sends (`ctrflow produce`, tests), and
//!   [`create_topics`] for real brokers.
//!
//! # The epoch protocol (exactly-once landing without Kafka transactions)
//!
//! The source talks to the landing side's coordinator through [`Coordination`] (build both ends
//! with [`coordination_channels`]):
//!
//! 1. At each barrier the source first sends [`EpochOffsets`] (per partition, the first and last
//!    offset it emitted in that epoch), then broadcasts `Barrier(epoch)` downstream. Epochs with
//!    no rows are skipped (no barrier, no `EpochOffsets`); epoch numbers increase by one from
//!    [`Coordination::start_epoch`].
//! 2. The coordinator sends the epoch back on the confirmation channel once its manifest is
//!    durable. Only then are `last + 1` offsets committed to Kafka, in epoch order; nothing past a
//!    confirmed epoch is ever committed. Confirmations are read at all times (even while emitting
//!    is blocked by backpressure), so a bounded confirmation channel cannot deadlock the cycle
//!    source -> sinks -> coordinator -> source.
//! 3. On every assignment the source asks [`LandedOffsets`] for the highest landed offset per
//!    partition (from the epoch manifests), starts fetching after it and drops any message at or
//!    below it, so a crash between manifest write and commit causes no duplicate.
//! 4. Before partitions are revoked (rebalance) the open epoch is finished: barrier emitted,
//!    every outstanding epoch confirmed, offsets committed; only then does the consumer give the
//!    partitions up. Graceful shutdown does the same and then leaves the group.
//!
//! Guarantee: every message of the assigned partitions lands exactly once provided (a) the
//! coordinator confirms an epoch only after its manifest is durable and `LandedOffsets` reads
//! those manifests, and (b) a revocation completes within the group's rebalance timeout
//! (`max.poll.interval.ms`, default 5 min) and the member is not expelled (session timeout,
//! lost assignment, or a poll thread stalled by backpressure for longer than
//! `max.poll.interval.ms`). If (b) fails, another replica may start from a position older than
//! an epoch this replica lands later: those messages can land twice (never zero times).
//! Kafka commits are an optimisation on top of the manifests: a failed commit is logged, counted
//! in [`KafkaSourceStats::commit_failures`] and superseded by the next one, never fatal.
//!
//! ```no_run
//! # async fn example() -> Result<(), ctrflow_operators::OperatorError> {
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use ctrflow_operators::dataflow::Graph;
//! use ctrflow_operators::kafka::{KafkaConfig, KafkaSource, coordination_channels};
//! use ctrflow_schemas::Epoch;
//!
//! let config = KafkaConfig::default();
//! let landed: HashMap<(String, i32), i64> = HashMap::new(); // or a reader of the manifests
//! let (coordination, coordinator) = coordination_channels(Epoch(0), Arc::new(landed), 16);
//! let source = KafkaSource::new(&config, coordination)?;
//! let stats = source.stats(); // for the metrics exporter
//! let mut graph = Graph::new(16);
//! let _kafka = graph.source(source);
//! // Connect decoders and sinks; the coordinator reads `coordinator.offsets` and the sinks'
//! // acknowledgements, writes the epoch manifest, then `coordinator.confirm.send(epoch)`.
//! # drop((stats, coordinator));
//! graph.start()?.join().await
//! # }
//! ```
//!
//! Threads: the consumer is polled on a dedicated `kafka-poll` thread (rebalance callbacks run
//! there and block on the source task, never the other way round); commits go straight to
//! librdkafka. `run` returns after the consumer left the group (bounded wait).

mod admin;
mod config;
mod consumer;
mod drain;
mod producer;
mod records;
mod source;
mod stats;

pub use admin::{CommittedOffsetsReader, committed_offsets, non_empty_partitions};
pub use config::{KafkaConfig, KafkaTopics, REDACTED, is_secret_key};
pub use producer::{KafkaProducer, create_topics};
pub use source::KafkaSource;
pub use stats::{KafkaSourceStats, PartitionLag};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use ctrflow_schemas::{Epoch, OffsetRange};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::OperatorError;

/// The offsets one epoch covers, sent by the source to the coordinator before the epoch's
/// barrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochOffsets {
    /// The epoch (as numbered by the source).
    pub epoch: Epoch,
    /// Per partition emitted in the epoch, the first and last offset emitted (inclusive).
    /// Sorted by topic then partition; never empty.
    pub ranges: Vec<OffsetRange>,
    /// Every partition assigned to this source when the epoch closed (emitting or not), so the
    /// coordinator's watermark waits for assigned partitions that have not delivered yet.
    pub assigned: Vec<AssignedPartition>,
}

/// A partition assigned to the source, as reported with each epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// True when the last librdkafka statistics showed no messages left to consume (lag 0): an
    /// idle partition does not hold the watermark back while it has delivered nothing.
    pub caught_up: bool,
}

/// Where the source learns what earlier runs (or other replicas) already landed.
///
/// Invariant: every offset returned is listed by a durable epoch manifest. The source drops
/// messages at or below it and starts fetching after it. Called at every partition assignment
/// (retried with backoff, five attempts, before the source fails).
///
/// ```
/// use std::collections::HashMap;
/// use async_trait::async_trait;
/// use ctrflow_operators::OperatorError;
/// use ctrflow_operators::kafka::LandedOffsets;
///
/// /// A first run: nothing landed yet.
/// struct Fresh;
///
/// #[async_trait]
/// impl LandedOffsets for Fresh {
///     async fn landed(&self) -> Result<HashMap<(String, i32), i64>, OperatorError> {
///         Ok(HashMap::new())
///     }
/// }
/// ```
#[async_trait]
pub trait LandedOffsets: Send + Sync + 'static {
    /// The highest landed offset per `(topic, partition)`; partitions never landed are absent.
    async fn landed(&self) -> Result<HashMap<(String, i32), i64>, OperatorError>;
}

/// A fixed map (tests, or a first run with nothing landed: an empty map).
#[async_trait]
impl LandedOffsets for HashMap<(String, i32), i64> {
    async fn landed(&self) -> Result<HashMap<(String, i32), i64>, OperatorError> {
        Ok(self.clone())
    }
}

/// The source's end of the epoch protocol (see the [module docs](self)).
pub struct Coordination {
    /// Number of the first epoch this source emits.
    pub start_epoch: Epoch,
    /// Where the source sends each epoch's offsets, before its barrier.
    pub offsets: mpsc::Sender<EpochOffsets>,
    /// Where the coordinator confirms epochs whose manifest is durable (in any order; the
    /// source commits in epoch order).
    pub confirmed: mpsc::Receiver<Epoch>,
    /// Consulted at every partition assignment.
    pub landed: Arc<dyn LandedOffsets>,
}

/// The coordinator's end of the epoch protocol.
#[derive(Debug)]
pub struct CoordinatorEnd {
    /// Offsets of each epoch, in epoch order.
    pub offsets: mpsc::Receiver<EpochOffsets>,
    /// Send an epoch here once its manifest is durable.
    pub confirm: mpsc::Sender<Epoch>,
}

/// Both ends of the epoch protocol, with channels of `capacity` (a few epochs is plenty).
pub fn coordination_channels(
    start_epoch: Epoch,
    landed: Arc<dyn LandedOffsets>,
    capacity: usize,
) -> (Coordination, CoordinatorEnd) {
    let (offsets_tx, offsets_rx) = mpsc::channel(capacity.max(1));
    let (confirm_tx, confirm_rx) = mpsc::channel(capacity.max(1));
    (
        Coordination {
            start_epoch,
            offsets: offsets_tx,
            confirmed: confirm_rx,
            landed,
        },
        CoordinatorEnd {
            offsets: offsets_rx,
            confirm: confirm_tx,
        },
    )
}

/// The offsets of a partition list that hold one (committed offsets, positions), keyed by
/// (topic, partition); partitions without one are absent.
fn offsets_of(tpl: &TopicPartitionList) -> BTreeMap<(String, i32), i64> {
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect()
}

/// Converts an rdkafka error at the module boundary, classifying it as retryable or not.
fn kafka_error(context: impl Into<String>, e: &KafkaError) -> OperatorError {
    OperatorError::Kafka {
        context: context.into(),
        message: e.to_string(),
        retryable: e.rdkafka_error_code().is_some_and(is_retryable),
    }
}

/// Converts an error from creating a client: an invalid property becomes a config error naming
/// it (its value is never repeated, so a bad secret does not end up in logs).
fn client_creation_error(what: &str, e: KafkaError) -> OperatorError {
    match e {
        KafkaError::ClientConfig(_, desc, key, _) => OperatorError::Config {
            reason: if is_secret_key(&key) {
                format!("invalid value ({REDACTED}: secret)")
            } else {
                desc
            },
            field: format!("kafka.properties.{key}"),
        },
        e => kafka_error(what, &e),
    }
}

/// Transient conditions: the broker or coordinator is unreachable, busy or moving.
fn is_retryable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::MessageTimedOut
            | C::OperationTimedOut
            | C::QueueFull
            | C::RequestTimedOut
            | C::TimedOutQueue
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::CoordinatorLoadInProgress
            | C::RebalanceInProgress
            | C::NotLeaderForPartition
            | C::LeaderNotAvailable
            | C::NetworkException
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::WaitingForCoordinator
            | C::UnknownTopicOrPartition
    )
}

#[cfg(test)]
mod tests;
