//! The publish gate of A-CTR: a pure decision from the new model's and the live model's
//! metrics on the same evaluation day.

use ctrflow_schemas::{GateVerdict, ModelMetrics};

use super::config::GateConfig;

/// Decides whether a new A-CTR may replace the live one.
///
/// - No live model: accepted (there is nothing to protect).
/// - The new model was not evaluated, or on fewer than `min-eval-rows` rows: rejected.
/// - AUC or GAUC lower than the live model's by more than the tolerance: rejected, naming
///   both values.
pub fn decide(
    config: &GateConfig,
    new: Option<&ModelMetrics>,
    live: Option<(&str, Option<&ModelMetrics>)>,
) -> GateVerdict {
    let Some((live_version, live_metrics)) = live else {
        return GateVerdict::Accepted;
    };
    let Some(new) = new else {
        return GateVerdict::Rejected {
            reason: "not evaluated: the evaluation day is not closed or had no usable rows".into(),
        };
    };
    if new.samples < config.min_eval_rows {
        return GateVerdict::Rejected {
            reason: format!(
                "evaluated on {} rows, fewer than gate.min-eval-rows = {}",
                new.samples, config.min_eval_rows
            ),
        };
    }
    let Some(live) = live_metrics else {
        // The live model could not be scored on this day: judge the new one on its own.
        return GateVerdict::Accepted;
    };
    if new.auc < live.auc - config.max_auc_drop {
        return GateVerdict::Rejected {
            reason: format!(
                "AUC {:.4} is below the live {live_version}'s {:.4} by more than {}",
                new.auc, live.auc, config.max_auc_drop
            ),
        };
    }
    // GAUC is compared when both are defined (a day where no user has both labels has none).
    if let (Some(new_gauc), Some(live_gauc)) = (new.gauc, live.gauc)
        && new_gauc < live_gauc - config.max_gauc_drop
    {
        return GateVerdict::Rejected {
            reason: format!(
                "GAUC {new_gauc:.4} is below the live {live_version}'s {live_gauc:.4} by more than {}",
                config.max_gauc_drop
            ),
        };
    }
    GateVerdict::Accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(auc: f64, gauc: f64, samples: u64) -> ModelMetrics {
        ModelMetrics {
            auc,
            gauc: Some(gauc),
            logloss: 0.5,
            calibration: 1.0,
            samples,
        }
    }

    #[test]
    fn decisions() {
        let c = GateConfig {
            max_auc_drop: 0.002,
            max_gauc_drop: 0.005,
            min_eval_rows: 100,
        };
        let live = m(0.70, 0.65, 1000);
        let rejected = |v: &GateVerdict, needle: &str| match v {
            GateVerdict::Rejected { reason } => reason.contains(needle),
            _ => false,
        };
        // No live model: accepted even unevaluated.
        assert_eq!(decide(&c, None, None), GateVerdict::Accepted);
        // Not evaluated / too few rows.
        assert!(rejected(
            &decide(&c, None, Some(("d1", Some(&live)))),
            "not evaluated"
        ));
        let few = m(0.9, 0.9, 10);
        assert!(rejected(
            &decide(&c, Some(&few), Some(("d1", Some(&live)))),
            "min-eval-rows"
        ));
        // Within tolerance, better, worse.
        let cases = [
            (m(0.699, 0.646, 500), None),
            (m(0.75, 0.70, 500), None),
            (m(0.697, 0.70, 500), Some("AUC 0.6970")),
            (m(0.71, 0.64, 500), Some("GAUC 0.6400")),
        ];
        for (new, want) in cases {
            let v = decide(&c, Some(&new), Some(("d1", Some(&live))));
            match want {
                None => assert_eq!(v, GateVerdict::Accepted, "{new:?}"),
                Some(needle) => assert!(rejected(&v, needle), "{new:?}: {v:?}"),
            }
        }
        // A negative tolerance demands an improvement.
        let strict = GateConfig {
            max_auc_drop: -0.01,
            ..c
        };
        assert!(rejected(
            &decide(
                &strict,
                Some(&m(0.705, 0.7, 500)),
                Some(("d1", Some(&live)))
            ),
            "AUC"
        ));
        // An undefined GAUC on either side is not compared.
        let no_gauc = ModelMetrics {
            gauc: None,
            ..m(0.70, 0.0, 500)
        };
        assert_eq!(
            decide(&c, Some(&no_gauc), Some(("d1", Some(&live)))),
            GateVerdict::Accepted
        );
    }
}
