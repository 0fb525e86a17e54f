//! [`TrainerCheckpoint`]: a trainer's whole state as named byte blobs (the pipeline stores
//! each as one object), and resume from it.
//!
//! | blob | content |
//! |---|---|
//! | `train-config.json` | the [`TrainConfig`](super::TrainConfig) as JSON |
//! | `config.json` | the network config (burn config JSON, as [`Checkpoint`] writes it) |
//! | `model.bpk` | the network weights and batch-norm statistics (burnpack) |
//! | `optimizer.bpk` | burn's Adam state of the dense parameters (burnpack, keyed by parameter id) |
//! | `table-user.bin`, `table-item.bin`, `table-category.bin` | [`EmbeddingTable::to_bytes`] |
//! | `state.json` | [`TrainStats`]: the step counter and counters |
//! | `shuffle.bin` (optional) | [`ShuffleBuffer::to_bytes`]: generator and waiting rows |
//! | `plugin.json`, `plugin.bpk` (TPM with a plug-in) | the pre-trained PPM tower on its own, for `CtrNet` to plug in ([`TrainerCheckpoint::plugin`]) |
//! | `srp.json`, `srp-model.bpk`, `srp-optimizer.bpk`, `srp-table-item.bin`, `srp-table-category.bin`, `srp-state.json` (TPM with SRP pre-training) | the SRP4CTR pre-trainer ([`super::srp::blobs`]); `CtrNet` reads the first two and the tables ([`TrainerCheckpoint::srp`]) |
//!
//! Everything random in a step is a function of `(seed, step)` (the per-step device seed) or
//! lives in a blob (table rows, the shuffle generator), so training resumed from a checkpoint
//! takes exactly the steps the uninterrupted run would have: same losses, bitwise-equal
//! predictions (tested). The historical TPM tables are inputs, not state: set them again.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Bytes, Device};

use super::srp::{SrpArtifact, SrpPretrainer, blobs as srp_blobs};
use super::trainer::{Tables, TrainStats, dense_optimizer};
use super::{NetSpec, ShuffleBuffer, TrainConfig, TrainableNet, Trainer};
use crate::ComputeDevice;
use crate::embedding::EmbeddingTable;
use crate::error::{ModelsError, Result};
use crate::nn::{Checkpoint, CtrNet, TransferReport, init_actr_from_cpm};
use crate::rng::build_seeded;

/// Blob names of a [`TrainerCheckpoint`].
pub mod blobs {
    /// The training config, JSON.
    pub const TRAIN_CONFIG: &str = "train-config.json";
    /// The network config, JSON.
    pub const NET_CONFIG: &str = "config.json";
    /// The network weights, burnpack.
    pub const NET_WEIGHTS: &str = "model.bpk";
    /// The dense optimiser state, burnpack.
    pub const OPTIMIZER: &str = "optimizer.bpk";
    /// The user table.
    pub const USER_TABLE: &str = "table-user.bin";
    /// The item table.
    pub const ITEM_TABLE: &str = "table-item.bin";
    /// The category table.
    pub const CATEGORY_TABLE: &str = "table-category.bin";
    /// Counters, JSON.
    pub const STATE: &str = "state.json";
    /// The shuffle buffer (optional).
    pub const SHUFFLE: &str = "shuffle.bin";
    /// The pre-trained plug-in tower's config, JSON (TPM with a plug-in).
    pub const PLUGIN_CONFIG: &str = "plugin.json";
    /// The pre-trained plug-in tower's weights, burnpack (TPM with a plug-in).
    pub const PLUGIN_WEIGHTS: &str = "plugin.bpk";
}

/// A trainer's state as named byte blobs (see the module docs for the names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainerCheckpoint {
    /// Blob name -> bytes.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

fn blob_error(blob: &str, reason: impl ToString) -> ModelsError {
    ModelsError::TrainerCheckpoint {
        blob: blob.to_string(),
        reason: reason.to_string(),
    }
}

