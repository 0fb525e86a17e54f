//! The rdkafka side of the source: a `BaseConsumer` polled on a dedicated std thread, and its
//! context, which turns rebalances into handshakes with the async side.
//!
//! The poll thread pushes [`Event`]s into one bounded channel, in order: message chunks,
//! `Assigned` (the thread blocks until the async side answers with the landed offsets, which
//! become the start positions) and `Revoked` (the thread blocks until the async side finished the
//! epoch, saw it confirmed and committed; only then are the partitions unassigned). The async side
//! never needs this thread to make progress: commits go straight to librdkafka, which serves
//! them on its own threads, so waiting for the handshake cannot deadlock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message as _;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::{mpsc, oneshot};

use super::drain::EndOffsets;
use super::records::{PayloadSpan, RawRecord, RecordChunk};
use super::stats::KafkaSourceStats;
use super::{KafkaConfig, client_creation_error, kafka_error, offsets_of};
use crate::OperatorError;

/// Messages per chunk sent from the poll thread.
const CHUNK: usize = 512;
/// A chunk is also sent once its payloads reach this many bytes: it bounds the chunk's buffer
/// (and keeps every payload's place in it within a `u32`, as Arrow's byte views need).
const CHUNK_BYTES: usize = 16 << 20;
/// Longest a chunk waits on the poll thread.
const CHUNK_WAIT: Duration = Duration::from_millis(20);
/// The chunk's age is read from the clock once per this many messages, not per message.
const AGE_CHECK_EVERY: usize = 32;
/// Poll timeout: how often the thread checks for stop.
const POLL: Duration = Duration::from_millis(50);
/// At most one warning per this interval for repeated client errors.
const WARN_EVERY: Duration = Duration::from_secs(15);

/// What the poll thread tells the async side, in consumption order.
pub(super) enum Event {
    /// Consumed messages.
    Records(RecordChunk),
    /// Partitions were assigned; reply with the landed offsets (start after them).
    Assigned {
        partitions: Vec<(String, i32)>,
        reply: oneshot::Sender<HashMap<(String, i32), i64>>,
    },
    /// Partitions are about to be revoked; ack once their epoch is confirmed and committed.
    Revoked {
        partitions: Vec<(String, i32)>,
        lost: bool,
        ack: oneshot::Sender<()>,
    },
    /// A fatal client error: the source must stop.
    Fatal(OperatorError),
}

