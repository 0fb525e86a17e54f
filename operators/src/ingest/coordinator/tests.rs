use super::*;
use ctrflow_schemas::decode_manifest;

fn date(s: &str) -> EventDate {
    s.parse().expect("date")
}

fn file(domain: Domain, d: &str, rows: u64, role: FileRole, n: u32) -> FileEntry {
    FileEntry {
        key: format!("landing/{domain}/date={d}/part-t-0-{n}.parquet"),
        role,
        domain,
        date: date(d),
        rows,
        bytes: 10,
    }
}

fn ack(sink: &str, epoch: u64, files: Vec<FileEntry>, max_time: i64) -> SinkAck {
    SinkAck {
        sink: sink.into(),
        epoch: Epoch(epoch),
        files,
        max_event_time_ms: BTreeMap::from([("t/0".to_string(), max_time)]),
    }
}

fn offsets(epoch: u64, first: i64, last: i64) -> EpochOffsets {
    EpochOffsets {
        epoch: Epoch(epoch),
        ranges: vec![OffsetRange {
            topic: "t".into(),
            partition: 0,
            first_offset: first,
            last_offset: last,
        }],
        assigned: vec![assigned("t", 0, false)],
    }
}

fn assigned(topic: &str, partition: i32, caught_up: bool) -> AssignedPartition {
    AssignedPartition {
        topic: topic.into(),
        partition,
        caught_up,
    }
}

/// After a restart librdkafka may deliver one partition far ahead of another: a day must not
/// close while an assigned partition with messages left has delivered nothing.
#[tokio::test]
async fn an_assigned_partition_that_delivered_nothing_holds_the_watermark() {
    let storage = memory();
    let config = CoordinatorConfig {
        allowed_lateness: Duration::from_secs(60),
        ..CoordinatorConfig::default()
    };
    let (coord, closed) = EpochCoordinator::open(storage.clone(), 2, "replica-a", &config)
        .await
        .expect("open");
    let (otx, atx, mut crx, task) = spawn(coord);
    let d1 = date("2024-01-01");
    let day2_file = |n| file(Domain::Natural, "2024-01-02", 10, FileRole::Landing, n);

    // Partition 0 is a day ahead; partition 1 is assigned, not caught up, silent.
    let mut o = offsets(1, 0, 9);
    o.assigned.push(assigned("t", 1, false));
    otx.send(o).await.expect("send");
    let day1_file = file(Domain::Natural, "2024-01-01", 10, FileRole::Landing, 0);
    atx.send(ack(
        "landing",
        1,
        vec![day1_file, day2_file(1)],
        d1.end_ms() + 3_600_000,
    ))
    .await
    .expect("send");
    atx.send(ack("dead-letter", 1, vec![], d1.start_ms()))
        .await
        .expect("send");
    assert_eq!(crx.recv().await, Some(Epoch(1)));
    assert!(
        closed.read().expect("lock").is_empty(),
        "partition 1 holds day 1 open"
    );

    // Partition 1 turns out idle (caught up, nothing to deliver): it no longer holds.
    let mut o = offsets(2, 10, 19);
    o.assigned.push(assigned("t", 1, true));
    otx.send(o).await.expect("send");
    atx.send(ack(
        "landing",
        2,
        vec![day2_file(2)],
        d1.end_ms() + 3_600_000,
    ))
    .await
    .expect("send");
    atx.send(ack("dead-letter", 2, vec![], d1.start_ms()))
        .await
        .expect("send");
    assert_eq!(crx.recv().await, Some(Epoch(2)));
    assert!(
        closed
            .read()
            .expect("lock")
            .contains(&(Domain::Natural, d1))
    );
    drop((otx, atx));
    task.await.expect("join").expect("run");
}

/// The coordinator's input channels (source offsets, sink acks), its confirmations, and its task.
type Running = (
    mpsc::Sender<EpochOffsets>,
    mpsc::Sender<SinkAck>,
    mpsc::Receiver<Epoch>,
    tokio::task::JoinHandle<Result<CoordinatorStats, OperatorError>>,
);

/// Runs `coord` on a task, wired to fresh channels.
fn spawn(coord: EpochCoordinator) -> Running {
    let (otx, orx) = mpsc::channel(8);
    let (atx, arx) = mpsc::channel(8);
    let (ctx, crx) = mpsc::channel(8);
    (otx, atx, crx, tokio::spawn(coord.run(orx, arx, ctx)))
}

fn memory() -> Storage {
    Storage::open(&format!(
        "memory://{}",
        ctrflow_test_support::unique_name("coord")
    ))
    .expect("store")
}

