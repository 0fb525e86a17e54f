//! One schedule date end to end: load the published state, plan, run the due jobs in
//! schedule order (TPM, CPM, A-CTR), publish, and write the day's report.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use ctrflow_schedule::{JobAction, PlanOptions, PlannedJob, plan};
use ctrflow_schemas::{
    EventDate, GateVerdict, KeyLayout, ModelKind, ModelManifest, ModelMetrics, ModelVersion,
    Parents,
};
use ctrflow_storage::Storage;
use serde::Serialize;

use super::data::TrainingReader;
use super::error::{DailyError, Result};
use super::job::JobTimings;
use super::runner::Runner;
use super::state::Published;
use crate::config::CtrflowConfig;

/// How `run_daily` behaves beyond the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DailyOptions {
    /// Retrain and republish versions that are already published.
    pub force: bool,
    /// Let CPM and A-CTR use parents that are due today (run first) instead of only those
    /// published before the date.
    pub wait_for_parents: bool,
    /// Only plan: print what would run.
    pub dry_run: bool,
}

/// What happened to one model on one date.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// The model.
    pub model: ModelKind,
    /// The version of this date.
    pub version: ModelVersion,
    /// `run`, `not-due`, `already-published` or `skip`.
    pub action: String,
    /// Why it did not run, or what it started from.
    pub detail: String,
    /// Training window.
    pub window: Option<(EventDate, EventDate)>,
    /// Days of the window without `_SUCCESS` (and the evaluation day, if not closed).
    pub missing_days: Vec<EventDate>,
    /// Parent versions used.
    pub parents: Parents,
    /// TPM versions whose snapshots the historical-embedding feature read, newest first: the
    /// TPM parents, or with `historical-point-in-time` every snapshot a training day could
    /// read; empty when the job reads none (TPM, or the feature off).
    pub historical_snapshots: Vec<ModelVersion>,
    /// Rows trained on.
    pub rows: u64,
    /// Metrics on the evaluation day.
    pub metrics: Option<ModelMetrics>,
    /// The live model it was compared with (A-CTR) and its metrics on the same day.
    pub live: Option<(ModelVersion, Option<ModelMetrics>)>,
    /// The gate's verdict.
    pub gate: Option<GateVerdict>,
    /// Where the time went.
    pub timings: JobTimings,
    /// The manifest written or found.
    pub manifest: Option<String>,
}

/// The outcome of one date.
#[derive(Debug, Clone, Serialize)]
pub struct DailyReport {
    /// The schedule date.
    pub date: EventDate,
    /// TPM, CPM, A-CTR.
    pub jobs: Vec<JobReport>,
    /// The plan, as a table.
    pub plan: String,
}

/// Where the daily job reads its data and publishes its results. Usually one store; a
/// separate models store lets several model lines (or experiments) train on one read-only
/// archive.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Landing tables and their `_SUCCESS` day manifests (only read).
    pub landing: Storage,
    /// Models, embedding snapshots and reports (read and written).
    pub models: Storage,
}

impl Stores {
    /// Landing tables and models in the same store.
    pub fn single(storage: &Storage) -> Stores {
        Stores {
            landing: storage.clone(),
            models: storage.clone(),
        }
    }
}

/// Runs the schedule for `date`: reads `stores.landing`, publishes to `stores.models`.
pub async fn run_daily(
    stores: &Stores,
    config: &CtrflowConfig,
    date: EventDate,
    options: DailyOptions,
) -> Result<DailyReport> {
    let mut published = Published::load(&stores.models, &stores.landing).await?;
    run_date(stores, config, date, options, &mut published).await
}

