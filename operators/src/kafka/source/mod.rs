//! [`KafkaSource`]: the consumer-group source of `ctrflow ingest` (protocol in the
//! [module docs](super)).

mod drain;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ctrflow_schemas::Epoch;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::consumer::{ConsumerHandle, Event};
use super::drain::DrainTargets;
use super::records::{BatchBuilder, Confirmed, EpochTracker, RecordChunk};
use super::stats::KafkaSourceStats;
use super::{Coordination, EpochOffsets, KafkaConfig, LandedOffsets};
use crate::OperatorError;
use crate::dataflow::{Collector, Message, Source, SourceContext};

/// Chunks buffered between the poll thread and the source task.
const EVENT_CAPACITY: usize = 64;
/// Attempts to read the landed offsets at an assignment before the source fails.
const LANDED_ATTEMPTS: u32 = 5;
/// Attempts of the synchronous commit at a revocation or shutdown.
const COMMIT_ATTEMPTS: u32 = 3;
/// How often a wait for the coordinator is logged.
const WAIT_WARN: Duration = Duration::from_secs(30);
/// Longest `run` waits for the consumer to leave the group after the last commit.
const CLOSE_WAIT: Duration = Duration::from_secs(15);
/// Attempts (and timeout of each) to read a partition's end offsets in drain mode.
const END_OFFSET_ATTEMPTS: u32 = 5;
const END_OFFSET_TIMEOUT: Duration = Duration::from_secs(10);
/// In drain mode, how often a quiet source (no event) checks whether it is done. After two
/// quiet checks in a row it also trusts the consumer's positions (past transaction markers)
/// over the offsets of the messages it emitted: by then the poll thread has handed over
/// whatever it had polled.
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// librdkafka's statistics interval in drain mode (unless set in `properties`): the fetched
/// high watermarks come with them (see [`DrainTargets`]).
const DRAIN_STATISTICS_MS: &str = "1000";

/// Reads both topics of [`KafkaConfig::topics`] in the consumer group `group-id`, emits
/// [`raw_message_schema`](ctrflow_schemas::raw_message_schema) batches on port 0 (at most
/// `max-batch-messages` rows and about `max-batch-bytes` of payload, at most `max-batch-wait` after
/// their first row) and a barrier at least every `epoch-interval`, `epoch-max-messages` or
/// `epoch-max-bytes`, following the epoch protocol of the [module docs](super). Auto-commit is off;
/// offsets are committed only for confirmed epochs. A new group starts at the earliest offset
/// (`auto.offset.reset=earliest`, overridable).
///
/// It runs until the graph is stopped, or, in drain mode ([`KafkaSource::draining`]),
/// until every partition it holds was read to the end offset it had when assigned; then it
/// finishes like a graceful stop (last epoch landed and committed) and ends the stream.
///
/// Unreachable brokers are waited for (librdkafka retries; warnings are logged periodically);
/// only fatal client errors, a closed coordinator channel or landed offsets that cannot be read
/// stop it with an error.
pub struct KafkaSource {
    config: KafkaConfig,
    consumer: Option<ConsumerHandle>,
    events: Option<mpsc::Receiver<Event>>,
    coordination: Option<Coordination>,
    stats: Arc<KafkaSourceStats>,
    until_caught_up: bool,
}

impl KafkaSource {
    /// Validates `config` and creates the consumer (it joins the group when the source runs).
    /// An invalid librdkafka property is reported as a config error naming it.
    pub fn new(config: &KafkaConfig, coordination: Coordination) -> Result<Self, OperatorError> {
        Self::build(config, coordination, false)
    }

    /// As [`KafkaSource::new`], in drain mode: the source stops once every partition it holds
    /// was read to the end offset it had when it was assigned, as a scheduled job that lands
    /// what is available and exits. Messages produced meanwhile may land too; the rest wait for
    /// the next run. librdkafka statistics come every second unless `properties` sets
    /// `statistics.interval.ms` (the drain reads the fetched high watermarks from them).
    pub fn draining(
        config: &KafkaConfig,
        coordination: Coordination,
    ) -> Result<Self, OperatorError> {
        Self::build(config, coordination, true)
    }

