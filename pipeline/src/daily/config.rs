//! `[daily]`: what the daily job and backfill do: the tri-level schedule, the networks, the
//! training settings of each model and the publish gate. Every field has a default.

use ctrflow_models::nn::{CtrNetConfig, PluginTowerConfig, SrpTransferConfig, TpmConfig};
use ctrflow_models::train::{CONTEXT_WIDTH, SrpPretrainConfig, TrainConfig};
use ctrflow_schedule::{ScheduleConfig, Start};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `[daily]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DailyConfig {
    /// `[daily.schedule]`: horizons, cadences, K snapshots, missing-day policy.
    pub schedule: ScheduleConfig,
    /// `[daily.network]`: the CPM / A-CTR network (one network, so A-CTR can start from CPM).
    pub network: NetworkConfig,
    /// `[daily.tpm-network]`: the tiny pre-training model.
    pub tpm_network: TpmNetworkConfig,
    /// `[daily.srp]`: SRP4CTR pre-training in the TPM job (with `[daily.tpm-network]
    /// pretrain-srp`): the encoder's shape and the masked-behaviour objective.
    pub srp: SrpPretrainConfig,
    /// `[daily.tpm]`: how TPM trains.
    pub tpm: ModelTraining,
    /// `[daily.cpm]`: how CPM trains.
    pub cpm: ModelTraining,
    /// `[daily.actr]`: how A-CTR trains.
    pub actr: ModelTraining,
    /// `[daily.gate]`: when a new A-CTR may replace the live one.
    pub gate: GateConfig,
    /// `[daily.read]`: how training data is read.
    pub read: ReadConfig,
    /// With `schedule.evaluate-on = "holdout"`: the share of each window's rows (by a hash of
    /// the event id) kept out of training and used for evaluation, 1..=50 (default 5).
    pub holdout_percent: u32,
}

impl Default for DailyConfig {
    fn default() -> Self {
        DailyConfig {
            schedule: ScheduleConfig::default(),
            network: NetworkConfig::default(),
            tpm_network: TpmNetworkConfig::default(),
            srp: SrpPretrainConfig::default(),
            tpm: ModelTraining::default(),
            cpm: ModelTraining::default(),
            actr: ModelTraining::default(),
            gate: GateConfig::default(),
            read: ReadConfig::default(),
            holdout_percent: 5,
        }
    }
}

/// How one model trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ModelTraining {
    /// Passes over the model's data window per run (default 1: streaming, each row once).
    pub epochs: u32,
    /// Passes when the run does not continue the model's previous version: a fresh start, or
    /// an A-CTR initialised from a new CPM (default: `epochs`). A restart reads the whole
    /// horizon, a continuing run only the new days: more passes can help the few new rows of
    /// a continuing run while over-fitting a long replay.
    pub initial_epochs: Option<u32>,
    /// `[daily.<model>.train]`: the trainer's settings (learning rate, batch size, shuffle
    /// buffer, seed, feature lengths, embedding tables).
    pub train: TrainConfig,
}

impl Default for ModelTraining {
    fn default() -> Self {
        // The trainer's own defaults, so that a partial `[daily.<model>.train]` table and no
        // table at all mean the same thing.
        ModelTraining {
            epochs: 1,
            initial_epochs: None,
            train: TrainConfig::default(),
        }
    }
}

impl ModelTraining {
    /// Passes for a run that starts as `start` says.
    pub fn epochs_for(&self, start: &Start) -> u32 {
        match start {
            Start::Continue(_) => self.epochs,
            Start::Fresh | Start::FromCpm(_) => self.initial_epochs.unwrap_or(self.epochs),
        }
    }
}

