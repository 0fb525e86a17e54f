//! `results.svg`: AUC of each variant (mean over seeds) over consecutive stretches of the test
//! period, so a component that helps early and hurts late shows as crossing lines. Plain SVG,
//! no scripts.

use std::fmt::Write;

use super::Variant;
use super::report::ExperimentResults;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 230.0;
/// Room inside the plot before the first and after the last stretch, for their labels.
const INSET: f64 = 60.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 56.0;

fn colour(variant: Variant) -> &'static str {
    match variant {
        Variant::AdOnly => "#7a7a7a",
        Variant::Cpm => "#1f77b4",
        Variant::Tpm => "#2ca02c",
        Variant::Full => "#d62728",
    }
}

/// Per variant, the mean AUC of each stretch over the seeds where it is defined.
pub(super) fn series(results: &ExperimentResults) -> Vec<(Variant, Vec<Option<f64>>)> {
    let stretches = results.runs.first().map_or(0, |r| r.pooled.segments.len());
    results
        .summaries
        .iter()
        .map(|s| {
            let points = (0..stretches)
                .map(|i| {
                    let values: Vec<f64> = results
                        .runs
                        .iter()
                        .filter(|r| r.variant == s.variant)
                        .filter_map(|r| r.pooled.segments.get(i).and_then(|g| g.auc))
                        .collect();
                    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
                })
                .collect();
            (s.variant, points)
        })
        .collect()
}

/// The chart as an SVG document.
pub fn render(results: &ExperimentResults) -> String {
    let series = series(results);
    let labels: Vec<String> = results
        .runs
        .first()
        .map(|r| {
            r.pooled
                .segments
                .iter()
                .map(|g| format!("{}..{}", g.from, g.to))
                .collect()
        })
        .unwrap_or_default();
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().flatten().copied())
        .collect();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"14\" font-size=\"13\">Test AUC over the test period \
         (mean over seeds; stretches of about equal test events)</text>"
    );
    if values.is_empty() || labels.is_empty() {
        svg.push_str("<text x=\"60\" y=\"60\">no test results</text></svg>\n");
        return svg;
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(0.005);
    let (lo, hi) = (lo - pad, hi + pad);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = labels.len();
    let x = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + INSET + (plot_w - 2.0 * INSET) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + plot_h * (1.0 - (v - lo) / (hi - lo));
    // Axes and horizontal grid with AUC ticks.
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" \
         stroke=\"#ccc\"/>"
    );
    for t in 0..=4 {
        let v = lo + (hi - lo) * t as f64 / 4.0;
        let yy = y(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.3}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for (i, label) in labels.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{label}</text>",
            x(i),
            HEIGHT - BOTTOM + 16.0 + 12.0 * (i % 2) as f64
        );
    }
    // One line and legend entry per variant.
    for (k, (variant, points)) in series.iter().enumerate() {
        let c = colour(*variant);
        let path: Vec<String> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline class=\"variant-{variant}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" \
             points=\"{}\"/>",
            path.join(" ")
        );
        for p in &path {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{c}\"/>"
            );
        }
        let ly = TOP + 14.0 + 18.0 * k as f64;
        let lx = WIDTH - RIGHT + 12.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{c}\" \
             stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            variant.label()
        );
    }
    svg.push_str("</svg>\n");
    svg
}