    fn build(
        config: &KafkaConfig,
        coordination: Coordination,
        until_caught_up: bool,
    ) -> Result<Self, OperatorError> {
        config.validate()?;
        let stats = Arc::new(KafkaSourceStats::default());
        let mut client = config.clone();
        if until_caught_up {
            client
                .properties
                .entry("statistics.interval.ms".into())
                .or_insert_with(|| DRAIN_STATISTICS_MS.into());
        }
        let (consumer, events) = ConsumerHandle::create(&client, stats.clone(), EVENT_CAPACITY)?;
        Ok(KafkaSource {
            config: config.clone(),
            consumer: Some(consumer),
            events: Some(events),
            coordination: Some(coordination),
            stats,
            until_caught_up,
        })
    }

    /// Live counters, for the metrics exporter.
    pub fn stats(&self) -> Arc<KafkaSourceStats> {
        self.stats.clone()
    }
}

impl KafkaConfig {
    /// Builds the source of this configuration (see [`KafkaSource::new`]).
    pub fn build_source(&self, coordination: Coordination) -> Result<KafkaSource, OperatorError> {
        KafkaSource::new(self, coordination)
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn name(&self) -> String {
        "kafka-source".into()
    }

    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), OperatorError> {
        let (Some(consumer), Some(events), Some(coordination)) = (
            self.consumer.take(),
            self.events.take(),
            self.coordination.take(),
        ) else {
            return Err(OperatorError::Internal("kafka source run twice".into()));
        };
        consumer.subscribe(&self.config.topics.all())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (thread, exited) = consumer.spawn_poll_thread(stop.clone())?;
        tracing::info!(config = %self.config, start_epoch = %coordination.start_epoch, "kafka source started");
        let mut driver = Driver {
            max_batch: self.config.max_batch_messages,
            max_batch_bytes: self.config.max_batch_bytes,
            max_wait: self.config.max_batch_wait,
            epoch_interval: self.config.epoch_interval,
            epoch_max: self.config.epoch_max_messages,
            epoch_max_bytes: self.config.epoch_max_bytes,
            consumer,
            events,
            offsets: coordination.offsets,
            confirms: Confirmations {
                rx: coordination.confirmed,
                open: true,
                stash: VecDeque::new(),
            },
            landed: coordination.landed,
            builder: BatchBuilder::new(),
            tracker: EpochTracker::new(coordination.start_epoch),
            stats: self.stats.clone(),
            exited,
            drain: self.until_caught_up.then(DrainTargets::default),
            next_position_check: Instant::now() + DRAIN_QUIET,
            quiet_checks: 0,
        };
        let result = driver.run(ctx).await;
        // Teardown: no more hand-shakes; answer whatever the poll thread is waiting for.
        driver.consumer.set_closing();
        stop.store(true, Ordering::SeqCst);
        driver.events.close();
        while let Ok(event) = driver.events.try_recv() {
            match event {
                Event::Revoked { ack, .. } => {
                    let _ = ack.send(());
                }
                Event::Assigned { reply, .. } => {
                    let _ = reply.send(HashMap::new());
                }
                Event::Records(_) | Event::Fatal(_) => {}
            }
        }
        let Driver { consumer, .. } = driver;
        // The consumer closes (leaves the group) once both the poll thread and we let go.
        let join = tokio::task::spawn_blocking(move || {
            let _ = thread.join();
            consumer.close_blocking();
        });
        if tokio::time::timeout(CLOSE_WAIT, join).await.is_err() {
            tracing::warn!("kafka consumer did not close within {CLOSE_WAIT:?}; leaving it behind");
        }
        tracing::info!(result = ?result.as_ref().map(|_| ()), "kafka source stopped");
        result
    }
}

/// The confirmation channel, read even while emitting is blocked.
struct Confirmations {
    rx: mpsc::Receiver<Epoch>,
    open: bool,
    stash: VecDeque<Epoch>,
}

