//! SRP4CTR pre-training ([`SrpPretrainer`]) and what `CtrNet` takes from it
//! ([`SrpArtifact`]).
//!
//! The pre-trainer rides along a TPM trainer (the TPM job's long-horizon natural data): after
//! each TPM step it takes one masked-behaviour step on the same batch:
//!
//! 1. one row per user (the first in the shuffled batch), at most `sequences-per-step` rows,
//!    each its `max-len` most recent behaviours;
//! 2. each behaviour is masked with probability `mask-prob` (at least one per sequence) and
//!    replaced by the `[MASK]` token;
//! 3. the encoder output at a masked position is scored against its own item and `candidates`
//!    negatives drawn from the **batch's items** (a sampled softmax with shared negatives; a
//!    negative that is the target itself is masked out), and against the batch's categories;
//!    the loss is the item cross-entropy plus `category-weight` times the category
//!    cross-entropy. The cost is linear in the batch: scoring every target against every
//!    other target's item (a full in-batch softmax) grew quadratically, 868 ms for 512
//!    sequences against 96 ms for 128;
//! 4. its own item and category tables (managed, `d_s` wide; tied input and output
//!    embeddings) are updated row-sparsely like the trainer's, the encoder and heads by Adam.
//!
//! A masked behaviour whose id still reads the default row (below the admission threshold) is
//! hidden from the input but not a target. Everything random is a function of `(seed, step)`,
//! so a resumed run is identical to an uninterrupted one.

use std::collections::HashSet;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::embedding::{EmbeddingTable, EmbeddingTableConfig, Lookup, SparseAdamConfig};
use crate::error::{ModelsError, Result};
use crate::nn::{Checkpoint, SrpEncoder, SrpEncoderConfig, SrpPretrainNet, SrpPretrainNetConfig};
use crate::rng::{SplitMix64, build_seeded, mix64};
use crate::train::FeatureBatch;

mod artifact;
mod targets;
pub(crate) mod tokens;

pub use artifact::{SrpArtifact, SrpTables};
use targets::Targets;
use tokens::TokenLayout;

/// How SRP4CTR pre-trains (the `[daily.srp]` section). Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SrpPretrainConfig {
    /// Token width `d_s` (default 16).
    #[serde(default = "default_d_model")]
    pub d_model: usize,
    /// Transformer layers (default 2).
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Attention heads; must divide `d-model` (default 2).
    #[serde(default = "default_heads")]
    pub heads: usize,
    /// Behaviours per sequence, the most recent (default 50).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Probability that a behaviour is masked (default 0.2; at least one per sequence).
    #[serde(default = "default_mask_prob")]
    pub mask_prob: f64,
    /// Negatives a masked position is scored against besides its own item: distinct items of
    /// the batch, shared by all targets of a step (default 1024).
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// Weight of the category prediction loss (default 0.5; 0: items only).
    #[serde(default = "default_category_weight")]
    pub category_weight: f64,
    /// Sequences (distinct users) per step at most (default 128: the step costs about 1 ms
    /// per sequence of 50 on 2 cores, `models/benches/srp_pretrain.rs`).
    #[serde(default = "default_sequences")]
    pub sequences_per_step: usize,
    /// Adam step size of the encoder, heads and tables (default 0.001).
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
}

fn default_d_model() -> usize {
    16
}
fn default_layers() -> usize {
    2
}
fn default_heads() -> usize {
    2
}
fn default_max_len() -> usize {
    50
}
fn default_mask_prob() -> f64 {
    0.2
}
fn default_candidates() -> usize {
    1024
}
fn default_category_weight() -> f64 {
    0.5
}
fn default_sequences() -> usize {
    128
}
fn default_learning_rate() -> f64 {
    1e-3
}

impl Default for SrpPretrainConfig {
    fn default() -> Self {
        SrpPretrainConfig {
            d_model: default_d_model(),
            layers: default_layers(),
            heads: default_heads(),
            max_len: default_max_len(),
            mask_prob: default_mask_prob(),
            candidates: default_candidates(),
            category_weight: default_category_weight(),
            sequences_per_step: default_sequences(),
            learning_rate: default_learning_rate(),
        }
    }
}

