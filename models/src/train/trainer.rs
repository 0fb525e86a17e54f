//! The training step shared by [`CtrTrainer`] and [`TpmTrainer`]: tables outside autodiff,
//! leaves that require grad, ETA retrieval, forward, loss, backward, row-sparse table updates
//! and burn's Adam on the dense part.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, decay::WeightDecayConfig};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::check::check_batch;
use super::config::TableRole;
use super::eta_codes::CodeCache;
use super::item_rows::{CategoryRows, ItemRows, with_pad_row};
use super::net::{NetInputs, NetSpec, TrainableNet};
use super::plugin_cache::PluginCache;
use super::srp::tokens::TokenLayout;
use super::srp::{SrpPretrainer, SrpTables};
use super::{CONTEXT_WIDTH, FeatureBatch, IndexedBatch, TrainConfig};
use crate::embedding::{Day, DistinctIds, EmbeddingTable, Lookup, SnapshotTable};
use crate::error::{ModelsError, Result};
use crate::eta::SimHash;
use crate::metrics::{self, Evaluation};
use crate::nn::{CtrNet, NetConfig, Tpm, bce_with_logits};
use crate::rng::{build_seeded, burn_rng_lock, mix64};

mod external;
mod srp_branch;

/// The trainer of the CPM / A-CTR network.
pub type CtrTrainer = Trainer<CtrNet>;
/// The trainer of TPM.
pub type TpmTrainer = Trainer<Tpm>;

/// The three embedding tables a trainer owns.
#[derive(Debug)]
pub struct Tables {
    /// User ids.
    pub user: EmbeddingTable,
    /// Item ids: the candidate and both behaviour sequences.
    pub item: EmbeddingTable,
    /// Category ids of the candidate.
    pub category: EmbeddingTable,
}

/// The TPM snapshot tables of users and of items (the same number, the same order: newest
/// first), read-only inputs of the historical-embedding feature. An id absent from a snapshot
/// reads zeros.
///
/// Without [`point_in_time`](Self::point_in_time) every row reads all the tables (`K` of
/// them). With it, the tables are a longer history and each row reads only the `K` newest
/// snapshots that were available on its own event day.
#[derive(Debug, Default, Clone)]
pub struct HistoricalTables {
    /// User snapshot tables, newest first.
    pub user: Vec<SnapshotTable>,
    /// Item snapshot tables, newest first (may be empty when the network reads no item
    /// feature).
    pub item: Vec<SnapshotTable>,
    /// Per-row snapshot choice for training on past days; `None`: every row reads every table.
    pub point_in_time: Option<PointInTime>,
}

/// Which snapshots a row reads when the tables span more than one publication: a row of
/// event day `d` reads the `k` newest snapshots available on `d`, i.e. the first `k` tables
/// (newest first) whose `available_from` day is on or before `d`, and zeros in the places of
/// any that do not exist yet. A row on or after the newest snapshot's day reads the first `k`
/// tables, exactly as without point-in-time reads, so evaluation and serving on the day after
/// the window are unchanged; rows of earlier days read what a model serving on their day would
/// have read, not snapshots trained on data from after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointInTime {
    /// Snapshots per row (`K`).
    pub k: usize,
    /// Per table (same order as the tables: newest first, so non-increasing), the first event
    /// day a row may read it on (the day its TPM version was published).
    pub available_from: Vec<Day>,
}

impl PointInTime {
    /// Index of the first table a row of day `day` may read: tables before it were published
    /// after `day`.
    pub fn first_table(&self, day: Day) -> usize {
        self.available_from.partition_point(|&from| from > day)
    }
}

/// Counters of a trainer since it was created (carried through checkpoints).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainStats {
    /// Training steps completed.
    pub steps: u64,
    /// Rows trained on.
    pub samples: u64,
    /// Training rows whose history was longer than the long sequence.
    pub truncated_rows: u64,
    /// Behaviour ids dropped by that truncation.
    pub truncated_ids: u64,
}

/// (item, content) outputs a trainer's plug-in cache holds at most (with `p = 16`, 64 MiB of
/// outputs).
pub const PLUGIN_CACHE_ENTRIES: usize = 1 << 20;

