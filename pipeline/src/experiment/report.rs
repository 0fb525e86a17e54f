//! The experiment's results: one row per run, one summary per variant (mean and standard
//! deviation over seeds), written as `results.json` and as a Markdown table in `results.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ctrflow_schemas::ModelKind;
use serde::{Deserialize, Serialize};

use super::{ExperimentError, ExperimentOptions, Pooled, Source, TestSplit, Variant};

/// One variant with one seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The variant.
    pub variant: Variant,
    /// The seed of every trainer.
    pub seed: u64,
    /// Pooled test metrics.
    pub pooled: Pooled,
    /// Wall time of this invocation's part of the run.
    pub seconds: f64,
    /// Rows each model trained on over all its published versions.
    pub rows_trained: BTreeMap<ModelKind, u64>,
    /// The run's models store.
    pub dir: PathBuf,
}

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation over seeds (0 with one seed).
    pub std: f64,
}

impl Stat {
    /// The statistics of `values` (`None` when empty).
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Some(Stat { mean, std })
    }
}

/// One variant over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The variant.
    pub variant: Variant,
    /// Seeds run.
    pub seeds: usize,
    /// Pooled AUC.
    pub auc: Stat,
    /// Pooled GAUC (over the seeds where it is defined).
    pub gauc: Option<Stat>,
    /// Pooled logloss.
    pub logloss: Stat,
    /// AUC of the earlier and of the later half of the test period.
    pub halves_auc: (Option<Stat>, Option<Stat>),
}

/// Everything an experiment produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentResults {
    /// Where the events came from.
    pub source: Source,
    /// The test split.
    pub split: TestSplit,
    /// Per variant, in the order run.
    pub summaries: Vec<Summary>,
    /// Every run.
    pub runs: Vec<RunResult>,
}

impl ExperimentResults {
    /// Summarises `runs` per variant.
    pub fn new(options: &ExperimentOptions, split: TestSplit, runs: Vec<RunResult>) -> Self {
        let mut summaries = Vec::new();
        for &variant in &options.variants {
            let of: Vec<&RunResult> = runs.iter().filter(|r| r.variant == variant).collect();
            let values = |f: &dyn Fn(&Pooled) -> Option<f64>| -> Vec<f64> {
                of.iter().filter_map(|r| f(&r.pooled)).collect()
            };
            let (Some(auc), Some(logloss)) = (
                Stat::of(&values(&|p| Some(p.auc))),
                Stat::of(&values(&|p| Some(p.logloss))),
            ) else {
                continue;
            };
            summaries.push(Summary {
                variant,
                seeds: of.len(),
                auc,
                gauc: Stat::of(&values(&|p| p.gauc)),
                logloss,
                halves_auc: (
                    Stat::of(&values(&|p| p.halves.early_auc)),
                    Stat::of(&values(&|p| p.halves.late_auc)),
                ),
            });
        }
        ExperimentResults {
            source: options.source.clone(),
            split,
            summaries,
            runs,
        }
    }

    /// The results as Markdown: the summary table, then every run.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let stat = |s: Option<Stat>| match s {
            Some(s) => format!("{:.4} ± {:.4}", s.mean, s.std),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "Test set: the last {} of {} ad events by time ({} days from {}).\n",
            self.split.test_events(),
            self.split.ad_events,
            self.split.per_day.len(),
            self.split
                .first_day()
                .map_or_else(|| "-".into(), |d| d.to_string()),
        );
        let split_day = self
            .runs
            .first()
            .map_or_else(|| "-".into(), |r| r.pooled.halves.split_day.to_string());
        let _ = writeln!(
            out,
            "| variant | seeds | AUC | GAUC | logloss | AUC before {split_day} | AUC from {split_day} |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for s in &self.summaries {
            let _ = writeln!(
                out,
                "| {} (`{}`) | {} | {} | {} | {} | {} | {} |",
                s.variant.label(),
                s.variant,
                s.seeds,
                stat(Some(s.auc)),
                stat(s.gauc),
                stat(Some(s.logloss)),
                stat(s.halves_auc.0),
                stat(s.halves_auc.1),
            );
        }
        let _ = writeln!(out, "\n![Test AUC over the test period](results.svg)");
        let _ = writeln!(
            out,
            "\n| run | AUC | GAUC | logloss | calibration | test events | rows trained (TPM / CPM / A-CTR) | seconds (this invocation) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for r in &self.runs {
            let rows = |k| r.rows_trained.get(&k).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "| {} seed {} | {:.4} | {} | {:.4} | {:.3} | {} | {} / {} / {} | {:.0} |",
                r.variant,
                r.seed,
                r.pooled.auc,
                r.pooled
                    .gauc
                    .map_or_else(|| "-".into(), |g| format!("{g:.4}")),
                r.pooled.logloss,
                r.pooled.calibration,
                r.pooled.events,
                rows(ModelKind::Tpm),
                rows(ModelKind::Cpm),
                rows(ModelKind::Actr),
                r.seconds,
            );
        }
        out
    }
}

