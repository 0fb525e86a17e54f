//! The jobs of one schedule date: [`Runner`] trains, evaluates, gates and publishes TPM, CPM
//! and A-CTR versions, with the parents, historical embeddings and plug-ins each one needs.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::Utc;
use ctrflow_models::embedding::SnapshotTable;
use ctrflow_models::nn::Checkpoint;
use ctrflow_models::train::{
    CtrTrainer, ShuffleBuffer, SrpArtifact, TpmTrainer, TrainConfig, TrainableNet, Trainer,
    TrainerCheckpoint,
};
use ctrflow_schedule::{EvaluateOn, PlannedJob, Start};
use ctrflow_schemas::{
    DataWindow, EventDate, GateVerdict, KeyLayout, ModelKind, ModelManifest, ModelMetrics,
    ModelVersion, columns, fingerprint,
};
use ctrflow_storage::Storage;

use super::config::{DailyConfig, ModelTraining};
use super::data::TrainingReader;
use super::error::{DailyError, Result};
use super::gate;
use super::holdout::{Holdout, Side};
use super::job::{EvalSet, JobTimings, Scored, blocking, evaluate_day, train_window};
use super::publish;
use super::state::Published;

use super::run::JobReport;

mod ctr;
mod tpm;

fn start_text(start: &Start) -> String {
    match start {
        Start::Fresh => "fresh".into(),
        Start::Continue(v) => format!("continues {v}"),
        Start::FromCpm(v) => format!("initialised from cpm {v} (batch norm reset)"),
    }
}

