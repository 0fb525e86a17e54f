//! [`TrainConfig`]: the serde configuration of a trainer (the network's own config is a burn
//! config passed next to it).

use serde::{Deserialize, Serialize};

use super::FeatureConfig;
use crate::ComputeDevice;
use crate::embedding::{EmbeddingTableConfig, SparseAdamConfig};
use crate::error::{ModelsError, Result};

/// How a trainer trains. Every field has a default; the embedding tables default to managed
/// tables of the network's width whose sparse Adam uses `learning-rate`.
///
/// ```
/// use ctrflow_models::train::TrainConfig;
/// let c: TrainConfig =
///     serde_json::from_str(r#"{"learning-rate": 0.01, "batch-size": 256}"#).expect("valid");
/// assert_eq!(c.features.short_len, 50);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainConfig {
    /// Adam step size of the dense parameters, and of the tables that take their default
    /// config (default 0.001).
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// L2 weight decay of the dense parameters in burn's Adam (default 0: none). The tables'
    /// decoupled decay is in their own configs.
    #[serde(default)]
    pub weight_decay: f64,
    /// Rows per training batch (default 1024).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Rows the shuffle buffer holds before it emits (default 65 536; at least `batch-size`).
    #[serde(default = "default_shuffle_rows")]
    pub shuffle_rows: usize,
    /// Seed of the network initialisation, the per-step RNG (dropout), the SimHash
    /// projection, the default tables' row initialisation and the shuffle buffer.
    #[serde(default)]
    pub seed: u64,
    /// How event batches become features.
    #[serde(default)]
    pub features: FeatureConfig,
    /// Bits of ETA's SimHash codes, 1..=64 (default 32).
    #[serde(default = "default_simhash_bits")]
    pub simhash_bits: u32,
    /// The user table; default: managed, the network's width.
    #[serde(default)]
    pub user_table: Option<EmbeddingTableConfig>,
    /// The item table, shared by the candidate and both behaviour sequences.
    #[serde(default)]
    pub item_table: Option<EmbeddingTableConfig>,
    /// The category table.
    #[serde(default)]
    pub category_table: Option<EmbeddingTableConfig>,
    /// Where the dense network computes: `flex` (default), `libtorch` or `cuda:N` (both need
    /// the `tch` build). Not part of what the model is: left out of the serialised form when
    /// it is the default, and a resumed trainer takes the device it is given.
    #[serde(default, skip_serializing_if = "ComputeDevice::is_flex")]
    pub device: ComputeDevice,
    /// Keep the historical-embedding attention as it is (no gradients, no updates): what
    /// E-CDCTR's A-CTR does after CPM training. Default false; a network without the
    /// historical feature ignores it. Left out of the serialised form when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze_historical: bool,
}

fn default_learning_rate() -> f64 {
    1e-3
}
fn default_batch_size() -> usize {
    1024
}
fn default_shuffle_rows() -> usize {
    65_536
}
fn default_simhash_bits() -> u32 {
    32
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            learning_rate: default_learning_rate(),
            weight_decay: 0.0,
            batch_size: default_batch_size(),
            shuffle_rows: default_shuffle_rows(),
            seed: 0,
            features: FeatureConfig::default(),
            simhash_bits: default_simhash_bits(),
            user_table: None,
            item_table: None,
            category_table: None,
            device: ComputeDevice::Flex,
            freeze_historical: false,
        }
    }
}

/// Which of the three tables, for config fields and seeds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TableRole {
    User,
    Item,
    Category,
}

impl TrainConfig {
    /// Checks the ranges of every field.
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ModelsError::config(
                "learning-rate",
                format!("{} is not a positive number", self.learning_rate),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ModelsError::config(
                "weight-decay",
                format!("{} is not a non-negative number", self.weight_decay),
            ));
        }
        if self.batch_size == 0 {
            return Err(ModelsError::config("batch-size", "must be at least 1"));
        }
        if self.shuffle_rows < self.batch_size {
            return Err(ModelsError::config(
                "shuffle-rows",
                "must be at least batch-size",
            ));
        }
        if !(1..=64).contains(&self.simhash_bits) {
            return Err(ModelsError::config("simhash-bits", "must be in 1..=64"));
        }
        self.device.ensure_available()
    }

    /// The config of one table: the configured one, or a managed table of width `dim` seeded
    /// from `seed` and the role, with `learning-rate`.
    pub(crate) fn table(&self, role: TableRole, dim: usize) -> Result<EmbeddingTableConfig> {
        let (configured, field, salt) = match role {
            TableRole::User => (&self.user_table, "user-table.dim", 1u64),
            TableRole::Item => (&self.item_table, "item-table.dim", 2),
            TableRole::Category => (&self.category_table, "category-table.dim", 3),
        };
        let config = match configured {
            Some(c) => c.clone(),
            None => {
                let mut c = EmbeddingTableConfig::new(dim);
                c.seed = crate::rng::mix64(self.seed ^ salt.rotate_left(48));
                c.optimizer = SparseAdamConfig {
                    learning_rate: self.learning_rate as f32,
                    ..SparseAdamConfig::default()
                };
                c
            }
        };
        if config.dim != dim {
            return Err(ModelsError::config(
                field,
                format!(
                    "{} differs from the network's embedding width {dim}",
                    config.dim
                ),
            ));
        }
        Ok(config)
    }
}