impl SrpPretrainConfig {
    /// The encoder these settings build.
    pub fn encoder(&self) -> SrpEncoderConfig {
        SrpEncoderConfig::new()
            .with_d_model(self.d_model)
            .with_n_layers(self.layers)
            .with_n_heads(self.heads)
            .with_max_len(self.max_len)
    }

    /// Checks every field; the error names it (`srp.<field>`).
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("srp.d-model", self.d_model),
            ("srp.layers", self.layers),
            ("srp.heads", self.heads),
            ("srp.max-len", self.max_len),
            ("srp.candidates", self.candidates),
            ("srp.sequences-per-step", self.sequences_per_step),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ModelsError::config(field, "must be at least 1"));
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return Err(ModelsError::config(
                "srp.heads",
                format!("{} does not divide d-model {}", self.heads, self.d_model),
            ));
        }
        if !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            return Err(ModelsError::config(
                "srp.mask-prob",
                format!("{} is not in (0, 1)", self.mask_prob),
            ));
        }
        if !(self.category_weight.is_finite() && self.category_weight >= 0.0) {
            return Err(ModelsError::config(
                "srp.category-weight",
                format!("{} is not a non-negative number", self.category_weight),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ModelsError::config(
                "srp.learning-rate",
                format!("{} is not a positive number", self.learning_rate),
            ));
        }
        Ok(())
    }

    /// The config of the item (`salt` 1) or category (2) table: `base` (the trainer's table
    /// settings: admission, bound, expiry) at width `d-model` with its own seed and step size.
    fn table(
        &self,
        base: Option<&EmbeddingTableConfig>,
        seed: u64,
        salt: u64,
    ) -> EmbeddingTableConfig {
        let mut config = base
            .cloned()
            .unwrap_or_else(|| EmbeddingTableConfig::new(self.d_model));
        config.dim = self.d_model;
        config.seed = mix64(seed ^ 0x5352_5034 ^ salt.rotate_left(40));
        config.optimizer = SparseAdamConfig {
            learning_rate: self.learning_rate as f32,
            ..config.optimizer
        };
        config
    }
}

/// Counters of SRP pre-training (carried through checkpoints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SrpStats {
    /// Steps taken (batches with at least one target).
    pub steps: u64,
    /// Sequences trained on.
    pub sequences: u64,
    /// Masked positions scored.
    pub targets: u64,
    /// The last step's loss.
    pub last_loss: f32,
    /// Sum of the step losses (mean = `loss_sum / steps`).
    pub loss_sum: f64,
}

/// Reusable per-step buffers.
#[derive(Debug, Default)]
struct Scratch {
    users: HashSet<u64>,
    chosen: Vec<usize>,
    layout: TokenLayout,
    masked: Vec<bool>,
    item_lookup: Lookup,
    category_lookup: Lookup,
    rows: Vec<f32>,
    candidate_of: Vec<i64>,
    candidates: Vec<i64>,
}

/// SRP4CTR masked-behaviour pre-training: an encoder, its heads and its own item and category
/// tables (see the module docs).
pub struct SrpPretrainer {
    config: SrpPretrainConfig,
    seed: u64,
    device: Device,
    /// Always `Some` between calls (taken while the optimiser steps).
    net: Option<SrpPretrainNet>,
    optim: ModuleOptimizer,
    item: EmbeddingTable,
    category: EmbeddingTable,
    stats: SrpStats,
    scratch: Scratch,
}

impl std::fmt::Debug for SrpPretrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrpPretrainer")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn optimizer() -> ModuleOptimizer {
    AdamConfig::new().init()
}

fn tensor_error(blob: &str, reason: impl ToString) -> ModelsError {
    ModelsError::TrainerCheckpoint {
        blob: blob.to_string(),
        reason: reason.to_string(),
    }
}