/// A per-date seed for the shuffle buffer.
fn date_seed(seed: u64, date: EventDate) -> u64 {
    ctrflow_models::mix64(seed ^ (date.start_ms() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Runs the due jobs of one date against the published state.
pub(super) struct Runner<'a> {
    pub(super) storage: &'a Storage,
    pub(super) daily: &'a DailyConfig,
    pub(super) schema_hash: String,
    /// `[schema] content-dim`: the width of `item_content`.
    pub(super) content_dim: usize,
    pub(super) reader: TrainingReader,
    pub(super) published: &'a mut Published,
    pub(super) snapshots: HashMap<ModelVersion, (SnapshotTable, SnapshotTable)>,
    pub(super) date: EventDate,
}

impl Runner<'_> {
    fn training(&self, kind: ModelKind) -> &super::config::ModelTraining {
        match kind {
            ModelKind::Tpm => &self.daily.tpm,
            ModelKind::Cpm => &self.daily.cpm,
            ModelKind::Actr => &self.daily.actr,
        }
    }

    fn shuffle(&self, train: &TrainConfig) -> Result<ShuffleBuffer> {
        Ok(ShuffleBuffer::new(
            train.shuffle_rows,
            train.batch_size,
            date_seed(train.seed, self.date),
        )?)
    }

    async fn checkpoint(
        &self,
        kind: ModelKind,
        version: &ModelVersion,
    ) -> Result<TrainerCheckpoint> {
        publish::get_checkpoint(self.storage, self.manifest(kind, version)?).await
    }

    /// The manifest of a published version.
    pub(super) fn manifest(
        &self,
        kind: ModelKind,
        version: &ModelVersion,
    ) -> Result<&ModelManifest> {
        self.published
            .manifest(kind, version)
            .ok_or_else(|| DailyError::NotPublished {
                model: kind,
                version: version.clone(),
            })
    }

    /// The plug-in tower of the newest TPM among `versions` (newest first) that published
    /// one, and that version; `(None, None)` before any did (the network keeps its tower) or
    /// when `[daily.network] use-plugin` is off.
    async fn plugin(
        &self,
        versions: &[ModelVersion],
    ) -> Result<(Option<Checkpoint>, Option<ModelVersion>)> {
        if !self.daily.network.use_plugin {
            return Ok((None, None));
        }
        let storage = self.storage;
        self.newest_tpm_artifact(versions, async |manifest| {
            publish::get_plugin(storage, manifest).await
        })
        .await
    }

    /// The SRP4CTR artifact of the newest TPM among `versions` (newest first) that published
    /// one, and that version; `(None, None)` before any did (the branch then sees no
    /// behaviours) or when `[daily.network] use-srp` is off.
    async fn srp(
        &self,
        versions: &[ModelVersion],
    ) -> Result<(Option<SrpArtifact>, Option<ModelVersion>)> {
        if !self.daily.network.use_srp {
            return Ok((None, None));
        }
        let storage = self.storage;
        self.newest_tpm_artifact(versions, async |manifest| {
            publish::get_srp(storage, manifest).await
        })
        .await
    }

    /// What `fetch` finds in the newest published TPM among `versions` (newest first) that has
    /// it, with that version; `(None, None)` when none has.
    async fn newest_tpm_artifact<T>(
        &self,
        versions: &[ModelVersion],
        fetch: impl AsyncFn(&ModelManifest) -> Result<Option<T>>,
    ) -> Result<(Option<T>, Option<ModelVersion>)> {
        for v in versions {
            let Some(manifest) = self.published.manifest(ModelKind::Tpm, v) else {
                continue;
            };
            if let Some(found) = fetch(manifest).await? {
                return Ok((Some(found), Some(v.clone())));
            }
        }
        Ok((None, None))
    }

    fn config_hash(&self, kind: ModelKind) -> String {
        let net = match kind {
            ModelKind::Tpm => serde_json::to_string(&self.daily.tpm_network),
            _ => serde_json::to_string(&self.daily.network),
        }
        .unwrap_or_default();
        let train = serde_json::to_string(self.training(kind)).unwrap_or_default();
        // SRP4CTR's settings shape TPM's pre-training and CtrNet's encoder when they are on.
        let srp_on = match kind {
            ModelKind::Tpm => self.daily.tpm_network.pretrain_srp,
            _ => self.daily.network.use_srp,
        };
        let srp = if srp_on {
            serde_json::to_string(&self.daily.srp).unwrap_or_default()
        } else {
            String::new()
        };
        fingerprint(format!("{net}\n{train}{srp}").as_bytes())
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_manifest(
        &mut self,
        job: &PlannedJob,
        rows: u64,
        metrics: Option<ModelMetrics>,
        gate: GateVerdict,
        files: Vec<String>,
        point_in_time_snapshots: Vec<ModelVersion>,
    ) -> Result<String> {
        let (from, to) = job.window.ok_or_else(|| {
            DailyError::Invalid(format!("{} planned to run without a window", job.model))
        })?;
        let manifest = ModelManifest {
            model: job.model,
            version: job.version.clone(),
            date: self.date,
            data_window: DataWindow {
                from,
                to,
                rows: BTreeMap::from([(job.domain, rows)]),
            },
            parents: job.parents.clone(),
            point_in_time_snapshots,
            config_hash: self.config_hash(job.model),
            schema_hash: self.schema_hash.clone(),
            metrics,
            gate: gate.clone(),
            code_version: env!("CARGO_PKG_VERSION").to_string(),
            files,
            created_at: Utc::now(),
        };
        let key = publish::put_manifest(self.storage, &manifest).await?;
        if !matches!(gate, GateVerdict::Rejected { .. }) {
            let latest = publish::swap_latest(self.storage, job.model, &job.version).await?;
            self.published.latest.insert(job.model, latest);
        }
        self.published
            .manifests
            .insert((job.model, job.version.clone()), manifest);
        Ok(key)
    }

    fn report(&self, job: &PlannedJob, rows: u64, timings: JobTimings) -> JobReport {
        JobReport {
            model: job.model,
            version: job.version.clone(),
            action: "run".into(),
            detail: start_text(&job.start),
            window: job.window,
            missing_days: job.missing_days.clone(),
            parents: job.parents.clone(),
            historical_snapshots: Vec::new(),
            rows,
            metrics: None,
            live: None,
            gate: None,
            timings,
            manifest: None,
        }
    }

    /// Scores `trainers` (the new model first, then the live one if any) on `job`'s evaluation
    /// set in one pass and keeps the scored rows. Without an evaluation set nothing is scored.
    async fn evaluate<N>(
        &self,
        job: &PlannedJob,
        trainers: Vec<Trainer<N>>,
        reads_sequences: bool,
        timings: &mut JobTimings,
    ) -> Result<(Trainer<N>, Vec<Option<ModelMetrics>>)>
    where
        N: TrainableNet,
        Trainer<N>: Send + 'static,
    {
        let (mut trainers, metrics) = match self.eval_set(job) {
            None => {
                let n = trainers.len();
                (trainers, vec![None; n])
            }
            Some(set) => {
                let start = Instant::now();
                let (trainers, metrics, scored) = evaluate_day(
                    &self.reader_for(reads_sequences),
                    job.domain,
                    &set,
                    trainers,
                    self.daily.read.channel_batches,
                )
                .await?;
                self.write_predictions(job.model, scored).await?;
                timings.evaluate = start.elapsed().as_secs_f64();
                (trainers, metrics)
            }
        };
        trainers.truncate(1);
        let trainer = trainers
            .pop()
            .ok_or_else(|| DailyError::Invalid("evaluator lost the model".into()))?;
        Ok((trainer, metrics))
    }

    /// The landing reader for a model: one whose network and training read no behaviour
    /// sequences does not read the history columns, the widest by far.
    fn reader_for(&self, reads_sequences: bool) -> TrainingReader {
        if reads_sequences {
            self.reader.clone()
        } else {
            self.reader
                .clone()
                .without_columns(&[columns::HIST_ITEM_IDS, columns::HIST_CATEGORY_IDS])
        }
    }

    /// Trains a trainer from `build` on `job`'s window with `training`'s settings, reading the
    /// history columns only when `reads_sequences`.
    async fn train<N, B>(
        &self,
        job: &PlannedJob,
        training: &ModelTraining,
        reads_sequences: bool,
        build: B,
    ) -> Result<(Trainer<N>, u64, JobTimings)>
    where
        N: TrainableNet,
        Trainer<N>: Send,
        B: FnOnce() -> ctrflow_models::Result<Trainer<N>> + Send + 'static,
    {
        train_window(
            &self.reader_for(reads_sequences),
            job.domain,
            &job.train_days,
            training.epochs_for(&job.start),
            self.shuffle(&training.train)?,
            self.daily.read.channel_batches,
            self.date,
            self.train_split(),
            build,
        )
        .await
    }

    /// `reports/{date}/predictions/{model}.parquet`: every evaluated row with the new model's
    /// prediction (and the live model's, for A-CTR), for pooled metrics over many dates and for
    /// error analysis.
    async fn write_predictions(&self, kind: ModelKind, scored: Scored) -> Result<()> {
        let date = self.date;
        let bytes = blocking("encoding predictions", date, move || {
            let batch = scored.to_record_batch().map_err(|e| DailyError::Worker {
                what: "predictions",
                date,
                reason: e.to_string(),
            })?;
            Ok::<_, DailyError>(ctrflow_storage::encode_parquet(
                &batch.schema(),
                &[batch],
                &ctrflow_storage::ParquetWriteOptions::default(),
            )?)
        })
        .await??;
        let key = KeyLayout.report_predictions(self.date, kind);
        self.storage.put(&key, bytes).await?;
        Ok(())
    }

    /// Where `job`'s model is evaluated: the date (next-day) or the holdout of its window.
    fn eval_set(&self, job: &PlannedJob) -> Option<EvalSet> {
        match self.daily.schedule.evaluate_on {
            EvaluateOn::NextDay => job.eval_day.map(|day| EvalSet {
                days: vec![day],
                holdout: None,
            }),
            EvaluateOn::Holdout => (!job.train_days.is_empty()).then(|| EvalSet {
                days: job.train_days.clone(),
                holdout: Some(Holdout {
                    percent: self.daily.holdout_percent,
                    side: Side::Eval,
                }),
            }),
        }
    }

    /// The training side of the holdout split, when models are evaluated on a holdout.
    fn train_split(&self) -> Option<Holdout> {
        (self.daily.schedule.evaluate_on == EvaluateOn::Holdout).then_some(Holdout {
            percent: self.daily.holdout_percent,
            side: Side::Train,
        })
    }

    /// The A-CTR a new one is compared with: the live one if it predates the date, else the
    /// newest accepted one before the date (the same rule the schedule continues from).
    fn baseline(&self) -> Option<ModelManifest> {
        if let Some(live) = self.published.live(ModelKind::Actr)
            && live.date < self.date
        {
            return Some(live.clone());
        }
        self.published
            .versions(ModelKind::Actr)
            .filter(|m| m.date < self.date && !matches!(m.gate, GateVerdict::Rejected { .. }))
            .max_by_key(|m| m.date)
            .cloned()
    }

    /// A version already published for this date: if a crash came between its manifest and
    /// its `LATEST` swap (the pointer is older than the manifest and points at an older
    /// date), finish the swap. A later operator rollback (a pointer newer than the manifest)
    /// is left alone.
    pub(super) async fn finish_interrupted(&mut self, job: &PlannedJob) -> Result<JobReport> {
        let mut report = JobReport::not_run(job);
        let Some(manifest) = self.published.manifest(job.model, &job.version).cloned() else {
            return Ok(report);
        };
        report.metrics = manifest.metrics.clone();
        report.gate = Some(manifest.gate.clone());
        report.parents = manifest.parents.clone();
        report.window = Some((manifest.data_window.from, manifest.data_window.to));
        report.rows = manifest.data_window.rows.values().sum();
        report.manifest = Some(KeyLayout.model_manifest(job.model, &job.version));
        if matches!(manifest.gate, GateVerdict::Rejected { .. }) {
            return Ok(report);
        }
        let needs_swap = match self.published.latest.get(&job.model) {
            None => true,
            Some(latest) => {
                let pointed_date = self
                    .published
                    .manifest(job.model, &latest.pointer.version)
                    .map(|m| m.date);
                pointed_date.is_none_or(|d| d < manifest.date)
                    && latest.pointer.updated_at < manifest.created_at
            }
        };
        if needs_swap {
            tracing::info!(model = %job.model, version = %job.version, "finishing an interrupted publish: swapping LATEST");
            let latest = publish::swap_latest(self.storage, job.model, &job.version).await?;
            self.published.latest.insert(job.model, latest);
            report.detail = "LATEST swapped (the earlier run stopped before it)".into();
        }
        Ok(report)
    }
}