impl Confirmations {
    /// Runs `fut` to completion, stashing confirmations that arrive meanwhile.
    async fn during<F: Future>(&mut self, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return out,
                c = self.rx.recv(), if self.open => match c {
                    Some(e) => self.stash.push_back(e),
                    None => self.open = false,
                },
            }
        }
    }
}

/// What woke the source loop.
enum Step {
    Stop,
    StopClosed,
    Confirmed(Option<Epoch>),
    Event(Option<Event>),
    BatchDue,
    EpochDue,
    /// Drain mode, quiet for a while: compare the consumer's positions with the end offsets.
    PositionCheck,
}

struct Driver {
    max_batch: usize,
    max_batch_bytes: u64,
    max_wait: Duration,
    epoch_interval: Duration,
    epoch_max: u64,
    epoch_max_bytes: u64,
    consumer: ConsumerHandle,
    events: mpsc::Receiver<Event>,
    offsets: mpsc::Sender<EpochOffsets>,
    confirms: Confirmations,
    landed: Arc<dyn LandedOffsets>,
    builder: BatchBuilder,
    tracker: EpochTracker,
    stats: Arc<KafkaSourceStats>,
    /// Resolves when the poll thread ended.
    exited: oneshot::Receiver<()>,
    /// Drain mode: the end offsets to reach.
    drain: Option<DrainTargets>,
    /// Drain mode: when the positions are compared next, unless an event comes first.
    next_position_check: Instant,
    /// Drain mode: checks since the last event.
    quiet_checks: u32,
}

fn coordinator_gone() -> OperatorError {
    OperatorError::Disconnected("kafka source: the epoch coordinator closed its channel".into())
}

