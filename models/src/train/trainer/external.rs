//! What a trainer takes from outside its own state: the TPM snapshot tables of the
//! historical-embedding feature and the pre-trained PPM plug-in tower, and the network inputs
//! built from them.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{Trainer, float_tensor};
use crate::embedding::SnapshotTable;
use crate::error::{ModelsError, Result};
use crate::nn::{Checkpoint, PluginTower, PluginTowerConfig};
use crate::train::{FeatureBatch, HistoricalTables, PluginCache, TrainableNet};

impl<N: TrainableNet> Trainer<N> {
    /// Sets the TPM snapshot tables of the historical-embedding feature (required when the
    /// network uses it; their width must be the network's `d_hist`, and `K = 1` in merged
    /// mode; with [`PointInTime`](crate::train::PointInTime), one `available_from` day per
    /// table, newest first, and `1 <= k <= tables`). They are inputs, not trainer state:
    /// checkpoints do not hold them.
    pub fn set_historical(&mut self, tables: HistoricalTables) -> Result<()> {
        let Some(spec) = self.spec.historical else {
            return Err(ModelsError::config(
                "use_historical",
                "the network takes no historical embeddings",
            ));
        };
        let k = tables.user.len();
        // Without the item feature the item snapshots are not read and may be left out.
        let items_ok = tables.item.len() == k || (!spec.items && tables.item.is_empty());
        if k == 0 || !items_ok {
            return Err(ModelsError::config(
                "historical",
                format!(
                    "need the same K >= 1 user and item snapshots (item snapshots may be left \
                     out when the network reads no item feature), got {} and {}",
                    tables.user.len(),
                    tables.item.len()
                ),
            ));
        }
        if let Some(pit) = &tables.point_in_time
            && (pit.available_from.len() != k
                || !pit
                    .available_from
                    .is_sorted_by(|newer, older| newer >= older)
                || !(1..=k).contains(&pit.k))
        {
            return Err(ModelsError::config(
                "historical",
                format!(
                    "point-in-time reads need one day per table, newest first, and \
                     1 <= K <= {k} tables; got {} days and K = {}",
                    pit.available_from.len(),
                    pit.k
                ),
            ));
        }
        let per_row = tables.point_in_time.as_ref().map_or(k, |pit| pit.k);
        if spec.merged && per_row != 1 {
            return Err(ModelsError::config("historical", "merged mode takes K = 1"));
        }
        if let Some(t) = tables
            .user
            .iter()
            .chain(&tables.item)
            .find(|t| t.dim() != spec.d_hist)
        {
            return Err(ModelsError::config(
                "historical",
                format!(
                    "snapshot width {} differs from d_hist {}",
                    t.dim(),
                    spec.d_hist
                ),
            ));
        }
        self.historical = Some(tables);
        Ok(())
    }

    /// Plugs a pre-trained PPM tower (a [`Checkpoint`] of a [`PluginTowerConfig`], as TPM
    /// publishes it) into the network, frozen, and empties the plug-in cache. The tower's
    /// widths must be the network's plug-in widths. The tower becomes part of the network, so
    /// checkpoints carry it.
    pub fn set_plugin(&mut self, tower: &Checkpoint) -> Result<()> {
        let Some(spec) = self.spec.plugin else {
            return Err(ModelsError::config("plugin", "the network has no plug-in"));
        };
        let (config, tower): (PluginTowerConfig, PluginTower) = tower
            .restore(&self.device)
            .map_err(|e| ModelsError::config("plugin", e.to_string()))?;
        if (config.d_input, config.d_output) != (spec.d_input, spec.d_output) {
            return Err(ModelsError::config(
                "plugin",
                format!(
                    "the tower maps {} -> {}, the network's plug-in {} -> {}",
                    config.d_input, config.d_output, spec.d_input, spec.d_output
                ),
            ));
        }
        let net = self.net.take().expect("net present between calls");
        self.net = Some(net.with_plugin_tower(tower));
        self.plugin_cache.clear();
        Ok(())
    }

    /// The plug-in cache (its counters say how often the frozen tower ran).
    pub fn plugin_cache(&self) -> &PluginCache {
        &self.plugin_cache
    }

    /// `[B, K, d_h]` snapshot vectors of the batch's users and items (zeros for absent ids).
    pub(super) fn historical_inputs(
        &self,
        batch: &FeatureBatch,
        device: &Device,
    ) -> Result<Option<(Tensor<3>, Option<Tensor<3>>)>> {
        let Some(spec) = self.spec.historical else {
            return Ok(None);
        };
        let Some(tables) = &self.historical else {
            return Err(ModelsError::config(
                "historical",
                "the network uses historical embeddings: call set_historical first",
            ));
        };
        let rows = batch.rows();
        let pit = tables.point_in_time.as_ref();
        let k = pit.map_or(tables.user.len(), |p| p.k);
        if pit.is_some() && batch.days.len() != rows {
            return Err(ModelsError::shape(
                "row days for point-in-time snapshots",
                rows,
                batch.days.len(),
            ));
        }
        // The first table each row reads (all rows read from the first without point in time).
        let first = |b: usize| pit.map_or(0, |p| p.first_table(batch.days[b]));
        let read = |snapshots: &[SnapshotTable], ids: &[u64], feature: &'static str| {
            let mut out = Vec::with_capacity(rows * k * spec.d_hist);
            for (b, &id) in ids.iter().enumerate() {
                let start = first(b);
                for j in start..start + k {
                    match snapshots.get(j).and_then(|table| table.row(id)) {
                        Some(row) => {
                            if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                                return Err(ModelsError::NonFiniteInput {
                                    step: self.stats.steps,
                                    feature,
                                    row: b,
                                    value: *v,
                                });
                            }
                            out.extend_from_slice(row);
                        }
                        None => out.extend(std::iter::repeat_n(0.0, spec.d_hist)),
                    }
                }
            }
            Ok(float_tensor(out, [rows, k, spec.d_hist], device))
        };
        Ok(Some((
            read(&tables.user, &batch.user_ids, "historical-user")?,
            spec.items
                .then(|| read(&tables.item, &batch.item_ids, "historical-item"))
                .transpose()?,
        )))
    }

    /// `[B, p]` outputs of the frozen plug-in tower for the batch's candidates, from the cache
    /// (the tower runs on the plain device for (item, content) pairs not seen yet).
    pub(super) fn plugin_input(
        &mut self,
        batch: &FeatureBatch,
        device: &Device,
    ) -> Result<Option<Tensor<2>>> {
        let (Some(spec), Some(net)) = (self.spec.plugin, &self.net) else {
            return Ok(None);
        };
        let tower = net
            .plugin_tower()
            .ok_or_else(|| ModelsError::config("plugin", "the network lost its tower"))?
            .valid();
        let out = &mut self.scratch.plugin;
        self.plugin_cache.outputs(
            &tower,
            &batch.item_ids,
            &batch.content,
            self.spec.content_width,
            &device.clone().without_autodiff(),
            out,
        )?;
        Ok(Some(float_tensor(
            out.clone(),
            [batch.rows(), spec.d_output],
            device,
        )))
    }
}