#[tokio::test]
async fn confirms_only_after_the_manifest_and_closes_days_by_watermark() {
    let storage = memory();
    let config = CoordinatorConfig {
        allowed_lateness: Duration::from_secs(60),
        ..CoordinatorConfig::default()
    };
    let (coord, closed) = EpochCoordinator::open(storage.clone(), 2, "replica-a", &config)
        .await
        .expect("open");
    let (otx, atx, mut crx, task) = spawn(coord);

    let d1 = date("2024-01-01");
    // Epoch 1: day 1 data; the watermark stays inside day 1.
    otx.send(offsets(1, 0, 9)).await.expect("send");
    atx.send(ack(
        "landing",
        1,
        vec![file(
            Domain::Natural,
            "2024-01-01",
            10,
            FileRole::Landing,
            1,
        )],
        d1.start_ms() + 1000,
    ))
    .await
    .expect("send");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), crx.recv())
            .await
            .is_err(),
        "no confirmation before every sink acknowledged"
    );
    assert!(
        storage
            .list("landing/_epochs/")
            .await
            .expect("list")
            .is_empty(),
        "no manifest yet"
    );
    atx.send(ack("dead-letter", 1, vec![], d1.start_ms()))
        .await
        .expect("send");
    assert_eq!(crx.recv().await, Some(Epoch(1)));
    let keys = storage.list("landing/_epochs/").await.expect("list");
    assert_eq!(keys.len(), 1, "manifest durable before the confirmation");
    let m: EpochManifest =
        decode_manifest(&keys[0].key, &storage.get(&keys[0].key).await.expect("get"))
            .expect("decode");
    assert_eq!(m.offsets[0].last_offset, 9);
    assert_eq!(m.writer, "replica-a");
    assert!(closed.read().expect("lock").is_empty());

    // Epoch 2: the partition's newest event is a day later: day 1 closes for both domains.
    otx.send(offsets(2, 10, 19)).await.expect("send");
    atx.send(ack(
        "landing",
        2,
        vec![file(
            Domain::Natural,
            "2024-01-02",
            10,
            FileRole::Landing,
            2,
        )],
        d1.end_ms() + 120_000,
    ))
    .await
    .expect("send");
    atx.send(ack("dead-letter", 2, vec![], 0))
        .await
        .expect("send");
    assert_eq!(crx.recv().await, Some(Epoch(2)));
    assert!(closed.read().expect("lock").contains(&(Domain::Ad, d1)));
    let success = KeyLayout.day_success(Domain::Natural, d1);
    let day: DayManifest =
        decode_manifest(&success, &storage.get(&success).await.expect("day")).expect("decode");
    assert_eq!(day.rows, 10);
    assert_eq!(day.files.len(), 1);
    let ad_day = KeyLayout.day_success(Domain::Ad, d1);
    assert!(
        storage.exists(&ad_day).await.expect("exists"),
        "an empty domain day is closed too"
    );

    drop(otx);
    drop(atx);
    let stats = task.await.expect("join").expect("run");
    assert_eq!(stats.epochs, 2);
    assert_eq!(stats.landed_rows, 20);
    assert_eq!(stats.closed_days.len(), 2);

    // A restarted coordinator (or another replica) sees the landed offsets and closed days.
    let landed = landed_offsets(&storage).await.expect("landed");
    assert_eq!(landed.get(&("t".to_string(), 0)), Some(&19));
    let (_, closed_again) = EpochCoordinator::open(storage.clone(), 2, "replica-b", &config)
        .await
        .expect("reopen");
    assert_eq!(closed_again.read().expect("lock").len(), 2);
}

#[tokio::test]
async fn replicas_claim_distinct_epoch_numbers() {
    let storage = memory();
    let config = CoordinatorConfig::default();
    let mut handles = Vec::new();
    for (partition, replica) in ["a", "b", "c"].into_iter().enumerate() {
        let storage = storage.clone();
        let config = config.clone();
        handles.push(tokio::spawn(async move {
            let (coord, _) = EpochCoordinator::open(storage, 1, replica, &config)
                .await
                .expect("open");
            let (otx, atx, mut crx, task) = spawn(coord);
            for e in 1..=4 {
                let offset = e as i64;
                let mut o = offsets(e, offset, offset);
                o.ranges[0].partition = partition as i32;
                otx.send(o).await.expect("send");
                atx.send(ack(replica, e, vec![], 0)).await.expect("send");
                assert_eq!(crx.recv().await, Some(Epoch(e)));
            }
            drop((otx, atx));
            task.await.expect("join").expect("run")
        }));
    }
    for h in handles {
        assert_eq!(h.await.expect("join").epochs, 4);
    }
    let manifests = storage.list("landing/_epochs/").await.expect("list");
    assert_eq!(manifests.len(), 12, "12 epochs, none overwritten");
}

