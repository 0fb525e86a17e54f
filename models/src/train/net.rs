//! What a trainer needs to know about a network: [`TrainableNet`], implemented for
//! [`CtrNet`] and [`Tpm`].

use burn::module::Module;
use burn::tensor::{Bool, Tensor};

use super::{CONTEXT_WIDTH, TrainConfig};
use crate::error::{ModelsError, Result};
use crate::nn::{
    Checkpoint, CtrNet, CtrNetConfig, CtrNetInput, NetConfig, PluginTower, SrpEncoder,
    SrpEncoderConfig, SrpInput, Tpm, TpmConfig,
};

/// The inputs a trainer builds for one batch of `B` rows (`d` the embedding width).
#[derive(Debug, Clone)]
pub struct NetInputs {
    /// User embeddings `[B, d]`.
    pub user: Tensor<2>,
    /// Candidate item embeddings `[B, d]`.
    pub item: Tensor<2>,
    /// Candidate category embeddings `[B, d]`.
    pub category: Tensor<2>,
    /// Dense context `[B, CONTEXT_WIDTH]`, when the network takes it.
    pub context: Option<Tensor<2>>,
    /// Short sequence `[B, S, d]` and its mask `[B, S]`, when the network takes sequences.
    pub short: Option<(Tensor<3>, Tensor<2, Bool>)>,
    /// Long behaviours `[B, k, d]` (ETA top-k) or `[B, L, d]` (full attention) and mask.
    pub long: Option<(Tensor<3>, Tensor<2, Bool>)>,
    /// Category embeddings of the short and of the long behaviours (shapes as theirs), when
    /// the network adds them.
    pub behaviour_categories: Option<(Tensor<3>, Tensor<3>)>,
    /// The candidate's content vector `[B, w]`, when the network takes it.
    pub content: Option<Tensor<2>>,
    /// The plug-in tower's cached outputs for the candidates `[B, p]`, when the network has a
    /// frozen plug-in ([`NetSpec::plugin`]).
    pub plugin: Option<Tensor<2>>,
    /// The user's K TPM snapshot vectors `[B, K, d_h]`, when the network takes them.
    pub historical_user: Option<Tensor<3>>,
    /// The item's K TPM snapshot vectors `[B, K, d_h]`, when the network takes them.
    pub historical_item: Option<Tensor<3>>,
    /// SRP4CTR's candidate and behaviour tokens, when the network has the SRP branch.
    pub srp: Option<SrpInput>,
}

/// The sequence branches of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceSpec {
    /// Short-sequence length `S`.
    pub short_len: usize,
    /// ETA's top-k.
    pub eta_top_k: usize,
    /// Attend over all `L` long behaviours instead of the top-k.
    pub full_long_attention: bool,
    /// Behaviours carry their category embeddings (from `hist_category_ids`).
    pub categories: bool,
}

/// The historical-embedding inputs of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoricalSpec {
    /// Width `d_h` of a snapshot vector.
    pub d_hist: usize,
    /// Inputs are one merged vector per id (`K = 1`).
    pub merged: bool,
    /// The item's feature is read too (not only the user's).
    pub items: bool,
}

/// The input shapes of a network, from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetSpec {
    /// Embedding width `d` of all three tables.
    pub d_embed: usize,
    /// Whether the network takes the dense context (`[B, CONTEXT_WIDTH]`).
    pub context: bool,
    /// Sequence branches, if any.
    pub sequences: Option<SequenceSpec>,
    /// Historical-embedding inputs, if any.
    pub historical: Option<HistoricalSpec>,
    /// Width `w` of the content vector the network reads (0: none): for its own content
    /// projection, a trainable plug-in tower (TPM) or a frozen one (`CtrNet`).
    pub content_width: usize,
    /// Whether the network takes the content vector itself ([`NetInputs::content`]).
    pub content_input: bool,
    /// A frozen plug-in tower whose outputs the trainer computes and caches per item.
    pub plugin: Option<PluginSpec>,
    /// The SRP4CTR branch: its frozen encoder's shape (tokens `[B, max_len, d_model]`).
    pub srp: Option<SrpSpec>,
}

/// The SRP4CTR branch of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrpSpec {
    /// Token width `d_s`.
    pub d_model: usize,
    /// Behaviours the encoder reads (the most recent).
    pub max_len: usize,
}

impl SrpSpec {
    fn of(encoder: &SrpEncoderConfig) -> Self {
        SrpSpec {
            d_model: encoder.d_model,
            max_len: encoder.max_len,
        }
    }
}

/// The frozen plug-in of a network (PPM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginSpec {
    /// Width `w` of the content vector the tower reads.
    pub d_input: usize,
    /// Width `p` of its output.
    pub d_output: usize,
}