impl TrainerCheckpoint {
    /// The blob `name`, or an error naming it.
    pub fn blob(&self, name: &str) -> Result<&[u8]> {
        self.blobs
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| blob_error(name, "missing"))
    }

    /// The shuffle buffer stored with the checkpoint, if any.
    pub fn shuffle_buffer(&self) -> Result<Option<ShuffleBuffer>> {
        self.blobs
            .get(blobs::SHUFFLE)
            .map(|bytes| ShuffleBuffer::from_bytes(bytes))
            .transpose()
    }

    /// The PPM plug-in tower a TPM pre-trained (`None` for networks without one). A reader
    /// that only needs the tower fetches just these two blobs.
    pub fn plugin(&self) -> Result<Option<Checkpoint>> {
        match (
            self.blobs.get(blobs::PLUGIN_CONFIG),
            self.blobs.get(blobs::PLUGIN_WEIGHTS),
        ) {
            (None, None) => Ok(None),
            (Some(config), Some(weights)) => Ok(Some(Checkpoint {
                config_json: String::from_utf8(config.clone())
                    .map_err(|e| blob_error(blobs::PLUGIN_CONFIG, e))?,
                weights: weights.clone(),
            })),
            (Some(_), None) => Err(blob_error(blobs::PLUGIN_WEIGHTS, "missing")),
            (None, Some(_)) => Err(blob_error(blobs::PLUGIN_CONFIG, "missing")),
        }
    }

    /// The SRP4CTR encoder and tables a TPM with SRP pre-training published (`None` for
    /// checkpoints without). A reader that only needs them fetches just
    /// [`srp::blobs::ARTIFACT`](super::srp::blobs::ARTIFACT).
    pub fn srp(&self) -> Result<Option<SrpArtifact>> {
        if !self.blobs.contains_key(srp_blobs::CONFIG) {
            return Ok(None);
        }
        SrpArtifact::from_blobs(|name| self.blob(name)).map(Some)
    }

    /// The step counter and counters.
    pub fn stats(&self) -> Result<TrainStats> {
        serde_json::from_slice(self.blob(blobs::STATE)?).map_err(|e| blob_error(blobs::STATE, e))
    }

    fn table(&self, name: &str) -> Result<EmbeddingTable> {
        EmbeddingTable::from_bytes(self.blob(name)?).map_err(|e| blob_error(name, e))
    }
}

impl<N: TrainableNet> Trainer<N> {
    /// The trainer's state, with the shuffle buffer that feeds it if there is one.
    pub fn checkpoint(&self, shuffle: Option<&ShuffleBuffer>) -> Result<TrainerCheckpoint> {
        let mut blobs = BTreeMap::new();
        let net = Checkpoint::capture(self.net_config(), self.net())
            .map_err(|e| blob_error(blobs::NET_WEIGHTS, e))?;
        blobs.insert(blobs::NET_CONFIG.to_string(), net.config_json.into_bytes());
        blobs.insert(blobs::NET_WEIGHTS.to_string(), net.weights);
        if let Some(plugin) = self.net().published_plugin(self.net_config())? {
            blobs.insert(
                blobs::PLUGIN_CONFIG.to_string(),
                plugin.config_json.into_bytes(),
            );
            blobs.insert(blobs::PLUGIN_WEIGHTS.to_string(), plugin.weights);
        }
        let train_config = serde_json::to_vec_pretty(self.config())
            .map_err(|e| blob_error(blobs::TRAIN_CONFIG, e))?;
        blobs.insert(blobs::TRAIN_CONFIG.to_string(), train_config);
        let optimizer = self
            .optimizer()
            .into_bytes()
            .map_err(|e| blob_error(blobs::OPTIMIZER, e))?;
        blobs.insert(blobs::OPTIMIZER.to_string(), optimizer.to_vec());
        let tables = self.tables();
        blobs.insert(blobs::USER_TABLE.to_string(), tables.user.to_bytes());
        blobs.insert(blobs::ITEM_TABLE.to_string(), tables.item.to_bytes());
        blobs.insert(
            blobs::CATEGORY_TABLE.to_string(),
            tables.category.to_bytes(),
        );
        let state = serde_json::to_vec(&self.stats()).map_err(|e| blob_error(blobs::STATE, e))?;
        blobs.insert(blobs::STATE.to_string(), state);
        if let Some(pretrainer) = self.srp_pretrainer() {
            for (name, bytes) in pretrainer.to_blobs()? {
                blobs.insert(name.to_string(), bytes);
            }
        }
        if let Some(shuffle) = shuffle {
            blobs.insert(blobs::SHUFFLE.to_string(), shuffle.to_bytes()?);
        }
        Ok(TrainerCheckpoint { blobs })
    }

    /// A trainer continuing exactly where `checkpoint` was taken (take the shuffle buffer
    /// from [`TrainerCheckpoint::shuffle_buffer`]; set historical tables again), its network
    /// on the default `flex` device.
    pub fn resume(checkpoint: &TrainerCheckpoint) -> Result<Self> {
        Self::resume_on(checkpoint, ComputeDevice::Flex)
    }

