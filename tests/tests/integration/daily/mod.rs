//! The daily job and backfill end to end on generated Parquet archives: the tri-level
//! schedule's lineage, idempotent reruns, publish atomicity and kill-and-rerun equivalence
//! under injected object-store failures, the gate keeping the old model, `models` commands,
//! and `ctrflow demo` on a reduced size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ctrflow_operators::generate::{GeneratorConfig, generate_archive};
use ctrflow_pipeline::config::CtrflowConfig;
use ctrflow_pipeline::daily::state::Published;
use ctrflow_pipeline::daily::{DailyOptions, Stores, backfill};
use ctrflow_pipeline::demo::demo_schedule;
use ctrflow_schemas::{
    EmbeddingManifest, EventDate, GateVerdict, KeyLayout, LatestPointer, ModelKind, ModelVersion,
    decode_manifest,
};
use ctrflow_storage::Storage;
use object_store::ObjectStore;

use crate::faults::FailingWrites;

mod demo;
mod historical;
mod plugin;
mod recovery;
mod srp;

fn date(s: &str) -> EventDate {
    s.parse().expect("date")
}

fn v(s: &str) -> ModelVersion {
    ModelVersion::for_date(date(s))
}

/// A small generated archive of `days` days from 2024-03-01 in a fresh directory.
async fn archive(days: u32) -> (tempfile::TempDir, Storage) {
    archive_of(days, 3_000).await
}

/// As [`archive`], with `events_per_day` events per day.
async fn archive_of(days: u32, events_per_day: u64) -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(&dir.path().display().to_string()).expect("store");
    let cfg = GeneratorConfig {
        seed: 5,
        start_date: date("2024-03-01"),
        days,
        users: 300,
        items: 600,
        ads: 60,
        events_per_day,
        max_seq_len: 60,
        ..GeneratorConfig::default()
    };
    generate_archive(&storage, &cfg, |_| {})
        .await
        .expect("generate");
    (dir, storage)
}

/// The detail text of every A-CTR run in `reports`, in date order.
fn actr_run_details(reports: &[ctrflow_pipeline::daily::DailyReport]) -> Vec<&str> {
    reports
        .iter()
        .flat_map(|r| &r.jobs)
        .filter(|j| j.model == ModelKind::Actr && j.action == "run")
        .map(|j| j.detail.as_str())
        .collect()
}

/// [`CONFIG_TOML`] changed by `edit`, written to `dir` as `name` and loaded.
fn config_variant(
    dir: &std::path::Path,
    name: &str,
    edit: impl FnOnce(&str) -> String,
) -> CtrflowConfig {
    let path = dir.join(name);
    std::fs::write(&path, edit(CONFIG_TOML)).expect("write config");
    CtrflowConfig::load(Some(&path), Vec::new()).expect("valid config")
}

/// `backfill` of `storage` (landing and models in one store) from `from` to `to`, default
/// options; panics naming the range if it fails.
async fn backfill_range(
    storage: &Storage,
    config: &CtrflowConfig,
    from: &str,
    to: &str,
) -> Vec<ctrflow_pipeline::daily::DailyReport> {
    backfill(
        &Stores::single(storage),
        config,
        date(from),
        date(to),
        DailyOptions::default(),
        |_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("backfill {from}..={to}: {e}"))
}

/// A config file that is invalid must name `field` in its error.
fn assert_config_error_names(toml: &str, field: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, toml).expect("write");
    let err = CtrflowConfig::load(Some(&path), Vec::new()).expect_err("invalid");
    assert!(err.to_string().contains(field), "{field}: {err}");
}

/// The demo schedule, small fast trainers, a gate that accepts anything not much worse: as a
/// config file, so the CLI and in-process runs use exactly the same settings.
pub(crate) const CONFIG_TOML: &str = r#"
[daily.schedule]
tpm = { horizon-days = 30, cadence-days = 4 }
cpm = { horizon-days = 7, cadence-days = 2 }
actr = { horizon-days = 1, cadence-days = 1 }
tpm-snapshots = 2

