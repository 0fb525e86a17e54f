//! SRP4CTR on a trainer: pre-training riding along (TPM), and the frozen encoder and tables
//! whose tokens `CtrNet`'s SRP branch reads.

use burn::tensor::{Bool, Device, Tensor, TensorData};

use super::{Trainer, float_tensor};
use crate::error::{ModelsError, Result};
use crate::nn::SrpInput;
use crate::train::{
    FeatureBatch, SrpArtifact, SrpPretrainConfig, SrpPretrainer, SrpTables, TrainableNet,
};

impl<N: TrainableNet> Trainer<N> {
    /// Starts SRP4CTR pre-training alongside this trainer: from now on every training step
    /// also takes one masked-behaviour step on the same batch, and checkpoints carry the
    /// pre-trainer ([`SrpArtifact`] for `CtrNet`). A trainer resumed from such a checkpoint
    /// continues it. Replaces pre-training already in progress (a fresh start).
    pub fn enable_srp_pretraining(&mut self, config: SrpPretrainConfig) -> Result<()> {
        let pretrainer = SrpPretrainer::new(
            config,
            self.config.seed,
            self.config.item_table.as_ref(),
            &self.device,
        )?;
        self.srp_pretrainer = Some(pretrainer);
        Ok(())
    }

    /// Stops SRP4CTR pre-training (checkpoints no longer carry it) and returns the
    /// pre-trainer, if it was on.
    pub fn disable_srp_pretraining(&mut self) -> Option<SrpPretrainer> {
        self.srp_pretrainer.take()
    }

    /// The SRP4CTR pre-trainer, when pre-training is on.
    pub fn srp_pretrainer(&self) -> Option<&SrpPretrainer> {
        self.srp_pretrainer.as_ref()
    }

    pub(crate) fn set_srp_pretrainer(&mut self, pretrainer: SrpPretrainer) {
        self.srp_pretrainer = Some(pretrainer);
    }

    /// Plugs a pre-trained SRP4CTR encoder and its tables (as a TPM job published them) into
    /// the network's SRP branch: the encoder frozen, the tables read-only. The encoder's shape
    /// must be the network's. Until this is called, the branch sees no behaviours.
    pub fn set_srp(&mut self, artifact: &SrpArtifact) -> Result<()> {
        let Some(expected) = N::srp_encoder_config(&self.net_config) else {
            return Err(ModelsError::config("srp", "the network has no SRP branch"));
        };
        let encoder_config = artifact.config.encoder();
        if &encoder_config != expected {
            return Err(ModelsError::config(
                "srp",
                format!(
                    "the published encoder is {}, the network's {}",
                    burn::config::config_to_json(&encoder_config),
                    burn::config::config_to_json(expected)
                ),
            ));
        }
        let encoder = artifact.encoder(&self.device)?;
        let (item, category) = artifact.tables()?;
        let net = self.net.take().expect("net present between calls");
        self.net = Some(net.with_srp_encoder(encoder));
        self.srp_tables = Some(SrpTables { item, category });
        Ok(())
    }

    /// SRP4CTR's inputs for the batch: the candidate's token and the tokens of each row's
    /// `max_len` most recent behaviours, from the frozen SRP tables (no gradients). Without
    /// tables (none published yet) every row has an empty sequence.
    pub(crate) fn srp_input(
        &mut self,
        batch: &FeatureBatch,
        device: &Device,
    ) -> Result<Option<SrpInput>> {
        let Some(spec) = self.spec.srp else {
            return Ok(None);
        };
        let (rows, d, len) = (batch.rows(), spec.d_model, spec.max_len);
        let s = &mut self.scratch;
        let mut tokens = vec![0.0f32; rows * len * d];
        let mut candidate = vec![0.0f32; rows * d];
        let mask = match &self.srp_tables {
            None => vec![false; rows * len],
            Some(tables) => {
                s.srp_layout.fill(&batch.long, 0..rows, len);
                let layout = &s.srp_layout;
                let n = layout.tokens();
                // Behaviours then candidates, one read-only lookup per table.
                let [item_lookup, category_lookup] = &mut s.srp_lookups;
                let mut add = |table: &crate::embedding::EmbeddingTable,
                               ids: &[u64],
                               lookup: &mut crate::embedding::Lookup|
                 -> Result<()> {
                    table.lookup_readonly(ids, lookup);
                    table.gather(lookup, &mut s.srp_rows)?;
                    let positions = lookup.positions();
                    for (k, &cell) in layout.cells.iter().enumerate() {
                        let row = &s.srp_rows[positions[k] as usize * d..][..d];
                        let out = &mut tokens[cell as usize * d..][..d];
                        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
                    }
                    for b in 0..rows {
                        let row = &s.srp_rows[positions[n + b] as usize * d..][..d];
                        let out = &mut candidate[b * d..][..d];
                        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
                    }
                    Ok(())
                };
                let mut ids = Vec::with_capacity(n + rows);
                ids.extend_from_slice(&layout.ids);
                ids.extend_from_slice(&batch.item_ids);
                add(&tables.item, &ids, item_lookup)?;
                if !batch.long.categories.is_empty() || n == 0 {
                    ids.clear();
                    ids.extend_from_slice(&layout.categories);
                    ids.extend_from_slice(&batch.category_ids);
                    add(&tables.category, &ids, category_lookup)?;
                }
                layout.mask.clone()
            }
        };
        Ok(Some(SrpInput {
            candidate: float_tensor(candidate, [rows, d], device),
            tokens: float_tensor(tokens, [rows, len, d], device),
            mask: Tensor::<2, Bool>::from_data(TensorData::new(mask, [rows, len]), device),
        }))
    }
}