/// Rate-limits repeated warnings.
#[derive(Debug, Default)]
struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// Some(number suppressed since the last warning) when a warning may be logged now.
    fn allow(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Messages waiting on the poll thread to be sent as one [`Event::Records`]. Their payloads are
/// copied into one growing buffer, which is sent along with them and which the batches built
/// from them reference, so consuming a message allocates nothing (the buffer is sized from the
/// previous chunk) and its payload is copied once.
#[derive(Debug, Default)]
struct Chunk {
    records: Vec<RawRecord>,
    payloads: BytesMut,
    /// Payload bytes of the last chunk sent: what the next one reserves up front.
    last_bytes: usize,
    /// When the first of `records` arrived.
    since: Option<Instant>,
}

impl Chunk {
    /// Adds `record` (its `payload` still unset) with `payload` copied into the buffer; true
    /// when the chunk is full (by messages or bytes).
    fn push(&mut self, mut record: RawRecord, payload: Option<&[u8]>) -> bool {
        if self.records.capacity() == 0 {
            self.records.reserve_exact(CHUNK);
            self.payloads.reserve(self.last_bytes);
        }
        record.payload = payload.map(|p| {
            let start = self.payloads.len();
            self.payloads.extend_from_slice(p);
            // Below CHUNK_BYTES before this payload, and a Kafka message is far below 4 GiB.
            PayloadSpan {
                start: start as u32,
                len: p.len() as u32,
            }
        });
        self.records.push(record);
        self.records.len() >= CHUNK || self.payloads.len() >= CHUNK_BYTES
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    /// The buffered records and their payloads' buffer, leaving the chunk empty.
    fn take(&mut self) -> RecordChunk {
        self.since = None;
        let payloads = self.payloads.split().freeze();
        self.last_bytes = payloads.len();
        RecordChunk {
            records: std::mem::take(&mut self.records),
            payloads,
        }
    }
}

/// The consumer's context: the event channel, the chunk buffer and the stats.
pub(super) struct PollContext {
    tx: mpsc::Sender<Event>,
    buf: Mutex<Chunk>,
    /// Set on shutdown: rebalance callbacks no longer hand-shake (everything is committed).
    pub closing: AtomicBool,
    assigned: AtomicUsize,
    warn: Mutex<WarnLimiter>,
    stats: Arc<KafkaSourceStats>,
}

impl PollContext {
    fn new(tx: mpsc::Sender<Event>, stats: Arc<KafkaSourceStats>) -> Self {
        PollContext {
            tx,
            buf: Mutex::new(Chunk::default()),
            closing: AtomicBool::new(false),
            assigned: AtomicUsize::new(0),
            warn: Mutex::new(WarnLimiter::default()),
            stats,
        }
    }

    /// Whether this thread may block on the channel (never inside a tokio runtime, never once
    /// closing or when nobody listens).
    fn can_handshake(&self) -> bool {
        !self.closing.load(Ordering::SeqCst)
            && !self.tx.is_closed()
            && tokio::runtime::Handle::try_current().is_err()
    }

    /// Adds `r` to the chunk; true when the chunk is due (full, or older than [`CHUNK_WAIT`],
    /// which is checked every [`AGE_CHECK_EVERY`] messages to keep the clock off the per-message
    /// path; a quiet consumer flushes on its idle polls anyway).
    fn buffer(&self, r: RawRecord, payload: Option<&[u8]>) -> bool {
        let Ok(mut chunk) = self.buf.lock() else {
            return true;
        };
        if chunk.push(r, payload) {
            return true;
        }
        let n = chunk.len();
        match chunk.since {
            None => {
                chunk.since = Some(Instant::now());
                false
            }
            Some(t) => n % AGE_CHECK_EVERY == 0 && t.elapsed() >= CHUNK_WAIT,
        }
    }

    /// Sends the buffered messages (blocks while the channel is full). False if nobody listens.
    fn flush(&self) -> bool {
        let chunk = match self.buf.lock() {
            Ok(mut chunk) => chunk.take(),
            Err(_) => return false,
        };
        if chunk.records.is_empty() || !self.can_handshake() {
            return !self.tx.is_closed();
        }
        self.tx.blocking_send(Event::Records(chunk)).is_ok()
    }

    fn warn_client_error(&self, what: &str, message: &str) {
        KafkaSourceStats::add(&self.stats.client_errors, 1);
        let allowed = self.warn.lock().ok().and_then(|mut w| w.allow());
        if let Some(suppressed) = allowed {
            tracing::warn!(
                error = message,
                suppressed,
                "kafka {what}; librdkafka keeps retrying, the source keeps waiting"
            );
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for PollContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.warn_client_error("client error", &format!("{error}: {reason}"));
    }

    fn stats(&self, statistics: Statistics) {
        let mut lag = BTreeMap::new();
        let mut high = BTreeMap::new();
        for (topic, t) in statistics.topics {
            for (p, s) in t.partitions {
                if p >= 0 && s.hi_offset >= 0 {
                    high.insert((topic.clone(), p), s.hi_offset);
                }
                // Partition -1 is librdkafka's internal UA partition; offsets < 0 are unknown.
                if p >= 0 && s.hi_offset >= 0 && s.app_offset >= 0 {
                    let uncommitted =
                        (s.committed_offset >= 0).then(|| s.hi_offset - s.committed_offset);
                    lag.insert(
                        (topic.clone(), p),
                        ((s.hi_offset - s.app_offset).max(0), uncommitted),
                    );
                }
            }
        }
        self.stats.set_statistics(lag, high);
    }
}

impl ConsumerContext for PollContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let partitions = partitions_of(tpl);
        KafkaSourceStats::add(&self.stats.rebalances, 1);
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            if self.flush() && self.can_handshake() {
                let (reply, rx) = oneshot::channel();
                let event = Event::Assigned {
                    partitions: partitions.clone(),
                    reply,
                };
                if self.tx.blocking_send(event).is_ok() {
                    let landed = rx.blocking_recv().unwrap_or_default();
                    for (t, p) in &partitions {
                        let Some(last) = landed.get(&(t.clone(), *p)) else {
                            continue;
                        };
                        if let Err(e) = tpl.set_partition_offset(t, *p, Offset::Offset(last + 1)) {
                            tracing::warn!(topic = %t, partition = p, error = %e, "cannot set the start offset; relying on the drop filter");
                        }
                    }
                }
            }
            let r = if cooperative {
                consumer.incremental_assign(tpl)
            } else {
                consumer.assign(tpl)
            };
            match r {
                Ok(()) => {
                    self.assigned.fetch_add(partitions.len(), Ordering::SeqCst);
                    tracing::info!(?partitions, "kafka partitions assigned");
                }
                Err(e) => tracing::error!(error = %e, "kafka assign failed"),
            }
            return;
        }
        // Revocation, or a rebalance error (then everything is given up, as librdkafka asks).
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            tracing::warn!(error = ?err, "kafka rebalance error; giving up the assignment");
        }
        let lost = consumer.assignment_lost();
        if self.flush() && self.can_handshake() {
            let (ack, rx) = oneshot::channel();
            let event = Event::Revoked {
                partitions: partitions.clone(),
                lost,
                ack,
            };
            if self.tx.blocking_send(event).is_ok() {
                let _ = rx.blocking_recv();
            }
        }
        let r = if cooperative && err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "kafka unassign failed");
        }
        if cooperative {
            let n = partitions.len();
            let _ = self
                .assigned
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                    Some(a.saturating_sub(n))
                });
        } else {
            self.assigned.store(0, Ordering::SeqCst);
        }
        tracing::info!(?partitions, lost, "kafka partitions revoked");
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => KafkaSourceStats::add(&self.stats.commits, 1),
            Err(e) => {
                KafkaSourceStats::add(&self.stats.commit_failures, 1);
                tracing::warn!(error = %e, partitions = offsets.count(), "kafka offset commit failed; the next commit retries it");
            }
        }
    }
}