/// A network a [`Trainer`](super::Trainer) can train: built from a [`NetConfig`], fed
/// [`NetInputs`], giving a `[B, 1]` logit.
pub trait TrainableNet: Module + Sized + 'static {
    /// The config that builds it.
    type Config: NetConfig<Net = Self>;

    /// The inputs the network takes; an error names a config field the trainer does not
    /// support.
    fn spec(config: &Self::Config) -> Result<NetSpec>;

    /// Click logits `[B, 1]`. The inputs match [`spec`](Self::spec).
    fn logits(&self, inputs: NetInputs) -> Tensor<2>;

    /// The frozen plug-in tower the trainer runs outside autodiff (networks with
    /// [`NetSpec::plugin`]).
    fn plugin_tower(&self) -> Option<&PluginTower> {
        None
    }

    /// The network with `tower` as its frozen plug-in tower (unchanged without a plug-in).
    fn with_plugin_tower(self, _tower: PluginTower) -> Self {
        self
    }

    /// The SRP4CTR encoder config of the network's SRP branch (None without one).
    fn srp_encoder_config(_config: &Self::Config) -> Option<&SrpEncoderConfig> {
        None
    }

    /// The network with `encoder` as its frozen SRP encoder (unchanged without SRP).
    fn with_srp_encoder(self, _encoder: SrpEncoder) -> Self {
        self
    }

    /// Re-applies what must stay frozen after loading (a loaded parameter is trainable): the
    /// pre-trained parts, and the historical-embedding attention with `config`'s
    /// `freeze-historical`.
    fn freeze_fixed(self, _config: &TrainConfig) -> Self {
        self
    }

    /// The plug-in tower this network pre-trains, as a checkpoint of its own (TPM with a
    /// plug-in; `None` otherwise).
    fn published_plugin(&self, _config: &Self::Config) -> Result<Option<Checkpoint>> {
        Ok(None)
    }
}

fn context_width(d_context: usize) -> Result<bool> {
    match d_context {
        0 => Ok(false),
        CONTEXT_WIDTH => Ok(true),
        other => Err(ModelsError::config(
            "d_context",
            format!("{other}: the trainer's context has width {CONTEXT_WIDTH} (or use 0)"),
        )),
    }
}

impl TrainableNet for CtrNet {
    type Config = CtrNetConfig;

    fn spec(config: &CtrNetConfig) -> Result<NetSpec> {
        if let Some(srp) = &config.srp {
            srp.encoder
                .check()
                .map_err(|reason| ModelsError::config("srp.encoder", reason))?;
            if srp.n_queries == 0 {
                return Err(ModelsError::config("srp.n_queries", "must be at least 1"));
            }
        }
        let plugin = config.plugin.as_ref().map(|p| PluginSpec {
            d_input: p.d_input,
            d_output: p.d_output,
        });
        if let Some(p) = plugin
            && config.d_content > 0
            && config.d_content != p.d_input
        {
            return Err(ModelsError::config(
                "plugin.d_input",
                format!(
                    "{} differs from d_content {}: both read item_content",
                    p.d_input, config.d_content
                ),
            ));
        }
        Ok(NetSpec {
            d_embed: config.d_embed,
            context: context_width(config.d_context)?,
            sequences: Some(SequenceSpec {
                short_len: config.short_len,
                eta_top_k: config.eta_top_k,
                full_long_attention: config.full_long_attention,
                categories: config.sequence_categories,
            }),
            historical: config.use_historical.then_some(HistoricalSpec {
                d_hist: config.d_hist,
                merged: config.hist_merged,
                items: config.historical_items,
            }),
            content_width: config.d_content.max(plugin.map_or(0, |p| p.d_input)),
            content_input: config.d_content > 0,
            plugin,
            srp: config.srp.as_ref().map(|srp| SrpSpec::of(&srp.encoder)),
        })
    }

    fn logits(&self, inputs: NetInputs) -> Tensor<2> {
        let (short_seq, short_mask) = inputs.short.expect("CtrNet takes the short sequence");
        let (long_seq, long_mask) = inputs.long.expect("CtrNet takes the long sequence");
        let (short_categories, long_categories) = inputs.behaviour_categories.unzip();
        self.forward(CtrNetInput {
            user: inputs.user,
            item: inputs.item,
            category: inputs.category,
            context: inputs.context,
            short_seq,
            short_mask,
            long_seq,
            long_mask,
            historical_user: inputs.historical_user,
            historical_item: inputs.historical_item,
            short_categories,
            long_categories,
            content: inputs.content,
            plugin: inputs.plugin,
            srp: inputs.srp,
        })
    }

    fn plugin_tower(&self) -> Option<&PluginTower> {
        CtrNet::plugin_tower(self)
    }

    fn with_plugin_tower(self, tower: PluginTower) -> Self {
        CtrNet::with_plugin_tower(self, tower)
    }

    fn srp_encoder_config(config: &CtrNetConfig) -> Option<&SrpEncoderConfig> {
        config.srp.as_ref().map(|srp| &srp.encoder)
    }

    fn with_srp_encoder(self, encoder: SrpEncoder) -> Self {
        CtrNet::with_srp_encoder(self, encoder)
    }

    fn freeze_fixed(self, config: &TrainConfig) -> Self {
        let net = self.freeze_pretrained();
        if config.freeze_historical {
            net.freeze_historical()
        } else {
            net
        }
    }
}

impl TrainableNet for Tpm {
    type Config = TpmConfig;

    fn spec(config: &TpmConfig) -> Result<NetSpec> {
        Ok(NetSpec {
            d_embed: config.d_embed,
            context: context_width(config.d_context)?,
            sequences: None,
            historical: None,
            content_width: config.plugin.as_ref().map_or(0, |p| p.d_input),
            content_input: config.plugin.is_some(),
            plugin: None,
            srp: None,
        })
    }

    fn logits(&self, inputs: NetInputs) -> Tensor<2> {
        self.forward(
            inputs.user,
            inputs.item,
            inputs.category,
            inputs.context,
            inputs.content,
        )
    }

    fn published_plugin(&self, config: &TpmConfig) -> Result<Option<Checkpoint>> {
        match (&config.plugin, &self.plugin) {
            (Some(tower_config), Some(tower)) => Checkpoint::capture(tower_config, tower)
                .map(Some)
                .map_err(|e| ModelsError::config("plugin", e.to_string())),
            _ => Ok(None),
        }
    }
}
