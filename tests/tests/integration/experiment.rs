//! `ctrflow experiment ecdctr` end to end on a small generated archive: the test split is the
//! last 20% of ad events by time, every test event is scored exactly once by a model trained
//! before its day, the variants switch exactly their components, seeds are applied, and a
//! repeated command continues instead of retraining.

use std::collections::BTreeSet;
use std::path::Path;

use ctrflow_pipeline::daily::state::Published;
use ctrflow_pipeline::experiment::{ExperimentResults, TestSplit, protocol};
use ctrflow_schemas::{DayManifest, Domain, KeyLayout, ModelKind, decode_manifest};
use ctrflow_storage::Storage;

use crate::daily::CONFIG_TOML;

/// The daily tests' fast trainers and compressed schedule, plus a small generator.
fn experiment_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("experiment.toml");
    let text = format!(
        "[generator]\nseed = 11\nstart-date = \"2024-05-01\"\ndays = 6\nusers = 300\n\
         items = 600\nads = 60\nevents-per-day = 2500\nmax-seq-len = 60\n{CONFIG_TOML}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn run_cli(config: &Path, out: &Path) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ctrflow-under-test"))
        .args(["-q", "--config"])
        .arg(config)
        .args([
            "experiment",
            "ecdctr",
            "--generated",
            "--variants",
            "ad-only,full",
            "--seeds",
            "1,2",
            "--out",
        ])
        .arg(out)
        .output()
        .expect("run ctrflow experiment");
    assert!(
        output.status.success(),
        "experiment failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every ad event's time, read straight from the Parquet files the day manifests list.
async fn ad_event_times(archive: &Storage) -> Vec<i64> {
    let mut times = Vec::new();
    for obj in archive
        .list(&KeyLayout.landing_table(Domain::Ad))
        .await
        .expect("list")
    {
        if !obj.key.ends_with("/_SUCCESS") {
            continue;
        }
        let bytes = archive.get(&obj.key).await.expect("manifest");
        let day: DayManifest = decode_manifest(&obj.key, &bytes).expect("decode");
        for file in &day.files {
            for batch in archive.read_parquet(&file.key).await.expect("read") {
                for event in ctrflow_schemas::events_from_batch(&batch).expect("events") {
                    times.push(event.event_time.0);
                }
            }
        }
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecdctr_experiment_scores_every_test_event_once_with_models_from_before_its_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = experiment_config(dir.path());
    let out = dir.path().join("exp");
    let stdout = run_cli(&config, &out);
    assert!(
        stdout.contains("| A-CTR, ad data only (`ad-only`) | 2 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| full E-CDCTR (TPM + CPM) (`full`) | 2 |"),
        "{stdout}"
    );

    let results: ExperimentResults =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("parse results");
    assert!(out.join("results.md").exists());

    // The test split, recomputed independently from the archive's files: the last 20% of ad
    // events by time.
    let archive = Storage::open(&out.join("archive").display().to_string()).expect("archive");
    let mut times = ad_event_times(&archive).await;
    times.sort_unstable();
    let cut = times[(times.len() as f64 * 0.8).floor() as usize];
    let test_events = times.iter().filter(|&&t| t >= cut).count() as u64;
    assert!(test_events * 5 >= times.len() as u64);
    assert_eq!(results.split.ad_events, times.len() as u64);
    assert_eq!(results.split.cut_ms, cut);
    assert_eq!(results.split.test_events(), test_events);

    assert_eq!(results.runs.len(), 4);
    for run in &results.runs {
        // Every test event scored exactly once (the pooling refuses anything else).
        assert_eq!(
            run.pooled.events, test_events,
            "{} seed {}",
            run.variant, run.seed
        );
        assert!((0.0..=1.0).contains(&run.pooled.auc));
        // The two halves split the test period at a test day and add up to it.
        let h = &run.pooled.halves;
        assert_eq!(h.early_events + h.late_events, test_events);
        assert!(results.split.per_day.contains_key(&h.split_day));
        let before: u64 = results
            .split
            .per_day
            .range(..h.split_day)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(before, h.early_events);
        assert_eq!(
            (h.split_day, before),
            results.split.halfway().expect("halfway")
        );
        let models = Storage::open(&run.dir.display().to_string()).expect("run store");
        let published = Published::load(&models, &archive).await.expect("load");
        let kinds: BTreeSet<ModelKind> = published.manifests.keys().map(|(k, _)| *k).collect();
        match run.variant.name() {
            "ad-only" => {
                assert_eq!(kinds, BTreeSet::from([ModelKind::Actr]), "no TPM, no CPM");
                for m in published.versions(ModelKind::Actr) {
                    assert!(m.parents.cpm.is_none() && m.parents.tpm.is_empty());
                }
            }
            "full" => {
                assert_eq!(kinds.len(), 3, "TPM, CPM and A-CTR all published");
                assert!(
                    published
                        .versions(ModelKind::Actr)
                        .any(|m| m.parents.cpm.is_some() && !m.parents.tpm.is_empty()),
                    "some A-CTR started from a CPM with TPM snapshots"
                );
            }
            other => panic!("unexpected variant {other}"),
        }
        // Finished runs keep checkpoint files only for each model's live version.
        for ((kind, version), manifest) in &published.manifests {
            let live = published.live(*kind).is_some_and(|l| &l.version == version);
            for key in manifest.files.iter().filter(|k| k.starts_with("models/")) {
                assert_eq!(
                    models.exists(key).await.expect("exists"),
                    live,
                    "{kind} {version}: {key}"
                );
            }
        }
        // Each test day was scored by the version of that day, trained on earlier days only.
        for day in results.split.per_day.keys() {
            let m = published
                .manifest(
                    ModelKind::Actr,
                    &ctrflow_schemas::ModelVersion::for_date(*day),
                )
                .expect("a version per test day");
            assert!(m.data_window.to < *day);
        }
    }
    // Seeds are applied: the two seeds of a variant give different predictions.
    let auc = |variant: &str, seed: u64| {
        results
            .runs
            .iter()
            .find(|r| r.variant.name() == variant && r.seed == seed)
            .map(|r| r.pooled.logloss)
            .expect("run")
    };
    assert_ne!(auc("full", 1), auc("full", 2));
    let summary = &results.summaries[1];
    assert_eq!(summary.seeds, 2);
    assert!(summary.auc.std > 0.0);

    // A repeated command continues: nothing is retrained, the metrics are identical.
    let manifests_before = std::fs::read_dir(results.runs[0].dir.join("models/actr"))
        .expect("versions")
        .count();
    run_cli(&config, &out);
    let again: ExperimentResults =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("parse results");
    for (a, b) in results.runs.iter().zip(&again.runs) {
        assert_eq!(a.pooled, b.pooled);
        assert_eq!(a.rows_trained, b.rows_trained);
    }
    assert_eq!(
        std::fs::read_dir(results.runs[0].dir.join("models/actr"))
            .expect("versions")
            .count(),
        manifests_before
    );

    // A run with a test day's predictions missing is refused, not pooled over fewer events.
    let first_test_day = *results.split.per_day.keys().next().expect("test day");
    let models = Storage::open(&results.runs[0].dir.display().to_string()).expect("run store");
    let key = KeyLayout.report_predictions(first_test_day, ModelKind::Actr);
    models.delete(&key).await.expect("delete predictions");
    let split: TestSplit = results.split.clone();
    assert!(protocol::pool(&models, &archive, &split).await.is_err());

    // Another source in the same directory is refused.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&config)
            .expect("config")
            .replace("seed = 11", "seed = 12"),
    )
    .expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ctrflow-under-test"))
        .args(["-q", "--config"])
        .arg(&other)
        .args([
            "experiment",
            "ecdctr",
            "--generated",
            "--seeds",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("other settings"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
