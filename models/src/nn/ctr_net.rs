//! `CtrNet`: the CPM and A-CTR network of E-CDCTR (both use the identical config, so a CPM's
//! parameters initialise an A-CTR: see [`transfer`](super::transfer)).
//!
//! ```text
//! user [B,d] ─────────────────────────────────────────────┐
//! target item [B,d] ──────────────────────────────────────┤
//! category [B,d] ─────────────────────────────────────────┤
//! context [B,c] (if c > 0) ───────────────────────────────┤
//! short seq [B,S,d] + mask ── DinAttention(target) ───────┤ concat ── Mlp ── logit [B,1]
//! long behaviours [B,k,d] + mask ── TargetAttention ──────┤
//! historical user [B,K,d_h] ── HistoricalEmbedding ───────┤ (if use_historical)
//! historical item [B,K,d_h] ── HistoricalEmbedding ───────┤ (if use_historical)
//! content [B,w] ── Linear(w -> d) ────────────────────────┤ (if d_content = w > 0)
//! plug-in [B,p] (cached tower output) ── Linear(p -> d) ──┤ (if plugin: PPM)
//! SRP4CTR: candidate + behaviour tokens ── SrpTransfer ───┘ (if srp: [B,d])
//! ```
//!
//! With `sequence_categories`, a behaviour is its item embedding plus its category embedding
//! (`[B,S,d] + [B,S,d]`, likewise for the long behaviours), and the attention query is the
//! target item plus its category, so both attentions can match on the category as well as on
//! the item (a new item of a liked category is close to the user's history from its first day).
//!
//! The long-behaviour branch is ETA when the trainer passes the top-k behaviours its SimHash
//! retrieval selected (k = `eta_top_k`), and the full-attention baseline when it passes all L
//! long-term behaviours: the module is the same, only the length differs.
//! `full_long_attention` in the config records which one a model was trained with.
//!
//! SRP4CTR ([`SrpTransfer`]): the encoder pre-trained in the TPM job, frozen, reads the most
//! recent behaviours as tokens of its own (frozen) tables; the candidate attends into every
//! encoder layer and query tokens summarise the sequence: `[B, d_s (1 + n_q)]`, projected to
//! `d` by a zero-initialised `Linear` (the branch starts as a no-op).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Bool, Device, Tensor};

use super::{
    DinAttention, DinAttentionConfig, HistoricalEmbedding, HistoricalEmbeddingConfig, Mlp,
    MlpConfig, PlugIn, PluginTower, PluginTowerConfig, SrpEncoder, SrpInput, SrpTransfer,
    SrpTransferConfig, TargetAttention, TargetAttentionConfig,
};

