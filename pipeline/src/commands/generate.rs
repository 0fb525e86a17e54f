//! `ctrflow generate`.

use std::io::Write;

use ctrflow_operators::generate::{GenerateSummary, generate_archive, write_jsonl};
use ctrflow_operators::sql::{OutputFormat, run_query, write_batches};
use ctrflow_schemas::EventDate;

use crate::cli::{GenerateArgs, GenerateFormat, UsageError};
use crate::config::CtrflowConfig;
use crate::progress;

/// The summary printed after a Parquet archive was generated.
const SUMMARY_SQL: &str = "SELECT domain, count(*) AS events, count(DISTINCT user_id) AS users, \
     round(avg(CAST(label AS DOUBLE)), 4) AS ctr, \
     round(avg(array_length(hist_item_ids)), 1) AS mean_seq_len, \
     max(array_length(hist_item_ids)) AS max_seq_len, \
     min(CAST(event_time AS DATE)) AS first_day, max(CAST(event_time AS DATE)) AS last_day \
     FROM (SELECT * FROM natural UNION ALL SELECT * FROM ad) GROUP BY domain ORDER BY domain";

pub async fn run(args: GenerateArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    let g = &mut config.generator;
    if let Some(v) = args.days {
        g.days = v;
    }
    if let Some(v) = args.users {
        g.users = v;
    }
    if let Some(v) = args.items {
        g.items = v;
    }
    if let Some(v) = args.events_per_day {
        g.events_per_day = v;
    }
    if let Some(v) = args.seed {
        g.seed = v;
    }
    if let Some(d) = &args.start_date {
        g.start_date = d
            .parse::<EventDate>()
            .map_err(|e| UsageError(format!("--start-date: {e}")))?;
    }
    config.validate()?;
    let cfg = config.generator.clone();
    let bar = progress::bar(u64::from(cfg.days), "days");
    bar.set_message("generating");
    let on_progress = |p: ctrflow_operators::generate::GenerateProgress| {
        bar.set_position(u64::from(p.days_done));
        bar.set_message(format!("{} ({} events)", p.date, p.events_so_far));
    };
    match args.format {
        GenerateFormat::Jsonl => {
            let out = args
                .out
                .ok_or_else(|| UsageError("--format jsonl needs --out FILE (or -)".into()))?;
            let summary = tokio::task::spawn_blocking(move || {
                if out.as_os_str() == "-" {
                    write_jsonl(&cfg, std::io::stdout().lock(), |_| {})
                } else {
                    let file = std::fs::File::create(&out).map_err(|source| {
                        ctrflow_operators::OperatorError::Io {
                            path: out.display().to_string(),
                            source,
                        }
                    })?;
                    write_jsonl(&cfg, file, |_| {})
                }
            })
            .await??;
            bar.finish_and_clear();
            log_summary(&summary);
        }
        GenerateFormat::Parquet => {
            let storage = super::open_store(args.store, &mut config)?;
            let summary = generate_archive(&storage, &cfg, on_progress).await?;
            bar.finish_and_clear();
            log_summary(&summary);
            println!(
                "generated {} days ({}..={}) into {}: {} files, {:.1} MiB",
                summary.days,
                summary.first_date,
                summary.last_date,
                config.store.url,
                summary.files,
                summary.bytes as f64 / (1024.0 * 1024.0)
            );
            let batches = run_query(&storage, &config.schema.event_schema(), SUMMARY_SQL).await?;
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write_batches(&batches, OutputFormat::Table, &mut lock)?;
            lock.flush()?;
        }
    }
    Ok(())
}

fn log_summary(s: &GenerateSummary) {
    tracing::info!(
        days = s.days,
        natural_events = s.natural_events,
        ad_events = s.ad_events,
        natural_ctr = s.natural_clicks as f64 / s.natural_events.max(1) as f64,
        ad_ctr = s.ad_clicks as f64 / s.ad_events.max(1) as f64,
        files = s.files,
        bytes = s.bytes,
        "generation finished"
    );
}
