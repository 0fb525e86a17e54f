//! Read-only questions about a consumer group, for operators (`ctrflow ingest` status) and the
//! exactly-once tests: which offsets has the group committed?

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::TopicPartitionList;

use super::{KafkaConfig, client_creation_error, kafka_error, offsets_of};
use crate::OperatorError;

/// The offsets the consumer group of `config` has committed on the domain topics, keyed by
/// (topic, partition): the next offset the group will read. Partitions with no commit are absent.
///
/// Does not join the group (it only fetches offsets), so it is safe to call while ingest runs.
pub async fn committed_offsets(
    config: &KafkaConfig,
    timeout: Duration,
) -> Result<BTreeMap<(String, i32), i64>, OperatorError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || committed_offsets_blocking(&config, timeout))
        .await
        .map_err(|e| OperatorError::Internal(format!("committed-offsets task: {e}")))?
}

/// Every partition of the domain topics that holds at least one message (its high watermark is
/// above its low watermark), as (topic, partition). The epoch coordinator waits for each of them
/// before it lets the watermark close a day, whichever replica consumes it.
pub async fn non_empty_partitions(
    config: &KafkaConfig,
    timeout: Duration,
) -> Result<Vec<(String, i32)>, OperatorError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let consumer = metadata_client(&config)?;
        let mut out = Vec::new();
        for (topic, partition) in domain_partitions(&consumer, &config, timeout)? {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, timeout)
                .map_err(|e| kafka_error(format!("reading the watermarks of `{topic}`"), &e))?;
            if high > low {
                out.push((topic, partition));
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| OperatorError::Internal(format!("partition-metadata task: {e}")))?
}

/// A consumer of the group that never subscribes: it only asks the brokers questions.
fn metadata_client(config: &KafkaConfig) -> Result<BaseConsumer, OperatorError> {
    config
        .consumer_client_config()
        .create()
        .map_err(|e| client_creation_error("creating the kafka metadata client", e))
}

/// Every (topic, partition) of the domain topics, from the brokers' metadata.
fn domain_partitions(
    consumer: &BaseConsumer,
    config: &KafkaConfig,
    timeout: Duration,
) -> Result<Vec<(String, i32)>, OperatorError> {
    let mut out = Vec::new();
    for topic in config.topics.all() {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| kafka_error(format!("reading the metadata of `{topic}`"), &e))?;
        for t in metadata.topics() {
            out.extend(
                t.partitions()
                    .iter()
                    .map(|p| (t.name().to_string(), p.id())),
            );
        }
    }
    Ok(out)
}

fn committed_offsets_blocking(
    config: &KafkaConfig,
    timeout: Duration,
) -> Result<BTreeMap<(String, i32), i64>, OperatorError> {
    CommittedOffsetsReader::new(config, timeout)?.read(timeout)
}

/// A client that reads the committed offsets of `config`'s group on the domain topics again and
/// again (one offsets request each, with the partition list read once): for watching a group's
/// progress closely, e.g. to time when ingest has committed everything. Like
/// [`committed_offsets`] it never joins the group. Blocking calls.
pub struct CommittedOffsetsReader {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl CommittedOffsetsReader {
    /// Connects and reads the domain topics' partitions.
    pub fn new(config: &KafkaConfig, timeout: Duration) -> Result<Self, OperatorError> {
        let consumer = metadata_client(config)?;
        let mut partitions = TopicPartitionList::new();
        for (topic, partition) in domain_partitions(&consumer, config, timeout)? {
            partitions.add_partition(&topic, partition);
        }
        Ok(CommittedOffsetsReader {
            consumer,
            partitions,
        })
    }

    /// The group's committed offsets now, keyed by (topic, partition); partitions with no
    /// commit are absent.
    pub fn read(&self, timeout: Duration) -> Result<BTreeMap<(String, i32), i64>, OperatorError> {
        let committed = self
            .consumer
            .committed_offsets(self.partitions.clone(), timeout)
            .map_err(|e| kafka_error("fetching the committed offsets", &e))?;
        Ok(offsets_of(&committed))
    }
}
