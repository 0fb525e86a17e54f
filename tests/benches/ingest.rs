//! Ingest throughput against a bare consumer, and ingest's memory while it drains a backlog.
//!
//! Each scenario starts its own tansu broker (in memory, so its memory is freed afterwards),
//! produces N generated events with behaviour sequences of exactly L ids into the two domain
//! topics, and then, on that same data:
//!
//! 1. **raw**: a bare rdkafka consumer (the same client settings as ingest's source) subscribes
//!    with a fresh group and only counts messages and payload bytes;
//! 2. **ingest**: the real `ctrflow ingest` process, fresh group, landing into a local directory,
//!    runs until Kafka's committed offsets of its group cover all N messages (every epoch
//!    manifest durable, every offset committed). Its Prometheus endpoint says when the first
//!    message arrived and how far it is; `/proc/PID/status` gives its resident memory over the
//!    drain (`VmRSS`) and at peak (`VmHWM`). It runs in two modes on the same data, each with
//!    its own group and store: **drain** (`--until-caught-up`: it stops once it read every
//!    partition to its end, so its last epoch closes when the data ends, and exits 0 by itself)
//!    and **service** (the long-running job, stopped with SIGTERM once all is committed; its
//!    last epoch waits for the epoch timer, so its time to the last commit includes up to one
//!    `epoch-interval`).
//!
//! Rates are N over the time from the first message to the last (raw) or to the last commit
//! (ingest: when Kafka's committed offsets of its group cover all N, read every 20 ms with one
//! offsets request each once it has consumed them all), so the consumer-group join (about half
//! the session timeout on tansu) is left out of both.
//!
//! `cargo bench -p ctrflow-tests --bench ingest` (or the dev-profile binary with `--bench`) runs
//! 1M events with 50-long sequences, 100k with 1000-long ones (about 25 KB each; the broker keeps
//! them in memory) and a 2M-event 50-long backlog. Without
//! `--bench` (what `cargo test --all-targets` does) it runs one 20k-event scenario and asserts
//! that both consumers saw every message and ingest landed every event. Needs
//! `CTRFLOW_TEST_TANSU` (see `scripts/start-broker.sh`). Positional arguments filter scenarios by
//! name, as with criterion (`... --bench 1M-50`); `--property=KEY=VALUE` (repeatable) sets a
//! librdkafka property for both consumers alike, to measure client tuning; `--mode=drain`,
//! `--mode=service` or `--mode=service,drain` chooses the ingest runs and their order (default
//! `drain,service`).

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctrflow_operators::generate::{Generator, GeneratorConfig};
use ctrflow_operators::kafka::{CommittedOffsetsReader, KafkaConfig, KafkaProducer, create_topics};
use ctrflow_operators::sql::trusted_landing_files;
use ctrflow_schemas::{Domain, Event};
use ctrflow_storage::Storage;
use ctrflow_test_support::{PrivateBroker, unique_name};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// One measured configuration.
struct Scenario {
    name: &'static str,
    events: u64,
    seq_len: usize,
    partitions: i32,
}

const BENCH_SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "1M-50",
        events: 1_000_000,
        seq_len: 50,
        partitions: 4,
    },
    // About 25 KB per message: 100k of them are 2.5 GB in the in-memory broker; 1M would not fit.
    Scenario {
        name: "100k-1000",
        events: 100_000,
        seq_len: 1000,
        partitions: 4,
    },
    Scenario {
        name: "2M-50-backlog",
        events: 2_000_000,
        seq_len: 50,
        partitions: 4,
    },
];

const TEST_SCENARIO: Scenario = Scenario {
    name: "test-20k-50",
    events: 20_000,
    seq_len: 50,
    partitions: 2,
};