[daily.network]
mlp-hidden = [32, 16]
din-hidden = [16]
eta-top-k = 8

[daily.gate]
max-auc-drop = 1.0
max-gauc-drop = 1.0
min-eval-rows = 1

[daily.tpm.train]
batch-size = 256
shuffle-rows = 2048
features = { long-len = 60, short-len = 20 }

[daily.cpm.train]
batch-size = 256
shuffle-rows = 2048
features = { long-len = 60, short-len = 20 }

[daily.actr.train]
batch-size = 256
shuffle-rows = 2048
features = { long-len = 60, short-len = 20 }
"#;

/// [`CONFIG_TOML`] written to `dir`, and its path.
fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("ctrflow.toml");
    std::fs::write(&path, CONFIG_TOML).expect("write config");
    path
}

fn config() -> CtrflowConfig {
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        CtrflowConfig::load(Some(&config_file(dir.path())), Vec::new()).expect("valid config");
    assert_eq!(config.daily.schedule, demo_schedule());
    config
}

/// Every manifest object's bytes, by key (what a reader can see as published).
async fn manifests(storage: &Storage) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for prefix in ["models/", "embeddings/"] {
        for obj in storage.list(prefix).await.expect("list") {
            if obj.key.ends_with("/manifest.json") || obj.key.ends_with("/LATEST") {
                out.insert(
                    obj.key.clone(),
                    storage.get(&obj.key).await.expect("get").to_vec(),
                );
            }
        }
    }
    out
}

