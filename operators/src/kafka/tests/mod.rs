//! Tests of the Kafka module. Source and producer tests run against librdkafka's in-process mock
//! cluster (one broker; topics created through the mock API); no external broker is needed.

mod config;
mod producer;
mod records;
mod source;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, BinaryViewArray, Int32Array, Int64Array, RecordBatch, StringArray};
use async_trait::async_trait;
use ctrflow_schemas::Epoch;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::*;
use crate::dataflow::{Collector, Operator};

pub(super) const NATURAL: &str = "ctrflow.natural";
pub(super) const AD: &str = "ctrflow.ad";

/// A mock cluster with both topics, `partitions` each.
pub(super) fn cluster(partitions: i32) -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("mock cluster");
    for t in [NATURAL, AD] {
        mock.create_topic(t, partitions, 1).expect("create topic");
    }
    mock
}

/// A fast-moving config against `brokers`.
pub(super) fn config(brokers: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.into(),
        group_id: group.into(),
        session_timeout: Duration::from_secs(3),
        max_batch_messages: 64,
        max_batch_wait: Duration::from_millis(20),
        epoch_interval: Duration::from_millis(300),
        epoch_max_messages: 500,
        properties: [
            ("heartbeat.interval.ms", "300"),
            ("statistics.interval.ms", "500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..KafkaConfig::default()
    }
}

/// `cfg` with epochs that neither time (1 h) nor the message count (1M) ends in a test: only a
/// barrier the test causes (shutdown, revocation, drain, the byte cap) does.
pub(super) fn long_epochs(mut cfg: KafkaConfig) -> KafkaConfig {
    cfg.epoch_interval = Duration::from_secs(3600);
    cfg.epoch_max_messages = 1_000_000;
    cfg
}

/// Produces `n` messages to `topic` with unique payloads `{topic}-{tag}-{i}`; returns them.
pub(super) async fn produce(cfg: &KafkaConfig, topic: &str, tag: &str, n: usize) -> Vec<Vec<u8>> {
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("{topic}-{tag}-{i}").into_bytes())
        .collect();
    let producer = KafkaProducer::new(cfg).expect("producer");
    let sent = producer
        .send_all(
            payloads
                .iter()
                .enumerate()
                .map(|(i, p)| (topic, format!("k{i}"), p)),
            None,
            |_| {},
        )
        .await
        .expect("send_all");
    assert_eq!(sent, n as u64);
    payloads
}

/// One row seen by the test sink.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Row {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// What the test sink and coordinator saw; shared by replicas of one test ("the manifests").
#[derive(Debug, Default)]
pub(super) struct Landing {
    /// Rows of epochs that reached their barrier ("landed").
    pub landed: Vec<Row>,
    /// Rows seen, landed or not.
    pub seen: usize,
    /// Largest batch seen.
    pub max_batch: usize,
    /// Barriers seen per sink name, in order.
    pub barriers: BTreeMap<String, Vec<Epoch>>,
    /// Sinks that saw end of stream.
    pub ended: Vec<String>,
    /// Highest landed offset per partition.
    pub offsets: HashMap<(String, i32), i64>,
    /// Hold confirmations instead of sending them (epochs held, with their channel).
    pub hold: bool,
    pub held: Vec<(Epoch, mpsc::Sender<Epoch>)>,
}

/// Shared landing state; also the source's [`LandedOffsets`].
#[derive(Debug, Clone, Default)]
pub(super) struct Shared(pub Arc<Mutex<Landing>>);

impl Shared {
    pub fn with<R>(&self, f: impl FnOnce(&mut Landing) -> R) -> R {
        f(&mut self.0.lock().expect("landing lock"))
    }

    /// Sends the held confirmations and stops holding.
    pub async fn release(&self) {
        let held = self.with(|l| {
            l.hold = false;
            std::mem::take(&mut l.held)
        });
        for (e, tx) in held {
            tx.send(e).await.expect("confirm");
        }
    }
}

#[async_trait]
impl LandedOffsets for Shared {
    async fn landed(&self) -> Result<HashMap<(String, i32), i64>, OperatorError> {
        Ok(self.with(|l| l.offsets.clone()))
    }
}

/// Rows of a raw-message batch.
pub(super) fn rows(b: &RecordBatch) -> Vec<Row> {
    let col = |i: usize| b.column(i).as_any();
    let topic = col(0).downcast_ref::<StringArray>().expect("topic");
    let partition = col(1).downcast_ref::<Int32Array>().expect("partition");
    let offset = col(2).downcast_ref::<Int64Array>().expect("offset");
    let payload = col(4).downcast_ref::<BinaryViewArray>().expect("payload");
    (0..b.num_rows())
        .map(|i| Row {
            topic: topic.value(i).to_string(),
            partition: partition.value(i),
            offset: offset.value(i),
            payload: if payload.is_null(i) {
                Vec::new()
            } else {
                payload.value(i).to_vec()
            },
        })
        .collect()
}

