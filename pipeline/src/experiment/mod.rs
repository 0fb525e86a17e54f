//! `ctrflow experiment ecdctr`: the E-CDCTR ablation, run through the production daily job.
//!
//! 1. **Archive**: MovieLens (RecBole files) is imported, or synthetic logs are generated, into
//!    `OUT/archive` once; a `source.json` there records what it was built from, and a later run
//!    with other settings refuses to reuse it.
//! 2. **Runs**: per variant ([`Variant`]) and seed, `ctrflow backfill` over every day of the
//!    archive, reading the archive and publishing into `OUT/runs/{variant}/seed-{n}`: the same
//!    schedule, trainers, publishing and reports as production, nothing special-cased. A run
//!    that was interrupted continues where it stopped when the command is repeated.
//! 3. **Protocol** ([`protocol`]): the last `test-fraction` of ad events by time are the test
//!    set; each test day is scored by the A-CTR published for it (trained on earlier days
//!    only), and the predictions are pooled over the test period.
//! 4. **Results** ([`report`]): per variant the mean and standard deviation over seeds of the
//!    pooled AUC, GAUC and logloss, as `OUT/results.json` and `OUT/results.md`, and the AUC
//!    over the test period as a chart, `OUT/results.svg`.

mod chart;
pub mod protocol;
pub mod report;
mod variant;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ctrflow_operators::movielens::{MovielensOptions, import_movielens};
use ctrflow_operators::sql::run_query;
use ctrflow_schemas::{Domain, EventDate, ModelKind};
use ctrflow_storage::Storage;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::CtrflowConfig;
use crate::daily::state::Published;
use crate::daily::{self, DailyError, DailyOptions, Stores};
pub use protocol::{Halves, Pooled, Segment, TestSplit};
pub use report::{ExperimentResults, RunResult, Summary};
pub use variant::Variant;