/// The CPM / A-CTR network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NetworkConfig {
    /// Width of the user, item and category embeddings.
    pub d_embed: usize,
    /// Long-term behaviours ETA retrieves per candidate (SimHash top-k).
    pub eta_top_k: usize,
    /// Attend over the whole long sequence instead of ETA's top-k (a baseline; slow).
    pub full_long_attention: bool,
    /// Hidden widths of DIN's activation unit.
    pub din_hidden: Vec<usize>,
    /// Heads of the long-sequence target attention (must divide `d-embed`).
    pub long_heads: usize,
    /// Hidden widths of the top MLP.
    pub mlp_hidden: Vec<usize>,
    /// Batch norm in the top MLP (reset when A-CTR starts from a CPM).
    pub batch_norm: bool,
    /// Dropout in the top MLP.
    pub dropout: f64,
    /// Use the TPM historical embeddings as a feature.
    pub use_historical: bool,
    /// With `use-historical`, the item's historical embedding too (the user's is always
    /// read). Turn it off when ads are never natural-domain items: TPM trains on the natural
    /// domain, so its item snapshots hold no ad, and A-CTR would read zeros where the CPM it
    /// starts from read real vectors (docs/results.md).
    pub historical_items: bool,
    /// With `use-historical`, each training row reads the TPM snapshots that were published
    /// on or before its own event day (the `K` newest of them) instead of the job's `K`
    /// newest: a replayed or re-trained day then sees what a model serving on that day would
    /// have read, not snapshots trained on data from after it. Evaluation on the day after the
    /// window reads the job's snapshots either way. Costs memory: every TPM snapshot a row of
    /// the training window can read is loaded. Off by default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub historical_point_in_time: bool,
    /// Add each behaviour's category embedding (`hist_category_ids`) to its item embedding,
    /// and the candidate's category to the attention query.
    pub sequence_categories: bool,
    /// Use the candidate's content vector (`item_content`, `[schema] content-dim` wide; a
    /// missing vector reads zeros) as a feature, projected to `d-embed`.
    pub use_content: bool,
    /// PPM: plug in the content tower the newest TPM pre-trained (`[daily.tpm-network]
    /// plugin-dim`), frozen, its outputs cached per item; only an adapter above it trains.
    pub use_plugin: bool,
    /// SRP4CTR: read the most recent behaviours through the encoder the newest TPM job
    /// pre-trained (`[daily.tpm-network] pretrain-srp`), frozen; the candidate attends into
    /// every encoder layer and `srp-queries` query tokens summarise the sequence.
    pub use_srp: bool,
    /// Query tokens of SRP4CTR's querying transformer.
    pub srp_queries: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            d_embed: 16,
            eta_top_k: 32,
            full_long_attention: false,
            din_hidden: vec![64, 32],
            long_heads: 2,
            mlp_hidden: vec![128, 64],
            batch_norm: true,
            dropout: 0.0,
            use_historical: true,
            historical_items: true,
            historical_point_in_time: false,
            sequence_categories: false,
            use_content: false,
            use_plugin: false,
            use_srp: false,
            srp_queries: 4,
        }
    }
}

/// The TPM network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TpmNetworkConfig {
    /// Width of TPM's embeddings: the width of a historical-embedding snapshot.
    pub d_embed: usize,
    /// Hidden widths of its MLP.
    pub hidden: Vec<usize>,
    /// Batch norm in its MLP.
    pub batch_norm: bool,
    /// PPM: width of the plug-in tower TPM pre-trains on the content vector (`item_content`),
    /// the width cached per item in CPM and A-CTR (0: no plug-in).
    pub plugin_dim: usize,
    /// Hidden widths of the plug-in tower.
    pub plugin_hidden: Vec<usize>,
    /// SRP4CTR: the TPM job also pre-trains the sequence encoder (`[daily.srp]`) on its
    /// batches and publishes it with its checkpoint.
    pub pretrain_srp: bool,
}

impl Default for TpmNetworkConfig {
    fn default() -> Self {
        TpmNetworkConfig {
            d_embed: 8,
            hidden: vec![32, 16],
            batch_norm: true,
            plugin_dim: 0,
            plugin_hidden: vec![32],
            pretrain_srp: false,
        }
    }
}

/// The publish gate of A-CTR: the new model and the live one are scored on the same
/// evaluation day; the new one is published only if it is not worse by more than these.
/// Negative values demand an improvement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GateConfig {
    /// Largest tolerated AUC drop against the live model.
    pub max_auc_drop: f64,
    /// Largest tolerated GAUC drop against the live model.
    pub max_gauc_drop: f64,
    /// Fewest evaluation rows for a verdict; with fewer the new model is rejected.
    pub min_eval_rows: u64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            max_auc_drop: 0.002,
            max_gauc_drop: 0.005,
            min_eval_rows: 100,
        }
    }
}

