//! `ctrflow gc`.

use crate::cli::GcArgs;
use crate::config::CtrflowConfig;
use crate::gc::collect_garbage;

pub async fn run(args: GcArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    let storage = super::open_store(args.store, &mut config)?;
    let report = collect_garbage(&storage, args.older_than, args.dry_run).await?;
    for key in &report.orphans {
        println!(
            "{}{key}",
            if args.dry_run {
                "would remove "
            } else {
                "removed "
            }
        );
    }
    println!(
        "{} objects examined, {} orphans ({:.1} MiB) {}, {} younger than {} left alone",
        report.examined,
        report.orphans.len(),
        report.orphan_bytes as f64 / (1024.0 * 1024.0),
        if args.dry_run { "to remove" } else { "removed" },
        report.too_young,
        humantime::format_duration(args.older_than)
    );
    Ok(())
}