/// Writes `OUT/results.json`, `OUT/results.md` and `OUT/results.svg`.
pub fn write(out: &Path, results: &ExperimentResults) -> Result<(), ExperimentError> {
    let json = serde_json::to_vec_pretty(results)
        .map_err(|e| ExperimentError::Data(format!("results: {e}")))?;
    for (name, bytes) in [
        ("results.json", json),
        ("results.md", results.markdown().into_bytes()),
        ("results.svg", super::chart::render(results).into_bytes()),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|source| ExperimentError::Io { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::experiment::{Halves, Segment, Source, TestSplit};
    use ctrflow_schemas::EventDate;

    fn run(variant: Variant, seed: u64, aucs: &[Option<f64>]) -> RunResult {
        let day = |n: i64| EventDate::from_timestamp_ms(n * 86_400_000).expect("day");
        RunResult {
            variant,
            seed,
            pooled: Pooled {
                auc: 0.7,
                gauc: None,
                logloss: 0.6,
                calibration: 1.0,
                events: 60,
                halves: Halves {
                    split_day: day(1),
                    early_auc: Some(0.7),
                    early_events: 30,
                    late_auc: Some(0.7),
                    late_events: 30,
                },
                segments: aucs
                    .iter()
                    .enumerate()
                    .map(|(i, &auc)| Segment {
                        from: day(i as i64),
                        to: day(i as i64),
                        events: 20,
                        auc,
                    })
                    .collect(),
            },
            seconds: 1.0,
            rows_trained: BTreeMap::new(),
            dir: PathBuf::from("runs"),
        }
    }

    #[test]
    fn the_chart_draws_each_variant_as_the_seed_mean_per_stretch() {
        let options = ExperimentOptions {
            source: Source::Generated {
                generator: Default::default(),
            },
            out: PathBuf::from("out"),
            variants: vec![Variant::AdOnly, Variant::Full],
            seeds: vec![1, 2],
            test_fraction: 0.2,
            keep_checkpoints: false,
        };
        let split = TestSplit::from_times(vec![1, 2, 3, 4, 5], 0.2).expect("split");
        let results = ExperimentResults::new(
            &options,
            split,
            vec![
                run(Variant::AdOnly, 1, &[Some(0.70), Some(0.72), None]),
                run(Variant::AdOnly, 2, &[Some(0.72), Some(0.74), None]),
                run(Variant::Full, 1, &[Some(0.80), Some(0.60), Some(0.65)]),
                run(Variant::Full, 2, &[Some(0.80), Some(0.60), Some(0.65)]),
            ],
        );
        let svg = super::super::chart::render(&results);
        assert_eq!(svg.matches("<polyline").count(), 2);
        // ad-only: two defined stretches (the third has no AUC), full: three.
        let points = |variant: &str| {
            let start = svg.find(&format!("variant-{variant}")).expect("line");
            let line = &svg[start..svg[start..].find("/>").expect("end") + start];
            line.split("points=\"")
                .nth(1)
                .expect("points")
                .split(' ')
                .count()
        };
        assert_eq!(points("ad-only"), 2);
        assert_eq!(points("full"), 3);
        // The lines are the seed means.
        let series = super::super::chart::series(&results);
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        assert_eq!(series[0].0, Variant::AdOnly);
        assert!(close(series[0].1[0], 0.71) && close(series[0].1[1], 0.73));
        assert_eq!(series[0].1[2], None);
        assert!(close(series[1].1[1], 0.60));
        assert!(svg.contains("A-CTR, ad data only") && svg.contains("full E-CDCTR"));
        assert!(results.markdown().contains("results.svg"));
    }

    #[test]
    fn stats_are_the_mean_and_the_sample_standard_deviation() {
        let s = Stat::of(&[0.78, 0.80, 0.82]).expect("stat");
        assert!((s.mean - 0.80).abs() < 1e-12);
        assert!((s.std - 0.02).abs() < 1e-12);
        assert_eq!(Stat::of(&[0.5]).map(|s| s.std), Some(0.0));
        assert_eq!(Stat::of(&[]), None);
    }
}
