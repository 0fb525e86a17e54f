//! `ctrflow daily` and `ctrflow backfill`.

use ctrflow_models::ComputeDevice;
use ctrflow_schemas::EventDate;

use crate::cli::{BackfillArgs, DailyArgs, UsageError};
use crate::config::CtrflowConfig;
use crate::daily::{self, DailyOptions, summary};
use crate::progress;

fn parse_date(flag: &str, value: &str) -> anyhow::Result<EventDate> {
    Ok(value
        .parse::<EventDate>()
        .map_err(|e| UsageError(format!("{flag}: {e}")))?)
}

/// `--device` over every model's `train.device`.
fn set_device(config: &mut CtrflowConfig, device: Option<ComputeDevice>) -> anyhow::Result<()> {
    if let Some(device) = device {
        // The trainer's own message, before any work starts.
        device
            .ensure_available()
            .map_err(|e| UsageError(format!("--device: {e}")))?;
        for m in [
            &mut config.daily.tpm,
            &mut config.daily.cpm,
            &mut config.daily.actr,
        ] {
            m.train.device = device;
        }
    }
    Ok(())
}

pub async fn run_daily(args: DailyArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    let date = parse_date("--date", &args.date)?;
    set_device(&mut config, args.device)?;
    let stores = super::open_stores(args.store, args.models_store, &mut config)?;
    let options = DailyOptions {
        force: args.force,
        wait_for_parents: args.wait,
        dry_run: args.dry_run,
    };
    let report = daily::run_daily(&stores, &config, date, options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.dry_run {
        print!("{}", report.plan);
    } else {
        print!("{}", summary::render(std::slice::from_ref(&report)));
    }
    Ok(())
}

pub async fn run_backfill(args: BackfillArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    let from = parse_date("--from", &args.from)?;
    let to = parse_date("--to", &args.to)?;
    if to < from {
        return Err(UsageError(format!("--to {to} is before --from {from}")).into());
    }
    set_device(&mut config, args.device)?;
    let stores = super::open_stores(args.store, args.models_store, &mut config)?;
    let options = DailyOptions {
        force: args.force,
        wait_for_parents: args.wait,
        dry_run: false,
    };
    let bar = progress::bar((from.days_until(to) + 1) as u64, "days");
    bar.set_message(format!("backfill {from}..={to}"));
    let reports = daily::backfill(&stores, &config, from, to, options, |r| {
        bar.inc(1);
        bar.set_message(format!("done {}", r.date));
    })
    .await?;
    bar.finish_and_clear();
    print!("{}", summary::render(&reports));
    Ok(())
}