/// Reusable per-step buffers.
#[derive(Debug, Default)]
struct Scratch {
    lookups: [Lookup; 3],
    item_ids: Vec<u64>,
    /// Gathered rows; each leaf takes the buffer (no copy), the next gather starts a new one.
    rows: Vec<f32>,
    codes: Vec<u64>,
    /// ETA codes of the item table's rows, recomputed only for rows that changed.
    code_cache: CodeCache,
    /// The item rows the network reads (ETA's choice included) and their leaf indices.
    item_rows: ItemRows,
    /// The behaviours' category rows (networks with `sequence_categories`).
    category_rows: CategoryRows,
    /// The plug-in tower's outputs for the batch.
    plugin: Vec<f32>,
    /// SRP4CTR: the batch's behaviour tokens, their lookups and token values.
    srp_layout: TokenLayout,
    srp_lookups: [Lookup; 2],
    srp_rows: Vec<f32>,
}

/// One batch's leaves (training) and network inputs.
struct Prepared {
    leaves: [Tensor<2>; 3],
    inputs: NetInputs,
}

/// Trains one network (`CtrNet` or `Tpm`) and its three embedding tables, one batch per
/// [`train_step`](Self::train_step); the network on `config.device` with autodiff (burn's
/// `flex` CPU backend by default), the tables and ETA retrieval in plain Rust.
///
/// Construction seeds burn's device RNG, which is process-wide: build a trainer on the thread
/// that trains it and do not draw random tensors concurrently if runs must be reproducible.
pub struct Trainer<N: TrainableNet> {
    config: TrainConfig,
    net_config: N::Config,
    spec: NetSpec,
    device: Device,
    /// Always `Some` between calls (taken while the optimiser steps).
    net: Option<N>,
    optim: ModuleOptimizer,
    tables: Tables,
    historical: Option<HistoricalTables>,
    simhash: SimHash,
    /// Outputs of the frozen plug-in tower per (item, content) (networks with a plug-in).
    plugin_cache: PluginCache,
    /// SRP4CTR pre-training riding along this trainer (TPM), if enabled.
    srp_pretrainer: Option<SrpPretrainer>,
    /// The frozen SRP tables the network's SRP branch reads tokens from (`CtrNet` with SRP).
    srp_tables: Option<SrpTables>,
    stats: TrainStats,
    scratch: Scratch,
}

impl<N: TrainableNet> std::fmt::Debug for Trainer<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("spec", &self.spec)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Burn's Adam for the dense parameters of `config`.
pub(crate) fn dense_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let weight_decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    AdamConfig::new().with_weight_decay(weight_decay).init()
}