    /// [`resume`](Self::resume) with the network on `device` (a checkpoint does not tie a
    /// model to the device it was trained on).
    pub fn resume_on(checkpoint: &TrainerCheckpoint, device: ComputeDevice) -> Result<Self> {
        let mut config: TrainConfig = serde_json::from_slice(checkpoint.blob(blobs::TRAIN_CONFIG)?)
            .map_err(|e| blob_error(blobs::TRAIN_CONFIG, e))?;
        config.device = device;
        config.validate()?;
        let device = config.device.burn_device()?.autodiff();
        let (net_config, net, spec, tables) = build_seeded(
            &device,
            config.seed,
            || restore_parts::<N>(checkpoint, &device),
            |parts| parts.as_ref().ok().map(|p| &p.1),
        )?;
        let net = net.train();
        let stats = checkpoint.stats()?;
        let optimizer = dense_optimizer(&config)
            .from_bytes(Bytes::from_bytes_vec(
                checkpoint.blob(blobs::OPTIMIZER)?.to_vec(),
            ))
            .map_err(|e| blob_error(blobs::OPTIMIZER, e))?;
        let seed = config.seed;
        let mut trainer =
            Self::assemble(config, net_config, spec, device.clone(), net, tables, stats)?;
        trainer.set_optimizer(optimizer);
        if checkpoint.blobs.contains_key(srp_blobs::CONFIG) {
            let pretrainer =
                SrpPretrainer::from_blobs(|name| checkpoint.blob(name), seed, &device)?;
            trainer.set_srp_pretrainer(pretrainer);
        }
        Ok(trainer)
    }
}

/// The network (config, weights, spec) and the three tables of `checkpoint`, checked against
/// each other.
fn restore_parts<N: TrainableNet>(
    checkpoint: &TrainerCheckpoint,
    device: &Device,
) -> Result<(N::Config, N, NetSpec, Tables)> {
    let net_checkpoint = Checkpoint {
        config_json: String::from_utf8(checkpoint.blob(blobs::NET_CONFIG)?.to_vec())
            .map_err(|e| blob_error(blobs::NET_CONFIG, e))?,
        weights: checkpoint.blob(blobs::NET_WEIGHTS)?.to_vec(),
    };
    let (net_config, net): (N::Config, N) = net_checkpoint
        .restore(device)
        .map_err(|e| blob_error(blobs::NET_WEIGHTS, e))?;
    let spec = N::spec(&net_config)?;
    let tables = Tables {
        user: checkpoint.table(blobs::USER_TABLE)?,
        item: checkpoint.table(blobs::ITEM_TABLE)?,
        category: checkpoint.table(blobs::CATEGORY_TABLE)?,
    };
    for (table, name) in [
        (&tables.user, blobs::USER_TABLE),
        (&tables.item, blobs::ITEM_TABLE),
        (&tables.category, blobs::CATEGORY_TABLE),
    ] {
        if table.dim() != spec.d_embed {
            return Err(blob_error(
                name,
                format!(
                    "width {} differs from the network's {}",
                    table.dim(),
                    spec.d_embed
                ),
            ));
        }
    }
    Ok((net_config, net, spec, tables))
}

impl Trainer<CtrNet> {
    /// An A-CTR trainer initialised from a CPM trainer checkpoint (E-CDCTR): every network
    /// parameter except batch norm, whose parameters and running statistics are freshly
    /// initialised from `config.seed`, and the CPM's embedding tables. The dense optimiser
    /// starts fresh and the counters at zero. The network config is the CPM's (CPM and A-CTR
    /// are the same network); `config` is the A-CTR's training config.
    ///
    /// The report lists every parameter path with what was done to it.
    pub fn from_cpm(
        cpm: &TrainerCheckpoint,
        config: TrainConfig,
    ) -> Result<(Self, TransferReport)> {
        config.validate()?;
        let device = config.device.burn_device()?.autodiff();
        let (net_config, net, report, spec, tables) = build_seeded(
            &device,
            config.seed,
            || -> Result<_> {
                let (net_config, cpm_net, spec, tables) = restore_parts::<CtrNet>(cpm, &device)?;
                let (net, report) = init_actr_from_cpm(&cpm_net, &net_config, &device)
                    .map_err(|e| blob_error(blobs::NET_WEIGHTS, e))?;
                Ok((net_config, net, report, spec, tables))
            },
            |parts| parts.as_ref().ok().map(|p| &p.1),
        )?;
        let trainer = Self::assemble(
            config,
            net_config,
            spec,
            device,
            net.train(),
            tables,
            TrainStats::default(),
        )?;
        Ok((trainer, report))
    }
}
