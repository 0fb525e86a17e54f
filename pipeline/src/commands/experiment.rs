//! `ctrflow experiment ecdctr`.

use ctrflow_schemas::EventDate;
use indicatif::ProgressBar;

use crate::cli::{EcdctrArgs, UsageError};
use crate::config::CtrflowConfig;
use crate::experiment::{self, ExperimentOptions, Progress, RunResult, Source, Variant};
use crate::progress;

/// A progress bar per run and a log line when it finishes.
#[derive(Default)]
struct Bars {
    bar: Option<ProgressBar>,
    name: String,
}

impl Progress for Bars {
    fn run_started(&mut self, variant: Variant, seed: u64, days: u64) {
        self.name = format!("{variant} seed {seed}");
        let bar = progress::bar(days, "days");
        bar.set_message(self.name.clone());
        self.bar = Some(bar);
    }

    fn date_done(&mut self, date: EventDate) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("{} {date}", self.name));
        }
    }

    fn run_finished(&mut self, r: &RunResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!(
            variant = %r.variant,
            seed = r.seed,
            auc = r.pooled.auc,
            gauc = r.pooled.gauc,
            logloss = r.pooled.logloss,
            test_events = r.pooled.events,
            seconds = r.seconds,
            "run finished"
        );
    }
}

pub async fn ecdctr(args: EcdctrArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    if let Some(genres) = args.ad_genres {
        config.movielens.ad_genres = genres;
    }
    config.validate()?;
    let variants = args
        .variants
        .iter()
        .map(|v| v.parse::<Variant>().map_err(UsageError))
        .collect::<Result<Vec<_>, _>>()?;
    let source = match args.data {
        Some(dir) => Source::Movielens {
            dir: std::fs::canonicalize(&dir)
                .map_err(|e| UsageError(format!("--data {}: {e}", dir.display())))?,
            ad_genres: config.movielens.ad_genres.clone(),
            like_threshold: config.movielens.like_threshold,
            history: config.movielens.history,
            history_domains: config.movielens.history_domains,
            content: config.movielens.content,
            max_seq_len: config.schema.max_seq_len,
        },
        None => Source::Generated {
            generator: config.generator.clone(),
        },
    };
    let options = ExperimentOptions {
        source,
        out: args.out,
        variants,
        seeds: args.seeds,
        test_fraction: args.test_fraction,
        keep_checkpoints: args.keep_checkpoints,
    };
    let results = experiment::run(&options, &config, &mut Bars::default()).await?;
    print!("{}", results.markdown());
    println!(
        "\nresults: {} and {}",
        options.out.join("results.md").display(),
        options.out.join("results.json").display()
    );
    Ok(())
}
