//! `reports/{date}/report.html`: what a daily run did (the summary table and the plan) and,
//! as a picture, the evaluation AUC of every published version of each model up to that date,
//! with gate rejections marked. Self-contained HTML with inline SVG: no scripts, no assets.

use std::fmt::Write;

use ctrflow_schemas::{GateVerdict, ModelKind, ModelManifest};

use super::run::DailyReport;
use super::summary;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 280.0;
const MARGIN: f64 = 48.0;

fn colour(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Tpm => "#7a7a7a",
        ModelKind::Cpm => "#1f77b4",
        ModelKind::Actr => "#d62728",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG line chart of AUC by date, one line per model; rejected versions are hollow marks.
pub fn auc_chart(history: &[&ModelManifest]) -> String {
    let points: Vec<(&ModelManifest, f64)> = history
        .iter()
        .filter_map(|m| m.metrics.as_ref().map(|x| (*m, x.auc)))
        .collect();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"11\">"
    );
    let (Some(first), Some(last)) = (
        points.iter().map(|(m, _)| m.date).min(),
        points.iter().map(|(m, _)| m.date).max(),
    ) else {
        svg.push_str("<text x=\"20\" y=\"40\">no evaluated versions yet</text></svg>");
        return svg;
    };
    let span = first.days_until(last).max(1) as f64;
    let (lo, hi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (_, a)| {
            (lo.min(*a), hi.max(*a))
        });
    let (lo, hi) = ((lo - 0.02).max(0.0), (hi + 0.02).min(1.0));
    let x = |d: ctrflow_schemas::EventDate| {
        MARGIN + (WIDTH - 2.0 * MARGIN) * first.days_until(d) as f64 / span
    };
    let y = |a: f64| HEIGHT - MARGIN - (HEIGHT - 2.0 * MARGIN) * (a - lo) / (hi - lo).max(1e-9);
    // Axes, gridlines and labels.
    for i in 0..=4 {
        let a = lo + (hi - lo) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{MARGIN}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"4\" y=\"{:.1}\">{a:.3}</text>",
            WIDTH - MARGIN,
            y(a) + 4.0,
            y = y(a)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{MARGIN}\" y=\"{}\">{first}</text><text x=\"{}\" y=\"{}\" \
         text-anchor=\"end\">{last}</text><text x=\"{}\" y=\"14\" text-anchor=\"middle\">\
         AUC on the evaluation day, by version date</text>",
        HEIGHT - 12.0,
        WIDTH - MARGIN,
        HEIGHT - 12.0,
        WIDTH / 2.0
    );
    for (i, kind) in ModelKind::ALL.into_iter().enumerate() {
        let mut series: Vec<&(&ModelManifest, f64)> =
            points.iter().filter(|(m, _)| m.model == kind).collect();
        series.sort_by_key(|(m, _)| m.date);
        let c = colour(kind);
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"22\" width=\"10\" height=\"10\" fill=\"{c}\"/>\
             <text x=\"{}\" y=\"31\">{kind}</text>",
            MARGIN + 70.0 * i as f64,
            MARGIN + 14.0 + 70.0 * i as f64
        );
        if series.is_empty() {
            continue;
        }
        let path: Vec<String> = series
            .iter()
            .map(|(m, a)| format!("{:.1},{:.1}", x(m.date), y(*a)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
        for (m, a) in series {
            let rejected = matches!(m.gate, GateVerdict::Rejected { .. });
            let fill = if rejected { "white" } else { c };
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{fill}\" stroke=\"{c}\">\
                 <title>{kind} {} AUC {a:.4}{}</title></circle>",
                x(m.date),
                y(*a),
                m.version,
                if rejected { " (rejected)" } else { "" }
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The whole report of one run.
pub fn render(report: &DailyReport, history: &[&ModelManifest]) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ctrflow daily {date}</title>\
         <style>body{{font-family:sans-serif;margin:24px}}pre{{background:#f6f6f6;padding:8px}}</style>\
         </head><body><h1>ctrflow daily {date}</h1>\
         <h2>Model quality over time</h2>{chart}\
         <p>Hollow marks: versions the gate rejected (the previous model stayed live).</p>\
         <h2>This run</h2><pre>{table}</pre><h2>Plan</h2><pre>{plan}</pre></body></html>\n",
        date = report.date,
        chart = auc_chart(history),
        table = escape(&summary::render(std::slice::from_ref(report))),
        plan = escape(&report.plan),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::DateTime;
    use ctrflow_schemas::{DataWindow, EventDate, ModelMetrics, ModelVersion, Parents};

    use super::*;

    fn manifest(kind: ModelKind, date: &str, auc: f64, gate: GateVerdict) -> ModelManifest {
        let date: EventDate = date.parse().expect("date");
        ModelManifest {
            model: kind,
            version: ModelVersion::for_date(date),
            date,
            data_window: DataWindow {
                from: date,
                to: date,
                rows: BTreeMap::new(),
            },
            parents: Parents::default(),
            point_in_time_snapshots: Vec::new(),
            config_hash: String::new(),
            schema_hash: String::new(),
            metrics: Some(ModelMetrics {
                auc,
                gauc: None,
                logloss: 0.5,
                calibration: 1.0,
                samples: 10,
            }),
            gate,
            code_version: String::new(),
            files: Vec::new(),
            created_at: DateTime::from_timestamp_millis(0).expect("ts"),
        }
    }

    #[test]
    fn the_chart_has_a_line_per_model_and_marks_rejections() {
        let ms = [
            manifest(ModelKind::Actr, "2024-01-02", 0.61, GateVerdict::Accepted),
            manifest(
                ModelKind::Actr,
                "2024-01-03",
                0.58,
                GateVerdict::Rejected {
                    reason: "worse".into(),
                },
            ),
            manifest(ModelKind::Actr, "2024-01-04", 0.63, GateVerdict::Accepted),
            manifest(ModelKind::Cpm, "2024-01-02", 0.70, GateVerdict::NotGated),
        ];
        let refs: Vec<&ModelManifest> = ms.iter().collect();
        let svg = auc_chart(&refs);
        assert_eq!(svg.matches("<polyline").count(), 2, "actr and cpm");
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(
            svg.matches("fill=\"white\"").count(),
            1,
            "one rejected version"
        );
        assert!(svg.contains("actr d20240103 AUC 0.5800 (rejected)"));
        assert!(svg.contains(">2024-01-02<") && svg.contains(">2024-01-04<"));
        assert!(auc_chart(&[]).contains("no evaluated versions"));
    }
}