impl Driver {
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), OperatorError> {
        let mut stop_open = true;
        loop {
            if ctx.stopping() {
                return self.shutdown(ctx).await;
            }
            let far = Instant::now() + Duration::from_secs(3600);
            let batch_due = self.builder.deadline(self.max_wait).map(Instant::from_std);
            let epoch_due = self
                .tracker
                .deadline(self.epoch_interval)
                .map(Instant::from_std);
            let position_check = self.drain.is_some();
            let step = tokio::select! {
                biased;
                r = ctx.stop.changed(), if stop_open => if r.is_ok() { Step::Stop } else { Step::StopClosed },
                c = self.confirms.rx.recv(), if self.confirms.open => Step::Confirmed(c),
                _ = sleep_until(epoch_due.unwrap_or(far)), if epoch_due.is_some() => Step::EpochDue,
                _ = sleep_until(batch_due.unwrap_or(far)), if batch_due.is_some() => Step::BatchDue,
                e = self.events.recv() => Step::Event(e),
                _ = sleep_until(self.next_position_check), if position_check => Step::PositionCheck,
                _ = &mut self.exited => Step::Event(None),
            };
            match step {
                Step::Stop => {}
                Step::StopClosed => stop_open = false,
                Step::Confirmed(Some(e)) => {
                    self.confirms.stash.push_back(e);
                    self.apply_confirmations()?;
                }
                Step::Confirmed(None) => return Err(coordinator_gone()),
                Step::EpochDue => self.finish_epoch(ctx).await?,
                Step::BatchDue => self.flush_batch(ctx).await?,
                Step::Event(None) => {
                    // The poll thread ended: report its fatal error if it sent one.
                    while let Ok(event) = self.events.try_recv() {
                        if let Event::Fatal(e) = event {
                            return Err(e);
                        }
                    }
                    return Err(OperatorError::Internal(
                        "kafka poll thread stopped unexpectedly".into(),
                    ));
                }
                Step::Event(Some(event)) => {
                    self.next_position_check = Instant::now() + DRAIN_QUIET;
                    self.quiet_checks = 0;
                    self.handle(event, ctx).await?;
                }
                Step::PositionCheck => {
                    self.next_position_check = Instant::now() + DRAIN_QUIET;
                    self.quiet_checks = self.quiet_checks.saturating_add(1);
                    if self.drained() || (self.quiet_checks >= 2 && self.drained_by_positions()) {
                        return self.finish_drain(ctx).await;
                    }
                    continue;
                }
            }
            if self.drained() {
                return self.finish_drain(ctx).await;
            }
        }
    }

    async fn handle(&mut self, event: Event, ctx: &mut SourceContext) -> Result<(), OperatorError> {
        match event {
            Event::Records(chunk) => self.records(chunk, ctx).await,
            Event::Assigned { partitions, reply } => {
                let landed = self.query_landed().await?;
                let landed: HashMap<(String, i32), i64> = landed
                    .into_iter()
                    .filter(|(k, _)| partitions.contains(k))
                    .collect();
                self.tracker.assign(&partitions, &landed);
                tracing::info!(
                    ?partitions,
                    ?landed,
                    "kafka assignment: resuming after landed offsets"
                );
                let _ = reply.send(landed);
                if let Some(drain) = &mut self.drain {
                    drain.assigned(&partitions, self.stats.statistics_reports());
                    self.read_end_offsets().await?;
                }
                Ok(())
            }
            Event::Revoked {
                partitions,
                lost,
                ack,
            } => {
                tracing::info!(
                    ?partitions,
                    lost,
                    "kafka revocation: finishing the epoch first"
                );
                self.finish_epoch(ctx).await?;
                self.wait_all_confirmed().await?;
                // One attempt: during a rebalance a retry would meet the same generation error.
                self.commit_sync(1).await;
                self.tracker.revoke(&partitions);
                if let Some(drain) = &mut self.drain {
                    drain.revoked(&partitions);
                }
                let _ = ack.send(());
                Ok(())
            }
            Event::Fatal(e) => Err(e),
        }
    }

    async fn records(
        &mut self,
        chunk: RecordChunk,
        ctx: &mut SourceContext,
    ) -> Result<(), OperatorError> {
        for r in chunk.records {
            match self.tracker.admit(&r) {
                Some(true) => {
                    if let Some(gap) = self.tracker.take_gap() {
                        let skipped = (gap.last - gap.first + 1) as u64;
                        KafkaSourceStats::add(&self.stats.skipped_offsets, skipped);
                        tracing::warn!(
                            topic = %gap.topic,
                            partition = gap.partition,
                            first = gap.first,
                            last = gap.last,
                            skipped,
                            "kafka offsets skipped: messages deleted by retention before ingest \
                             read them (data loss), log compaction, or transaction markers"
                        );
                    }
                }
                Some(false) => {
                    KafkaSourceStats::add(&self.stats.dropped_landed, 1);
                    continue;
                }
                None => {
                    KafkaSourceStats::add(&self.stats.dropped_unassigned, 1);
                    continue;
                }
            }
            self.builder.push(r, &chunk.payloads);
            if self.tracker.rows() >= self.epoch_max
                || self.tracker.payload_bytes() >= self.epoch_max_bytes
            {
                self.finish_epoch(ctx).await?;
            } else if self.builder.len() >= self.max_batch
                || self.builder.payload_bytes() >= self.max_batch_bytes
            {
                self.flush_batch(ctx).await?;
            }
        }
        Ok(())
    }

    async fn flush_batch(&mut self, ctx: &mut SourceContext) -> Result<(), OperatorError> {
        let Some((batch, bytes)) = self.builder.finish()? else {
            return Ok(());
        };
        let rows = batch.num_rows() as u64;
        self.confirms.during(ctx.out.collect(0, batch)).await?;
        KafkaSourceStats::add(&self.stats.messages, rows);
        KafkaSourceStats::add(&self.stats.bytes, bytes);
        KafkaSourceStats::add(&self.stats.batches, 1);
        self.apply_confirmations()
    }

    /// Emits the pending batch, then (if the epoch has rows) its offsets and its barrier.
    async fn finish_epoch(&mut self, ctx: &mut SourceContext) -> Result<(), OperatorError> {
        self.flush_batch(ctx).await?;
        let Some(mut offsets) = self.tracker.close_epoch() else {
            return Ok(());
        };
        let lag = self.stats.partition_lag();
        for a in &mut offsets.assigned {
            a.caught_up = lag
                .iter()
                .any(|l| l.topic == a.topic && l.partition == a.partition && l.lag <= 0);
        }
        let epoch = offsets.epoch;
        self.confirms
            .during(self.offsets.send(offsets))
            .await
            .map_err(|_| coordinator_gone())?;
        self.confirms
            .during(ctx.out.broadcast(Message::Barrier(epoch)))
            .await?;
        KafkaSourceStats::add(&self.stats.epochs, 1);
        tracing::debug!(%epoch, "epoch barrier emitted");
        self.apply_confirmations()
    }

    /// Applies stashed confirmations; commits (asynchronously, in order) what became confirmed.
    fn apply_confirmations(&mut self) -> Result<(), OperatorError> {
        let mut any = false;
        while let Some(e) = self.confirms.stash.pop_front() {
            match self.tracker.confirm(e) {
                Confirmed::Known => {
                    KafkaSourceStats::add(&self.stats.confirmed_epochs, 1);
                    any = true;
                }
                Confirmed::Unknown => {
                    tracing::warn!(epoch = %e, "confirmation of an epoch that is not outstanding; ignored");
                }
            }
        }
        if !any || self.tracker.committable().is_empty() {
            return Ok(());
        }
        if let Err(e) = self.consumer.commit(self.tracker.committable(), false) {
            KafkaSourceStats::add(&self.stats.commit_failures, 1);
            tracing::warn!(error = %e, "kafka offset commit not queued; the next commit retries it");
        }
        Ok(())
    }

    /// Waits until the coordinator confirmed every emitted epoch.
    async fn wait_all_confirmed(&mut self) -> Result<(), OperatorError> {
        self.apply_confirmations()?;
        while let Some(oldest) = self.tracker.oldest_unconfirmed() {
            if !self.confirms.open {
                return Err(coordinator_gone());
            }
            match tokio::time::timeout(WAIT_WARN, self.confirms.rx.recv()).await {
                Ok(Some(e)) => {
                    self.confirms.stash.push_back(e);
                    self.apply_confirmations()?;
                }
                Ok(None) => self.confirms.open = false,
                Err(_) => {
                    tracing::warn!(epoch = %oldest, "still waiting for the coordinator to confirm an epoch")
                }
            }
        }
        Ok(())
    }

    /// Commits every confirmed offset and waits for the broker (revocation, shutdown). Failures
    /// are logged, not fatal: the manifests remain the truth on restart.
    async fn commit_sync(&mut self, attempts: u32) {
        let offsets: BTreeMap<(String, i32), i64> = self.tracker.committable().clone();
        if offsets.is_empty() {
            return;
        }
        for attempt in 1..=attempts {
            let consumer = self.consumer.share();
            let to_commit = offsets.clone();
            let r = tokio::task::spawn_blocking(move || consumer.commit(&to_commit, true)).await;
            match r {
                Ok(Ok(())) => {
                    KafkaSourceStats::add(&self.stats.commits, 1);
                    tracing::debug!(?offsets, "kafka offsets committed");
                    return;
                }
                Ok(Err(e)) => {
                    KafkaSourceStats::add(&self.stats.commit_failures, 1);
                    tracing::warn!(error = %e, attempt, "synchronous kafka commit failed");
                }
                Err(e) => tracing::warn!(error = %e, "kafka commit task failed"),
            }
            if attempt == attempts {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        tracing::error!("kafka offsets not committed; a restart resumes from the manifests anyway");
    }

    async fn query_landed(&mut self) -> Result<HashMap<(String, i32), i64>, OperatorError> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match self.landed.landed().await {
                Ok(l) => return Ok(l),
                Err(e) if attempt < LANDED_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "reading landed offsets failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Graceful shutdown: last batch, last barrier, wait for confirmation, commit.
    async fn shutdown(&mut self, ctx: &mut SourceContext) -> Result<(), OperatorError> {
        tracing::info!("kafka source stopping: finishing the open epoch");
        self.finish_epoch(ctx).await?;
        self.wait_all_confirmed().await?;
        self.commit_sync(COMMIT_ATTEMPTS).await;
        Ok(())
    }
}