/// The consumer shared by the poll thread and the async side. Dropping the last handle closes
/// the consumer (leaves the group), which blocks: a handle dropped inside the runtime does it
/// on a fresh thread.
pub(super) struct ConsumerHandle(Option<Arc<BaseConsumer<PollContext>>>);

impl ConsumerHandle {
    /// Creates the consumer (not yet subscribed) and the channel it reports on.
    pub fn create(
        config: &KafkaConfig,
        stats: Arc<KafkaSourceStats>,
        capacity: usize,
    ) -> Result<(ConsumerHandle, mpsc::Receiver<Event>), OperatorError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let client = config.consumer_client_config();
        let context = PollContext::new(tx, stats);
        // librdkafka's threads start here and inherit the creating thread's priority: they
        // keep the process's, above the reniced workers (see `crate::priority`).
        let consumer: BaseConsumer<PollContext> =
            crate::priority::at_base_priority(move || client.create_with_context(context))
                .map_err(|e| client_creation_error("creating the kafka consumer", e))?;
        Ok((ConsumerHandle(Some(Arc::new(consumer))), rx))
    }

    fn consumer(&self) -> Result<&Arc<BaseConsumer<PollContext>>, OperatorError> {
        self.0
            .as_ref()
            .ok_or_else(|| OperatorError::Internal("kafka consumer already released".into()))
    }

    /// Subscribes to `topics`.
    pub fn subscribe(&self, topics: &[&str]) -> Result<(), OperatorError> {
        self.consumer()?
            .subscribe(topics)
            .map_err(|e| kafka_error(format!("subscribing to {topics:?}"), &e))
    }

    /// Marks the consumer as closing: later rebalances (the close itself) do not hand-shake.
    pub fn set_closing(&self) {
        if let Some(c) = &self.0 {
            c.context().closing.store(true, Ordering::SeqCst);
        }
    }

    /// Starts the poll thread; it runs until `stop` is set or the event receiver is gone. The
    /// returned receiver resolves when the thread ended (normally, or by a panic).
    pub fn spawn_poll_thread(
        &self,
        stop: Arc<AtomicBool>,
    ) -> Result<(std::thread::JoinHandle<()>, oneshot::Receiver<()>), OperatorError> {
        let consumer = self.consumer()?.clone();
        let (alive, exited) = oneshot::channel::<()>();
        // Started at the process's priority, like librdkafka's threads it drains (see
        // `crate::priority`).
        let thread = crate::priority::at_base_priority(move || {
            std::thread::Builder::new()
                .name("kafka-poll".into())
                .spawn(move || {
                    let _alive = alive;
                    poll_loop(&consumer, &stop);
                })
        })
        .map_err(|e| OperatorError::Internal(format!("cannot start the kafka poll thread: {e}")))?;
        Ok((thread, exited))
    }

    /// Commits `offsets` (next offset to read per partition). `sync` waits for the broker.
    pub fn commit(
        &self,
        offsets: &BTreeMap<(String, i32), i64>,
        sync: bool,
    ) -> Result<(), OperatorError> {
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for ((t, p), next) in offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*next))
                .map_err(|e| kafka_error("building the commit list", &e))?;
        }
        let mode = if sync {
            rdkafka::consumer::CommitMode::Sync
        } else {
            rdkafka::consumer::CommitMode::Async
        };
        self.consumer()?
            .commit(&tpl, mode)
            .map_err(|e| kafka_error("committing offsets", &e))
    }

    /// The low and high watermarks of `partition` (blocks on a request to its leader: call it
    /// on a blocking thread).
    pub fn end_offsets(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<EndOffsets, OperatorError> {
        let (low, high) = self
            .consumer()?
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| {
                kafka_error(
                    format!("reading the end offsets of {topic}/{partition}"),
                    &e,
                )
            })?;
        Ok(EndOffsets { low, high })
    }

    /// The consumer's position (next offset to fetch) in each assigned partition whose position
    /// is known. A local call: it does not ask the brokers.
    pub fn positions(&self) -> Result<BTreeMap<(String, i32), i64>, OperatorError> {
        let tpl = self
            .consumer()?
            .position()
            .map_err(|e| kafka_error("reading the consumer's positions", &e))?;
        Ok(offsets_of(&tpl))
    }

    /// A second handle on the same consumer (for a blocking task).
    pub fn share(&self) -> ConsumerHandle {
        ConsumerHandle(self.0.clone())
    }
}