/// Days the events spread over, so that ingest also closes days during the run.
const DAYS: u32 = 7;
/// The epoch interval of the measured ingest in both modes (production default: 10 s). In
/// service mode shorter epochs bound the wait for the final commit after the last message,
/// which the rate includes; in drain mode the last epoch ends when the data does.
const EPOCH_INTERVAL: &str = "2s";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    // Like criterion and libtest: positional arguments filter by name (substring).
    let filters: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // `--property=KEY=VALUE`: a librdkafka property for both consumers (tuning experiments).
    let properties: BTreeMap<String, String> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--property="))
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("--property={kv}: expected KEY=VALUE"));
            (k.to_string(), v.to_string())
        })
        .collect();
    // `--mode=drain,service` (the default), `--mode=service,drain`, or one of them: which
    // ingest runs follow the bare consumer, in that order.
    let modes: Vec<Mode> = args
        .iter()
        .find_map(|a| a.strip_prefix("--mode="))
        .unwrap_or("drain,service")
        .split(',')
        .map(|m| match m {
            "drain" => Mode::Drain,
            "service" => Mode::Service,
            other => panic!("--mode: `{other}` is not drain or service"),
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let scenarios: Vec<&Scenario> = if bench {
        BENCH_SCENARIOS.iter().collect()
    } else {
        vec![&TEST_SCENARIO]
    };
    for s in scenarios {
        if !filters.is_empty() && !filters.iter().any(|f| s.name.contains(f.as_str())) {
            continue;
        }
        let result = runtime.block_on(run_scenario(s, &properties, &modes));
        result.print();
        if !bench {
            result.assert_complete();
        }
    }
}

/// What one scenario measured.
struct ScenarioResult {
    name: &'static str,
    events: u64,
    payload_bytes: u64,
    produce_seconds: f64,
    raw: Consumed,
    /// The broker's CPU seconds while it served the bare consumer (group join included).
    broker_cpu_raw: f64,
    /// One ingest run per mode, in the order they ran.
    ingests: Vec<IngestResult>,
}

/// How `ctrflow ingest` runs in the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--until-caught-up`: exits by itself once everything is landed and committed.
    Drain,
    /// The long-running job, stopped with SIGTERM once everything is committed.
    Service,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Drain => "drain",
            Mode::Service => "service",
        }
    }
}

/// One ingest run of a scenario.
struct IngestResult {
    mode: Mode,
    run: IngestRun,
    landed_rows: Option<u64>,
    /// The broker's CPU seconds while it served this run (group join included).
    broker_cpu_seconds: f64,
}

/// One consumer's pass over the topics.
struct Consumed {
    messages: u64,
    seconds: f64,
    join_seconds: f64,
    /// CPU time (user + system) of the consuming process over its whole run.
    cpu_seconds: f64,
}

impl Consumed {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }

    fn cpu_us_per_message(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.messages.max(1) as f64
    }
}