impl SrpPretrainer {
    /// A fresh pre-trainer on `device` (an autodiff device), seeded from `seed`; `item_table`
    /// is the trainer's item table config, whose admission, bound and expiry both SRP tables
    /// take (None: the defaults).
    pub fn new(
        config: SrpPretrainConfig,
        seed: u64,
        item_table: Option<&EmbeddingTableConfig>,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let net = build_seeded(
            device,
            mix64(seed ^ 0x5352_5034),
            || SrpPretrainNetConfig::new(config.encoder()).init(device),
            |net| Some(net),
        );
        let item = EmbeddingTable::new(config.table(item_table, seed, 1))?;
        let category = EmbeddingTable::new(config.table(item_table, seed, 2))?;
        Ok(Self::assemble(
            config,
            seed,
            device.clone(),
            net,
            item,
            category,
            SrpStats::default(),
            optimizer(),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        config: SrpPretrainConfig,
        seed: u64,
        device: Device,
        net: SrpPretrainNet,
        item: EmbeddingTable,
        category: EmbeddingTable,
        stats: SrpStats,
        optim: ModuleOptimizer,
    ) -> Self {
        SrpPretrainer {
            config,
            seed,
            device,
            net: Some(net),
            optim,
            item,
            category,
            stats,
            scratch: Scratch::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SrpPretrainConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> SrpStats {
        self.stats
    }

    /// The pre-training network.
    pub fn net(&self) -> &SrpPretrainNet {
        self.net.as_ref().expect("net present between calls")
    }

    /// The encoder as it is now (inference copy).
    pub fn encoder(&self) -> SrpEncoder {
        self.net().valid().encoder
    }

    /// The item and category tables.
    pub fn tables(&self) -> (&EmbeddingTable, &EmbeddingTable) {
        (&self.item, &self.category)
    }

    /// One masked-behaviour step on `batch` (the trainer's `step` keys the masking); returns
    /// the loss, or `None` when the batch has no usable target (no behaviours yet, or only
    /// ids that still read the default row).
    ///
    /// # Errors
    /// [`ModelsError::NonFiniteLoss`] naming the step (nothing is updated).
    pub fn train_step(&mut self, batch: &FeatureBatch, step: u64) -> Result<Option<f32>> {
        let d = self.config.d_model;
        let len = self.config.max_len;
        let device = self.device.clone();
        let s = &mut self.scratch;

        // 1. One sequence per user, in batch order, at most `sequences-per-step`.
        targets::choose_rows(
            batch,
            self.config.sequences_per_step,
            &mut s.users,
            &mut s.chosen,
        );
        if s.chosen.is_empty() {
            return Ok(None);
        }
        s.layout.fill(&batch.long, s.chosen.iter().copied(), len);
        let layout = &s.layout;
        let rows = layout.rows;

        // 2. Masking: a function of (seed, step) only.
        let mut rng = SplitMix64::keyed(self.seed, 0x5352_504d, step);
        targets::mask_tokens(layout, self.config.mask_prob, &mut rng, &mut s.masked);

        // 3. Lookups (training: admits new ids), targets, and the shared negatives: up to
        // `candidates` distinct rows of the batch, each target's own item masked out of them
        // ("accidental hit"). Cost M x N, linear in the batch.
        self.item
            .lookup(&layout.ids, batch.day, true, &mut s.item_lookup);
        let with_categories = !layout.categories.is_empty();
        if with_categories {
            self.category
                .lookup(&layout.categories, batch.day, true, &mut s.category_lookup);
        }
        let item_u = s.item_lookup.unique_len();
        let item_pos = s.item_lookup.positions();
        let Targets {
            item_cells: target_cells,
            item_rows: item_targets,
            category_cells,
            category_rows: category_targets,
        } = Targets::collect(
            layout,
            &s.masked,
            &s.item_lookup,
            with_categories.then_some(&s.category_lookup),
        );
        if item_targets.is_empty() {
            return Ok(None);
        }
        let n_negatives = self.config.candidates.min(item_u);
        let hits = targets::sample_negatives(
            item_u,
            n_negatives,
            &item_targets,
            &mut rng,
            &mut s.candidates,
            &mut s.candidate_of,
        );

        let float = |values: Vec<f32>, shape: [usize; 2]| {
            Tensor::<2>::from_data(TensorData::new(values, shape), &device)
        };
        let int = |values: Vec<i64>| {
            let n = values.len();
            Tensor::<1, Int>::from_data(TensorData::new(values, [n]), &device)
        };
        self.item.gather(&s.item_lookup, &mut s.rows)?;
        s.rows.resize((item_u + 1) * d, 0.0);
        let item_leaf = float(s.rows.clone(), [item_u + 1, d]).require_grad();
        let (category_u, category_leaf) = if with_categories {
            let u = s.category_lookup.unique_len();
            self.category.gather(&s.category_lookup, &mut s.rows)?;
            s.rows.resize((u + 1) * d, 0.0);
            (u, Some(float(s.rows.clone(), [u + 1, d]).require_grad()))
        } else {
            (0, None)
        };

        // Token grid: every cell reads the padding row unless a real token sits there.
        let grid = |positions: &[u32], pad: usize| {
            let mut index = vec![pad as i64; rows * len];
            for (&cell, &p) in layout.cells.iter().zip(positions) {
                index[cell as usize] = i64::from(p);
            }
            int(index)
        };
        let mut token_embeddings = item_leaf
            .clone()
            .select(0, grid(item_pos, item_u))
            .reshape([rows, len, d]);
        if let Some(leaf) = &category_leaf {
            token_embeddings = token_embeddings
                + leaf
                    .clone()
                    .select(0, grid(s.category_lookup.positions(), category_u))
                    .reshape([rows, len, d]);
        }
        let bool_grid = |values: &[bool]| {
            Tensor::<2, burn::tensor::Bool>::from_data(
                TensorData::new(values.to_vec(), [rows, len]),
                &device,
            )
        };
        let net = self.net.take().expect("net present between calls");
        let encoded = net
            .encode_masked(
                token_embeddings,
                bool_grid(&s.masked),
                bool_grid(&layout.mask),
            )
            .reshape([rows * len, d]);

        // 4. Sampled softmax: each target against the shared negatives; softmax over the
        // batch's categories.
        let n_targets = item_targets.len();
        let queries = net
            .item_head
            .forward(encoded.clone().select(0, int(target_cells))); // [M, d]
        let positives = item_leaf.clone().select(0, int(item_targets)); // [M, d]
        let positive_scores = (queries.clone() * positives).sum_dim(1); // [M, 1]
        let negatives = item_leaf.clone().select(0, int(s.candidates.clone())); // [N, d]
        let hits = Tensor::<2, burn::tensor::Bool>::from_data(
            TensorData::new(hits, [n_targets, n_negatives]),
            &device,
        );
        let negative_scores = queries
            .matmul(negatives.transpose())
            .mask_fill(hits, -1.0e9); // [M, N]
        let logits = Tensor::cat(vec![positive_scores, negative_scores], 1); // [M, 1 + N]
        let targets = int(vec![0; n_targets]).reshape([n_targets, 1]);
        let mut loss = log_softmax(logits, 1).gather(1, targets).mean().neg();
        if let Some(leaf) = &category_leaf
            && !category_targets.is_empty()
            && self.config.category_weight > 0.0
        {
            let m = category_targets.len();
            let queries = net
                .category_head
                .forward(encoded.select(0, int(category_cells)));
            let all = leaf.clone().slice([0..category_u, 0..d]);
            let logits = queries.matmul(all.transpose()); // [Mc, Uc]
            let targets = int(category_targets).reshape([m, 1]);
            let category_loss = log_softmax(logits, 1).gather(1, targets).mean().neg();
            loss = loss + category_loss.mul_scalar(self.config.category_weight);
        }
        let value: f32 = loss.clone().into_scalar();
        if !value.is_finite() {
            self.net = Some(net);
            return Err(ModelsError::NonFiniteLoss { step, rows, value });
        }

        // 5. Row-sparse table updates, Adam on the dense part.
        let mut grads = loss.backward();
        let row_grads = |leaf: &Tensor<2>, grads: &mut _, u: usize| -> Vec<f32> {
            let mut g = match leaf.grad_remove(grads) {
                Some(g) => g
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("float tensors hold f32"),
                None => vec![0.0; (u + 1) * d],
            };
            g.truncate(u * d); // the padding row's gradient is dropped
            g
        };
        let item_grads = row_grads(&item_leaf, &mut grads, item_u);
        let category_grads = category_leaf
            .as_ref()
            .map(|leaf| row_grads(leaf, &mut grads, category_u));
        let dense = GradientsParams::from_grads(grads, &net);
        self.net = Some(self.optim.step(self.config.learning_rate, net, dense));
        self.item.apply_gradients(&s.item_lookup, &item_grads)?;
        if let Some(g) = category_grads {
            self.category.apply_gradients(&s.category_lookup, &g)?;
        }
        self.stats.steps += 1;
        self.stats.sequences += rows as u64;
        self.stats.targets += n_targets as u64;
        self.stats.last_loss = value;
        self.stats.loss_sum += f64::from(value);
        Ok(Some(value))
    }

    /// What `CtrNet` reads: the encoder and the two tables, as bytes.
    pub fn artifact(&self) -> Result<SrpArtifact> {
        let model = Checkpoint::capture(
            &SrpPretrainNetConfig::new(self.config.encoder()),
            self.net(),
        )
        .map_err(|e| tensor_error(blobs::MODEL, e))?;
        Ok(SrpArtifact {
            config: self.config.clone(),
            model: model.weights,
            item: self.item.to_bytes(),
            category: self.category.to_bytes(),
        })
    }

    /// The whole state as named blobs (see [`blobs`]).
    pub fn to_blobs(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let artifact = self.artifact()?;
        let config =
            serde_json::to_vec_pretty(&self.config).map_err(|e| tensor_error(blobs::CONFIG, e))?;
        let optimizer = self
            .optim
            .into_bytes()
            .map_err(|e| tensor_error(blobs::OPTIMIZER, e))?;
        let state = serde_json::to_vec(&self.stats).map_err(|e| tensor_error(blobs::STATE, e))?;
        Ok(vec![
            (blobs::CONFIG, config),
            (blobs::MODEL, artifact.model),
            (blobs::OPTIMIZER, optimizer.to_vec()),
            (blobs::ITEM_TABLE, artifact.item),
            (blobs::CATEGORY_TABLE, artifact.category),
            (blobs::STATE, state),
        ])
    }

    /// A pre-trainer continuing from blobs [`to_blobs`](Self::to_blobs) wrote; `get` returns a
    /// blob by name.
    pub fn from_blobs<'a>(
        get: impl Fn(&str) -> Result<&'a [u8]>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let artifact = SrpArtifact::from_blobs(&get)?;
        let net = artifact.restore_net(device)?.train();
        let (item, category) = artifact.tables()?;
        let stats: SrpStats = serde_json::from_slice(get(blobs::STATE)?)
            .map_err(|e| tensor_error(blobs::STATE, e))?;
        let optim = optimizer()
            .from_bytes(Bytes::from_bytes_vec(get(blobs::OPTIMIZER)?.to_vec()))
            .map_err(|e| tensor_error(blobs::OPTIMIZER, e))?;
        Ok(Self::assemble(
            artifact.config,
            seed,
            device.clone(),
            net,
            item,
            category,
            stats,
            optim,
        ))
    }
}

/// Blob names of SRP pre-training inside a TPM [`TrainerCheckpoint`](super::TrainerCheckpoint).
pub mod blobs {
    /// The [`SrpPretrainConfig`](super::SrpPretrainConfig), JSON.
    pub const CONFIG: &str = "srp.json";
    /// Encoder, `[MASK]` token and heads, burnpack.
    pub const MODEL: &str = "srp-model.bpk";
    /// Adam state of the dense part, burnpack.
    pub const OPTIMIZER: &str = "srp-optimizer.bpk";
    /// The SRP item table.
    pub const ITEM_TABLE: &str = "srp-table-item.bin";
    /// The SRP category table.
    pub const CATEGORY_TABLE: &str = "srp-table-category.bin";
    /// Counters, JSON.
    pub const STATE: &str = "srp-state.json";
    /// What `CtrNet` reads (a consumer fetches only these).
    pub const ARTIFACT: [&str; 4] = [CONFIG, MODEL, ITEM_TABLE, CATEGORY_TABLE];
}
