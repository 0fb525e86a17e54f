//! Checks of a feature batch before a step reads it: shapes (a hand-built batch may be
//! inconsistent), the inputs the network needs, and finite values. An error names the feature,
//! and for a non-finite value the step and row; nothing is changed by a rejected batch.

use super::net::NetSpec;
use super::{CONTEXT_WIDTH, FeatureBatch};
use crate::error::{ModelsError, Result};

/// Checks `batch` for a network of `spec` at training step `step`.
pub(super) fn check_batch(batch: &FeatureBatch, spec: &NetSpec, step: u64) -> Result<()> {
    check_shapes(batch)?;
    if (spec.sequences.is_some() || spec.srp.is_some()) && batch.without_sequences {
        return Err(missing_sequences());
    }
    let rows = batch.rows();
    if let Some(row) = batch.labels.iter().position(|l| !l.is_finite()) {
        return Err(ModelsError::NonFiniteInput {
            step,
            feature: "label",
            row,
            value: batch.labels[row],
        });
    }
    if let Some(i) = batch.context.iter().position(|v| !v.is_finite()) {
        return Err(ModelsError::NonFiniteInput {
            step,
            feature: "context",
            row: i / CONTEXT_WIDTH,
            value: batch.context[i],
        });
    }
    let width = spec.content_width;
    if width > 0 {
        if batch.content_width != width || batch.content.len() != rows * width {
            return Err(ModelsError::shape(
                "content [B, d_content] (item_content)",
                rows * width,
                batch.content.len(),
            ));
        }
        if let Some(i) = batch.content.iter().position(|v| !v.is_finite()) {
            return Err(ModelsError::NonFiniteInput {
                step,
                feature: "content",
                row: i / width,
                value: batch.content[i],
            });
        }
    }
    if spec.sequences.is_some_and(|q| q.categories) {
        for (what, seq) in [
            ("short behaviour categories", &batch.short),
            ("long behaviour categories", &batch.long),
        ] {
            if seq.categories.len() != seq.ids.len() {
                return Err(ModelsError::shape(
                    what,
                    seq.ids.len(),
                    seq.categories.len(),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that a (possibly hand-built) batch is internally consistent.
fn check_shapes(batch: &FeatureBatch) -> Result<()> {
    let rows = batch.rows();
    let checks = [
        ("user ids [B]", rows, batch.user_ids.len()),
        ("item ids [B]", rows, batch.item_ids.len()),
        ("category ids [B]", rows, batch.category_ids.len()),
        (
            "context [B, CONTEXT_WIDTH]",
            rows * CONTEXT_WIDTH,
            batch.context.len(),
        ),
        ("short offsets [B + 1]", rows + 1, batch.short.offsets.len()),
        ("long offsets [B + 1]", rows + 1, batch.long.offsets.len()),
    ];
    for (what, expected, found) in checks {
        if expected != found {
            return Err(ModelsError::shape(what, expected, found));
        }
    }
    for (what, seq) in [("short ids", &batch.short), ("long ids", &batch.long)] {
        let last = seq.offsets.last().copied().unwrap_or(0) as usize;
        if last != seq.ids.len() || seq.offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(ModelsError::shape(what, last, seq.ids.len()));
        }
    }
    Ok(())
}

/// The error for a batch read without its history columns by a trainer that needs them.
pub(super) fn missing_sequences() -> ModelsError {
    ModelsError::Column {
        column: ctrflow_schemas::columns::HIST_ITEM_IDS,
        reason: "missing: this trainer reads behaviour sequences (was the column projected \
                 away?)"
            .into(),
    }
}
