//! The plan as an aligned text table (for `ctrflow daily --dry-run` and logs).

use std::fmt;

use crate::plan::{JobAction, Plan, Start};

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![[
            "model".to_string(),
            "action".into(),
            "version".into(),
            "window".into(),
            "days".into(),
            "start".into(),
            "parents".into(),
        ]];
        for job in &self.jobs {
            let action = match &job.action {
                JobAction::Run => "run".to_string(),
                JobAction::NotDue { next_due } => format!("not due (next {next_due})"),
                JobAction::AlreadyPublished => "already published".into(),
                JobAction::Skip { reason } => format!("skip: {reason}"),
            };
            let window = job
                .window
                .map_or_else(|| "-".into(), |(a, b)| format!("{a}..={b}"));
            let days = if job.window.is_some() || !job.missing_days.is_empty() {
                format!(
                    "{} closed, {} missing",
                    job.train_days.len(),
                    job.missing_days.len()
                )
            } else {
                "-".into()
            };
            let start = match (&job.action, &job.start) {
                (JobAction::Run, Start::Fresh) => "fresh".to_string(),
                (JobAction::Run, Start::Continue(v)) => format!("continue {v}"),
                (JobAction::Run, Start::FromCpm(v)) => format!("from cpm {v}"),
                _ => "-".into(),
            };
            let mut parents = Vec::new();
            if !job.parents.tpm.is_empty() {
                let tpm: Vec<&str> = job.parents.tpm.iter().map(|v| v.as_str()).collect();
                parents.push(format!("tpm {}", tpm.join("+")));
            }
            if let Some(cpm) = &job.parents.cpm {
                parents.push(format!("cpm {cpm}"));
            }
            rows.push([
                job.model.to_string(),
                action,
                job.version.to_string(),
                window,
                days,
                start,
                if parents.is_empty() {
                    "-".into()
                } else {
                    parents.join(", ")
                },
            ]);
        }
        let mut widths = [0usize; 7];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        writeln!(f, "plan for {}", self.date)?;
        for row in &rows {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(&format!("{cell:<w$}"));
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}
