//! The TPM snapshot tables a CTR job's historical-embedding feature reads: the job's `K`
//! parents, or, with `[daily.network] historical-point-in-time`, every snapshot a training
//! row of the window may read, each with the day it was published.

use ctrflow_models::embedding::{Day, SnapshotTable};
use ctrflow_models::train::{HistoricalTables, PointInTime};
use ctrflow_schedule::PlannedJob;
use ctrflow_schemas::{ModelKind, ModelManifest, ModelVersion};

use super::error::{DailyError, Result};
use super::publish;
use super::runner::Runner;

impl Runner<'_> {
    /// The historical tables of the TPM snapshots `versions`, in that order (one empty
    /// snapshot when there are none yet: the feature then reads zeros).
    pub(super) async fn historical(
        &mut self,
        versions: &[ModelVersion],
    ) -> Result<HistoricalTables> {
        let mut tables = HistoricalTables::default();
        for v in versions {
            let (users, items) = self.snapshot(v).await?;
            tables.user.push(users.clone());
            tables.item.push(items.clone());
        }
        if tables.user.is_empty() {
            let d = self.daily.tpm_network.d_embed;
            tables.user.push(SnapshotTable::empty(d));
            tables.item.push(SnapshotTable::empty(d));
        }
        Ok(tables)
    }

    /// The historical tables `job` trains with. Without point-in-time reads (or before any TPM
    /// was published): its parents. With them: the TPM versions published on or before the
    /// newest parent, newest first, back to the `K`-th one published on or before the first
    /// training day, so that a row of any training day finds the `K` newest snapshots of its
    /// day; rows on or after the newest parent's day (the evaluation day among them) read
    /// exactly the parents. Also returns the versions read, newest first.
    pub(super) async fn job_historical(
        &mut self,
        job: &PlannedJob,
    ) -> Result<(HistoricalTables, Vec<ModelVersion>)> {
        let parents = &job.parents.tpm;
        let (Some(newest), Some(&first_day), true) = (
            parents.first(),
            job.train_days.first(),
            self.daily.network.historical_point_in_time,
        ) else {
            return Ok((self.historical(parents).await?, parents.clone()));
        };
        let newest_date = self.manifest(ModelKind::Tpm, newest)?.date;
        let mut versions: Vec<&ModelManifest> = self
            .published
            .versions(ModelKind::Tpm)
            .filter(|m| m.date <= newest_date)
            .collect();
        versions.sort_by_key(|m| std::cmp::Reverse(m.date));
        let k = parents.len();
        let mut covering = 0;
        let keep = versions
            .iter()
            .position(|m| {
                covering += usize::from(m.date <= first_day);
                covering == k
            })
            .map_or(versions.len(), |i| i + 1);
        let (read, available_from): (Vec<ModelVersion>, Vec<Day>) = versions[..keep]
            .iter()
            .map(|m| {
                let day = Day::from_event_date(m.date).ok_or_else(|| DailyError::Artifact {
                    model: ModelKind::Tpm,
                    version: m.version.clone(),
                    reason: format!("its date {} is before 1970", m.date),
                })?;
                Ok((m.version.clone(), day))
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let mut tables = self.historical(&read).await?;
        tables.point_in_time = Some(PointInTime { k, available_from });
        Ok((tables, read))
    }

    /// The user and item snapshot of TPM version `v`, loaded once per run.
    async fn snapshot(&mut self, v: &ModelVersion) -> Result<&(SnapshotTable, SnapshotTable)> {
        if !self.snapshots.contains_key(v) {
            let loaded = publish::get_snapshot(self.storage, v).await?;
            self.snapshots.insert(v.clone(), loaded);
        }
        Ok(&self.snapshots[v])
    }
}