/// [`run_daily`] on an already loaded published state, which it keeps up to date with what it
/// publishes (so a backfill reads the store's manifests once, not once per date).
async fn run_date(
    stores: &Stores,
    config: &CtrflowConfig,
    date: EventDate,
    options: DailyOptions,
    published: &mut Published,
) -> Result<DailyReport> {
    let plan = plan(
        date,
        &config.daily.schedule,
        &published.schedule_state(),
        PlanOptions {
            force: options.force,
            wait_for_parents: options.wait_for_parents,
        },
    )?;
    let plan_text = plan.to_string();
    tracing::info!(%date, "plan\n{plan_text}");
    let storage = &stores.models;
    let mut runner = Runner {
        storage,
        daily: &config.daily,
        schema_hash: config.schema.event_schema().fingerprint(),
        content_dim: config.schema.content_dim,
        reader: TrainingReader::new(&stores.landing, config.daily.read.batch_rows)
            .with_read_ahead(config.daily.read.read_ahead_batches),
        published,
        snapshots: HashMap::new(),
        date,
    };
    let mut jobs = Vec::new();
    for job in &plan.jobs {
        let report = match (&job.action, options.dry_run) {
            (JobAction::Run, false) => {
                let started = Instant::now();
                let report = match job.model {
                    ModelKind::Tpm => runner.run_tpm(job).await?,
                    ModelKind::Cpm | ModelKind::Actr => runner.run_ctr(job).await?,
                };
                tracing::info!(
                    model = %job.model,
                    version = %job.version,
                    rows = report.rows,
                    auc = report.metrics.as_ref().map(|m| m.auc),
                    gauc = report.metrics.as_ref().map(|m| m.gauc),
                    gate = ?report.gate,
                    seconds = started.elapsed().as_secs_f64(),
                    "published"
                );
                release_job_memory(job);
                report
            }
            (JobAction::AlreadyPublished, false) => runner.finish_interrupted(job).await?,
            _ => JobReport::not_run(job),
        };
        jobs.push(report);
    }
    let report = DailyReport {
        date,
        jobs,
        plan: plan_text,
    };
    if !options.dry_run {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| DailyError::Worker {
            what: "report",
            date,
            reason: e.to_string(),
        })?;
        storage
            .put(&KeyLayout.report_metrics(date), Bytes::from(json))
            .await?;
        let history: Vec<&ModelManifest> = published
            .manifests
            .values()
            .filter(|m| m.date <= date)
            .collect();
        let html = super::report::render(&report, &history);
        storage
            .put(&KeyLayout.report(date), Bytes::from(html))
            .await?;
    }
    Ok(report)
}

/// Runs [`run_daily`] for every date from `from` to `to`, in order, calling `on_date` after
/// each. Published versions are skipped (unless `force`), so a rerun after a crash continues
/// where the last one stopped.
pub async fn backfill(
    stores: &Stores,
    config: &CtrflowConfig,
    from: EventDate,
    to: EventDate,
    options: DailyOptions,
    mut on_date: impl FnMut(&DailyReport),
) -> Result<Vec<DailyReport>> {
    if to < from {
        return Err(DailyError::Invalid(format!(
            "--to {to} is before --from {from}"
        )));
    }
    // Loaded once: every date's publishes are added to it as they happen.
    let mut published = Published::load(&stores.models, &stores.landing).await?;
    let mut reports = Vec::new();
    for date in from.range_inclusive(to) {
        let report = run_date(stores, config, date, options, &mut published).await?;
        on_date(&report);
        reports.push(report);
    }
    Ok(reports)
}

impl JobReport {
    pub(super) fn not_run(job: &PlannedJob) -> JobReport {
        let (action, detail) = match &job.action {
            JobAction::Run => ("run", "planned (dry run)".to_string()),
            JobAction::NotDue { next_due } => ("not-due", format!("next due {next_due}")),
            JobAction::AlreadyPublished => ("already-published", String::new()),
            JobAction::Skip { reason } => ("skip", reason.clone()),
        };
        JobReport {
            model: job.model,
            version: job.version.clone(),
            action: action.into(),
            detail,
            window: job.window,
            missing_days: job.missing_days.clone(),
            parents: job.parents.clone(),
            historical_snapshots: Vec::new(),
            rows: 0,
            metrics: None,
            live: None,
            gate: None,
            timings: JobTimings::default(),
            manifest: None,
        }
    }
}

/// Hands what the finished `job` freed back to the kernel, so the next job does not run on top
/// of it (see `ctrflow_models::malloc`).
fn release_job_memory(job: &PlannedJob) {
    let before = ctrflow_models::malloc::resident_bytes();
    let released = ctrflow_models::malloc::release_freed_memory();
    let after = ctrflow_models::malloc::resident_bytes();
    tracing::debug!(
        model = %job.model,
        released,
        rss_before_mib = before.map(|b| b / (1 << 20)),
        rss_after_mib = after.map(|b| b / (1 << 20)),
        "returned freed memory after the job"
    );
}