fn int_tensor(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn bool_tensor(values: Vec<bool>, shape: [usize; 2], device: &Device) -> Tensor<2, Bool> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn float_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn to_vec(tensor: Tensor<2>) -> Vec<f32> {
    tensor
        .into_data()
        .try_to_vec::<f32>()
        .expect("float tensors hold f32")
}

impl<N: TrainableNet> Trainer<N> {
    /// A fresh trainer: network initialised from `config.seed`, empty tables.
    pub fn new(config: TrainConfig, net_config: N::Config) -> Result<Self> {
        config.validate()?;
        let spec = N::spec(&net_config)?;
        let device = config.device.burn_device()?.autodiff();
        let net = build_seeded(
            &device,
            config.seed,
            || net_config.build(&device),
            |net| Some(net),
        );
        let tables = Tables {
            user: EmbeddingTable::new(config.table(TableRole::User, spec.d_embed)?)?,
            item: EmbeddingTable::new(config.table(TableRole::Item, spec.d_embed)?)?,
            category: EmbeddingTable::new(config.table(TableRole::Category, spec.d_embed)?)?,
        };
        Self::assemble(
            config,
            net_config,
            spec,
            device,
            net,
            tables,
            TrainStats::default(),
        )
    }

    pub(crate) fn assemble(
        config: TrainConfig,
        net_config: N::Config,
        spec: NetSpec,
        device: Device,
        net: N,
        tables: Tables,
        stats: TrainStats,
    ) -> Result<Self> {
        if let Some(seq) = spec.sequences
            && seq.short_len != config.features.short_len
        {
            return Err(ModelsError::config(
                "features.short-len",
                format!(
                    "{} differs from the network's short_len {}",
                    config.features.short_len, seq.short_len
                ),
            ));
        }
        let simhash = SimHash::new(
            spec.d_embed,
            config.simhash_bits,
            mix64(config.seed ^ 0x4554_4100),
        )?;
        let optim = dense_optimizer(&config);
        let net = net.freeze_fixed(&config);
        Ok(Trainer {
            config,
            net_config,
            spec,
            device,
            net: Some(net),
            optim,
            tables,
            historical: None,
            simhash,
            plugin_cache: PluginCache::new(PLUGIN_CACHE_ENTRIES),
            srp_pretrainer: None,
            srp_tables: None,
            stats,
            scratch: Scratch::default(),
        })
    }

    pub(crate) fn set_optimizer(&mut self, optim: ModuleOptimizer) {
        self.optim = optim;
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The inputs the network takes (from its config).
    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// The network's configuration.
    pub fn net_config(&self) -> &N::Config {
        &self.net_config
    }

    /// The network (on the autodiff device, training mode).
    pub fn net(&self) -> &N {
        self.net.as_ref().expect("net present between calls")
    }

    /// The embedding tables.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The embedding tables, mutably: for [`EmbeddingTable::expire`] between steps (a
    /// change of rows never invalidates the trainer, which looks ids up afresh every step).
    pub fn tables_mut(&mut self) -> &mut Tables {
        &mut self.tables
    }

    /// The counters.
    pub fn stats(&self) -> TrainStats {
        self.stats
    }

    /// Training steps completed.
    pub fn step(&self) -> u64 {
        self.stats.steps
    }

    pub(crate) fn optimizer(&self) -> &ModuleOptimizer {
        &self.optim
    }

    /// One training step on `batch`: returns the batch's mean loss (before the update).
    ///
    /// # Errors
    /// [`ModelsError::NonFiniteInput`] / [`ModelsError::NonFiniteLoss`] naming the step:
    /// nothing is updated (a training lookup may still have admitted the batch's new ids).
    /// Config errors when historical tables are required but not set.
    pub fn train_step(&mut self, batch: &FeatureBatch) -> Result<f32> {
        self.step_on(batch, None)
    }

    /// [`train_step`](Self::train_step) on a batch whose item ids were de-duplicated ahead
    /// (the training thread does that for the next batch while this step runs). Same result.
    ///
    /// # Errors
    /// As [`train_step`](Self::train_step).
    pub fn train_step_indexed(&mut self, batch: &IndexedBatch) -> Result<f32> {
        let indexed_for_this_network = batch.with_sequences() == self.spec.sequences.is_some();
        let item_ids = indexed_for_this_network.then(|| batch.item_ids());
        self.step_on(batch.features(), item_ids)
    }

    fn step_on(&mut self, batch: &FeatureBatch, item_ids: Option<&DistinctIds>) -> Result<f32> {
        // SRP4CTR pre-training (a TPM's) reads the sequences even when the network does not.
        if self.srp_pretrainer.is_some() && batch.without_sequences {
            return Err(super::check::missing_sequences());
        }
        let step = self.stats.steps;
        let rows = batch.rows();
        // Per-step RNG (dropout): a function of (seed, step), so a resumed run draws the same.
        // The lock keeps other trainers of the process from reseeding before the forward pass.
        let rng = burn_rng_lock();
        self.device.seed(mix64(self.config.seed ^ mix64(step)));
        let device = self.device.clone();
        let Prepared { leaves, inputs } = self.prepare(batch, item_ids, &device, true)?;
        let net = self.net.take().expect("net present between calls");
        let labels = float_tensor(batch.labels.clone(), [rows, 1], &device);
        let loss = bce_with_logits(net.logits(inputs), labels);
        drop(rng);
        let value: f32 = loss.clone().into_scalar();
        if !value.is_finite() {
            self.net = Some(net);
            return Err(ModelsError::NonFiniteLoss { step, rows, value });
        }
        let mut grads = loss.backward();
        // Row gradients of the three leaves, taken before the dense gradients are collected.
        let d = self.spec.d_embed;
        let mut row_grads: [Vec<f32>; 3] = Default::default();
        for (out, leaf) in row_grads.iter_mut().zip(&leaves) {
            let [u, _] = leaf.dims();
            *out = match leaf.grad_remove(&mut grads) {
                Some(g) => to_vec(g),
                None => vec![0.0; u * d],
            };
        }
        // The item and category leaves have one extra zero row for padding: its gradient is
        // dropped.
        let item_rows = self.scratch.item_rows.used.len();
        row_grads[1].truncate(item_rows * d);
        row_grads[2].truncate(self.scratch.lookups[2].unique_len() * d);
        // Check every table's gradients before changing anything.
        for (g, feature) in
            row_grads
                .iter()
                .zip(["user-gradient", "item-gradient", "category-gradient"])
        {
            if let Some(i) = g.iter().position(|v| !v.is_finite()) {
                self.net = Some(net);
                return Err(ModelsError::NonFiniteInput {
                    step,
                    feature,
                    row: i / d,
                    value: g[i],
                });
            }
        }
        let dense = GradientsParams::from_grads(grads, &net);
        self.net = Some(self.optim.step(self.config.learning_rate, net, dense));
        let [user_grads, item_grads, category_grads] = &row_grads;
        let [user_lookup, item_lookup, category_lookup] = &self.scratch.lookups;
        self.tables.user.apply_gradients(user_lookup, user_grads)?;
        self.tables.item.apply_gradients_to(
            item_lookup,
            &self.scratch.item_rows.used,
            item_grads,
        )?;
        self.tables
            .category
            .apply_gradients(category_lookup, category_grads)?;
        // SRP4CTR pre-training takes its own step on the same batch.
        if let Some(pretrainer) = &mut self.srp_pretrainer {
            pretrainer.train_step(batch, step)?;
        }
        self.stats.steps += 1;
        self.stats.samples += rows as u64;
        self.stats.truncated_rows += batch.truncated_rows as u64;
        self.stats.truncated_ids += batch.truncated_ids;
        Ok(value)
    }

    /// Click probabilities of `batch`'s rows: evaluation lookups (no admission, no recency
    /// update) and the network's inference copy (`valid()`: running batch-norm statistics).
    pub fn predict(&mut self, batch: &FeatureBatch) -> Result<Vec<f32>> {
        let device = self.device.clone().without_autodiff();
        let Prepared { inputs, .. } = self.prepare(batch, None, &device, false)?;
        let net = self.net().valid();
        let probabilities = burn::tensor::activation::sigmoid(net.logits(inputs));
        Ok(to_vec(probabilities))
    }

    /// AUC, GAUC (by user), logloss and calibration of the predictions over `batches`.
    pub fn evaluate<'a>(
        &mut self,
        batches: impl IntoIterator<Item = &'a FeatureBatch>,
    ) -> Result<Evaluation> {
        let (mut predictions, mut labels, mut users) = (Vec::new(), Vec::new(), Vec::new());
        for batch in batches {
            predictions.extend(self.predict(batch)?.into_iter().map(f64::from));
            labels.extend(batch.labels.iter().map(|&l| u8::from(l > 0.5)));
            users.extend_from_slice(&batch.user_ids);
        }
        Ok(metrics::evaluate(&predictions, &labels, &users)?)
    }

    /// Checks the batch, looks its ids up, gathers the rows into leaves and builds the inputs.
    fn prepare(
        &mut self,
        batch: &FeatureBatch,
        item_ids: Option<&DistinctIds>,
        device: &Device,
        train: bool,
    ) -> Result<Prepared> {
        let step = self.stats.steps;
        let rows = batch.rows();
        let d = self.spec.d_embed;
        check_batch(batch, &self.spec, step)?;
        let content_width = self.spec.content_width;
        let with_categories = self.spec.sequences.is_some_and(|q| q.categories);
        let historical = self.historical_inputs(batch, device)?;

        // One lookup per table; the item table resolves candidate + short + long together.
        let s = &mut self.scratch;
        let sequences = self.spec.sequences;
        let day = batch.day;
        let [user_lookup, item_lookup, category_lookup] = &mut s.lookups;
        self.tables
            .user
            .lookup(&batch.user_ids, day, train, user_lookup);
        match item_ids {
            // De-duplicated ahead, from the same `item_table_ids`.
            Some(distinct) => {
                self.tables
                    .item
                    .lookup_distinct(distinct, day, train, item_lookup);
            }
            None => {
                s.item_ids.clear();
                for ids in batch.item_table_ids(sequences.is_some()) {
                    s.item_ids.extend_from_slice(ids);
                }
                self.tables
                    .item
                    .lookup(&s.item_ids, day, train, item_lookup);
            }
        }

        let leaf = |rows: Vec<f32>, u: usize| {
            let t = float_tensor(rows, [u, d], device);
            if train { t.require_grad() } else { t }
        };
        let user_u = user_lookup.unique_len();
        self.tables.user.gather(user_lookup, &mut s.rows)?;
        let user_leaf = leaf(std::mem::take(&mut s.rows), user_u);
        let item_u = item_lookup.unique_len();
        // ETA codes of the current item rows (no gradient through the hash).
        if sequences.is_some_and(|q| !q.full_long_attention) {
            s.code_cache.codes(
                &self.tables.item,
                item_lookup.unique_slots(),
                &self.simhash,
                &mut s.codes,
            )?;
        }
        let positions = item_lookup.positions();

        s.item_rows
            .select(batch, positions, item_u, &s.codes, sequences)?;
        let picked = &s.item_rows;
        // Only the rows the network reads, and one zero row for padding.
        self.tables
            .item
            .gather_rows(item_lookup, &picked.used, &mut s.rows)?;
        s.rows.resize((picked.used.len() + 1) * d, 0.0);
        let item_leaf = leaf(std::mem::take(&mut s.rows), picked.used.len() + 1);

        // Categories: the candidates', and the behaviours' when the network adds them (the
        // long ones only for the behaviours it attends to). One zero row for padding.
        let categories = if with_categories {
            s.category_rows.collect_ids(batch, picked);
            &s.category_rows.ids
        } else {
            &batch.category_ids
        };
        self.tables
            .category
            .lookup(categories, day, train, category_lookup);
        let category_u = category_lookup.unique_len();
        self.tables.category.gather(category_lookup, &mut s.rows)?;
        s.rows.resize((category_u + 1) * d, 0.0);
        let category_leaf = leaf(std::mem::take(&mut s.rows), category_u + 1);

        let as_index = |p: &[u32]| p.iter().map(|&i| i64::from(i)).collect::<Vec<_>>();
        let select =
            |leaf: &Tensor<2>, index: Vec<i64>| leaf.clone().select(0, int_tensor(index, device));
        let user = select(&user_leaf, as_index(user_lookup.positions()));
        let category = select(
            &category_leaf,
            as_index(&category_lookup.positions()[..rows]),
        );
        let item = select(&item_leaf, picked.remap(&picked.item_index));
        let (short, long) = if sequences.is_some() {
            let (short_len, long_len) = (picked.short_len, picked.long_len);
            let short_seq =
                select(&item_leaf, picked.remap(&picked.short_index)).reshape([rows, short_len, d]);
            let long_seq =
                select(&item_leaf, picked.remap(&picked.long_index)).reshape([rows, long_len, d]);
            let short_mask = bool_tensor(picked.short_mask.clone(), [rows, short_len], device);
            let long_mask = bool_tensor(picked.long_mask.clone(), [rows, long_len], device);
            (Some((short_seq, short_mask)), Some((long_seq, long_mask)))
        } else {
            (None, None)
        };
        let behaviour_categories = with_categories.then(|| {
            let rows_of = &mut s.category_rows;
            rows_of.place(batch, picked, category_lookup.positions());
            let (short_len, long_len) = (picked.short_len, picked.long_len);
            let short = select(
                &category_leaf,
                with_pad_row(&rows_of.short_index, category_u),
            )
            .reshape([rows, short_len, d]);
            let long = select(
                &category_leaf,
                with_pad_row(&rows_of.long_index, category_u),
            )
            .reshape([rows, long_len, d]);
            (short, long)
        });
        let content = self
            .spec
            .content_input
            .then(|| float_tensor(batch.content.clone(), [rows, content_width], device));
        // PPM: the frozen tower's outputs, from the cache (computed for new items only).
        let plugin = self.plugin_input(batch, device)?;
        // SRP4CTR: tokens of the most recent behaviours from the frozen SRP tables.
        let srp = self.srp_input(batch, device)?;

        let context = self
            .spec
            .context
            .then(|| float_tensor(batch.context.clone(), [rows, CONTEXT_WIDTH], device));
        let (historical_user, historical_item) = match historical {
            Some((u, i)) => (Some(u), i),
            None => (None, None),
        };
        Ok(Prepared {
            leaves: [user_leaf, item_leaf, category_leaf],
            inputs: NetInputs {
                user,
                item,
                category,
                context,
                short,
                long,
                behaviour_categories,
                content,
                plugin,
                historical_user,
                historical_item,
                srp,
            },
        })
    }
}