/// Configuration of a [`CtrNet`] (CPM and A-CTR share it).
#[derive(Config, Debug)]
pub struct CtrNetConfig {
    /// Width `d` of the user, item (target and behaviours: one shared table) and category
    /// embeddings.
    #[config(default = 16)]
    pub d_embed: usize,
    /// Width `c` of the dense context features (0: none).
    #[config(default = 0)]
    pub d_context: usize,
    /// Length `S` of the short behaviour sequence the trainer builds (DIN branch).
    #[config(default = 50)]
    pub short_len: usize,
    /// Number `k` of long-term behaviours ETA selects per candidate.
    #[config(default = 50)]
    pub eta_top_k: usize,
    /// Attend over all L long-term behaviours instead of ETA's top-k (the ETA baseline).
    #[config(default = false)]
    pub full_long_attention: bool,
    /// Hidden widths of DIN's local activation unit.
    #[config(default = "vec![80, 40]")]
    pub din_hidden: Vec<usize>,
    /// Softmax-normalise DIN's weights (DIN itself does not).
    #[config(default = false)]
    pub din_softmax: bool,
    /// Heads of the long-behaviour target attention; must divide `d_embed`.
    #[config(default = 2)]
    pub long_heads: usize,
    /// Use the TPM historical-embedding feature (the user's, and the item's unless
    /// `historical_items` is off).
    #[config(default = true)]
    pub use_historical: bool,
    /// With `use_historical`, also the item's historical feature. Turn it off when the ad
    /// domain's items never appear in the natural domain: TPM's item snapshots then hold none
    /// of them, and A-CTR would read zeros where the CPM it starts from read real vectors.
    #[config(default = true)]
    pub historical_items: bool,
    /// Width `d_h` of a TPM snapshot vector.
    #[config(default = 16)]
    pub d_hist: usize,
    /// Optional projection width of each historical feature.
    #[config(default = "None")]
    pub hist_output: Option<usize>,
    /// Historical inputs are pre-merged `[B, 1, d_h]` vectors (frozen attention, merged table).
    #[config(default = false)]
    pub hist_merged: bool,
    /// Add each behaviour's category embedding to its item embedding, and the candidate's
    /// category to the attention query (needs `hist_category_ids`).
    #[config(default = false)]
    pub sequence_categories: bool,
    /// Width `w` of the candidate's content vector (`item_content`), projected to `d` and
    /// concatenated (0: not used).
    #[config(default = 0)]
    pub d_content: usize,
    /// The PPM plug-in: the pre-trained content tower (frozen; its outputs are cached per
    /// item by the trainer) and an adapter `Linear(p -> d)` (None: no plug-in).
    #[config(default = "None")]
    pub plugin: Option<PluginTowerConfig>,
    /// SRP4CTR: the pre-trained sequence encoder's config and the transfer's query tokens
    /// (None: no SRP branch).
    #[config(default = "None")]
    pub srp: Option<SrpTransferConfig>,
    /// Hidden widths of the top MLP.
    #[config(default = "vec![200, 80]")]
    pub mlp_hidden: Vec<usize>,
    /// Batch norm in the top MLP (A-CTR re-initialises these when it starts from a CPM).
    #[config(default = true)]
    pub batch_norm: bool,
    /// Dropout in the top MLP.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// The inputs of one [`CtrNet`] batch. All embeddings come from tables outside autodiff.
#[derive(Debug, Clone)]
pub struct CtrNetInput {
    /// User embedding `[B, d]`.
    pub user: Tensor<2>,
    /// Target (candidate) item embedding `[B, d]`.
    pub item: Tensor<2>,
    /// Target item's category embedding `[B, d]`.
    pub category: Tensor<2>,
    /// Dense context `[B, c]`; `Some` exactly when `d_context > 0`.
    pub context: Option<Tensor<2>>,
    /// Short (recent) behaviour sequence `[B, S, d]`.
    pub short_seq: Tensor<3>,
    /// Short sequence mask `[B, S]`, true at real behaviours.
    pub short_mask: Tensor<2, Bool>,
    /// Long-term behaviours `[B, k, d]` (ETA top-k) or `[B, L, d]` (full attention).
    pub long_seq: Tensor<3>,
    /// Long behaviours mask `[B, k]` (or `[B, L]`), true at real behaviours.
    pub long_mask: Tensor<2, Bool>,
    /// The user's K TPM snapshot vectors `[B, K, d_h]`; `Some` exactly when `use_historical`.
    pub historical_user: Option<Tensor<3>>,
    /// The item's K TPM snapshot vectors `[B, K, d_h]`; `Some` exactly when `use_historical`
    /// and `historical_items`.
    pub historical_item: Option<Tensor<3>>,
    /// Categories of the short behaviours `[B, S, d]`; `Some` exactly when
    /// `sequence_categories`.
    pub short_categories: Option<Tensor<3>>,
    /// Categories of the long behaviours `[B, k, d]` (or `[B, L, d]`); `Some` exactly when
    /// `sequence_categories`.
    pub long_categories: Option<Tensor<3>>,
    /// The candidate's content vector `[B, w]`; `Some` exactly when `d_content > 0`.
    pub content: Option<Tensor<2>>,
    /// The plug-in tower's outputs for the candidates `[B, p]` (no gradient: the tower is
    /// frozen); `Some` exactly when `plugin` is configured.
    pub plugin: Option<Tensor<2>>,
    /// SRP4CTR's candidate and behaviour tokens; `Some` exactly when `srp` is configured.
    pub srp: Option<SrpInput>,
}

/// The CPM / A-CTR network, `CtrNetInput -> [B, 1]` logit. Build it with
/// [`CtrNetConfig::init`].
#[derive(Module, Debug)]
pub struct CtrNet {
    /// DIN attention over the short sequence.
    pub din: DinAttention,
    /// Target attention over the long behaviours (ETA top-k or all L).
    pub long_attention: TargetAttention,
    /// Historical-embedding feature of the user (if configured).
    pub historical_user: Option<HistoricalEmbedding>,
    /// Historical-embedding feature of the item (if configured).
    pub historical_item: Option<HistoricalEmbedding>,
    /// Projection of the content vector to `d` (if configured).
    pub content: Option<Linear>,
    /// The PPM plug-in: frozen tower and trainable adapter (if configured).
    pub plugin: Option<PlugIn>,
    /// SRP4CTR: the frozen pre-trained encoder and the trainable transfer (if configured).
    pub srp: Option<SrpTransfer>,
    /// The top MLP to the logit.
    pub mlp: Mlp,
    /// Whether behaviours and the attention query include their category embedding.
    pub sequence_categories: bool,
    /// Width of the context input (0: none).
    pub d_context: usize,
}

impl CtrNetConfig {
    fn historical(&self) -> HistoricalEmbeddingConfig {
        HistoricalEmbeddingConfig::new(self.d_hist)
            .with_d_output(self.hist_output)
            .with_merged(self.hist_merged)
    }