impl ScenarioResult {
    fn print(&self) {
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!("scenario {}", self.name);
        println!(
            "  produced     {} events, {:.1} MB of payload ({:.0} B/message) in {:.1} s",
            self.events,
            self.payload_bytes as f64 / 1e6,
            self.payload_bytes as f64 / self.events as f64,
            self.produce_seconds
        );
        println!(
            "  raw consume  {:>9.0} msg/s  ({} messages in {:.2} s after a {:.1} s group join)",
            self.raw.rate(),
            self.raw.messages,
            self.raw.seconds,
            self.raw.join_seconds
        );
        for i in &self.ingests {
            let run = &i.run;
            let mode = i.mode.name();
            println!(
                "  ingest ({mode}) {:>9.0} msg/s  ({} messages in {:.2} s to the last commit after a {:.1} s group join)",
                run.consumed.rate(),
                run.consumed.messages,
                run.consumed.seconds,
                run.consumed.join_seconds
            );
            println!(
                "  ingest ({mode}) / raw {:.2}",
                run.consumed.rate() / self.raw.rate().max(1e-9)
            );
            println!(
                "    its source had consumed every message after {:.2} s ({:.0} msg/s); the last epoch's landing and commit took the other {:.2} s",
                run.all_consumed_seconds,
                self.events as f64 / run.all_consumed_seconds.max(1e-9),
                run.consumed.seconds - run.all_consumed_seconds
            );
            println!(
                "    CPU per message: raw {:.1} us, ingest {:.1} us ({:.2}x)",
                self.raw.cpu_us_per_message(),
                run.consumed.cpu_us_per_message(),
                run.consumed.cpu_us_per_message() / self.raw.cpu_us_per_message().max(1e-9)
            );
            println!(
                "    broker CPU per message: serving raw {:.1} us, serving ingest {:.1} us",
                self.broker_cpu_raw * 1e6 / self.events as f64,
                i.broker_cpu_seconds * 1e6 / self.events as f64,
            );
            println!("    peak RSS {:.0} MiB (VmHWM)", mib(run.peak_rss_kib));
            let curve: Vec<String> = run
                .rss
                .iter()
                .map(|(m, kib)| format!("{}k:{:.0}", m / 1000, mib(*kib)))
                .collect();
            println!("    RSS MiB by messages consumed: {}", curve.join(" "));
        }
    }

    fn assert_complete(&self) {
        assert_eq!(self.raw.messages, self.events, "raw consumer message count");
        assert!(!self.ingests.is_empty(), "no ingest run");
        for i in &self.ingests {
            let mode = i.mode.name();
            assert_eq!(
                i.run.consumed.messages, self.events,
                "ingest ({mode}) committed offsets"
            );
            if let Some(accepted) = i.run.accepted {
                assert_eq!(accepted, self.events, "ingest ({mode}) accepted messages");
            }
            assert_eq!(
                i.landed_rows,
                Some(self.events),
                "ingest ({mode}) landed rows"
            );
            assert!(
                i.run.peak_rss_kib > 0,
                "no memory reading of the ingest ({mode}) process"
            );
        }
    }
}

async fn run_scenario(
    s: &Scenario,
    properties: &BTreeMap<String, String>,
    modes: &[Mode],
) -> ScenarioResult {
    let broker = PrivateBroker::start();
    let mut kafka = KafkaConfig {
        brokers: broker.address.clone(),
        group_id: unique_name("bench-raw"),
        session_timeout: Duration::from_secs(6),
        properties: properties.clone(),
        ..KafkaConfig::default()
    };
    kafka.topics.natural = unique_name("natural");
    kafka.topics.ad = unique_name("ad");
    create_topics(
        &kafka,
        &[
            (&kafka.topics.natural, s.partitions),
            (&kafka.topics.ad, s.partitions),
        ],
        1,
    )
    .await
    .expect("create topics");

    let start = Instant::now();
    let (produced, payload_bytes) = produce(&kafka, s).await;
    assert_eq!(produced, s.events, "produced");
    let produce_seconds = start.elapsed().as_secs_f64();

    let broker_pid = broker.pid().to_string();
    let broker_cpu_start = cpu_seconds(&broker_pid);
    let raw = {
        let kafka = kafka.clone();
        let expected = s.events;
        tokio::task::spawn_blocking(move || raw_consume(&kafka, expected))
            .await
            .expect("raw consumer thread")
    };

    let broker_cpu_raw = cpu_seconds(&broker_pid) - broker_cpu_start;
    let mut ingests = Vec::new();
    for &mode in modes {
        let store = tempfile::tempdir().expect("tempdir");
        kafka.group_id = unique_name(&format!("bench-ingest-{}", mode.name()));
        let broker_cpu_before = cpu_seconds(&broker_pid);
        let run = run_ingest(&kafka, store.path(), s.events, mode).await;
        let broker_cpu_seconds = cpu_seconds(&broker_pid) - broker_cpu_before;
        let landed_rows = if s.events <= TEST_SCENARIO.events {
            let storage = Storage::open(&store.path().display().to_string()).expect("store");
            Some(landed_rows(&storage).await)
        } else {
            None
        };
        ingests.push(IngestResult {
            mode,
            run,
            landed_rows,
            broker_cpu_seconds,
        });
    }
    drop(broker);
    ScenarioResult {
        name: s.name,
        events: s.events,
        payload_bytes,
        produce_seconds,
        raw,
        broker_cpu_raw,
        ingests,
    }
}