/// A sink that lands rows at each barrier and confirms the epoch after a short delay (the
/// "coordinator"), unless the shared state holds confirmations.
pub(super) struct TestSink {
    pub name: String,
    pub open: Vec<Row>,
    pub shared: Shared,
    pub confirm: mpsc::Sender<Epoch>,
}

#[async_trait]
impl Operator for TestSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn process_batch(
        &mut self,
        batch: RecordBatch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let r = rows(&batch);
        self.shared.with(|l| {
            l.seen += r.len();
            l.max_batch = l.max_batch.max(r.len());
        });
        self.open.extend(r);
        Ok(())
    }

    async fn on_barrier(
        &mut self,
        epoch: Epoch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let rows = std::mem::take(&mut self.open);
        let hold = self.shared.with(|l| {
            for r in &rows {
                let o = l
                    .offsets
                    .entry((r.topic.clone(), r.partition))
                    .or_insert(r.offset);
                *o = (*o).max(r.offset);
            }
            l.landed.extend(rows);
            l.barriers.entry(self.name.clone()).or_default().push(epoch);
            if l.hold {
                l.held.push((epoch, self.confirm.clone()));
            }
            l.hold
        });
        if !hold {
            let tx = self.confirm.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(epoch).await;
            });
        }
        Ok(())
    }

    async fn on_end(&mut self, _out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.shared.with(|l| l.ended.push(self.name.clone()));
        Ok(())
    }
}

/// A running source + test sink graph.
pub(super) struct Running {
    pub handle: crate::dataflow::GraphHandle,
    pub stats: Arc<KafkaSourceStats>,
    /// Every `EpochOffsets` the source sent.
    pub offsets: Arc<Mutex<Vec<EpochOffsets>>>,
}

/// Starts a source (`name`, first epoch `start`) with a test sink on `shared`.
pub(super) fn start(cfg: &KafkaConfig, name: &str, start: Epoch, shared: &Shared) -> Running {
    start_with(cfg, name, start, shared, false)
}

/// As [`start`], in drain mode if `until_caught_up`.
pub(super) fn start_with(
    cfg: &KafkaConfig,
    name: &str,
    start: Epoch,
    shared: &Shared,
    until_caught_up: bool,
) -> Running {
    let (coordination, mut end) = coordination_channels(start, Arc::new(shared.clone()), 4);
    let source = if until_caught_up {
        KafkaSource::draining(cfg, coordination)
    } else {
        KafkaSource::new(cfg, coordination)
    }
    .expect("source");
    let stats = source.stats();
    let offsets = Arc::new(Mutex::new(Vec::new()));
    let sink_offsets = offsets.clone();
    tokio::spawn(async move {
        while let Some(o) = end.offsets.recv().await {
            sink_offsets.lock().expect("offsets lock").push(o);
        }
    });
    let mut g = crate::dataflow::Graph::new(8);
    let s = g.source(source);
    let k = g.operator(
        TestSink {
            name: name.into(),
            open: Vec::new(),
            shared: shared.clone(),
            confirm: end.confirm,
        },
        0,
    );
    g.connect(s, 0, k).expect("connect");
    Running {
        handle: g.start().expect("start"),
        stats,
        offsets,
    }
}

/// Waits until `cond` holds (panics after `secs`).
pub(super) async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Committed offsets of `group` for `partitions` of both topics (None = nothing committed).
pub(super) fn committed(
    brokers: &str,
    group: &str,
    partitions: i32,
) -> BTreeMap<(String, i32), Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in [NATURAL, AD] {
        for p in 0..partitions {
            tpl.add_partition(t, p);
        }
    }
    let tpl = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .expect("committed offsets");
    tpl.elements()
        .iter()
        .map(|e| {
            let o = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            ((e.topic().to_string(), e.partition()), o)
        })
        .collect()
}

/// Committed offsets read off the runtime (the client call blocks).
pub(super) async fn committed_async(
    brokers: &str,
    group: &str,
    partitions: i32,
) -> BTreeMap<(String, i32), Option<i64>> {
    let (b, g) = (brokers.to_string(), group.to_string());
    tokio::task::spawn_blocking(move || committed(&b, &g, partitions))
        .await
        .expect("committed task")
}

/// Per partition, the offset after the last landed row (what must be committed at the end).
pub(super) fn expected_commits(rows: &[Row]) -> BTreeMap<(String, i32), Option<i64>> {
    let mut out = BTreeMap::new();
    for r in rows {
        let e = out
            .entry((r.topic.clone(), r.partition))
            .or_insert(Some(r.offset + 1));
        *e = (*e).max(Some(r.offset + 1));
    }
    out
}
