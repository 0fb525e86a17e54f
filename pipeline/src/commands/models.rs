//! `ctrflow models list|show|rollback`.

use std::fmt::Write;

use ctrflow_schemas::{GateVerdict, ModelKind, ModelVersion};

use crate::cli::{ModelsCommand, UsageError};
use crate::config::CtrflowConfig;
use crate::daily::state::Published;
use crate::daily::{publish, summary};

fn kind(value: &str) -> anyhow::Result<ModelKind> {
    Ok(value
        .parse::<ModelKind>()
        .map_err(|e| UsageError(format!("model: {e}")))?)
}

pub async fn run(command: ModelsCommand, mut config: CtrflowConfig) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List { store, model } => {
            let storage = super::open_store(store, &mut config)?;
            let only = model.as_deref().map(kind).transpose()?;
            let published = Published::load(&storage, &storage).await?;
            print!("{}", list(&published, only));
        }
        ModelsCommand::Show {
            model,
            version,
            store,
        } => {
            let storage = super::open_store(store, &mut config)?;
            let kind = kind(&model)?;
            let published = Published::load(&storage, &storage).await?;
            let version = match version {
                Some(v) => ModelVersion::new(v).map_err(|e| UsageError(e.to_string()))?,
                None => published
                    .latest
                    .get(&kind)
                    .map(|l| l.pointer.version.clone())
                    .ok_or_else(|| UsageError(format!("{kind} has no LATEST yet")))?,
            };
            let manifest = published
                .manifest(kind, &version)
                .ok_or_else(|| UsageError(format!("{kind} {version} is not published")))?;
            println!("{}", serde_json::to_string_pretty(manifest)?);
        }
        ModelsCommand::Rollback { model, to, store } => {
            let storage = super::open_store(store, &mut config)?;
            let kind = kind(&model)?;
            let version = ModelVersion::new(to).map_err(|e| UsageError(e.to_string()))?;
            let published = Published::load(&storage, &storage).await?;
            let manifest = published
                .manifest(kind, &version)
                .ok_or_else(|| UsageError(format!("{kind} {version} is not published")))?;
            if let GateVerdict::Rejected { reason } = &manifest.gate {
                return Err(UsageError(format!(
                    "{kind} {version} was rejected by the gate ({reason}); it cannot be made live"
                ))
                .into());
            }
            let before = published
                .latest
                .get(&kind)
                .map(|l| l.pointer.version.clone());
            publish::swap_latest(&storage, kind, &version).await?;
            tracing::info!(model = %kind, from = ?before, to = %version, "LATEST rolled back");
            println!(
                "{kind}: LATEST {} -> {version}",
                before.map_or_else(|| "(none)".to_string(), |v| v.to_string())
            );
        }
    }
    Ok(())
}

/// The table of `models list`.
fn list(published: &Published, only: Option<ModelKind>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:<10} {:<1} {:<10} {:<23} {:>8} {:>7} {:>7}  {:<28} gate",
        "model", "version", "", "date", "window", "rows", "AUC", "GAUC", "parents"
    );
    for kind in ModelKind::ALL {
        if only.is_some_and(|k| k != kind) {
            continue;
        }
        let live = published.latest.get(&kind).map(|l| &l.pointer.version);
        for m in published.versions(kind) {
            let parents = summary::parents_text(&m.parents);
            let gate = match &m.gate {
                GateVerdict::Accepted => "accepted".to_string(),
                GateVerdict::NotGated => "not gated".into(),
                GateVerdict::Rejected { reason } => format!("rejected: {reason}"),
            };
            let metric = |f: fn(&ctrflow_schemas::ModelMetrics) -> Option<f64>| {
                m.metrics
                    .as_ref()
                    .and_then(f)
                    .map_or("-".to_string(), |x| format!("{x:.4}"))
            };
            let _ = writeln!(
                out,
                "{:<5} {:<10} {:<1} {:<10} {:<23} {:>8} {:>7} {:>7}  {:<28} {gate}",
                kind.as_str(),
                m.version.as_str(),
                if live == Some(&m.version) { "*" } else { "" },
                m.date.to_string(),
                format!("{}..={}", m.data_window.from, m.data_window.to),
                m.data_window.rows.values().sum::<u64>(),
                metric(|x| Some(x.auc)),
                metric(|x| x.gauc),
                parents,
            );
        }
    }
    out
}
