//! Progress bars for long work. They draw on stderr only when it is a terminal, so logs of
//! scheduled runs stay clean.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `total` units labelled `what` (e.g. "days", "events").
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!(
        "{{spinner}} {{msg}} [{{elapsed_precise}}] [{{wide_bar}}] {{pos}}/{{len}} {what} \
         ({{per_sec}}, eta {{eta}})"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
