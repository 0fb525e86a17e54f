//! Point-in-time historical embeddings through the daily job: with
//! `[daily.network] historical-point-in-time`, a CTR job whose window spans several TPM
//! publications loads every snapshot its training days can read (reported per job and recorded
//! in its manifest), and the models it trains differ from the job-level reads.

use super::*;

/// The demo config with a TPM published every day and a 5-day A-CTR replay after each CPM, so
/// that CPM and A-CTR windows span several TPM versions.
fn daily_tpm(dir: &std::path::Path, point_in_time: bool) -> CtrflowConfig {
    config_variant(dir, &format!("pit-{point_in_time}.toml"), |toml| {
        toml.replace(
            "tpm = { horizon-days = 30, cadence-days = 4 }",
            "tpm = { horizon-days = 30, cadence-days = 1 }",
        )
        .replace(
            "actr = { horizon-days = 1, cadence-days = 1 }",
            "actr = { horizon-days = 5, cadence-days = 1 }",
        )
        .replace(
            "eta-top-k = 8\n",
            &format!("eta-top-k = 8\nhistorical-point-in-time = {point_in_time}\n"),
        )
    })
}

/// The snapshots a job must read with point-in-time reads, computed from what is published:
/// TPM versions dated on or before its newest parent, newest first, down to the `K`-th one
/// dated on or before its first training day.
fn expected_reads(
    published: &Published,
    job: &ctrflow_pipeline::daily::JobReport,
) -> Vec<ModelVersion> {
    let Some(newest) = job.parents.tpm.first() else {
        return Vec::new();
    };
    let newest = published
        .manifest(ModelKind::Tpm, newest)
        .expect("parent")
        .date;
    let (from, to) = job.window.expect("window");
    let first_day = from
        .range_inclusive(to)
        .find(|d| !job.missing_days.contains(d))
        .expect("a training day");
    let mut tpm: Vec<(EventDate, ModelVersion)> = published
        .versions(ModelKind::Tpm)
        .filter(|m| m.date <= newest)
        .map(|m| (m.date, m.version.clone()))
        .collect();
    tpm.sort_by_key(|(date, _)| std::cmp::Reverse(*date));
    let mut out = Vec::new();
    let mut covering = 0;
    for (date, version) in tpm {
        out.push(version);
        covering += usize::from(date <= first_day);
        if covering == job.parents.tpm.len() {
            break;
        }
    }
    out
}

/// A fresh 6-day archive backfilled from its second day with [`daily_tpm`]: the reports and
/// what was published (the directory must outlive both).
async fn backfill_daily_tpm(
    point_in_time: bool,
) -> (
    tempfile::TempDir,
    Vec<ctrflow_pipeline::daily::DailyReport>,
    Published,
) {
    let (dir, storage) = archive(6).await;
    let config = daily_tpm(dir.path(), point_in_time);
    let reports = backfill_range(&storage, &config, "2024-03-02", "2024-03-06").await;
    let published = Published::load(&storage, &storage).await.expect("load");
    (dir, reports, published)
}

#[tokio::test(flavor = "multi_thread")]
async fn point_in_time_jobs_read_every_snapshot_their_training_days_could_read() {
    let (_dir, reports, published) = backfill_daily_tpm(true).await;
    let ctr_runs: Vec<_> = reports
        .iter()
        .flat_map(|r| &r.jobs)
        .filter(|j| j.model != ModelKind::Tpm && j.action == "run")
        .collect();
    let mut longer = 0;
    for job in &ctr_runs {
        let expected = expected_reads(&published, job);
        assert_eq!(
            job.historical_snapshots, expected,
            "{} {}",
            job.model, job.version
        );
        // The parents come first: rows on or after the newest parent's day read exactly them.
        assert_eq!(
            job.historical_snapshots[..job.parents.tpm.len()],
            job.parents.tpm[..],
            "{} {}",
            job.model,
            job.version
        );
        longer += usize::from(job.historical_snapshots.len() > job.parents.tpm.len());
        // The manifest records the lineage: every snapshot the job read.
        let manifest = published
            .manifest(job.model, &job.version)
            .expect("published");
        assert_eq!(
            manifest.point_in_time_snapshots, expected,
            "{}",
            job.version
        );
    }
    assert!(
        longer >= 2,
        "some windows span more than K snapshots: {ctr_runs:?}"
    );

    // The same backfill with job-level reads: every job reads its parents, and the A-CTR
    // models trained on rows that now read other snapshots score differently.
    let (_dir2, job_level, published2) = backfill_daily_tpm(false).await;
    let metrics = |reports: &[ctrflow_pipeline::daily::DailyReport]| -> Vec<_> {
        reports
            .iter()
            .flat_map(|r| &r.jobs)
            .filter(|j| j.model == ModelKind::Actr && j.action == "run")
            .map(|j| j.metrics.as_ref().map(|m| m.auc))
            .collect()
    };
    for job in job_level
        .iter()
        .flat_map(|r| &r.jobs)
        .filter(|j| j.action == "run")
    {
        if job.model != ModelKind::Tpm {
            assert_eq!(job.historical_snapshots, job.parents.tpm, "{}", job.version);
        }
        // Job-level reads are the parents: nothing more in the manifest.
        let manifest = published2
            .manifest(job.model, &job.version)
            .expect("published");
        assert!(
            manifest.point_in_time_snapshots.is_empty(),
            "{}",
            job.version
        );
    }
    let (pit, fixed) = (metrics(&reports), metrics(&job_level));
    assert_eq!(pit.len(), fixed.len());
    assert!(pit.iter().all(Option::is_some), "{pit:?}");
    assert_ne!(pit, fixed, "point-in-time reads change what A-CTR learns");
}