/// How training data is read from the landing tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ReadConfig {
    /// Rows per Arrow batch read from Parquet.
    pub batch_rows: usize,
    /// Batches in flight between the reader and the trainer (the backpressure bound).
    pub channel_batches: usize,
    /// Batches of the next landing file decoded ahead, in parallel with the one being
    /// delivered (0: one file at a time). Costs up to this many batches + 1 of memory.
    pub read_ahead_batches: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            batch_rows: 8192,
            channel_batches: 4,
            read_ahead_batches: 2,
        }
    }
}

impl DailyConfig {
    /// The CPM / A-CTR network config; `content_dim` is `[schema] content-dim`, the width of
    /// `item_content`.
    pub fn ctr_net(&self, content_dim: usize) -> CtrNetConfig {
        let n = &self.network;
        CtrNetConfig::new()
            .with_d_embed(n.d_embed)
            .with_d_context(CONTEXT_WIDTH)
            .with_short_len(self.cpm.train.features.short_len)
            .with_eta_top_k(n.eta_top_k)
            .with_full_long_attention(n.full_long_attention)
            .with_din_hidden(n.din_hidden.clone())
            .with_long_heads(n.long_heads)
            .with_use_historical(n.use_historical)
            .with_historical_items(n.historical_items)
            .with_d_hist(self.tpm_network.d_embed)
            .with_mlp_hidden(n.mlp_hidden.clone())
            .with_batch_norm(n.batch_norm)
            .with_dropout(n.dropout)
            .with_sequence_categories(n.sequence_categories)
            .with_d_content(if n.use_content { content_dim } else { 0 })
            .with_plugin(
                n.use_plugin
                    .then(|| self.plugin_tower(content_dim))
                    .flatten(),
            )
            .with_srp(
                n.use_srp.then(|| {
                    SrpTransferConfig::new(self.srp.encoder()).with_n_queries(n.srp_queries)
                }),
            )
    }

    /// The TPM network config (`content_dim` as for [`ctr_net`](Self::ctr_net)).
    pub fn tpm_net(&self, content_dim: usize) -> TpmConfig {
        let t = &self.tpm_network;
        TpmConfig::new()
            .with_d_embed(t.d_embed)
            .with_d_context(CONTEXT_WIDTH)
            .with_hidden(t.hidden.clone())
            .with_batch_norm(t.batch_norm)
            .with_plugin(self.plugin_tower(content_dim))
    }

    /// The PPM plug-in tower TPM pre-trains and CPM / A-CTR plug in (one config for both, so
    /// the published tower always fits).
    fn plugin_tower(&self, content_dim: usize) -> Option<PluginTowerConfig> {
        let t = &self.tpm_network;
        (t.plugin_dim > 0 && content_dim > 0).then(|| {
            PluginTowerConfig::new(content_dim)
                .with_hidden(t.plugin_hidden.clone())
                .with_d_output(t.plugin_dim)
        })
    }

