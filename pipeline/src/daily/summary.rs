//! Human summaries of daily reports: one row per date and model with the version, what
//! happened, the parents, the metrics and the gate verdict.

use std::fmt::Write;

use ctrflow_schemas::{GateVerdict, Parents};

use super::run::DailyReport;

fn metric(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

/// Parents as `prev V, cpm V, tpm V1+V2` (`-` when there are none).
pub fn parents_text(parents: &Parents) -> String {
    let mut out = Vec::new();
    if let Some(p) = &parents.previous {
        out.push(format!("prev {p}"));
    }
    if let Some(c) = &parents.cpm {
        out.push(format!("cpm {c}"));
    }
    if !parents.tpm.is_empty() {
        let list: Vec<&str> = parents.tpm.iter().map(|v| v.as_str()).collect();
        out.push(format!("tpm {}", list.join("+")));
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(", ")
    }
}

/// An aligned text table of `reports`.
pub fn render(reports: &[DailyReport]) -> String {
    let header = [
        "date", "model", "version", "action", "rows", "parents", "AUC", "GAUC", "logloss",
        "live AUC", "gate",
    ];
    let mut rows: Vec<[String; 11]> = Vec::new();
    for report in reports {
        for job in &report.jobs {
            let gate = match &job.gate {
                None => "-".to_string(),
                Some(GateVerdict::Accepted) => "accepted".into(),
                Some(GateVerdict::NotGated) => "published".into(),
                Some(GateVerdict::Rejected { reason }) => format!("REJECTED: {reason}"),
            };
            let action = if job.action == "run" {
                job.detail.clone()
            } else if job.detail.is_empty() {
                job.action.clone()
            } else {
                format!("{} ({})", job.action, job.detail)
            };
            rows.push([
                report.date.to_string(),
                job.model.to_string(),
                job.version.to_string(),
                action,
                if job.rows > 0 {
                    job.rows.to_string()
                } else {
                    "-".into()
                },
                parents_text(&job.parents),
                metric(job.metrics.as_ref().map(|m| m.auc)),
                metric(job.metrics.as_ref().and_then(|m| m.gauc)),
                metric(job.metrics.as_ref().map(|m| m.logloss)),
                metric(
                    job.live
                        .as_ref()
                        .and_then(|(_, m)| m.as_ref())
                        .map(|m| m.auc),
                ),
                gate,
            ]);
        }
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for (cell, w) in cells.zip(&widths) {
            if !first {
                out.push_str("  ");
            }
            first = false;
            let _ = write!(out, "{cell:<w$}");
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, &mut header.iter().copied());
    for row in &rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}