/// A partition whose producers stopped (assigned here, caught up) stops holding the watermark
/// at its last event once it has been idle for `idle-timeout`; a partition of another replica,
/// or one with messages left, never does.
#[tokio::test]
async fn an_idle_partition_stops_holding_the_watermark_after_the_idle_timeout() {
    let open = |idle: Duration| async move {
        let config = CoordinatorConfig {
            allowed_lateness: Duration::from_secs(60),
            idle_timeout: idle,
            ..CoordinatorConfig::default()
        };
        let (c, _) = EpochCoordinator::open(memory(), 2, "replica-a", &config)
            .await
            .expect("open");
        c
    };
    let d1 = date("2024-03-01");
    let (old, new) = (d1.start_ms() + 1_000, d1.end_ms() + 7_200_000);
    let lateness = 60_000;
    let mut c = open(Duration::ZERO).await;
    c.partition_max.insert("t/0".into(), new);
    c.partition_max.insert("t/1".into(), old);
    // Both busy: the slow partition holds.
    c.set_assignment(&[assigned("t", 0, false), assigned("t", 1, false)]);
    assert_eq!(c.watermark_ms(), Some(old - lateness));
    // t/1 caught up (idle timeout 0): it no longer holds.
    c.set_assignment(&[assigned("t", 0, false), assigned("t", 1, true)]);
    assert_eq!(c.watermark_ms(), Some(new - lateness));
    // It has messages again: it holds again.
    c.set_assignment(&[assigned("t", 0, false), assigned("t", 1, false)]);
    assert_eq!(c.watermark_ms(), Some(old - lateness));
    // Assigned to another replica (seen only through manifests): we cannot know, it holds.
    c.set_assignment(&[assigned("t", 0, false)]);
    assert_eq!(c.watermark_ms(), Some(old - lateness));
    // Everything idle: nothing moves past the slowest partition.
    c.set_assignment(&[assigned("t", 0, true), assigned("t", 1, true)]);
    assert_eq!(c.watermark_ms(), Some(old - lateness));

    // With a long timeout a caught-up partition keeps holding until the timeout has passed.
    let mut c = open(Duration::from_secs(3600)).await;
    c.partition_max.insert("t/0".into(), new);
    c.partition_max.insert("t/1".into(), old);
    c.set_assignment(&[assigned("t", 0, false), assigned("t", 1, true)]);
    assert_eq!(c.watermark_ms(), Some(old - lateness));
}

/// Runs one epoch of `offsets` on a coordinator opened earlier (its view of the store may be
/// stale, as a paused replica's is): the confirmation, or the error it stopped with.
async fn finish_one_epoch(
    coord: EpochCoordinator,
    offsets: EpochOffsets,
) -> Result<Epoch, OperatorError> {
    let epoch = offsets.epoch;
    let (otx, atx, mut crx, task) = spawn(coord);
    otx.send(offsets).await.expect("send");
    atx.send(ack("landing", epoch.0, vec![], 0))
        .await
        .expect("send");
    drop((otx, atx));
    let result = task.await.expect("join");
    match crx.recv().await {
        Some(confirmed) => {
            result.expect("a confirmed epoch ends the run cleanly");
            Ok(confirmed)
        }
        None => Err(result.expect_err("no confirmation without an error")),
    }
}

/// A replica paused past the session timeout wakes up with an epoch over offsets the
/// partition's new owner has landed since: it is refused, whichever of the two comes first,
/// and exactly one manifest lists the offsets.
#[tokio::test]
async fn a_replica_whose_offsets_another_landed_is_fenced() {
    for zombie_first in [false, true] {
        let storage = memory();
        let config = CoordinatorConfig::default();
        let open = |writer: &'static str| {
            let storage = storage.clone();
            let config = config.clone();
            async move {
                EpochCoordinator::open(storage, 1, writer, &config)
                    .await
                    .expect("open")
                    .0
            }
        };
        // Both open on the same empty store: the zombie's view goes stale while it is paused.
        let zombie = open("zombie").await;
        let owner = open("owner").await;
        let (first, second) = if zombie_first {
            (
                finish_one_epoch(zombie, offsets(5, 0, 49)).await,
                finish_one_epoch(owner, offsets(1, 0, 99)).await,
            )
        } else {
            (
                finish_one_epoch(owner, offsets(1, 0, 99)).await,
                finish_one_epoch(zombie, offsets(5, 0, 49)).await,
            )
        };
        assert!(first.is_ok(), "the first writer lands: {first:?}");
        let err = second.expect_err("the second writer is fenced");
        let (winner, landed_through) = if zombie_first {
            ("zombie", 49)
        } else {
            ("owner", 99)
        };
        assert!(
            matches!(&err, OperatorError::Fenced { topic, partition: 0, first_offset: 0, writer, landed_through: l, epoch: 1 }
                if topic == "t" && writer == winner && *l == landed_through),
            "{err}"
        );
        let manifests = storage.list("landing/_epochs/").await.expect("list");
        assert_eq!(
            manifests.len(),
            1,
            "only the first writer's manifest exists"
        );
        let landed = landed_offsets(&storage).await.expect("landed");
        assert_eq!(landed.get(&("t".to_string(), 0)), Some(&landed_through));

        // The loser restarts with a fresh view and resumes after the landed offsets.
        let restarted = open("restarted").await;
        let resumed = finish_one_epoch(restarted, offsets(1, landed_through + 1, 120)).await;
        assert_eq!(resumed.expect("resumes after the landed offsets"), Epoch(1));
        assert_eq!(
            landed_offsets(&storage)
                .await
                .expect("landed")
                .get(&("t".to_string(), 0)),
            Some(&120)
        );
    }
}