    /// Checks every field; errors name the field (`daily.cpm.train.learning-rate`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            field: field.to_string(),
            reason,
        };
        self.schedule.validate().map_err(|e| match e {
            ctrflow_schedule::ScheduleError::Config { field, reason } => {
                invalid(&format!("daily.{field}"), reason)
            }
            other => invalid("daily.schedule", other.to_string()),
        })?;
        for (name, m) in [("tpm", &self.tpm), ("cpm", &self.cpm), ("actr", &self.actr)] {
            if m.epochs == 0 {
                return Err(invalid(
                    &format!("daily.{name}.epochs"),
                    "must be at least 1".into(),
                ));
            }
            if m.initial_epochs == Some(0) {
                return Err(invalid(
                    &format!("daily.{name}.initial-epochs"),
                    "must be at least 1".into(),
                ));
            }
            if name != "actr" && m.train.freeze_historical {
                return Err(invalid(
                    &format!("daily.{name}.train.freeze-historical"),
                    "only A-CTR freezes the historical attention (the one its CPM trained)".into(),
                ));
            }
            m.train.validate().map_err(|e| match e {
                ctrflow_models::ModelsError::InvalidConfig { field, reason } => {
                    invalid(&format!("daily.{name}.train.{field}"), reason)
                }
                other => invalid(&format!("daily.{name}.train"), other.to_string()),
            })?;
        }
        if self.actr.train.features != self.cpm.train.features {
            return Err(invalid(
                "daily.actr.train.features",
                "must equal daily.cpm.train.features: A-CTR starts from the CPM's network".into(),
            ));
        }
        let n = &self.network;
        if n.d_embed == 0 || n.long_heads == 0 || !n.d_embed.is_multiple_of(n.long_heads) {
            return Err(invalid(
                "daily.network.long-heads",
                format!("must be >= 1 and divide d-embed ({})", n.d_embed),
            ));
        }
        if n.eta_top_k == 0 {
            return Err(invalid(
                "daily.network.eta-top-k",
                "must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&n.dropout) {
            return Err(invalid("daily.network.dropout", "must be in [0, 1)".into()));
        }
        if self.tpm_network.d_embed == 0 {
            return Err(invalid(
                "daily.tpm-network.d-embed",
                "must be at least 1".into(),
            ));
        }
        if n.historical_point_in_time && !n.use_historical {
            return Err(invalid(
                "daily.network.historical-point-in-time",
                "needs daily.network.use-historical: it chooses which TPM snapshots that \
                 feature reads"
                    .into(),
            ));
        }
        if self.network.use_plugin {
            if self.tpm_network.plugin_dim == 0 {
                return Err(invalid(
                    "daily.network.use-plugin",
                    "needs daily.tpm-network.plugin-dim > 0: TPM pre-trains the plug-in".into(),
                ));
            }
            if !self.schedule.tpm.enabled {
                return Err(invalid(
                    "daily.network.use-plugin",
                    "needs daily.schedule.tpm.enabled: TPM pre-trains the plug-in".into(),
                ));
            }
        }
        self.srp.validate().map_err(|e| match e {
            ctrflow_models::ModelsError::InvalidConfig { field, reason } => {
                invalid(&format!("daily.{field}"), reason)
            }
            other => invalid("daily.srp", other.to_string()),
        })?;
        if self.network.use_srp {
            if !self.tpm_network.pretrain_srp {
                return Err(invalid(
                    "daily.network.use-srp",
                    "needs daily.tpm-network.pretrain-srp = true: the TPM job pre-trains SRP4CTR"
                        .into(),
                ));
            }
            if !self.schedule.tpm.enabled {
                return Err(invalid(
                    "daily.network.use-srp",
                    "needs daily.schedule.tpm.enabled: the TPM job pre-trains SRP4CTR".into(),
                ));
            }
            if self.network.srp_queries == 0 {
                return Err(invalid(
                    "daily.network.srp-queries",
                    "must be at least 1".into(),
                ));
            }
        }
        if self.tpm_network.pretrain_srp || self.network.use_srp {
            for (name, m) in [("tpm", &self.tpm), ("cpm", &self.cpm)] {
                let long_len = m.train.features.long_len;
                if self.srp.max_len > long_len {
                    return Err(invalid(
                        "daily.srp.max-len",
                        format!(
                            "{} is longer than daily.{name}.train.features.long-len {long_len}: \
                             the encoder reads the most recent long-sequence behaviours",
                            self.srp.max_len
                        ),
                    ));
                }
            }
        }
        if self.tpm_network.plugin_hidden.contains(&0) {
            return Err(invalid(
                "daily.tpm-network.plugin-hidden",
                "widths must be at least 1".into(),
            ));
        }
        for (field, v) in [
            ("daily.gate.max-auc-drop", self.gate.max_auc_drop),
            ("daily.gate.max-gauc-drop", self.gate.max_gauc_drop),
        ] {
            if !(v.is_finite() && (-1.0..=1.0).contains(&v)) {
                return Err(invalid(field, "must be a number in -1..=1".into()));
            }
        }
        if !(1..=50).contains(&self.holdout_percent) {
            return Err(invalid("daily.holdout-percent", "must be in 1..=50".into()));
        }
        if self.read.batch_rows == 0 {
            return Err(invalid(
                "daily.read.batch-rows",
                "must be at least 1".into(),
            ));
        }
        if self.read.channel_batches == 0 {
            return Err(invalid(
                "daily.read.channel-batches",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
