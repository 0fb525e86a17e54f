//! Ingest under an object store that fails writes: run in-process (so the store can be wrapped
//! by a fault-injecting layer) against the real broker. Whatever ingest does about the failure
//! (retry the epoch or stop), the consumer group must never commit an offset past data that is
//! listed in a durable epoch manifest, and a run after the fault lands every event exactly once.
//! Also the broker faults (an outage, and a replica paused past the session timeout whose
//! partitions move to another replica), each ending in exactly-once landing.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ctrflow_operators::ingest::landed_offsets;
use ctrflow_operators::kafka::committed_offsets;
use ctrflow_pipeline::config::CtrflowConfig;
use ctrflow_pipeline::ingest::run_ingest;
use ctrflow_storage::Storage;
use object_store::ObjectStore;
use tokio::sync::oneshot;

use crate::faults::FailingWrites;
use crate::ingest::{Setup, generated, landed_event_ids, terminate, wait_landed};
use ctrflow_operators::kafka::KafkaProducer;

fn ingest_config(setup: &Setup) -> CtrflowConfig {
    let mut config = CtrflowConfig::default();
    config.store.url = setup.store_path().display().to_string();
    config.kafka = setup.kafka.clone();
    config.kafka.epoch_interval = Duration::from_millis(300);
    // Many small epochs, so that the fault hits in the middle of the stream.
    config.kafka.epoch_max_messages = 1_000;
    config.kafka.max_batch_messages = 500;
    config.kafka.session_timeout = Duration::from_secs(6);
    config.ingest.decode.max_event_age = Duration::from_secs(100 * 365 * 86_400);
    config.ingest.coordinator.allowed_lateness = Duration::from_secs(3600);
    config
}