/// Every `checkpoint-every` epochs the folded state is written; a replica opening cold (and
/// `landed_offsets`) reads the newest checkpoint plus the manifests after it, and gets the same
/// state as from every manifest: shown by deleting the manifests the checkpoint covers.
#[tokio::test]
async fn a_cold_reader_starts_from_the_newest_checkpoint() {
    let storage = memory();
    let config = CoordinatorConfig {
        allowed_lateness: Duration::from_secs(60),
        checkpoint_every: 3,
        ..CoordinatorConfig::default()
    };
    let (coord, closed) = EpochCoordinator::open(storage.clone(), 2, "replica-a", &config)
        .await
        .expect("open");
    let (otx, atx, mut crx, task) = spawn(coord);
    let (d1, d2) = (date("2024-01-01"), date("2024-01-02"));
    // Epochs 1-4 land day 1, epochs 5-7 day 2 (which closes day 1 at epoch 5).
    for e in 1..=7u64 {
        let (day, d) = if e <= 4 {
            ("2024-01-01", d1)
        } else {
            ("2024-01-02", d2)
        };
        let first = (e as i64 - 1) * 10;
        otx.send(offsets(e, first, first + 9)).await.expect("send");
        let f = file(Domain::Natural, day, 10, FileRole::Landing, e as u32);
        atx.send(ack("landing", e, vec![f], d.start_ms() + 3_600_000))
            .await
            .expect("send");
        atx.send(ack("dead-letter", e, vec![], d.start_ms()))
            .await
            .expect("send");
        assert_eq!(crx.recv().await, Some(Epoch(e)));
    }
    drop((otx, atx));
    let stats = task.await.expect("join").expect("run");
    assert_eq!(stats.checkpoints, 2);
    assert!(
        closed
            .read()
            .expect("lock")
            .contains(&(Domain::Natural, d1))
    );
    let checkpoints: Vec<String> = storage
        .list(KeyLayout.epoch_checkpoints_dir())
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        checkpoints,
        vec![
            KeyLayout.epoch_checkpoint(Epoch(3)),
            KeyLayout.epoch_checkpoint(Epoch(6))
        ]
    );

    let state = |c: &EpochCoordinator| {
        let mut files: Vec<String> = c
            .day_files
            .values()
            .flatten()
            .map(|f| f.key.clone())
            .collect();
        files.sort();
        let landed = c
            .landed
            .get(&("t".to_string(), 0))
            .map(|l| (l.last_offset, l.epoch, l.writer.clone()));
        (c.next_epoch, landed, c.partition_max.clone(), files)
    };
    let (full, _) = EpochCoordinator::open(storage.clone(), 2, "replica-b", &config)
        .await
        .expect("open");
    let expected = state(&full);
    assert_eq!(expected.0, 8);
    assert_eq!(expected.1, Some((69, 7, "replica-a".to_string())));
    // Day 1 is closed (its files are in its _SUCCESS); day 2's three files are open.
    assert_eq!(expected.3.len(), 3, "{:?}", expected.3);

    // Remove every manifest the newest checkpoint covers: a cold reader does not need them.
    for e in 1..=6 {
        storage
            .delete(&KeyLayout.epoch_manifest(Epoch(e)))
            .await
            .expect("delete");
    }
    let (cold, _) = EpochCoordinator::open(storage.clone(), 2, "replica-c", &config)
        .await
        .expect("open");
    assert_eq!(state(&cold), expected);
    let landed = landed_offsets(&storage).await.expect("landed");
    assert_eq!(landed.get(&("t".to_string(), 0)), Some(&69));
    // The next epoch a cold replica writes is numbered after the newest manifest.
    assert_eq!(cold.next_epoch, 8);
}
