//! The four E-CDCTR ablation variants and how each one changes the `[daily]` config.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::daily::config::DailyConfig;

/// One arm of the ablation. Every variant runs the same daily schedule over the same days;
/// they differ only in which natural-domain transfer A-CTR gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// A-CTR alone: trained only on ad data, continued day after day; no TPM, no CPM.
    AdOnly,
    /// A-CTR initialised from each new CPM (natural data, same network), no TPM embeddings.
    Cpm,
    /// A-CTR with TPM historical embeddings as extra features, no CPM initialisation.
    Tpm,
    /// Full E-CDCTR: TPM snapshots feed CPM and A-CTR, and A-CTR starts from each new CPM.
    Full,
}

impl Variant {
    /// Every variant, in table order.
    pub const ALL: [Variant; 4] = [Variant::AdOnly, Variant::Cpm, Variant::Tpm, Variant::Full];

    /// The name used on the command line, in directories and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Variant::AdOnly => "ad-only",
            Variant::Cpm => "cpm",
            Variant::Tpm => "tpm",
            Variant::Full => "full",
        }
    }

    /// A row label for the results table.
    pub fn label(self) -> &'static str {
        match self {
            Variant::AdOnly => "A-CTR, ad data only",
            Variant::Cpm => "+ CPM initialisation",
            Variant::Tpm => "+ TPM historical embeddings",
            Variant::Full => "full E-CDCTR (TPM + CPM)",
        }
    }

    fn uses_tpm(self) -> bool {
        matches!(self, Variant::Tpm | Variant::Full)
    }

    fn uses_cpm(self) -> bool {
        matches!(self, Variant::Cpm | Variant::Full)
    }

    /// `base` with this variant's switches, the run's `seed` in every trainer, and a gate that
    /// accepts every new A-CTR.
    ///
    /// The gate is opened on purpose: it compares the new and the live model on the very day
    /// being scored, so letting it pick the served model would choose with test labels. With it
    /// open, day `D` is always scored by the version trained on days before `D`.
    pub fn configure(self, base: &DailyConfig, seed: u64) -> DailyConfig {
        let mut daily = base.clone();
        daily.schedule.tpm.enabled = self.uses_tpm();
        daily.schedule.cpm.enabled = self.uses_cpm();
        daily.network.use_historical = self.uses_tpm();
        // The PPM plug-in is pre-trained by TPM: variants without TPM have none.
        daily.network.use_plugin &= self.uses_tpm();
        // So is SRP4CTR's encoder.
        daily.network.use_srp &= self.uses_tpm();
        daily.tpm_network.pretrain_srp &= self.uses_tpm();
        for training in [&mut daily.tpm, &mut daily.cpm, &mut daily.actr] {
            training.train.seed = seed;
        }
        daily.gate.max_auc_drop = 1.0;
        daily.gate.max_gauc_drop = 1.0;
        daily.gate.min_eval_rows = 0;
        daily
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown variant `{s}` (expected ad-only, cpm, tpm or full)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_switch_exactly_their_components() {
        let mut base = DailyConfig::default();
        base.network.use_plugin = true;
        base.tpm_network.plugin_dim = 8;
        base.network.use_srp = true;
        base.tpm_network.pretrain_srp = true;
        let table = [
            (Variant::AdOnly, false, false),
            (Variant::Cpm, false, true),
            (Variant::Tpm, true, false),
            (Variant::Full, true, true),
        ];
        for (variant, tpm, cpm) in table {
            let c = variant.configure(&base, 7);
            assert_eq!(c.schedule.tpm.enabled, tpm, "{variant}");
            assert_eq!(c.schedule.cpm.enabled, cpm, "{variant}");
            assert_eq!(c.network.use_historical, tpm, "{variant}");
            // The plug-in comes from TPM, so it stays on only where TPM runs.
            assert_eq!(c.network.use_plugin, tpm, "{variant}");
            assert_eq!(c.network.use_srp, tpm, "{variant}");
            assert!(c.validate().is_ok(), "{variant}");
            assert!(c.schedule.actr.enabled);
            assert_eq!(
                [c.tpm.train.seed, c.cpm.train.seed, c.actr.train.seed],
                [7, 7, 7]
            );
            assert_eq!(c.gate.min_eval_rows, 0);
            assert!(c.gate.max_auc_drop >= 1.0 && c.gate.max_gauc_drop >= 1.0);
            assert_eq!(variant.name().parse::<Variant>(), Ok(variant));
        }
        assert!("both".parse::<Variant>().is_err());
    }
}