    /// Width of the MLP input: `3d + c + d (DIN) + d (long) [+ 1 or 2 d_hist_out] [+ d (content)]
    /// [+ d (plug-in)] [+ d (SRP4CTR)]`.
    pub fn d_mlp_input(&self) -> usize {
        let historical = if self.use_historical {
            (1 + usize::from(self.historical_items)) * self.historical().output_width()
        } else {
            0
        };
        let content = if self.d_content > 0 { self.d_embed } else { 0 };
        let plugin = if self.plugin.is_some() {
            self.d_embed
        } else {
            0
        };
        let srp = if self.srp.is_some() { self.d_embed } else { 0 };
        5 * self.d_embed + self.d_context + historical + content + plugin + srp
    }

    /// Builds the network on `device` with freshly initialised parameters.
    pub fn init(&self, device: &Device) -> CtrNet {
        let historical = || self.use_historical.then(|| self.historical().init(device));
        CtrNet {
            din: DinAttentionConfig::new(self.d_embed)
                .with_hidden(self.din_hidden.clone())
                .with_softmax(self.din_softmax)
                .init(device),
            long_attention: TargetAttentionConfig::new(self.d_embed)
                .with_n_heads(self.long_heads)
                .init(device),
            historical_user: historical(),
            historical_item: if self.historical_items {
                historical()
            } else {
                None
            },
            content: (self.d_content > 0)
                .then(|| LinearConfig::new(self.d_content, self.d_embed).init(device)),
            plugin: self
                .plugin
                .as_ref()
                .map(|tower| PlugIn::init(tower, self.d_embed, device)),
            srp: self.srp.as_ref().map(|srp| srp.init(self.d_embed, device)),
            mlp: MlpConfig::new(self.d_mlp_input())
                .with_hidden(self.mlp_hidden.clone())
                .with_batch_norm(self.batch_norm)
                .with_dropout(self.dropout)
                .init(device),
            sequence_categories: self.sequence_categories,
            d_context: self.d_context,
        }
    }
}

/// Checks that an optional input is present exactly when its branch is configured.
fn present<T>(name: &str, input: Option<T>, configured: bool) -> Option<T> {
    match (input, configured) {
        (Some(x), true) => Some(x),
        (None, false) => None,
        (input, _) => panic!(
            "CtrNet input `{name}` is {} but the branch is {}",
            if input.is_some() { "present" } else { "absent" },
            if configured {
                "configured"
            } else {
                "not configured"
            }
        ),
    }
}

impl CtrNet {
    /// Click logit `[B, 1]` for one batch (shapes in [`CtrNetInput`]).
    ///
    /// # Panics
    /// If an optional input does not match the config (context, historical, content,
    /// plug-in, SRP).
    pub fn forward(&self, input: CtrNetInput) -> Tensor<2> {
        let CtrNetInput {
            user,
            item,
            category,
            context,
            short_seq,
            short_mask,
            long_seq,
            long_mask,
            historical_user,
            historical_item,
            short_categories,
            long_categories,
            content,
            plugin,
            srp,
        } = input;

        // Behaviours and the query with their categories added (if configured): [B, S|k, d].
        let with_categories = self.sequence_categories;
        let short_categories = present("short_categories", short_categories, with_categories);
        let long_categories = present("long_categories", long_categories, with_categories);
        let (query, short_seq, long_seq) = match (short_categories, long_categories) {
            (Some(short_cat), Some(long_cat)) => (
                item.clone() + category.clone(),
                short_seq + short_cat,
                long_seq + long_cat,
            ),
            _ => (item.clone(), short_seq, long_seq),
        };

        // Interest in the candidate from the short and the long behaviour sequences.
        let short_interest = self.din.forward(query.clone(), short_seq, short_mask); // [B, d]
        let long_interest = self.long_attention.forward(query, long_seq, long_mask); // [B, d]

        let srp_user = self.srp.as_ref().map(|_| user.clone());
        let mut parts = vec![user, item, category]; // [B, d] each
        parts.extend(present("context", context, self.d_context > 0)); // [B, c]
        parts.push(short_interest);
        parts.push(long_interest);

        // TPM historical embeddings: [B, K, d_h] -> [B, d_h'] each.
        let hist_user = present(
            "historical_user",
            historical_user,
            self.historical_user.is_some(),
        );
        let hist_item = present(
            "historical_item",
            historical_item,
            self.historical_item.is_some(),
        );
        if let (Some(module), Some(x)) = (&self.historical_user, hist_user) {
            parts.push(module.forward(x));
        }
        if let (Some(module), Some(x)) = (&self.historical_item, hist_item) {
            parts.push(module.forward(x));
        }

        let content = present("content", content, self.content.is_some());
        if let (Some(projection), Some(x)) = (&self.content, content) {
            parts.push(projection.forward(x)); // [B, w] -> [B, d]
        }

        let plugin = present("plugin", plugin, self.plugin.is_some());
        if let (Some(plug_in), Some(cached)) = (&self.plugin, plugin) {
            parts.push(plug_in.forward(cached)); // [B, p] -> [B, d]
        }

        let srp = present("srp", srp, self.srp.is_some());
        if let (Some(transfer), Some(x), Some(user)) = (&self.srp, srp, srp_user) {
            parts.push(transfer.forward(x, user)); // [B, d]
        }

        self.mlp.forward(Tensor::cat(parts, 1)) // [B, d_mlp_input] -> [B, 1]
    }