/// No committed offset is past the highest offset a durable manifest lists (+1: a committed
/// offset is the next one to read).
async fn assert_committed_within_landed(setup: &Setup, storage: &Storage, when: &str) {
    let committed = committed_offsets(&setup.kafka, Duration::from_secs(10))
        .await
        .expect("committed offsets");
    let landed: BTreeMap<(String, i32), i64> = landed_offsets(storage)
        .await
        .expect("landed offsets")
        .into_iter()
        .collect();
    for ((topic, partition), next) in &committed {
        let limit = landed
            .get(&(topic.clone(), *partition))
            .map_or(0, |last| last + 1);
        assert!(
            *next <= limit,
            "{when}: {topic}/{partition} committed {next} but manifests only cover up to {limit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_store_never_lets_offsets_pass_unlanded_data() {
    let setup = Setup::new(2).await;
    let (events, messages) = generated(&setup, 10_000, 7);
    setup.produce(messages).await;
    let config = ingest_config(&setup);
    let failing = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let layer = {
        let (failing, failed) = (failing.clone(), failed.clone());
        move |inner: Arc<dyn ObjectStore>| -> Arc<dyn ObjectStore> {
            Arc::new(FailingWrites::new(inner, failing, failed).arm_after("landing/_epochs/", 3))
        }
    };
    let plain = setup.storage();
    let faulty = setup.storage().with_layer(layer);

    // Run: the store breaks by itself after the third epoch manifest.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let run_config = config.clone();
    let mut run = tokio::spawn(async move {
        run_ingest(&run_config, faulty, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let start = Instant::now();
    while !failing.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "three epochs never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // While writes fail: offsets stay within what manifests cover, whether ingest retries or stops.
    let mut stopped = None;
    let fault_start = Instant::now();
    while fault_start.elapsed() < Duration::from_secs(8) {
        assert_committed_within_landed(&setup, &plain, "during the fault").await;
        if run.is_finished() {
            stopped = Some((&mut run).await.expect("join"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(failed.load(Ordering::SeqCst) > 0, "the fault was never hit");
    let landed_during_fault = landed_event_ids(&plain).await.len();
    assert!(
        landed_during_fault < events.len(),
        "everything landed before the fault"
    );
    failing.store(false, Ordering::SeqCst);
    assert_committed_within_landed(&setup, &plain, "after the fault").await;

    eprintln!(
        "fault: {} writes failed; {landed_during_fault} events landed; ingest {}",
        failed.load(Ordering::SeqCst),
        match &stopped {
            Some(Ok(_)) => "stopped cleanly".to_string(),
            Some(Err(e)) => format!("stopped: {e:#}"),
            None => "kept running".to_string(),
        }
    );
    match stopped {
        Some(result) => {
            let err = result.expect_err("ingest stopped without an error while writes failed");
            assert!(
                format!("{err:#}").contains("injected write failure"),
                "the error names the failed write: {err:#}"
            );
            // Restart on a healthy store: everything lands exactly once.
            let (stop_tx2, stop_rx2) = oneshot::channel::<()>();
            let storage = setup.storage();
            let rerun = tokio::spawn(async move {
                run_ingest(&config, storage, async {
                    let _ = stop_rx2.await;
                })
                .await
            });
            let ids = wait_landed(&plain, events.len(), Duration::from_secs(180)).await;
            let _ = stop_tx2.send(());
            let stats = rerun.await.expect("join").expect("healthy rerun");
            eprintln!("rerun: {stats:?}");
            check_exactly_once(&ids, &events);
        }
        None => {
            // Still running: it must recover by itself once the store is back.
            let ids = wait_landed(&plain, events.len(), Duration::from_secs(180)).await;
            let _ = stop_tx.send(());
            run.await.expect("join").expect("recovered run");
            check_exactly_once(&ids, &events);
        }
    }
    assert_committed_within_landed(&setup, &plain, "at the end").await;
}

fn check_exactly_once(ids: &[String], events: &[ctrflow_schemas::Event]) {
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "duplicates landed");
    let expected: HashSet<&String> = events.iter().map(|e| &e.event_id).collect();
    let missing: Vec<_> = expected.difference(&distinct).take(5).collect();
    let extra: Vec<_> = distinct.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "landed {} of {} events; missing e.g. {missing:?}, unexpected e.g. {extra:?}",
        distinct.len(),
        expected.len()
    );
}

/// The broker stops answering for 30 s in the middle of the stream (SIGSTOP on a private
/// broker): ingest keeps running through the outage, then lands the rest; every event exactly
/// once.
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_outage_of_30_seconds_loses_nothing() {
    let broker = ctrflow_test_support::PrivateBroker::start();
    let setup = Setup::on_brokers(broker.address.clone(), 2).await;
    let (events, mut messages) = generated(&setup, 10_000, 11);
    let second_half = messages.split_off(messages.len() / 2);
    setup.produce(messages).await;
    let storage = setup.storage();
    let mut child = setup.spawn_ingest();
    let first = wait_landed(&storage, events.len() / 2, Duration::from_secs(120)).await;
    assert_eq!(first.len(), events.len() / 2, "the first half landed");

    broker.signal("STOP");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        child.try_wait().expect("wait").is_none(),
        "ingest exited while the broker was unavailable"
    );
    broker.signal("CONT");

    setup.produce(second_half).await;
    let ids = wait_landed(&storage, events.len(), Duration::from_secs(240)).await;
    let status = terminate(&mut child);
    assert!(
        status.success(),
        "graceful shutdown after the outage: {status}"
    );
    check_exactly_once(&ids, &events);
    assert_committed_within_landed(&setup, &storage, "after the outage").await;
}

/// A "zombie": replica A is paused (SIGSTOP) with an epoch open, for longer than the session
/// timeout. The group hands its partitions to replica B, which lands from A's last landed
/// offsets on. When A wakes up (SIGCONT) it finishes its stale epoch over offsets B already
/// landed: it must be fenced (exit with an error naming the fence) instead of writing a second
/// manifest for them. Every event lands exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_paused_past_the_session_timeout_is_fenced() {
    let setup = Setup::new(4).await;
    let (events, mut first) = generated(&setup, 6_000, 11);
    let mut second = first.split_off(first.len() / 3);
    let last = second.split_off(second.len() / 2);
    let storage = setup.storage();
    let log_path = setup.store_path().with_extension("zombie.log");
    let log = std::fs::File::create(&log_path).expect("log file");

    setup.produce(first.clone()).await;
    let mut a = setup.spawn_ingest_logging(&[], log.into());
    let landed = wait_landed(&storage, first.len(), Duration::from_secs(120)).await;
    assert_eq!(landed.len(), first.len(), "A landed the first part");

    // A steady stream, so that A has an epoch with data open when it is paused.
    let producer = KafkaProducer::new(&setup.kafka).expect("producer");
    let stream = tokio::spawn(async move {
        producer
            .send_all(second, Some(1_000.0), |_| {})
            .await
            .expect("produce the second part")
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    signal(&a, "STOP");
    let mut b = setup.spawn_ingest();
    let sent = stream.await.expect("producer task");
    // B gets A's partitions once A's session (6 s) expires, and lands the rest of the stream.
    let expected = first.len() + sent as usize;
    let landed = wait_landed(&storage, expected, Duration::from_secs(180)).await;
    assert_eq!(landed.len(), expected, "B landed everything A left");

    signal(&a, "CONT");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = a.try_wait().expect("wait for A") {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ids = landed_event_ids(&storage).await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "the woken zombie landed duplicates"
    );
    let status = status.expect("the woken zombie kept running");
    let log = std::fs::read_to_string(&log_path).expect("A's log");
    assert!(!status.success(), "a fenced replica exits with an error");
    assert!(log.contains("fenced"), "A's log names the fence:\n{log}");

    setup.produce(last).await;
    let ids = wait_landed(&storage, events.len(), Duration::from_secs(180)).await;
    assert!(terminate(&mut b).success(), "B stops cleanly");
    check_exactly_once(&ids, &events);
}

fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal}");
}
