//! [`KafkaSourceStats`]: counters of a running [`KafkaSource`](super::KafkaSource), shared with
//! the pipeline's metrics exporter (read them at any time; they only grow, except the lag).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Per (topic, partition): (unconsumed, uncommitted).
pub(super) type LagTable = BTreeMap<(String, i32), (i64, Option<i64>)>;

/// Per (topic, partition): the high watermark of the last fetch response.
pub(super) type HighWatermarks = BTreeMap<(String, i32), i64>;

/// Counters of one source. All counters are monotonic; read with [`AtomicU64::load`].
#[derive(Debug, Default)]
pub struct KafkaSourceStats {
    /// Messages emitted downstream.
    pub messages: AtomicU64,
    /// Payload bytes emitted downstream.
    pub bytes: AtomicU64,
    /// Messages dropped because an epoch manifest already lists them (re-deliveries).
    pub dropped_landed: AtomicU64,
    /// Messages dropped because their partition is no longer assigned (fetched before a
    /// revocation, delivered after it).
    pub dropped_unassigned: AtomicU64,
    /// Offsets never delivered between delivered ones (retention deleting unconsumed messages,
    /// compaction, transaction markers): see `OffsetGap`.
    pub skipped_offsets: AtomicU64,
    /// Batches emitted.
    pub batches: AtomicU64,
    /// Epoch barriers emitted.
    pub epochs: AtomicU64,
    /// Epochs confirmed by the coordinator.
    pub confirmed_epochs: AtomicU64,
    /// Successful offset commits.
    pub commits: AtomicU64,
    /// Failed offset commits (retried with the next commit; never fatal).
    pub commit_failures: AtomicU64,
    /// Partition assignments and revocations handled.
    pub rebalances: AtomicU64,
    /// Client errors reported by librdkafka (brokers down, unknown topic, ...).
    pub client_errors: AtomicU64,
    lag: Mutex<LagTable>,
    /// The high watermarks of the last statistics, and how many statistics came before them.
    fetched_high: Mutex<(u64, HighWatermarks)>,
}

/// The lag of one assigned partition, from librdkafka statistics (every 5 s by default,
/// `statistics.interval.ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// High watermark minus the next offset to consume: messages not yet consumed.
    pub lag: i64,
    /// High watermark minus the committed offset: messages not yet landed and committed
    /// (None while nothing is committed).
    pub uncommitted: Option<i64>,
}

impl KafkaSourceStats {
    /// Adds `n` to `counter` (relaxed: these are metrics).
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Per-partition lag of the currently assigned partitions, as last reported.
    pub fn partition_lag(&self) -> Vec<PartitionLag> {
        match self.lag.lock() {
            Ok(lag) => lag
                .iter()
                .map(|((topic, partition), (lag, uncommitted))| PartitionLag {
                    topic: topic.clone(),
                    partition: *partition,
                    lag: *lag,
                    uncommitted: *uncommitted,
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Replaces the lag table and the fetched high watermarks (called from the statistics
    /// callback).
    pub(super) fn set_statistics(&self, lag: LagTable, high: HighWatermarks) {
        if let Ok(mut l) = self.lag.lock() {
            *l = lag;
        }
        if let Ok(mut h) = self.fetched_high.lock() {
            h.0 += 1;
            h.1 = high;
        }
    }

    /// If a statistics report came after the `seen`-th: the number of reports so far, and the
    /// high watermark per partition as the last one gave it (from fetch responses, so it moves
    /// with the log; a partition appears once it was fetched).
    pub(super) fn fetched_high_watermarks_after(&self, seen: u64) -> Option<(u64, HighWatermarks)> {
        let h = self.fetched_high.lock().ok()?;
        (h.0 > seen).then(|| (h.0, h.1.clone()))
    }

    /// The number of statistics reports so far.
    pub(super) fn statistics_reports(&self) -> u64 {
        self.fetched_high.lock().map_or(0, |h| h.0)
    }
}