/// Invariants a reader relies on at any moment: every file a manifest lists exists, every
/// LATEST points to a published, non-rejected manifest.
async fn assert_consistent(storage: &Storage, when: &str) {
    let published = Published::load(storage, storage).await.expect("load");
    for ((kind, version), m) in &published.manifests {
        for key in &m.files {
            assert!(
                storage.exists(key).await.expect("exists"),
                "{when}: {kind} {version} lists {key}, which does not exist"
            );
        }
    }
    for (kind, latest) in &published.latest {
        let m = published
            .manifest(*kind, &latest.pointer.version)
            .unwrap_or_else(|| panic!("{when}: {kind} LATEST points to an unpublished version"));
        assert!(
            !matches!(m.gate, GateVerdict::Rejected { .. }),
            "{when}: LATEST of {kind} is rejected"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_follows_the_tri_level_schedule_and_reruns_are_no_ops() {
    let (_dir, storage) = archive(6).await;
    let config = config();
    let reports = backfill_range(&storage, &config, "2024-03-02", "2024-03-06").await;
    assert_eq!(reports.len(), 5);
    let published = Published::load(&storage, &storage).await.expect("load");
    let versions = |kind| {
        published
            .versions(kind)
            .map(|m| m.version.to_string())
            .collect::<Vec<_>>()
    };
    // TPM every 4 days, CPM every 2, A-CTR daily.
    assert_eq!(versions(ModelKind::Tpm), ["d20240302", "d20240306"]);
    assert_eq!(
        versions(ModelKind::Cpm),
        ["d20240302", "d20240304", "d20240306"]
    );
    assert_eq!(versions(ModelKind::Actr).len(), 5);
    let m = |kind, s: &str| published.manifest(kind, &v(s)).expect("manifest").clone();

    // Asynchronous: the first A-CTR does not wait for the CPM trained the same day ...
    let actr2 = m(ModelKind::Actr, "2024-03-02");
    assert_eq!(actr2.parents.cpm, None);
    assert_eq!(actr2.parents.previous, None);
    // ... the next one starts from it (batch norm reset), with the TPM snapshot as feature ...
    let actr3 = m(ModelKind::Actr, "2024-03-03");
    assert_eq!(actr3.parents.cpm, Some(v("2024-03-02")));
    assert_eq!(actr3.parents.previous, None);
    assert_eq!(actr3.parents.tpm, vec![v("2024-03-02")]);
    // ... continues incrementally while no newer CPM is published ...
    let actr4 = m(ModelKind::Actr, "2024-03-04");
    assert_eq!(actr4.parents.previous, Some(v("2024-03-03")));
    assert_eq!(actr4.parents.cpm, Some(v("2024-03-02")));
    assert_eq!(
        (actr4.data_window.from, actr4.data_window.to),
        (date("2024-03-03"), date("2024-03-03"))
    );
    // ... and re-initialises from the newer CPM once it is published.
    let actr5 = m(ModelKind::Actr, "2024-03-05");
    assert_eq!(actr5.parents.cpm, Some(v("2024-03-04")));
    assert_eq!(actr5.parents.previous, None);
    // TPM continues incrementally over the days after its previous window.
    let tpm6 = m(ModelKind::Tpm, "2024-03-06");
    assert_eq!(tpm6.parents.previous, Some(v("2024-03-02")));
    assert_eq!(
        (tpm6.data_window.from, tpm6.data_window.to),
        (date("2024-03-02"), date("2024-03-05"))
    );
    // The CPM of day 6 uses the snapshot published before day 6 only.
    assert_eq!(
        m(ModelKind::Cpm, "2024-03-06").parents.tpm,
        vec![v("2024-03-02")]
    );

    // Every model was evaluated on its date, trained on rows, and LATEST is the newest.
    for mf in published.manifests.values() {
        let metrics = mf
            .metrics
            .as_ref()
            .unwrap_or_else(|| panic!("{} {} has no metrics", mf.model, mf.version));
        assert!(
            metrics.auc > 0.0 && metrics.auc < 1.0 && metrics.samples > 0,
            "{metrics:?}"
        );
        assert!(mf.data_window.rows.values().sum::<u64>() > 0);
        assert_eq!(mf.schema_hash.len(), 64);
    }
    for (kind, newest) in [
        (ModelKind::Tpm, "2024-03-06"),
        (ModelKind::Cpm, "2024-03-06"),
        (ModelKind::Actr, "2024-03-06"),
    ] {
        assert_eq!(published.latest[&kind].pointer.version, v(newest), "{kind}");
    }

    // The snapshot tables are Parquet with the documented columns and the manifest's counts.
    let key = KeyLayout.embeddings_manifest(&v("2024-03-06"));
    let snapshot: EmbeddingManifest =
        decode_manifest(&key, &storage.get(&key).await.expect("get")).expect("manifest");
    for (file, rows) in [&snapshot.users, &snapshot.items] {
        let batches = storage.read_parquet(file).await.expect("read snapshot");
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n as u64, *rows);
        assert!(n > 0);
        let names: Vec<String> = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "vector",
                "frequency",
                "last_seen",
                "version",
                "watermark"
            ]
        );
    }
    assert_consistent(&storage, "after backfill").await;
    // Each date has its report: metrics.json and an HTML page with the AUC history chart.
    let html = storage
        .get(&KeyLayout.report(date("2024-03-06")))
        .await
        .expect("report.html");
    let html = String::from_utf8(html.to_vec()).expect("utf-8");
    assert!(
        html.contains("<svg") && html.contains("actr d20240306 AUC"),
        "{html}"
    );
    assert!(
        storage
            .exists(&KeyLayout.report_metrics(date("2024-03-02")))
            .await
            .expect("exists")
    );

    // A rerun publishes nothing new and changes nothing.
    let before = manifests(&storage).await;
    let again = backfill_range(&storage, &config, "2024-03-02", "2024-03-06").await;
    assert!(
        again
            .iter()
            .flat_map(|r| &r.jobs)
            .all(|j| j.action != "run")
    );
    assert_eq!(manifests(&storage).await, before);
}
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_model_never_goes_live_and_is_never_continued_from() {
    let (dir, storage) = archive(4).await;
    let mut config = config();
    // Demand an impossible AUC gain: every A-CTR after the first is rejected.
    config.daily.gate.max_auc_drop = -1.0;
    backfill_range(&storage, &config, "2024-03-02", "2024-03-04").await;
    let published = Published::load(&storage, &storage).await.expect("load");
    let first = v("2024-03-02");
    assert_eq!(published.latest[&ModelKind::Actr].pointer.version, first);
    for day in ["2024-03-03", "2024-03-04"] {
        let m = published
            .manifest(ModelKind::Actr, &v(day))
            .expect("published as rejected");
        match &m.gate {
            GateVerdict::Rejected { reason } => assert!(reason.contains("AUC"), "{reason}"),
            other => panic!("{day}: expected a rejection, got {other:?}"),
        }
        assert!(m.metrics.is_some());
        assert_ne!(
            m.parents.previous,
            Some(v("2024-03-03")),
            "continued from a rejected model"
        );
    }
    let pointer_key = KeyLayout.model_latest(ModelKind::Actr);
    let pointer: LatestPointer =
        decode_manifest(&pointer_key, &storage.get(&pointer_key).await.expect("get")).expect("ptr");
    assert_eq!(pointer.version, first);

    // Operators cannot make a rejected version live; they can roll back to an accepted one.
    let store = dir.path().display().to_string();
    let run = |args: Vec<String>| tokio::task::spawn_blocking(move || ctrflow_pipeline::run(args));
    let args = |rest: &[&str]| {
        let mut a = vec!["ctrflow".to_string()];
        a.extend(rest.iter().map(|s| s.to_string()));
        a.extend(["--store".to_string(), store.clone()]);
        a
    };
    let status = run(args(&["models", "rollback", "actr", "--to", "d20240303"]))
        .await
        .expect("join");
    assert_eq!(
        format!("{status:?}"),
        format!("{:?}", std::process::ExitCode::from(2))
    );
    let status = run(args(&["models", "rollback", "cpm", "--to", "d20240302"]))
        .await
        .expect("join");
    assert_eq!(
        format!("{status:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    let published = Published::load(&storage, &storage).await.expect("load");
    assert_eq!(
        published.latest[&ModelKind::Cpm].pointer.version,
        v("2024-03-02")
    );
    // A rerun of the day does not undo the operator's rollback.
    backfill_range(&storage, &config, "2024-03-04", "2024-03-04").await;
    let published = Published::load(&storage, &storage).await.expect("load");
    assert_eq!(
        published.latest[&ModelKind::Cpm].pointer.version,
        v("2024-03-02")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn holdout_evaluation_splits_each_window_and_needs_no_next_day() {
    // Enough ad rows per day (~570) that a 20% holdout has clicks to compute an AUC on.
    let (dir, storage) = archive_of(4, 12_000).await;
    let config = config_variant(dir.path(), "holdout.toml", |toml| {
        toml.replace(
            "tpm-snapshots = 2",
            "tpm-snapshots = 2\nevaluate-on = \"holdout\"",
        ) + "\n[daily]\nholdout-percent = 20\n"
    });
    // 2024-03-05 is not closed: with next-day evaluation its models could not be evaluated.
    backfill_range(&storage, &config, "2024-03-02", "2024-03-05").await;
    let published = Published::load(&storage, &storage).await.expect("load");
    for day in ["2024-03-03", "2024-03-05"] {
        let m = published
            .manifest(ModelKind::Actr, &v(day))
            .expect("published");
        let metrics = m
            .metrics
            .as_ref()
            .unwrap_or_else(|| panic!("{day}: not evaluated"));
        // Trained rows and holdout rows partition the window's rows.
        let window_rows: u64 = {
            let key = KeyLayout.day_success(ctrflow_schemas::Domain::Ad, m.data_window.to);
            let day_manifest: ctrflow_schemas::DayManifest =
                decode_manifest(&key, &storage.get(&key).await.expect("get")).expect("day");
            day_manifest.rows
        };
        let trained: u64 = m.data_window.rows.values().sum();
        assert_eq!(trained + metrics.samples, window_rows, "{day}");
        let share = metrics.samples as f64 / window_rows as f64;
        assert!((0.1..0.3).contains(&share), "{day}: holdout share {share}");
    }
}

/// `[daily.actr] initial-epochs`: an A-CTR that starts afresh or from a CPM passes once over
/// its window, one that continues passes `epochs` times over its new days.
#[tokio::test(flavor = "multi_thread")]
async fn initial_epochs_apply_to_restarts_and_epochs_to_continuing_runs() {
    let (dir, storage) = archive(4).await;
    let config = config_variant(dir.path(), "epochs.toml", |toml| {
        format!("{toml}\n[daily.actr]\nepochs = 2\ninitial-epochs = 1\n")
    });
    let reports = backfill_range(&storage, &config, "2024-03-02", "2024-03-04").await;
    let published = Published::load(&storage, &storage).await.expect("load");
    let mut day_rows = BTreeMap::new();
    for day in ["2024-03-01", "2024-03-02", "2024-03-03"] {
        let key = KeyLayout.day_success(ctrflow_schemas::Domain::Ad, date(day));
        let manifest: ctrflow_schemas::DayManifest =
            decode_manifest(&key, &storage.get(&key).await.expect("get")).expect("day");
        day_rows.insert(date(day), manifest.rows);
    }
    let passes: Vec<(String, u64)> = reports
        .iter()
        .flat_map(|r| &r.jobs)
        .filter(|j| j.model == ModelKind::Actr && j.action == "run")
        .map(|j| {
            let m = published
                .manifest(ModelKind::Actr, &j.version)
                .expect("published");
            // The manifest counts rows trained (every pass); the day manifests the rows there are.
            assert_eq!(m.data_window.rows.values().sum::<u64>(), j.rows);
            let window = day_rows.get(&m.data_window.to).copied().unwrap_or(0);
            assert_eq!(
                m.data_window.from, m.data_window.to,
                "one-day A-CTR windows"
            );
            assert!(window > 0 && j.rows % window == 0, "{j:?}");
            (j.detail.clone(), j.rows / window)
        })
        .collect();
    let expected: Vec<u64> = vec![1, 1, 2]; // fresh, from the CPM of 03-02, continuing
    assert_eq!(
        passes.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
        expected,
        "{passes:?}"
    );
    assert!(passes[2].0.contains("continues"), "{passes:?}");
}

/// `backfill --models-store`: the landing archive is only read; models, snapshots and reports
/// go to the other store, which a plain backfill of the same archive matches.
#[tokio::test(flavor = "multi_thread")]
async fn backfill_can_publish_to_a_separate_models_store() {
    let (dir, landing) = archive(3).await;
    let before = landing.list("").await.expect("list").len();
    let models_dir = tempfile::tempdir().expect("tempdir");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ctrflow-under-test"))
        .args(["-q", "--config"])
        .arg(config_file(dir.path()))
        .args(["backfill", "--store"])
        .arg(dir.path())
        .arg("--models-store")
        .arg(models_dir.path())
        .args(["--from", "2024-03-02", "--to", "2024-03-03"])
        .output()
        .await
        .expect("run backfill");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Only the config file was added next to the archive; nothing under models/ or reports/.
    let after = landing.list("").await.expect("list");
    assert_eq!(after.len(), before + 1, "the landing store is only read");
    assert!(after.iter().all(|o| !o.key.starts_with("models/")));
    let models = Storage::open(&models_dir.path().display().to_string()).expect("models store");
    let published = Published::load(&models, &landing).await.expect("load");
    assert!(published.live(ModelKind::Actr).is_some());
    assert!(published.live(ModelKind::Tpm).is_some());
    assert!(
        models
            .exists(&KeyLayout.report_metrics(date("2024-03-03")))
            .await
            .expect("exists")
    );
    assert!(
        models
            .list(&KeyLayout.landing_table(ctrflow_schemas::Domain::Ad))
            .await
            .expect("list")
            .is_empty()
    );
}