    /// The plug-in's frozen tower, if the network has a plug-in.
    pub fn plugin_tower(&self) -> Option<&PluginTower> {
        self.plugin.as_ref().map(|p| &p.tower)
    }

    /// The same network with `tower` as its plug-in tower, frozen (no gradients). The caller
    /// checks that `tower` has the configured widths; a network without a plug-in is returned
    /// unchanged.
    pub fn with_plugin_tower(mut self, tower: PluginTower) -> Self {
        if let Some(plug_in) = &mut self.plugin {
            plug_in.tower = tower.no_grad();
        }
        self
    }

    /// The same network with its plug-in tower and its SRP encoder frozen (a module loaded
    /// from a checkpoint comes back trainable).
    pub fn freeze_pretrained(mut self) -> Self {
        self.plugin = self.plugin.map(|p| PlugIn {
            tower: p.tower.no_grad(),
            adapter: p.adapter,
        });
        self.srp = self.srp.map(SrpTransfer::freeze_encoder);
        self
    }

    /// The same network with `encoder` as its SRP encoder, frozen. The caller checks that it
    /// has the configured shape; a network without SRP is returned unchanged.
    pub fn with_srp_encoder(mut self, encoder: SrpEncoder) -> Self {
        self.srp = self.srp.map(|t| t.with_encoder(encoder));
        self
    }

    /// The same network with its historical-embedding attention frozen (no gradients, so the
    /// optimiser never changes it): what A-CTR does after CPM training.
    pub fn freeze_historical(mut self) -> Self {
        self.historical_user = self.historical_user.map(Module::no_grad);
        self.historical_item = self.historical_item.map(Module::no_grad);
        self
    }
}

#[cfg(test)]
pub(crate) mod tests;
