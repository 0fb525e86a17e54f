//! The CPM and A-CTR jobs (one `CtrNet`): historical embeddings, plug-ins and the SRP4CTR
//! encoder as inputs, training from the planned start, evaluation against the live model, the
//! gate, publishing and the `LATEST` swap.

use super::*;

impl Runner<'_> {
    /// Trains, evaluates, gates and publishes the CPM or A-CTR version `job` plans.
    pub(in crate::daily) async fn run_ctr(&mut self, job: &PlannedJob) -> Result<JobReport> {
        let kind = job.model;
        let training = self.training(kind).clone();
        let net = self.daily.ctr_net(self.content_dim);
        let use_historical = self.daily.network.use_historical;
        let (historical, historical_snapshots) = if use_historical {
            let (tables, versions) = self.job_historical(job).await?;
            (Some(tables), versions)
        } else {
            (None, Vec::new())
        };
        // The manifest lists the snapshots read when rows chose among them by day.
        let point_in_time_snapshots = if historical
            .as_ref()
            .is_some_and(|t| t.point_in_time.is_some())
        {
            historical_snapshots.clone()
        } else {
            Vec::new()
        };
        // PPM: the newest TPM's pre-trained tower replaces the one the model carried, so a
        // continued A-CTR follows TPM's incremental pre-training like its historical embeddings.
        let (plugin, plugin_from) = self.plugin(&job.parents.tpm).await?;
        // SRP4CTR likewise: the newest TPM's encoder and tables.
        let (srp, srp_from) = self.srp(&job.parents.tpm).await?;
        let with_historical = move |mut t: CtrTrainer| -> ctrflow_models::Result<CtrTrainer> {
            if let Some(h) = historical {
                t.set_historical(h)?;
            }
            if let Some(tower) = &plugin {
                t.set_plugin(tower)?;
            }
            if let Some(artifact) = &srp {
                t.set_srp(artifact)?;
            }
            Ok(t)
        };
        let train = training.train.clone();
        let build: Box<dyn FnOnce() -> ctrflow_models::Result<CtrTrainer> + Send> = match &job.start
        {
            Start::Fresh => {
                // `freeze-historical` keeps the attention a CPM trained; a fresh A-CTR (no CPM
                // published yet) trains its own.
                let train = TrainConfig {
                    freeze_historical: false,
                    ..train
                };
                Box::new(move || with_historical(CtrTrainer::new(train, net)?))
            }
            Start::Continue(v) => {
                let checkpoint = self.checkpoint(kind, v).await?;
                let device = train.device;
                Box::new(move || with_historical(CtrTrainer::resume_on(&checkpoint, device)?))
            }
            Start::FromCpm(v) => {
                let checkpoint = self.checkpoint(ModelKind::Cpm, v).await?;
                Box::new(move || {
                    let (trainer, report) = CtrTrainer::from_cpm(&checkpoint, train)?;
                    tracing::debug!(%report, "A-CTR initialised from CPM");
                    with_historical(trainer)
                })
            }
        };
        let (trainer, rows, mut timings) = self.train(job, &training, true, build).await?;
        let cache = trainer.plugin_cache().stats();
        if self.daily.network.use_plugin {
            tracing::info!(
                model = %kind,
                plugin_from = plugin_from.as_ref().map(ModelVersion::as_str),
                tower_runs = cache.computed,
                cache_hits = cache.hits,
                "plug-in"
            );
        }

        // Evaluate; A-CTR is scored next to its baseline on the same rows, then gated.
        let baseline = if kind == ModelKind::Actr {
            self.baseline()
        } else {
            None
        };
        let mut trainers = vec![trainer];
        if let (Some(base), Some(_)) = (&baseline, self.eval_set(job)) {
            let checkpoint = self.checkpoint(ModelKind::Actr, &base.version).await?;
            let live_historical = if use_historical {
                Some(self.historical(&base.parents.tpm).await?)
            } else {
                None
            };
            // The live model reads the SRP tables of its own TPM parent.
            let (live_srp, _) = self.srp(&base.parents.tpm).await?;
            let device = training.train.device;
            let live_trainer = blocking("loading the live model", self.date, move || {
                let mut t = CtrTrainer::resume_on(&checkpoint, device)?;
                if let Some(h) = live_historical {
                    t.set_historical(h)?;
                }
                if let Some(artifact) = &live_srp
                    && t.net_config().srp.is_some()
                {
                    t.set_srp(artifact)?;
                }
                Ok::<_, ctrflow_models::ModelsError>(t)
            })
            .await??;
            trainers.push(live_trainer);
        }
        let (trainer, scores) = self.evaluate(job, trainers, true, &mut timings).await?;
        let metrics = scores.first().cloned().flatten();
        let live = baseline.map(|b| (b.version.clone(), scores.get(1).cloned().flatten()));
        let verdict = if kind == ModelKind::Actr {
            gate::decide(
                &self.daily.gate,
                metrics.as_ref(),
                live.as_ref().map(|(v, m)| (v.as_str(), m.as_ref())),
            )
        } else {
            GateVerdict::NotGated
        };
        let publish_start = Instant::now();
        let checkpoint = blocking("encoding the checkpoint", self.date, move || {
            trainer.checkpoint(None)
        })
        .await??;
        let files = publish::put_checkpoint(self.storage, kind, &job.version, &checkpoint).await?;
        let key = self
            .write_manifest(
                job,
                rows,
                metrics.clone(),
                verdict.clone(),
                files,
                point_in_time_snapshots,
            )
            .await?;
        timings.publish = publish_start.elapsed().as_secs_f64();
        if let GateVerdict::Rejected { reason } = &verdict {
            tracing::warn!(model = %kind, version = %job.version, %reason, "gate rejected; the live model stays");
        }
        let mut report = self.report(job, rows, timings);
        if self.daily.network.use_plugin {
            report.detail.push_str(&match &plugin_from {
                Some(v) => format!("; plug-in from tpm {v}"),
                None => "; no plug-in published yet".into(),
            });
        }
        if self.daily.network.use_srp {
            report.detail.push_str(&match &srp_from {
                Some(v) => format!("; SRP4CTR from tpm {v}"),
                None => "; no SRP4CTR encoder published yet".into(),
            });
        }
        report.historical_snapshots = historical_snapshots;
        report.metrics = metrics;
        report.live = live;
        report.gate = Some(verdict);
        report.manifest = Some(key);
        Ok(report)
    }
}
