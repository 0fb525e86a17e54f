//! Crash recovery of the daily job: a crash at any object-store write and kill -9 of the
//! process, each followed by a rerun that must publish what an uninterrupted run does; `gc`
//! after such crashes removes only unlisted files.

use super::*;

/// The published state minus timestamps: versions, their files (content-addressed), parents,
/// windows, metrics, verdicts, and the LATEST versions.
///
/// Checkpoint files are compared by name: burn numbers parameters per process, so the bytes of
/// a checkpoint trained twice differ in those ids; the weights are compared through the
/// metrics instead (bit-equal predictions on the evaluation day). Embedding snapshots are
/// pure data and compared by content hash.
async fn published_result(storage: &Storage) -> (Vec<String>, BTreeMap<ModelKind, ModelVersion>) {
    let published = Published::load(storage, storage).await.expect("load");
    let models = published
        .manifests
        .values()
        .map(|m| {
            let files: Vec<String> = m
                .files
                .iter()
                .map(|f| match f.strip_prefix("models/") {
                    Some(rest) => {
                        let parts: Vec<&str> = rest.split('/').collect();
                        format!(
                            "models/{}/{}/*/{}",
                            parts[0],
                            parts[1],
                            parts[parts.len() - 1]
                        )
                    }
                    None => f.clone(),
                })
                .collect();
            format!(
                "{} {} {:?} {:?} {:?} {:?} {:?}",
                m.model, m.version, files, m.parents, m.data_window, m.metrics, m.gate
            )
        })
        .collect();
    let latest = published
        .latest
        .iter()
        .map(|(k, l)| (*k, l.pointer.version.clone()))
        .collect();
    (models, latest)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_at_any_write_then_a_rerun_publishes_what_an_uninterrupted_run_does() {
    let config = config();
    let (from, to) = (date("2024-03-02"), date("2024-03-04"));
    let (_ref_dir, reference) = archive(4).await;
    backfill(
        &Stores::single(&reference),
        &config,
        from,
        to,
        DailyOptions::default(),
        |_| {},
    )
    .await
    .expect("reference backfill");
    let expected = published_result(&reference).await;

    // Stop the job at several points: inside the first publish, between artifacts and
    // manifests, and late in the range.
    for cut in [1u64, 6, 13, 22, 31] {
        let (_dir, plain) = archive(4).await;
        let failing = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicU64::new(0));
        let layer = {
            let (failing, failed) = (failing.clone(), failed.clone());
            move |inner: Arc<dyn ObjectStore>| -> Arc<dyn ObjectStore> {
                Arc::new(FailingWrites::new(inner, failing, failed).arm_after("", cut))
            }
        };
        let faulty = plain.clone().with_layer(layer);
        let crashed = backfill(
            &Stores::single(&faulty),
            &config,
            from,
            to,
            DailyOptions::default(),
            |_| {},
        )
        .await;
        assert!(
            crashed.is_err(),
            "cut {cut}: the injected failure must stop the job"
        );
        assert!(failed.load(Ordering::SeqCst) > 0);
        assert_consistent(&plain, &format!("after a crash at write {cut}")).await;

        // gc removes what the crash left and nothing a manifest lists.
        let before = manifests(&plain).await;
        let gc = ctrflow_pipeline::gc::collect_garbage(&plain, std::time::Duration::ZERO, false)
            .await
            .expect("gc");
        assert_eq!(
            manifests(&plain).await,
            before,
            "cut {cut}: gc changed a manifest"
        );
        assert_consistent(&plain, &format!("after gc of cut {cut}")).await;
        for key in &gc.orphans {
            assert!(
                !plain.exists(key).await.expect("exists"),
                "{key} still exists"
            );
        }
        let generated = Published::load(&plain, &plain).await.expect("load").closed;
        assert_eq!(
            generated[&ctrflow_schemas::Domain::Ad].len(),
            4,
            "gc removed landing data"
        );

        backfill(
            &Stores::single(&plain),
            &config,
            from,
            to,
            DailyOptions::default(),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("cut {cut}: rerun failed: {e}"));
        assert_eq!(published_result(&plain).await, expected, "cut {cut}");
        assert_consistent(&plain, &format!("after the rerun of cut {cut}")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_backfill_then_a_rerun_publishes_what_an_uninterrupted_run_does() {
    let config = config();
    let (from, to) = (date("2024-03-02"), date("2024-03-04"));
    let (_ref_dir, reference) = archive(4).await;
    backfill(
        &Stores::single(&reference),
        &config,
        from,
        to,
        DailyOptions::default(),
        |_| {},
    )
    .await
    .expect("reference backfill");
    let expected = published_result(&reference).await;

    let (dir, storage) = archive(4).await;
    let backfill_cli = |store: &std::path::Path| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_ctrflow-under-test"));
        c.args(["-q", "--config"])
            .arg(config_file(store))
            .args(["backfill", "--store"])
            .arg(store)
            .args(["--from", "2024-03-02", "--to", "2024-03-04"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    // The kills land at fractions of an uninterrupted run of the same command on a copy of the
    // data (inside training, publishing, and between dates), so they fall inside the run on a
    // fast machine and a slow one alike.
    let (timing_dir, _timing) = archive(4).await;
    let started = std::time::Instant::now();
    let status = backfill_cli(timing_dir.path())
        .status()
        .await
        .expect("timing run");
    assert!(status.success(), "the uninterrupted run failed: {status}");
    let whole = started.elapsed();
    let mut killed = 0;
    for fraction in [0.1, 0.3, 0.55, 0.8] {
        let delay = whole.mul_f64(fraction);
        let mut child = backfill_cli(dir.path()).spawn().expect("spawn backfill");
        tokio::time::sleep(delay).await;
        if child.try_wait().expect("poll").is_none() {
            child.kill().await.expect("kill -9");
            killed += 1;
        }
        assert_consistent(
            &storage,
            &format!("after kill -9 at {delay:?} of {whole:?}"),
        )
        .await;
    }
    assert!(
        killed > 0,
        "the backfill finished before any kill: nothing was tested"
    );
    let status = backfill_cli(dir.path()).status().await.expect("rerun");
    assert!(status.success(), "the rerun after kill -9 failed: {status}");
    assert_eq!(published_result(&storage).await, expected);

    // After the kills some artifact files may be orphans; gc finds exactly the files no
    // manifest lists, and running it twice finds nothing more.
    let gc = ctrflow_pipeline::gc::collect_garbage(&storage, std::time::Duration::ZERO, false)
        .await
        .expect("gc");
    assert!(
        gc.orphans
            .iter()
            .all(|k| k.starts_with("models/") || k.starts_with("embeddings/")),
        "{:?}",
        gc.orphans
    );
    assert_consistent(&storage, "after gc").await;
    assert_eq!(published_result(&storage).await, expected);
    let again = ctrflow_pipeline::gc::collect_garbage(&storage, std::time::Duration::ZERO, false)
        .await
        .expect("gc");
    assert!(again.orphans.is_empty(), "{:?}", again.orphans);
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_only_old_unlisted_files() {
    let (_dir, storage) = archive(2).await;
    let orphan = "landing/ad/date=2024-03-01/part-crashed-00000.parquet";
    storage
        .put(orphan, bytes::Bytes::from_static(b"not listed anywhere"))
        .await
        .expect("put orphan");
    let listed_before: Vec<String> = storage
        .list("landing/")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k != orphan)
        .collect();
    // Younger than the grace period: left alone.
    let young = ctrflow_pipeline::gc::collect_garbage(
        &storage,
        std::time::Duration::from_secs(3600),
        false,
    )
    .await
    .expect("gc");
    assert!(young.orphans.is_empty());
    assert_eq!(young.too_young, 1);
    // A dry run lists it and removes nothing.
    let dry = ctrflow_pipeline::gc::collect_garbage(&storage, std::time::Duration::ZERO, true)
        .await
        .expect("gc");
    assert_eq!(dry.orphans, vec![orphan.to_string()]);
    assert!(storage.exists(orphan).await.expect("exists"));
    // For real: the orphan goes, every listed file and manifest stays.
    let done = ctrflow_pipeline::gc::collect_garbage(&storage, std::time::Duration::ZERO, false)
        .await
        .expect("gc");
    assert_eq!(done.orphans, vec![orphan.to_string()]);
    assert!(!storage.exists(orphan).await.expect("exists"));
    let listed_after: Vec<String> = storage
        .list("landing/")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed_after, listed_before);
}
