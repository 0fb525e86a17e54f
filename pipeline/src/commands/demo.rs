//! `ctrflow demo`.

use crate::cli::DemoArgs;
use crate::config::CtrflowConfig;
use crate::daily::summary;
use crate::demo::{DemoOptions, run_demo};

pub async fn run(args: DemoArgs, config: CtrflowConfig) -> anyhow::Result<()> {
    let options = DemoOptions {
        dir: args.dir,
        brokers: args.brokers,
        store: args.store,
        days: args.days,
        events_per_day: args.events_per_day,
        users: args.users,
    };
    let outcome = run_demo(config, &options).await?;
    println!(
        "\nctrflow demo: produced {} messages, ingested and closed {} days in {:.0} s; daily jobs took {:.0} s\n",
        outcome.produced, options.days, outcome.seconds.0, outcome.seconds.1
    );
    print!("{}", summary::render(&outcome.reports));
    println!("\npublished under {}:", outcome.store_url);
    for key in &outcome.published {
        println!("  {key}");
    }
    if let Some(last) = outcome.reports.last() {
        println!(
            "  reports/{}/report.html   (AUC of every version over the demo, as a chart)",
            last.date
        );
    }
    println!(
        "\ninspect: ctrflow models list --store {}\n         ctrflow sql --store {} \"SELECT count(*) FROM ad\"",
        outcome.store_url, outcome.store_url
    );
    Ok(())
}