/// Generated events with every behaviour sequence made exactly `len` long (the generated
/// history, repeated as needed or cut to its most recent `len`).
fn events_with_sequences(s: &Scenario) -> impl Iterator<Item = Event> {
    let cfg = GeneratorConfig {
        seed: 7,
        days: DAYS,
        users: 20_000,
        events_per_day: s.events.div_ceil(u64::from(DAYS)),
        max_seq_len: s.seq_len as u32,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(&cfg).expect("generator");
    let len = s.seq_len;
    std::iter::from_fn(move || generator.next_chunk(4096).map(|c| c.events))
        .flatten()
        .take(s.events as usize)
        .map(move |mut e| {
            let (items, categories) = if e.hist_item_ids.is_empty() {
                (vec![e.item_id], vec![e.category_id])
            } else {
                (e.hist_item_ids.clone(), e.hist_category_ids.clone())
            };
            let skip = items.len().saturating_sub(len);
            e.hist_item_ids = items.iter().copied().cycle().skip(skip).take(len).collect();
            e.hist_category_ids = categories
                .iter()
                .copied()
                .cycle()
                .skip(skip)
                .take(len)
                .collect();
            e
        })
}

async fn produce(kafka: &KafkaConfig, s: &Scenario) -> (u64, u64) {
    let producer = KafkaProducer::new(kafka).expect("producer");
    let mut bytes = 0u64;
    let topics = kafka.topics.clone();
    let messages = events_with_sequences(s).map(|e| {
        let payload = e.to_json();
        bytes += payload.len() as u64;
        (
            topics.topic(e.domain).to_string(),
            e.user_id.0.to_be_bytes(),
            payload,
        )
    });
    let sent = producer
        .send_all(messages, None, |_| {})
        .await
        .expect("produce");
    (sent, bytes)
}

/// The baseline: subscribe, poll, count. Nothing is decoded, stored or committed.
fn raw_consume(kafka: &KafkaConfig, expected: u64) -> Consumed {
    let consumer: BaseConsumer = kafka
        .consumer_client_config()
        .create()
        .expect("raw consumer");
    consumer
        .subscribe(&kafka.topics.all())
        .expect("raw subscribe");
    let cpu_before = cpu_seconds("self");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(1800);
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut first = None;
    while messages < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                messages += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
            }
            Some(Err(e)) => panic!("raw consumer: {e}"),
            None => {}
        }
    }
    let first = first.unwrap_or(start);
    std::hint::black_box(bytes);
    Consumed {
        messages,
        seconds: first.elapsed().as_secs_f64(),
        join_seconds: (first - start).as_secs_f64(),
        cpu_seconds: cpu_seconds("self") - cpu_before,
    }
}

/// What one ingest run measured.
struct IngestRun {
    consumed: Consumed,
    accepted: Option<u64>,
    rss: Vec<(u64, u64)>,
    peak_rss_kib: u64,
    /// Seconds from the first message until the source had consumed all of them (the rest of
    /// `consumed.seconds` is the last epoch's landing and commit).
    all_consumed_seconds: f64,
}

