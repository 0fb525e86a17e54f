use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::time::Duration;

use ctrflow_schemas::Epoch;

use super::*;

/// Every produced payload appears exactly once among `rows`.
fn assert_exactly_once(rows: &[Row], produced: &[Vec<u8>]) {
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for r in rows {
        *counts.entry(&r.payload).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "{} payloads delivered more than once",
        dups.len()
    );
    let missing = produced
        .iter()
        .filter(|p| !counts.contains_key(p.as_slice()))
        .count();
    assert_eq!(missing, 0, "payloads never delivered");
    assert_eq!(rows.len(), produced.len());
    let keys: BTreeSet<_> = rows
        .iter()
        .map(|r| (&r.topic, r.partition, r.offset))
        .collect();
    assert_eq!(keys.len(), rows.len(), "(topic, partition, offset) unique");
}

fn some_commits(c: BTreeMap<(String, i32), Option<i64>>) -> BTreeMap<(String, i32), Option<i64>> {
    c.into_iter().filter(|(_, o)| o.is_some()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_message_once_and_commits_confirmed_epochs() {
    let mock = cluster(3);
    let brokers = mock.bootstrap_servers();
    let cfg = config(&brokers, "g-once");
    let mut produced = produce(&cfg, NATURAL, "a", 600).await;
    produced.extend(produce(&cfg, AD, "a", 400).await);
    let shared = Shared::default();
    let run = start(&cfg, "sink", Epoch(100), &shared);
    wait_for("all rows", 30, || shared.with(|l| l.seen) >= 1000).await;
    wait_for("all rows landed", 10, || {
        shared.with(|l| l.landed.len()) >= 1000
    })
    .await;
    let landed = shared.with(|l| l.landed.clone());
    let expected = expected_commits(&landed);
    assert_eq!(expected.len(), 6, "all 2x3 partitions used");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = some_commits(committed_async(&brokers, "g-once", 3).await);
        if c == expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "commits {c:?} != {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for("lag statistics of all partitions at zero", 10, || {
        let lag = run.stats.partition_lag();
        lag.len() == 6 && lag.iter().all(|l| l.lag == 0 && l.uncommitted == Some(0))
    })
    .await;
    run.handle.shutdown();
    run.handle.join().await.expect("graph");

    let (landed, barriers, max_batch) =
        shared.with(|l| (l.landed.clone(), l.barriers["sink"].clone(), l.max_batch));
    assert_exactly_once(&landed, &produced);
    assert!(max_batch <= cfg.max_batch_messages, "batch of {max_batch}");
    // Epochs numbered from the start epoch, one EpochOffsets per barrier, ranges cover the rows.
    let offsets = run.offsets.lock().expect("offsets").clone();
    let numbers: Vec<Epoch> = (0..barriers.len() as u64).map(|i| Epoch(100 + i)).collect();
    assert_eq!(barriers, numbers);
    assert_eq!(offsets.iter().map(|o| o.epoch).collect::<Vec<_>>(), numbers);
    let covered: usize = offsets
        .iter()
        .flat_map(|o| &o.ranges)
        .map(|r| (r.last_offset - r.first_offset + 1) as usize)
        .sum();
    assert_eq!(covered, 1000, "ranges are exact and disjoint");
    assert!(
        barriers.len() >= 2,
        "1000 rows at 500 per epoch: several epochs"
    );
    let s = &run.stats;
    assert_eq!(s.messages.load(Ordering::Relaxed), 1000);
    assert_eq!(s.epochs.load(Ordering::Relaxed), barriers.len() as u64);
    assert_eq!(
        s.confirmed_epochs.load(Ordering::Relaxed),
        barriers.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_only_after_the_coordinator_confirms() {
    let mock = cluster(3);
    let brokers = mock.bootstrap_servers();
    let cfg = config(&brokers, "g-confirm");
    let produced = produce(&cfg, NATURAL, "c", 200).await;
    let shared = Shared::default();
    shared.with(|l| l.hold = true);
    let run = start(&cfg, "sink", Epoch(0), &shared);
    wait_for("rows landed", 30, || shared.with(|l| l.landed.len()) >= 200).await;
    // Barriers went through, but nothing is confirmed: nothing may be committed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = some_commits(committed_async(&brokers, "g-confirm", 3).await);
    assert!(
        before.is_empty(),
        "committed before confirmation: {before:?}"
    );
    assert_eq!(run.stats.commits.load(Ordering::Relaxed), 0);
    shared.release().await;
    let expected = expected_commits(&shared.with(|l| l.landed.clone()));
    wait_for("commit after confirmation", 10, || {
        let c = some_commits(committed(&brokers, "g-confirm", 3));
        c == expected
    })
    .await;
    run.handle.shutdown();
    run.handle.join().await.expect("graph");
    assert_exactly_once(&shared.with(|l| l.landed.clone()), &produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_skips_offsets_already_landed() {
    let mock = cluster(1);
    let brokers = mock.bootstrap_servers();
    let cfg = config(&brokers, "g-resume");
    let natural = produce(&cfg, NATURAL, "r", 50).await;
    let ad = produce(&cfg, AD, "r", 30).await;
    let shared = Shared::default();
    // An earlier run landed natural 0..=19 and ad 0..=4, then crashed before committing.
    shared.with(|l| {
        l.offsets.insert((NATURAL.into(), 0), 19);
        l.offsets.insert((AD.into(), 0), 4);
    });
    let run = start(&cfg, "sink", Epoch(0), &shared);
    wait_for("remaining rows", 30, || {
        shared.with(|l| l.landed.len()) >= 30 + 25
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.handle.shutdown();
    run.handle.join().await.expect("graph");
    let landed = shared.with(|l| l.landed.clone());
    let mut expected: Vec<Vec<u8>> = natural[20..].to_vec();
    expected.extend_from_slice(&ad[5..]);
    assert_exactly_once(&landed, &expected);
    assert!(
        landed
            .iter()
            .all(|r| r.offset > if r.topic == NATURAL { 19 } else { 4 })
    );
    assert_eq!(
        some_commits(committed_async(&brokers, "g-resume", 1).await),
        expected_commits(&landed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_emits_a_final_barrier_and_commits() {
    let mock = cluster(2);
    let brokers = mock.bootstrap_servers();
    let cfg = long_epochs(config(&brokers, "g-stop"));
    let produced = produce(&cfg, AD, "s", 120).await;
    let shared = Shared::default();
    let run = start(&cfg, "sink", Epoch(0), &shared);
    wait_for("rows", 30, || shared.with(|l| l.seen) >= 120).await;
    assert!(
        shared.with(|l| l.barriers.is_empty()),
        "no barrier before shutdown"
    );
    assert!(some_commits(committed_async(&brokers, "g-stop", 2).await).is_empty());
    run.handle.shutdown();
    run.handle.join().await.expect("graph");
    let (landed, barriers, ended) =
        shared.with(|l| (l.landed.clone(), l.barriers.clone(), l.ended.clone()));
    assert_eq!(barriers["sink"], vec![Epoch(0)], "one final barrier");
    assert_eq!(ended, vec!["sink".to_string()]);
    assert_exactly_once(&landed, &produced);
    assert_eq!(
        some_commits(committed_async(&brokers, "g-stop", 2).await),
        expected_commits(&landed),
        "final epoch committed before run returned"
    );
}

/// Runs a draining source to its own end (it must stop without being told); returns its
/// barriers.
async fn drain_once(cfg: &KafkaConfig, shared: &Shared, start: Epoch) -> Vec<Epoch> {
    shared.with(|l| l.barriers.clear());
    let run = start_with(cfg, "sink", start, shared, true);
    tokio::time::timeout(Duration::from_secs(60), run.handle.join())
        .await
        .expect("a draining source stops by itself once caught up")
        .expect("graph");
    shared.with(|l| l.barriers.get("sink").cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_mode_lands_what_the_topics_hold_commits_and_stops() {
    let mock = cluster(2);
    let brokers = mock.bootstrap_servers();
    // Only the drain can end these epochs in time: no timer, no size limit.
    let cfg = long_epochs(config(&brokers, "g-drain"));
    // Partition 1 of the ad topic may stay empty: an empty partition must not hold it up.
    let mut produced = produce(&cfg, NATURAL, "d1", 150).await;
    produced.extend(produce(&cfg, AD, "d1", 90).await);
    let shared = Shared::default();

    let barriers = drain_once(&cfg, &shared, Epoch(0)).await;
    let landed = shared.with(|l| l.landed.clone());
    assert_exactly_once(&landed, &produced);
    assert_eq!(barriers, vec![Epoch(0)], "one epoch, closed by the drain");
    assert_eq!(
        some_commits(committed_async(&brokers, "g-drain", 2).await),
        expected_commits(&landed),
        "committed before it stopped"
    );

    // Nothing new: the next run stops at once, landing nothing.
    let barriers = drain_once(&cfg, &shared, Epoch(1)).await;
    assert!(
        barriers.is_empty(),
        "no epoch without messages: {barriers:?}"
    );
    assert_eq!(shared.with(|l| l.landed.len()), produced.len());

    // New messages: the next run lands exactly those.
    produced.extend(produce(&cfg, AD, "d2", 70).await);
    let barriers = drain_once(&cfg, &shared, Epoch(1)).await;
    assert_eq!(barriers, vec![Epoch(1)]);
    let landed = shared.with(|l| l.landed.clone());
    assert_exactly_once(&landed, &produced);
    assert_eq!(
        some_commits(committed_async(&brokers, "g-drain", 2).await),
        expected_commits(&landed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_finishes_the_epoch_before_handing_partitions_over() {
    let mock = cluster(3);
    let brokers = mock.bootstrap_servers();
    // Long epochs: at the rebalance, replica A holds an open epoch it must finish first.
    let cfg = long_epochs(config(&brokers, "g-rebalance"));
    let mut produced = produce(&cfg, NATURAL, "1", 300).await;
    produced.extend(produce(&cfg, AD, "1", 300).await);
    let shared = Shared::default();
    let a = start(&cfg, "a", Epoch(0), &shared);
    wait_for("A consumed the first half", 30, || {
        shared.with(|l| l.seen) >= 600
    })
    .await;
    assert!(
        shared.with(|l| l.landed.is_empty()),
        "A's epoch is still open"
    );
    let b = start(&cfg, "b", Epoch(1000), &shared);
    // A's revocation lands its open epoch and commits it.
    wait_for("A finished its epoch at the revocation", 30, || {
        shared.with(|l| l.landed.len()) >= 600
    })
    .await;
    wait_for("both replicas assigned", 30, || {
        b.stats.rebalances.load(Ordering::Relaxed) >= 1
            && a.stats.rebalances.load(Ordering::Relaxed) >= 3
    })
    .await;
    produced.extend(produce(&cfg, NATURAL, "2", 300).await);
    produced.extend(produce(&cfg, AD, "2", 300).await);
    wait_for("second half seen", 30, || shared.with(|l| l.seen) >= 1200).await;
    b.handle.shutdown();
    a.handle.shutdown();
    b.handle.join().await.expect("graph b");
    a.handle.join().await.expect("graph a");
    let (landed, barriers) = shared.with(|l| (l.landed.clone(), l.barriers.clone()));
    assert_exactly_once(&landed, &produced);
    assert_eq!(barriers["a"][0], Epoch(0));
    assert!(
        barriers.contains_key("b"),
        "B landed the partitions it got: {barriers:?}"
    );
    assert!(b.stats.messages.load(Ordering::Relaxed) > 0);
    assert_eq!(
        some_commits(committed_async(&brokers, "g-rebalance", 3).await),
        expected_commits(&landed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_are_also_cut_by_payload_bytes() {
    let mock = cluster(1);
    let brokers = mock.bootstrap_servers();
    // Neither time nor the message count ends these epochs (the drain ends the last one).
    let mut cfg = long_epochs(config(&brokers, "g-epoch-bytes"));
    cfg.epoch_max_bytes = 400;
    let produced = produce(&cfg, NATURAL, "b", 120).await;
    let longest = produced.iter().map(Vec::len).max().unwrap_or(0);
    let shared = Shared::default();
    let run = start_with(&cfg, "sink", Epoch(0), &shared, true);
    tokio::time::timeout(Duration::from_secs(60), run.handle.join())
        .await
        .expect("the drain ends")
        .expect("graph");
    let landed = shared.with(|l| l.landed.clone());
    assert_exactly_once(&landed, &produced);
    let epochs = run.offsets.lock().expect("offsets").clone();
    let bytes: Vec<usize> = epochs
        .iter()
        .map(|e| {
            landed
                .iter()
                .filter(|r| {
                    e.ranges.iter().any(|g| {
                        g.topic == r.topic
                            && g.partition == r.partition
                            && (g.first_offset..=g.last_offset).contains(&r.offset)
                    })
                })
                .map(|r| r.payload.len())
                .sum()
        })
        .collect();
    assert_eq!(
        bytes.iter().sum::<usize>(),
        produced.iter().map(Vec::len).sum::<usize>()
    );
    assert!(bytes.len() >= 4, "cut by bytes: {bytes:?}");
    let (last, full) = bytes.split_last().expect("epochs");
    for b in full {
        assert!(
            (400..400 + longest).contains(b),
            "an epoch ends with the message that reaches 400 bytes: {bytes:?}"
        );
    }
    assert!(*last < 400 + longest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_waiting_while_the_broker_is_down() {
    let mock = cluster(1);
    let brokers = mock.bootstrap_servers();
    let cfg = config(&brokers, "g-down");
    let mut produced = produce(&cfg, NATURAL, "d1", 40).await;
    let shared = Shared::default();
    let run = start(&cfg, "sink", Epoch(0), &shared);
    wait_for("first rows landed", 30, || {
        shared.with(|l| l.landed.len()) >= 40
    })
    .await;
    mock.broker_down(-1).expect("down");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        shared.with(|l| l.ended.is_empty()),
        "the source kept running"
    );
    mock.broker_up(-1).expect("up");
    produced.extend(produce(&cfg, NATURAL, "d2", 40).await);
    wait_for("rows after the outage", 60, || {
        shared.with(|l| l.landed.len()) >= 80
    })
    .await;
    run.handle.shutdown();
    run.handle.join().await.expect("graph");
    assert_exactly_once(&shared.with(|l| l.landed.clone()), &produced);
}

/// `max-batch-bytes` cuts batches before `max-batch-messages` does when payloads are large,
/// and every message still arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_also_cut_by_payload_bytes() {
    let mock = cluster(1);
    let brokers = mock.bootstrap_servers();
    let mut cfg = config(&brokers, "g-bytes");
    cfg.max_batch_bytes = 100;
    let produced = produce(&cfg, NATURAL, "bytes", 300).await;
    let shortest = produced.iter().map(Vec::len).min().expect("messages");
    let shared = Shared::default();
    let run = start(&cfg, "sink", Epoch(1), &shared);
    wait_for("all rows landed", 30, || {
        shared.with(|l| l.landed.len()) >= 300
    })
    .await;
    run.handle.shutdown();
    run.handle.join().await.expect("graph");
    let (landed, max_batch) = shared.with(|l| (l.landed.clone(), l.max_batch));
    assert_exactly_once(&landed, &produced);
    // A batch is emitted by the push that reaches 100 bytes.
    let bound = 100 / shortest + 1;
    assert!(
        max_batch <= bound && bound < cfg.max_batch_messages,
        "batch of {max_batch} rows, bound {bound}"
    );
}
