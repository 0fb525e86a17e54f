//! `ctrflow demo`: the whole system on embedded defaults, in one process.
//!
//! 1. A broker: librdkafka's in-process mock cluster (or `--brokers`), both domain topics.
//! 2. An object store: the local directory `DIR/store` (or `--store`).
//! 3. `days + 1` days of generated two-domain logs are produced to Kafka while
//!    `ingest` runs. On the mock cluster production stays at most [`MOCK_MAX_LAG`] messages
//!    ahead of what epoch manifests cover, so its small per-partition log never drops unread
//!    messages. The extra day only moves the watermark past the last demo day, closing it.
//! 4. Once every demo day is closed, ingest stops and the daily job runs on every day from
//!    the second to the last (each date evaluates on itself and trains on the days before),
//!    on the tri-level schedule: TPM and CPM on their cadences, A-CTR daily.
//! 5. The caller prints the per-day summary and the published paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ctrflow_operators::generate::Generator;
use ctrflow_operators::kafka::{KafkaProducer, create_topics};
use ctrflow_schedule::{ModelSchedule, ScheduleConfig};
use ctrflow_schemas::{Domain, Event, EventDate, KeyLayout, ModelKind};
use ctrflow_storage::Storage;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::CtrflowConfig;
use crate::daily::{self, DailyOptions, DailyReport};

/// Partitions of each demo topic.
const DEMO_PARTITIONS: i32 = 16;

/// Messages the demo lets production run ahead of what ingest has landed on the mock cluster.
/// Its partitions keep about 5 MiB of log each (measured: ~700 messages with 1,000-long
/// behaviour histories before the log start moves on). With histories capped at
/// [`DEMO_MAX_HISTORY`] a message is ~1.5 KB, and 6,000 over 16 partitions is ~0.6 MiB each.
const MOCK_MAX_LAG: u64 = 6_000;

/// The file that marks a directory as the demo's own (its `store/` is replaced on a rerun).
const DEMO_MARKER: &str = ".ctrflow-demo";

/// Longest behaviour history the demo generates (keeps mock-cluster messages small).
const DEMO_MAX_HISTORY: u32 = 200;

/// What the demo runs on and how much data it generates.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Working directory (the store goes under `dir/store` unless `store` is set).
    pub dir: PathBuf,
    /// A real broker instead of the mock cluster.
    pub brokers: Option<String>,
    /// A real store instead of `dir/store`.
    pub store: Option<String>,
    /// Demo days (the daily job runs on days 2..=days).
    pub days: u32,
    /// Events per day over both domains.
    pub events_per_day: u64,
    /// Users of the generated world.
    pub users: u64,
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The object store it published into.
    pub store_url: String,
    /// Messages produced.
    pub produced: u64,
    /// One report per daily run.
    pub reports: Vec<DailyReport>,
    /// Keys of the `LATEST` pointers and the manifests they point to.
    pub published: Vec<String>,
    /// Seconds spent producing and ingesting, and in the daily jobs.
    pub seconds: (f64, f64),
}

/// The demo's schedule: the tri-level cadences compressed into a week (TPM every 4 days over
/// 30, CPM every 2 days over 7, A-CTR daily, K = 2 snapshots).
pub fn demo_schedule() -> ScheduleConfig {
    ScheduleConfig {
        tpm: ModelSchedule::every(30, 4),
        cpm: ModelSchedule::every(7, 2),
        actr: ModelSchedule::every(1, 1),
        tpm_snapshots: 2,
        ..ScheduleConfig::default()
    }
}

fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))
}