impl ConsumerHandle {
    /// Drops this handle here, closing the consumer if it is the last one (blocks: call it on a
    /// blocking thread).
    pub fn close_blocking(mut self) {
        drop(self.0.take());
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        let Some(last) = self.0.take().and_then(Arc::into_inner) else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Closing blocks (it leaves the group): not on a runtime thread.
            let _ = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || drop(last));
        }
    }
}

fn poll_loop(consumer: &BaseConsumer<PollContext>, stop: &AtomicBool) {
    let ctx = consumer.context().clone();
    let mut topics: Vec<Arc<str>> = Vec::new();
    // Since when polls have returned nothing (None while messages flow: no clock per message).
    let mut idle_since: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) && !ctx.tx.is_closed() {
        let keep_going = match consumer.poll(POLL) {
            None => {
                idle_since.get_or_insert_with(Instant::now);
                ctx.flush()
            }
            Some(Ok(m)) => {
                idle_since = None;
                let topic = match topics.iter().find(|t| t.as_ref() == m.topic()) {
                    Some(t) => t.clone(),
                    None => {
                        let t: Arc<str> = Arc::from(m.topic());
                        topics.push(t.clone());
                        t
                    }
                };
                let record = RawRecord {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis(),
                    payload: None,
                };
                if ctx.buffer(record, m.payload()) {
                    ctx.flush()
                } else {
                    true
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => true,
            Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                let flushed = ctx.flush();
                let event = Event::Fatal(kafka_error("consuming (fatal client error)", &e));
                if flushed && ctx.can_handshake() {
                    let _ = ctx.tx.blocking_send(event);
                }
                false
            }
            // Already reported (rate-limited) through `ClientContext::error`.
            Some(Err(_)) => {
                idle_since.get_or_insert_with(Instant::now);
                ctx.flush()
            }
        };
        if !keep_going {
            break;
        }
        if ctx.assigned.load(Ordering::SeqCst) == 0
            && idle_since.is_some_and(|t| t.elapsed() >= WARN_EVERY * 4)
        {
            idle_since = Some(Instant::now());
            tracing::warn!(
                "kafka consumer has no partitions assigned yet (joining the group, or brokers unreachable); still waiting"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> RawRecord {
        RawRecord {
            topic: Arc::from("t"),
            partition: 0,
            offset,
            timestamp: None,
            payload: None,
        }
    }

    /// Every record leaves the chunk with its own payload (or none), over several chunks that
    /// reuse the buffer, and a taken chunk's payloads stay valid while the next one fills.
    #[test]
    fn a_chunk_hands_each_record_its_own_payload() {
        let mut chunk = Chunk::default();
        let mut kept = Vec::new();
        for round in 0..3i64 {
            for i in 0..10i64 {
                let offset = round * 10 + i;
                let payload = format!("message {offset} {}", "x".repeat(i as usize * 7));
                let full = chunk.push(record(offset), (i != 4).then_some(payload.as_bytes()));
                assert!(!full);
                assert_eq!(chunk.len() as i64, i + 1);
            }
            let taken = chunk.take();
            assert!(chunk.records.is_empty() && chunk.payloads.is_empty() && chunk.since.is_none());
            assert_eq!(taken.records.len(), 10);
            kept.push(taken);
        }
        for taken in &kept {
            for r in &taken.records {
                let i = r.offset % 10;
                let expected = format!("message {} {}", r.offset, "x".repeat(i as usize * 7));
                match taken.payload(r) {
                    None => assert_eq!(i, 4, "only the null payload is missing"),
                    Some(p) => assert_eq!(p, expected.as_bytes(), "offset {}", r.offset),
                }
            }
        }
    }

    /// A chunk is full after CHUNK messages, or earlier once its payloads reach CHUNK_BYTES.
    #[test]
    fn a_chunk_is_full_by_messages_or_bytes() {
        let mut chunk = Chunk::default();
        for i in 0..CHUNK as i64 {
            assert_eq!(chunk.push(record(i), Some(b"small")), i + 1 == CHUNK as i64);
        }
        chunk.take();
        let big = vec![7u8; CHUNK_BYTES / 3 + 1];
        assert!(!chunk.push(record(0), Some(&big)));
        assert!(!chunk.push(record(1), Some(&big)));
        assert!(
            chunk.push(record(2), Some(&big)),
            "three payloads pass CHUNK_BYTES"
        );
        let taken = chunk.take();
        assert_eq!(taken.payloads.len(), 3 * big.len());
        assert_eq!(taken.payload(&taken.records[2]), Some(big.as_slice()));
    }
}
