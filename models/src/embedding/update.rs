//! The row-sparse update of an [`EmbeddingTable`]: one lazy-Adam step on exactly the rows a
//! step read, with the gradients checked before anything changes.

use super::{EmbeddingTable, Lookup, SparseAdamConfig};
use crate::error::{ModelsError, Result};

/// Steps whose bias corrections a table precomputes (after that they are computed per row;
/// by then both corrections are within 1e-4 of 1 for the default betas, but exactness is kept).
pub(super) const BIAS_CORRECTION_STEPS: u32 = 4096;

/// Adam's bias corrections at step `t >= 1`: the step size `lr / (1 - b1^t)` and
/// `1 / sqrt(1 - b2^t)`, computed in f64.
pub(super) fn bias_corrections(o: &SparseAdamConfig, t: u32) -> (f32, f32) {
    let t = i32::try_from(t).unwrap_or(i32::MAX);
    let bc1 = 1.0 - f64::from(o.beta1).powi(t);
    let bc2 = 1.0 - f64::from(o.beta2).powi(t);
    (
        (f64::from(o.learning_rate) / bc1) as f32,
        (1.0 / bc2.sqrt()) as f32,
    )
}

/// [`bias_corrections`] for steps `1..=BIAS_CORRECTION_STEPS`, index `t - 1`.
pub(super) fn bias_correction_table(o: &SparseAdamConfig) -> Vec<(f32, f32)> {
    (1..=BIAS_CORRECTION_STEPS)
        .map(|t| bias_corrections(o, t))
        .collect()
}

impl EmbeddingTable {
    /// One sparse lazy-Adam step on exactly the rows of `lookup`, the default row included when
    /// present (it is trained like any row: it learns the best vector for unknown ids).
    /// `grads` is `[unique, dim]` row-major, aligned with
    /// [`Lookup::unique_slots`]. Rows not in the lookup are untouched: no moment decay, no
    /// weight decay, their step counters stay.
    ///
    /// Per row, with its own step counter `t` (incremented first) and `g` its gradient:
    /// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
    /// `w = w (1 - lr wd) - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`
    /// (PyTorch's AdamW arithmetic). Non-finite gradients are rejected before anything changes.
    pub fn apply_gradients(&mut self, lookup: &Lookup, grads: &[f32]) -> Result<()> {
        self.check_lookup(lookup)?;
        let unique = lookup.unique_slots.len();
        self.check_gradients(unique, grads)?;
        self.adam_rows(lookup.unique_slots.iter().copied(), grads);
        Ok(())
    }

    /// [`apply_gradients`](Self::apply_gradients) on a subset of the lookup's rows: `rows` are
    /// strictly increasing indices into [`Lookup::unique_slots`] and `grads` is
    /// `[rows.len(), dim]`, aligned with them. For rows a step looked up but did not use in its
    /// forward pass (ETA hashes every long behaviour, the network sees only the top-k): like
    /// PyTorch's sparse embeddings, a row without a gradient gets no optimiser step.
    pub fn apply_gradients_to(
        &mut self,
        lookup: &Lookup,
        rows: &[u32],
        grads: &[f32],
    ) -> Result<()> {
        self.check_lookup(lookup)?;
        let unique = lookup.unique_slots.len();
        if let Some(w) = rows.windows(2).position(|w| w[0] >= w[1]) {
            return Err(ModelsError::shape(
                "gradient rows (strictly increasing)",
                rows[w] as usize + 1,
                rows[w + 1] as usize,
            ));
        }
        if let Some(&last) = rows.last()
            && last as usize >= unique
        {
            return Err(ModelsError::shape(
                "gradient row index < unique",
                unique,
                last as usize,
            ));
        }
        self.check_gradients(rows.len(), grads)?;
        let slots = rows.iter().map(|&r| lookup.unique_slots[r as usize]);
        self.adam_rows(slots, grads);
        Ok(())
    }

    /// Checks a `[rows, dim]` gradient: its length and that every value is finite.
    fn check_gradients(&self, rows: usize, grads: &[f32]) -> Result<()> {
        let dim = self.dim;
        if grads.len() != rows * dim {
            return Err(ModelsError::shape(
                "gradients [unique, dim]",
                rows * dim,
                grads.len(),
            ));
        }
        if let Some(i) = grads.iter().position(|g| !g.is_finite()) {
            return Err(ModelsError::NonFiniteGradient {
                row: i / dim,
                column: i % dim,
                value: grads[i],
            });
        }
        Ok(())
    }

    /// One lazy-Adam step on each slot with its `[dim]` gradient.
    fn adam_rows(&mut self, slots: impl Iterator<Item = u32>, grads: &[f32]) {
        let dim = self.dim;
        let o = self.config.optimizer;
        let (b1, b2) = (o.beta1, o.beta2);
        let decay = 1.0 - o.learning_rate * o.weight_decay;
        for (slot, g) in slots.zip(grads.chunks_exact(dim)) {
            let s = slot as usize;
            self.steps[s] = self.steps[s].saturating_add(1);
            self.revision[s] = self.revision[s].wrapping_add(1);
            let t = self.steps[s];
            let (step_size, inv_sqrt_bc2) = match self.bias_corrections.get(t as usize - 1) {
                Some(&corrections) => corrections,
                None => bias_corrections(&o, t),
            };
            let range = s * dim..(s + 1) * dim;
            let w = &mut self.values[range.clone()];
            let m = &mut self.m[range.clone()];
            let v = &mut self.v[range];
            for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                let denom = v.sqrt() * inv_sqrt_bc2 + o.eps;
                *w = *w * decay - step_size * *m / denom;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::{Day, EmbeddingTableConfig};

    /// The per-row arithmetic with the corrections computed at every step, as before the table
    /// of corrections: the table must give the same bits, inside it and past its end.
    #[test]
    fn precomputed_bias_corrections_give_the_same_bits_past_the_table() {
        let mut config = EmbeddingTableConfig::new(3);
        config.optimizer.weight_decay = 0.01;
        let o = config.optimizer;
        let mut table = EmbeddingTable::new(config).expect("valid config");
        let mut lookup = Lookup::new();
        table.lookup(&[7], Day(1), true, &mut lookup);
        let mut w = table.row(7).expect("admitted").to_vec();
        let (mut m, mut v) = (vec![0.0f32; 3], vec![0.0f32; 3]);
        let decay = 1.0 - o.learning_rate * o.weight_decay;
        for step in 1..=BIAS_CORRECTION_STEPS + 20 {
            let g = [0.3f32, -1.2, if step % 2 == 0 { 0.7 } else { -0.1 }];
            table.apply_gradients(&lookup, &g).expect("finite");
            let t = step as i32;
            let bc1 = 1.0 - f64::from(o.beta1).powi(t);
            let bc2 = 1.0 - f64::from(o.beta2).powi(t);
            let step_size = (f64::from(o.learning_rate) / bc1) as f32;
            let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
            for j in 0..3 {
                m[j] = o.beta1 * m[j] + (1.0 - o.beta1) * g[j];
                v[j] = o.beta2 * v[j] + (1.0 - o.beta2) * g[j] * g[j];
                let denom = v[j].sqrt() * inv_sqrt_bc2 + o.eps;
                w[j] = w[j] * decay - step_size * m[j] / denom;
            }
            assert_eq!(table.row(7).expect("row"), &w[..], "step {step}");
        }
    }
}