/// Runs the demo. `config` supplies everything not set by `options` (the generator's world,
/// training settings); the schedule is [`demo_schedule`] unless the config sets one.
pub async fn run_demo(
    mut config: CtrflowConfig,
    options: &DemoOptions,
) -> anyhow::Result<DemoOutcome> {
    anyhow::ensure!(options.days >= 3, "--days must be at least 3");
    let store_url = match &options.store {
        Some(url) => url.clone(),
        None => {
            let dir = absolute(&options.dir)?;
            let (store, marker) = (dir.join("store"), dir.join(DEMO_MARKER));
            // A previous demo's store is replaced; anything else is never deleted.
            if store.exists() {
                anyhow::ensure!(
                    marker.exists(),
                    "{} exists and was not written by `ctrflow demo`; choose another --dir",
                    store.display()
                );
                std::fs::remove_dir_all(&store).with_context(|| {
                    format!("removing the previous demo in {}", store.display())
                })?;
            }
            std::fs::write(
                &marker,
                "written by `ctrflow demo`; the demo replaces ./store on its next run\n",
            )
            .with_context(|| format!("writing {}", marker.display()))?;
            format!("file://{}", absolute(&store)?.display())
        }
    };
    config.store.url = store_url.clone();
    let storage = Storage::open(&store_url).with_context(|| format!("opening {store_url}"))?;
    // Ingest resumes after the offsets its epoch manifests list: a fresh broker's offsets
    // restart at 0, so the demo needs a store without them.
    anyhow::ensure!(
        storage.list(KeyLayout.epochs_dir()).await?.is_empty(),
        "{store_url} already holds ingest epochs; run the demo against an empty store"
    );
    if config.daily.schedule == ScheduleConfig::default() {
        config.daily.schedule = demo_schedule();
    }
    // Logs of the recent past: the extra closing day ends yesterday, so every event is inside
    // ingest's event-time window without loosening it.
    let today = EventDate::from_naive(chrono::Utc::now().date_naive());
    let g = &mut config.generator;
    g.start_date = today.offset(-(i64::from(options.days) + 2));
    let age = Duration::from_secs((u64::from(options.days) + 4) * 86_400);
    if config.ingest.decode.max_event_age < age {
        config.ingest.decode.max_event_age = age;
    }
    let g = &mut config.generator;
    g.days = options.days + 1;
    if options.brokers.is_none() {
        g.max_seq_len = g.max_seq_len.min(DEMO_MAX_HISTORY);
    }
    g.events_per_day = options.events_per_day;
    g.users = options.users;
    config.kafka.group_id = format!("ctrflow-demo-{}", std::process::id());
    // Small epochs so days close promptly.
    config.kafka.epoch_interval = Duration::from_millis(500);
    config.validate()?;

    let _mock: Option<MockCluster<'static, DefaultProducerContext>> = match &options.brokers {
        Some(brokers) => {
            config.kafka.brokers = brokers.clone();
            // On a shared broker the demo uses topics of its own, unless the config names some.
            if config.kafka.topics == ctrflow_operators::kafka::KafkaTopics::default() {
                let run = chrono::Utc::now().format("%Y%m%d%H%M%S");
                config.kafka.topics.natural = format!("ctrflow-demo-{run}.natural");
                config.kafka.topics.ad = format!("ctrflow-demo-{run}.ad");
            }
            let topics = config.kafka.topics.clone();
            create_topics(
                &config.kafka,
                &[
                    (topics.natural.as_str(), DEMO_PARTITIONS),
                    (topics.ad.as_str(), DEMO_PARTITIONS),
                ],
                1,
            )
            .await?;
            None
        }
        None => {
            let mock = MockCluster::new(1).context("starting the in-process Kafka mock cluster")?;
            for t in config.kafka.topics.all() {
                mock.create_topic(t, DEMO_PARTITIONS, 1)
                    .with_context(|| format!("creating topic {t} on the mock cluster"))?;
            }
            config.kafka.brokers = mock.bootstrap_servers();
            Some(mock)
        }
    };
    tracing::info!(brokers = %config.kafka.brokers, store = %store_url, days = options.days, "demo starting");

    // Produce day by day while ingest runs.
    let ingest_started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ingest_config = config.clone();
    let ingest_storage = storage.clone();
    let mut ingest = tokio::spawn(async move {
        crate::ingest::run_ingest(&ingest_config, ingest_storage, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let producer = KafkaProducer::new(&config.kafka)?;
    let topics = config.kafka.topics.clone();
    let to_message = |e: &Event| {
        (
            topics.topic(e.domain).to_string(),
            e.user_id.0.to_be_bytes(),
            e.to_json(),
        )
    };
    let mut generator = Generator::new(&config.generator)?;
    let first = config.generator.start_date;
    let last_demo_day = first.offset(i64::from(options.days) - 1);
    let mut produced = 0u64;
    let mut sent: BTreeMap<(Domain, EventDate), u64> = BTreeMap::new();
    let paced = options.brokers.is_none();
    while let Some(chunk) = generator.next_chunk(2_000) {
        if paced {
            wait_landed(&storage, produced.saturating_sub(MOCK_MAX_LAG), &mut ingest).await?;
        }
        for e in &chunk.events {
            *sent
                .entry((
                    e.domain,
                    EventDate::from_timestamp_ms(e.event_time.0).unwrap_or(chunk.date),
                ))
                .or_insert(0u64) += 1;
        }
        let messages: Vec<_> = chunk.events.iter().map(to_message).collect();
        produced += producer.send_all(messages, None, |_| {}).await?;
    }
    wait_closed(&storage, last_demo_day, &mut ingest).await?;
    let _ = stop_tx.send(());
    let stats = ingest.await.context("ingest task")??;
    tracing::info!(?stats, produced, "ingest finished");
    let ingest_seconds = ingest_started.elapsed().as_secs_f64();
    // Every produced event of a closed demo day must have landed, exactly once.
    for date in first.range_inclusive(last_demo_day) {
        for domain in Domain::ALL {
            let key = KeyLayout.day_success(domain, date);
            let day: ctrflow_schemas::DayManifest =
                ctrflow_schemas::decode_manifest(&key, &storage.get(&key).await?)?;
            let expected = sent.get(&(domain, date)).copied().unwrap_or(0);
            anyhow::ensure!(
                day.rows == expected,
                "{domain} {date}: produced {expected} events but {} landed",
                day.rows
            );
        }
    }

    // The daily schedule on every closed day after the first.
    let daily_started = Instant::now();
    let reports = daily::backfill(
        &daily::Stores::single(&storage),
        &config,
        first.succ(),
        last_demo_day,
        DailyOptions::default(),
        |r| {
            tracing::info!(date = %r.date, "daily job done");
        },
    )
    .await?;
    let daily_seconds = daily_started.elapsed().as_secs_f64();

    let mut published = Vec::new();
    for kind in ModelKind::ALL {
        let key = KeyLayout.model_latest(kind);
        if storage.exists(&key).await? {
            published.push(key);
        }
    }
    published.push(KeyLayout.embeddings_root().to_string());
    Ok(DemoOutcome {
        store_url,
        produced,
        reports,
        published,
        seconds: (ingest_seconds, daily_seconds),
    })
}

type IngestTask =
    tokio::task::JoinHandle<anyhow::Result<ctrflow_operators::ingest::CoordinatorStats>>;

/// The error of an ingest task that stopped early.
async fn stopped(ingest: &mut IngestTask, waiting_for: String) -> anyhow::Error {
    match ingest.await {
        Err(e) => anyhow::Error::new(e).context(format!("ingest stopped before {waiting_for}")),
        Ok(Err(e)) => e.context(format!("ingest stopped before {waiting_for}")),
        Ok(Ok(stats)) => anyhow::anyhow!("ingest stopped before {waiting_for}: {stats:?}"),
    }
}

/// Waits until the epoch manifests cover at least `messages` messages of the (fresh) mock
/// cluster's topics, whose offsets start at 0.
async fn wait_landed(
    storage: &Storage,
    messages: u64,
    ingest: &mut IngestTask,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let landed: u64 = ctrflow_operators::ingest::landed_offsets(storage)
            .await?
            .values()
            .map(|last| u64::try_from(last + 1).unwrap_or(0))
            .sum();
        if landed >= messages {
            return Ok(());
        }
        if ingest.is_finished() {
            return Err(stopped(ingest, format!("{messages} messages were landed")).await);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest landed only {landed} of {messages} messages within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until both domains' `_SUCCESS` of `date` exist (ingest closed the day), failing if
/// ingest stops or two minutes pass.
async fn wait_closed(
    storage: &Storage,
    date: EventDate,
    ingest: &mut tokio::task::JoinHandle<
        anyhow::Result<ctrflow_operators::ingest::CoordinatorStats>,
    >,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut closed = true;
        for domain in Domain::ALL {
            closed &= storage.exists(&KeyLayout.day_success(domain, date)).await?;
        }
        if closed {
            return Ok(());
        }
        if ingest.is_finished() {
            return Err(stopped(ingest, format!("{date} was closed")).await);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "day {date} was not closed by ingest within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
