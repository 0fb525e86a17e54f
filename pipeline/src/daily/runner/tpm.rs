//! The TPM job: train (continuing the previous TPM, SRP4CTR pre-training riding along),
//! evaluate, publish the checkpoint and the user/item embedding snapshot, then the manifest.

use super::*;

impl Runner<'_> {
    /// Trains, evaluates and publishes the TPM version `job` plans.
    pub(in crate::daily) async fn run_tpm(&mut self, job: &PlannedJob) -> Result<JobReport> {
        let train = self.daily.tpm.train.clone();
        let net = self.daily.tpm_net(self.content_dim);
        // SRP4CTR pre-training rides along; a TPM continued from a version without it, or
        // with an encoder of another shape, starts it fresh.
        let srp = self
            .daily
            .tpm_network
            .pretrain_srp
            .then(|| self.daily.srp.clone());
        let with_srp = move |mut t: TpmTrainer| -> ctrflow_models::Result<TpmTrainer> {
            match srp {
                Some(config) => {
                    let same_shape = t
                        .srp_pretrainer()
                        .is_some_and(|p| p.config().encoder() == config.encoder());
                    if !same_shape {
                        t.enable_srp_pretraining(config)?;
                    }
                }
                None => drop(t.disable_srp_pretraining()),
            }
            Ok(t)
        };
        let build: Box<dyn FnOnce() -> ctrflow_models::Result<TpmTrainer> + Send> = match &job.start
        {
            Start::Continue(v) => {
                let checkpoint = self.checkpoint(ModelKind::Tpm, v).await?;
                let device = train.device;
                Box::new(move || with_srp(TpmTrainer::resume_on(&checkpoint, device)?))
            }
            _ => Box::new(move || with_srp(TpmTrainer::new(train, net)?)),
        };
        // The TPM network reads no behaviour sequences; its SRP4CTR pre-training does.
        let reads_sequences = self.daily.tpm_network.pretrain_srp;
        let (trainer, rows, mut timings) = self
            .train(job, &self.daily.tpm, reads_sequences, build)
            .await?;
        if let Some(srp) = trainer.srp_pretrainer() {
            let stats = srp.stats();
            tracing::info!(
                steps = stats.steps,
                sequences = stats.sequences,
                targets = stats.targets,
                last_loss = stats.last_loss,
                "SRP4CTR pre-training"
            );
        }
        let (trainer, mut metrics) = self
            .evaluate(job, vec![trainer], reads_sequences, &mut timings)
            .await?;
        let metrics = metrics.swap_remove(0);
        let publish_start = Instant::now();
        let watermark = job
            .window
            .map_or(self.date.start_ms(), |(_, to)| to.end_ms() - 1);
        let version = job.version.clone();
        let (checkpoint, users, items, snapshot) = blocking(
            "encoding the TPM checkpoint and snapshot",
            self.date,
            move || {
                let checkpoint = trainer.checkpoint(None)?;
                let users = SnapshotTable::from_table(&trainer.tables().user);
                let items = SnapshotTable::from_table(&trainer.tables().item);
                let snapshot = publish::encode_snapshot(&version, &users, &items, watermark)?;
                Ok::<_, DailyError>((checkpoint, users, items, snapshot))
            },
        )
        .await??;
        let mut files =
            publish::put_checkpoint(self.storage, ModelKind::Tpm, &job.version, &checkpoint)
                .await?;
        let (_, snapshot_keys) =
            publish::put_snapshot(self.storage, &job.version, snapshot).await?;
        files.extend(snapshot_keys);
        self.snapshots.insert(job.version.clone(), (users, items));
        let key = self
            .write_manifest(
                job,
                rows,
                metrics.clone(),
                GateVerdict::NotGated,
                files,
                Vec::new(),
            )
            .await?;
        timings.publish = publish_start.elapsed().as_secs_f64();
        let mut report = self.report(job, rows, timings);
        report.metrics = metrics;
        report.gate = Some(GateVerdict::NotGated);
        report.manifest = Some(key);
        Ok(report)
    }
}