/// Runs `ctrflow ingest` until its group's committed offsets cover `expected` messages; in
/// drain mode it must then exit 0 by itself, in service mode it is stopped with SIGTERM.
async fn run_ingest(
    kafka: &KafkaConfig,
    store: &std::path::Path,
    expected: u64,
    mode: Mode,
) -> IngestRun {
    let metrics = free_address();
    let mut child = spawn_ingest(kafka, store, &metrics, mode);
    let pid = child.id();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(1800);
    let mut first = None;
    let mut rss = Vec::new();
    let mut next_sample = 0u64;
    let mut all_consumed = None;
    // One client, one offsets request per check: the run ends when Kafka's committed offsets
    // cover all messages, read within milliseconds of the scrape that found them consumed.
    let mut offsets: Option<CommittedOffsetsReader> = None;
    // Read every round: a draining process may exit right after its last commit, and its
    // /proc entries go with it.
    let (mut peak_rss_kib, mut cpu) = (0u64, 0f64);
    // The decoder's count, from the scrape that found everything committed (None if a
    // draining process exited before that scrape: its landed rows say the same).
    let mut accepted = None;
    let (committed, end) = loop {
        assert!(
            Instant::now() < deadline,
            "ingest did not finish in 30 minutes"
        );
        peak_rss_kib = peak_rss_kib.max(proc_status_kib(pid, "VmHWM:").unwrap_or(0));
        cpu = cpu.max(cpu_seconds(&pid.to_string()));
        if let Some(status) = child.try_wait().expect("ingest status") {
            let exited_at = Instant::now();
            assert!(
                mode == Mode::Drain && status.success(),
                "ingest ({}) exited early: {status}",
                mode.name()
            );
            // Drained: its last commit came before the exit.
            let reader = offsets
                .as_ref()
                .expect("a draining ingest exited before consuming");
            let by_partition = tokio::task::block_in_place(|| reader.read(Duration::from_secs(10)))
                .expect("committed offsets");
            let committed: i64 = by_partition.values().sum();
            assert_eq!(
                committed as u64,
                expected,
                "drained, but not all committed ({} exited after {:.1} s): {by_partition:?}",
                mode.name(),
                start.elapsed().as_secs_f64()
            );
            all_consumed.get_or_insert(exited_at);
            break (committed as u64, exited_at);
        }
        let scraped = scrape(&metrics);
        let scraped_at = Instant::now();
        let messages = scraped.value("ctrflow_ingest_messages_total");
        if messages > 0 {
            first.get_or_insert(scraped_at);
            if offsets.is_none() {
                let reader = tokio::task::block_in_place(|| {
                    CommittedOffsetsReader::new(kafka, Duration::from_secs(10))
                });
                offsets = Some(reader.expect("committed-offsets client"));
            }
        }
        if messages >= next_sample {
            if let Some(kib) = proc_status_kib(pid, "VmRSS:") {
                rss.push((messages, kib));
            }
            next_sample = messages + expected / 10;
        }
        if messages >= expected
            && let Some(reader) = &offsets
        {
            all_consumed.get_or_insert(scraped_at);
            let committed: i64 =
                tokio::task::block_in_place(|| reader.read(Duration::from_secs(10)))
                    .expect("committed offsets")
                    .values()
                    .sum();
            if committed as u64 >= expected {
                accepted = Some(scraped.value("ctrflow_ingest_accepted_total"));
                break (committed as u64, Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first = first.unwrap_or(start);
    let seconds = (end - first).as_secs_f64();
    let all_consumed_seconds = all_consumed.map_or(seconds, |t| (t - first).as_secs_f64());
    peak_rss_kib = peak_rss_kib.max(proc_status_kib(pid, "VmHWM:").unwrap_or(0));
    cpu = cpu.max(cpu_seconds(&pid.to_string()));
    if let Some(kib) = proc_status_kib(pid, "VmRSS:") {
        rss.push((expected, kib));
    }
    match mode {
        Mode::Service => stop(&mut child),
        Mode::Drain => {
            let status = child.wait().expect("wait for ingest");
            assert!(status.success(), "draining ingest exited with {status}");
        }
    }
    IngestRun {
        consumed: Consumed {
            messages: committed,
            seconds,
            join_seconds: (first - start).as_secs_f64(),
            cpu_seconds: cpu,
        },
        accepted,
        rss,
        peak_rss_kib,
        all_consumed_seconds,
    }
}

fn spawn_ingest(kafka: &KafkaConfig, store: &std::path::Path, metrics: &str, mode: Mode) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ctrflow-under-test"));
    if !kafka.properties.is_empty() {
        // A TOML inline table, as the config's environment overrides read it.
        let table: Vec<String> = kafka
            .properties
            .iter()
            .map(|(k, v)| format!("{k:?} = {v:?}"))
            .collect();
        command.env(
            "CTRFLOW__KAFKA__PROPERTIES",
            format!("{{ {} }}", table.join(", ")),
        );
    }
    command
        .args([
            "ingest",
            "--brokers",
            &kafka.brokers,
            "--group",
            &kafka.group_id,
        ])
        .arg("--store")
        .arg(store)
        .args(match mode {
            Mode::Drain => &["--until-caught-up"][..],
            Mode::Service => &[],
        })
        .env("CTRFLOW__KAFKA__TOPICS__NATURAL", &kafka.topics.natural)
        .env("CTRFLOW__KAFKA__TOPICS__AD", &kafka.topics.ad)
        .env(
            "CTRFLOW__KAFKA__EPOCH_INTERVAL",
            format!("\"{EPOCH_INTERVAL}\""),
        )
        .env("CTRFLOW__KAFKA__SESSION_TIMEOUT", "\"6s\"")
        .env("CTRFLOW__INGEST__DECODE__MAX_EVENT_AGE", "\"36500days\"")
        .env("CTRFLOW__METRICS__LISTEN", format!("\"{metrics}\""))
        // As deploy/k8s runs it: glibc's per-thread arenas otherwise let memory creep up.
        .env("MALLOC_ARENA_MAX", "2")
        .env(
            "RUST_LOG",
            std::env::var("CTRFLOW_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ctrflow ingest")
}

/// SIGTERM (finish the open epoch, exit 0), then wait.
fn stop(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success(), "kill -TERM failed");
    let status = child.wait().expect("wait for ingest");
    assert!(
        status.success(),
        "ingest exited with {status} after SIGTERM"
    );
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("local address").to_string()
}

/// One Prometheus scrape (empty while the endpoint is not up yet).
struct Scrape(String);

impl Scrape {
    fn value(&self, metric: &str) -> u64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (name, value) = l.split_once(' ')?;
                (name == metric).then(|| value.trim().parse::<f64>().ok())?
            })
            .map_or(0, |v| v as u64)
    }
}

fn scrape(address: &str) -> Scrape {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return Scrape(String::new());
    };
    let mut body = String::new();
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut body).is_err() {
        return Scrape(String::new());
    }
    Scrape(body)
}

/// A `kB` field of `/proc/PID/status`.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User + system CPU seconds of process `pid` (or `self`) so far, from `/proc/PID/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may contain spaces: count fields after its closing ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After ')': field 3 is at index 0, so utime (14) is index 11 and stime (15) index 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Rows of every landing file the epoch manifests list, checking event ids are distinct.
async fn landed_rows(storage: &Storage) -> u64 {
    let mut ids = HashSet::new();
    let mut rows = 0u64;
    for domain in Domain::ALL {
        for key in trusted_landing_files(storage, domain, None)
            .await
            .expect("landing files")
        {
            for batch in storage.read_parquet(&key).await.expect("read landing file") {
                rows += batch.num_rows() as u64;
                let col = batch.column_by_name("event_id").expect("event_id column");
                let col = arrow::array::AsArray::as_string::<i32>(col);
                ids.extend(col.iter().flatten().map(str::to_string));
            }
        }
    }
    assert_eq!(ids.len() as u64, rows, "duplicate event ids in the landing");
    rows
}