/// What went wrong in an experiment.
#[derive(Debug, Error)]
pub enum ExperimentError {
    /// Bad options.
    #[error("{0}")]
    Invalid(String),
    /// The archive or a run's outputs are not what the protocol needs.
    #[error("experiment data: {0}")]
    Data(String),
    /// A run has not scored every test day (it was interrupted: run the command again).
    #[error("run incomplete: {0}")]
    Incomplete(String),
    /// The protocol was violated (a model scored a day it had trained on, or events were
    /// scored twice or not at all).
    #[error("protocol violated: {0}")]
    Protocol(String),
    /// Reading or writing the archive or a run.
    #[error(transparent)]
    Storage(#[from] ctrflow_storage::StorageError),
    /// Import, generation or SQL.
    #[error(transparent)]
    Operator(#[from] ctrflow_operators::OperatorError),
    /// The daily job of a run.
    #[error(transparent)]
    Daily(#[from] DailyError),
    /// Local files of the experiment directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where the experiment's events come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A MovieLens directory in RecBole's atomic-file format.
    Movielens {
        /// The directory.
        dir: PathBuf,
        /// Genres that make a movie an ad.
        ad_genres: Vec<String>,
        /// Ratings at or above this are clicks.
        like_threshold: f64,
        /// The behaviour sequence.
        history: ctrflow_operators::movielens::MovielensHistory,
        /// The domains of the behaviour sequence (left out of `source.json` when `all`, so
        /// archives built before the option existed still match).
        #[serde(default, skip_serializing_if = "is_cross_domain")]
        history_domains: ctrflow_operators::movielens::HistoryDomains,
        /// The events' content vectors (left out of `source.json` when `none`, as above).
        #[serde(default, skip_serializing_if = "is_no_content")]
        content: ctrflow_operators::movielens::MovielensContent,
        /// Longest behaviour sequence.
        max_seq_len: usize,
    },
    /// The synthetic generator with the config's `[generator]` settings.
    Generated {
        /// The generator settings.
        generator: ctrflow_operators::generate::GeneratorConfig,
    },
}

fn is_no_content(content: &ctrflow_operators::movielens::MovielensContent) -> bool {
    *content == ctrflow_operators::movielens::MovielensContent::None
}

fn is_cross_domain(domains: &ctrflow_operators::movielens::HistoryDomains) -> bool {
    *domains == ctrflow_operators::movielens::HistoryDomains::All
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExperimentOptions {
    /// Where the events come from.
    pub source: Source,
    /// The experiment directory (archive, runs, results).
    pub out: PathBuf,
    /// Variants, in table order.
    pub variants: Vec<Variant>,
    /// Seeds, one run per variant and seed.
    pub seeds: Vec<u64>,
    /// Share of ad events (the latest by time) in the test set.
    pub test_fraction: f64,
    /// Keep every version's checkpoint files in finished runs (by default only each model's
    /// live version keeps them; manifests, snapshots and predictions always stay).
    pub keep_checkpoints: bool,
}

/// Progress callbacks of [`run`].
pub trait Progress {
    /// A run starts: `days` schedule dates.
    fn run_started(&mut self, variant: Variant, seed: u64, days: u64);
    /// A date of the current run is done.
    fn date_done(&mut self, date: EventDate);
    /// The current run finished.
    fn run_finished(&mut self, result: &RunResult);
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ExperimentError + '_ {
    move |source| ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open(dir: &Path) -> Result<Storage, ExperimentError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    Ok(Storage::open(&dir.display().to_string())?)
}

/// Builds `OUT/archive` from `source`, or checks that the one there was built from it.
async fn archive(
    out: &Path,
    source: &Source,
    config: &CtrflowConfig,
) -> Result<Storage, ExperimentError> {
    let dir = out.join("archive");
    let marker = dir.join("source.json");
    let wanted = serde_json::to_string_pretty(source)
        .map_err(|e| ExperimentError::Invalid(format!("source: {e}")))?;
    if marker.exists() {
        let found = std::fs::read_to_string(&marker).map_err(io_error(&marker))?;
        if found != wanted {
            return Err(ExperimentError::Invalid(format!(
                "{} was built from other settings ({}); use another --out or delete it",
                dir.display(),
                marker.display()
            )));
        }
        return open(&dir);
    }
    if dir.exists() {
        // A build that did not finish: start it over.
        std::fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
    }
    let storage = open(&dir)?;
    match source {
        Source::Movielens {
            dir: data,
            ad_genres,
            like_threshold,
            history,
            history_domains,
            content,
            max_seq_len,
        } => {
            let options = MovielensOptions {
                ad_genres: ad_genres.clone(),
                like_threshold: *like_threshold,
                max_seq_len: *max_seq_len,
                history: *history,
                history_domains: *history_domains,
                content: *content,
            };
            let summary = import_movielens(
                data,
                &storage,
                &config.schema.event_schema(),
                &options,
                |_, _| {},
            )
            .await?;
            tracing::info!(
                dataset = %summary.dataset,
                ratings = summary.ratings,
                first = %summary.dates.0,
                last = %summary.dates.1,
                "imported the experiment archive"
            );
        }
        Source::Generated { generator } => {
            let summary =
                ctrflow_operators::generate::generate_archive(&storage, generator, |_| {}).await?;
            tracing::info!(days = summary.days, "generated the experiment archive");
        }
    }
    std::fs::write(&marker, wanted).map_err(io_error(&marker))?;
    Ok(storage)
}

/// The test split of the archive's ad events.
async fn split(
    landing: &Storage,
    config: &CtrflowConfig,
    fraction: f64,
) -> Result<TestSplit, ExperimentError> {
    let batches = run_query(
        landing,
        &config.schema.event_schema(),
        "SELECT CAST(event_time AS BIGINT) AS t FROM ad",
    )
    .await?;
    let mut times = Vec::new();
    for batch in &batches {
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .ok_or_else(|| ExperimentError::Data("event_time did not cast to ms".into()))?;
        times.extend(column.iter().flatten());
    }
    TestSplit::from_times(times, fraction)
}

/// Rows each model of a run trained on, over every version it published.
async fn rows_trained(stores: &Stores) -> Result<BTreeMap<ModelKind, u64>, ExperimentError> {
    let published = Published::load(&stores.models, &stores.landing).await?;
    let mut rows = BTreeMap::new();
    for manifest in published.manifests.values() {
        *rows.entry(manifest.model).or_insert(0) += manifest.data_window.rows.values().sum::<u64>();
    }
    Ok(rows)
}

/// Deletes the checkpoint files of every model version of a finished run except each model's
/// live one: a daily A-CTR checkpoint of ML-1M is about 3 MB, a thousand of them per run. The
/// manifests, TPM snapshots, reports and predictions stay, so the run can still be pooled,
/// listed and continued (continuing needs only the live versions). Returns the files deleted.
async fn prune_checkpoints(stores: &Stores) -> Result<u64, ExperimentError> {
    let published = Published::load(&stores.models, &stores.landing).await?;
    let mut deleted = 0;
    for ((kind, version), manifest) in &published.manifests {
        if published
            .live(*kind)
            .is_some_and(|live| &live.version == version)
        {
            continue;
        }
        for key in manifest.files.iter().filter(|k| k.starts_with("models/")) {
            stores.models.delete(key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Runs every variant and seed (continuing interrupted runs) and pools their test metrics.
pub async fn run(
    options: &ExperimentOptions,
    config: &CtrflowConfig,
    progress: &mut dyn Progress,
) -> Result<ExperimentResults, ExperimentError> {
    if !(options.test_fraction > 0.0 && options.test_fraction < 1.0) {
        return Err(ExperimentError::Invalid(format!(
            "--test-fraction {} must be between 0 and 1",
            options.test_fraction
        )));
    }
    if options.variants.is_empty() || options.seeds.is_empty() {
        return Err(ExperimentError::Invalid(
            "at least one variant and one seed are needed".into(),
        ));
    }
    let landing = archive(&options.out, &options.source, config).await?;
    let closed = Published::load(&landing, &landing).await?.closed;
    let ad_days = closed.get(&Domain::Ad).cloned().unwrap_or_default();
    let (Some(&first), Some(&last)) = (ad_days.first(), ad_days.last()) else {
        return Err(ExperimentError::Data(
            "the archive has no closed ad days".into(),
        ));
    };
    let split = split(&landing, config, options.test_fraction).await?;
    tracing::info!(
        ad_events = split.ad_events,
        test_events = split.test_events(),
        first_test_day = ?split.first_day(),
        "test split"
    );
    // Every date after the first day: the first one has nothing before it to train on.
    let (from, to) = (first.succ(), last);
    let mut runs = Vec::new();
    for &variant in &options.variants {
        for &seed in &options.seeds {
            let dir = options
                .out
                .join("runs")
                .join(variant.name())
                .join(format!("seed-{seed}"));
            let stores = Stores {
                landing: landing.clone(),
                models: open(&dir)?,
            };
            let mut run_config = config.clone();
            run_config.daily = variant.configure(&config.daily, seed);
            progress.run_started(variant, seed, (from.days_until(to) + 1) as u64);
            let started = Instant::now();
            // Only the published state matters: a rerun continues an interrupted run.
            daily::backfill(
                &stores,
                &run_config,
                from,
                to,
                DailyOptions::default(),
                |r| progress.date_done(r.date),
            )
            .await?;
            let seconds = started.elapsed().as_secs_f64();
            let rows_trained = rows_trained(&stores).await?;
            if !options.keep_checkpoints {
                let deleted = prune_checkpoints(&stores).await?;
                tracing::debug!(deleted, run = %dir.display(), "pruned superseded checkpoints");
            }
            let pooled = protocol::pool(&stores.models, &landing, &split).await?;
            let result = RunResult {
                variant,
                seed,
                pooled,
                seconds,
                rows_trained,
                dir,
            };
            progress.run_finished(&result);
            runs.push(result);
        }
    }
    let results = ExperimentResults::new(options, split, runs);
    report::write(&options.out, &results)?;
    Ok(results)
}
