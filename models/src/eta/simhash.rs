//! SimHash codes and Hamming top-k selection, ETA's retrieval step.
//!
//! **Encoding.** [`SimHash`] holds a fixed Gaussian projection `R` of `dim x width` (width 32
//! when `bits <= 32`, else 64; columns past `bits` are zero), row-major so that the inner loop
//! `y[0..32] += x[d] * R[d, block]` is a contiguous, fixed-length multiply-add the compiler
//! vectorises (one pass over the vector per 32-bit block, so the accumulator stays in
//! registers). Bit `b` of the code is set when `y[b] > 0`. Each lane sums over `d` in order, so
//! the result equals a naive per-bit dot product exactly. Cost O(n * dim * width), no
//! allocation (the accumulator lives on the stack).
//!
//! **Selection.** Hamming distances between 64-bit codes lie in `0..=64`, so
//! [`top_k_by_hamming`] needs no sort: one pass builds a 65-bucket histogram, a prefix sum finds
//! the cut-off distance and the number of ties to keep there, a second pass writes indices into
//! their bucket's place. O(L + 65) time, O(1) memory, stable (lower index first on ties). The
//! output is ordered by (distance, index), best first.

use crate::error::{ModelsError, Result};
use crate::rng::SplitMix64;

/// Domain tag of the projection's random stream.
const STREAM_SIMHASH: u64 = 0x5349_4D48_4153_4800; // "SIMHASH"

/// A fixed random-hyperplane hash from `dim`-vectors to `bits`-bit codes (in the low bits of a
/// u64). The projection depends only on `(dim, bits, seed)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimHash {
    dim: usize,
    bits: u32,
    /// 32 or 64: the row stride of `projection`.
    width: usize,
    /// `[dim, width]` row-major; columns `bits..width` are zero.
    projection: Vec<f32>,
}

impl SimHash {
    /// A projection with standard normal entries drawn from `seed`. `bits` must be in `1..=64`
    /// (ETA uses 16 to 64); `dim` at least 1.
    pub fn new(dim: usize, bits: u32, seed: u64) -> Result<Self> {
        if dim == 0 {
            return Err(ModelsError::config("simhash.dim", "must be at least 1"));
        }
        if !(1..=64).contains(&bits) {
            return Err(ModelsError::config(
                "simhash.bits",
                format!("{bits} is not in 1..=64"),
            ));
        }
        let width = if bits <= 32 { 32 } else { 64 };
        let mut projection = vec![0.0f32; dim * width];
        // Column-major draw order (bit by bit), so the first `bits` hyperplanes of a 64-bit hash
        // equal those of a 32-bit hash with the same seed and dim.
        for b in 0..bits as usize {
            let mut rng = SplitMix64::keyed(seed, STREAM_SIMHASH, b as u64);
            for d in 0..dim {
                projection[d * width + b] = rng.normal() as f32;
            }
        }
        Ok(SimHash {
            dim,
            bits,
            width,
            projection,
        })
    }

    /// Width of the input vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of code bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The projection coefficient of input dimension `d` for bit `b` (0 for `b` in
    /// `bits..32` or `bits..64`). Panics if `d >= dim` or `b >= 64`.
    pub fn coefficient(&self, d: usize, b: usize) -> f32 {
        self.projection[d * self.width + b]
    }

    /// Encodes `n = out.len()` vectors, `vectors` being `[n, dim]` row-major, into `out`.
    pub fn encode(&self, vectors: &[f32], out: &mut [u64]) -> Result<()> {
        if vectors.len() != out.len() * self.dim {
            return Err(ModelsError::shape(
                "simhash vectors [n, dim] for n = out.len()",
                out.len() * self.dim,
                vectors.len(),
            ));
        }
        if self.width == 32 {
            encode_width::<32>(&self.projection, self.dim, vectors, out);
        } else {
            encode_width::<64>(&self.projection, self.dim, vectors, out);
        }
        Ok(())
    }

    /// The code of one vector of `dim` values.
    pub fn encode_one(&self, vector: &[f32]) -> Result<u64> {
        let mut out = [0u64];
        self.encode(vector, &mut out)?;
        Ok(out[0])
    }
}

/// Lanes accumulated per pass over a vector: 32 f32 fit the 16 SSE (or 4 AVX-512) registers
/// with room for the broadcast and the loads; 64 lanes at once would spill.
const LANES: usize = 32;

fn encode_width<const W: usize>(projection: &[f32], dim: usize, vectors: &[f32], out: &mut [u64]) {
    for (x, code) in vectors.chunks_exact(dim).zip(out.iter_mut()) {
        let mut c = 0u64;
        for block in 0..W / LANES {
            let mut y = [0.0f32; LANES];
            for (&xd, row) in x.iter().zip(projection.chunks_exact(W)) {
                let row = &row[block * LANES..(block + 1) * LANES];
                for (acc, &r) in y.iter_mut().zip(row) {
                    *acc += xd * r;
                }
            }
            for (b, &yb) in y.iter().enumerate() {
                c |= u64::from(yb > 0.0) << (block * LANES + b);
            }
        }
        *code = c;
    }
}

/// Reusable working memory of [`top_k_by_hamming`]: the distance histogram and bucket cursors
/// (fixed size, no heap).
#[derive(Debug, Clone)]
pub struct TopKScratch {
    counts: [u32; 65],
    cursor: [u32; 65],
}

impl Default for TopKScratch {
    fn default() -> Self {
        TopKScratch {
            counts: [0; 65],
            cursor: [0; 65],
        }
    }
}

impl TopKScratch {
    /// Fresh scratch.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Writes into `out` the indices of the `k` codes among `seq_codes[..valid_len]` nearest to
/// `target` in Hamming distance, ordered by (distance, index): ties go to the lower index (the
/// more recent behaviour). Returns how many were written, `min(k, valid_len)`; `out[..count]` is
/// filled, the rest untouched. `valid_len` is clamped to `seq_codes.len()` and `k` to
/// `out.len()`. Entries past `valid_len` (padding) are never chosen.
///
/// ```
/// use ctrflow_models::eta::{TopKScratch, top_k_by_hamming};
/// let codes = [0b1111, 0b0001, 0b0000, 0b0011, 0];
/// let mut out = [0u32; 2];
/// let n = top_k_by_hamming(0b0001, &codes, 4, 2, &mut TopKScratch::new(), &mut out);
/// assert_eq!((n, out), (2, [1, 2])); // distance 0, then distance 1 at index 2 before index 3
/// ```
pub fn top_k_by_hamming(
    target: u64,
    seq_codes: &[u64],
    valid_len: usize,
    k: usize,
    scratch: &mut TopKScratch,
    out: &mut [u32],
) -> usize {
    let codes = &seq_codes[..valid_len.min(seq_codes.len())];
    let k = k.min(out.len()).min(codes.len());
    if k == 0 {
        return 0;
    }
    let counts = &mut scratch.counts;
    counts.fill(0);
    for &c in codes {
        counts[(c ^ target).count_ones() as usize] += 1;
    }
    // Cursor of each bucket (where its next index goes) and the cut-off distance.
    let mut start = 0u32;
    let mut cutoff = 64usize;
    for (d, &n) in counts.iter().enumerate() {
        scratch.cursor[d] = start;
        start += n;
        if start as usize >= k {
            cutoff = d;
            break;
        }
    }
    let k32 = k as u32;
    let mut written = 0usize;
    for (i, &c) in codes.iter().enumerate() {
        let d = (c ^ target).count_ones() as usize;
        if d <= cutoff {
            let p = scratch.cursor[d];
            // Only the cut-off bucket can overflow past k: its later ties are dropped.
            if p < k32 {
                out[p as usize] = i as u32;
                scratch.cursor[d] = p + 1;
                written += 1;
                if written == k {
                    break;
                }
            }
        }
    }
    k
}

/// [`top_k_by_hamming`] over a batch: `targets` is `[B]`, `seq_codes` is `[B, L]` row-major,
/// `valid_lens` is `[B]`, `out` is `[B, k]` and `counts` is `[B]`. Row `b` of `out` gets its
/// indices (into that row's sequence) followed by zeros up to `k`, so a gather with it never
/// goes out of bounds; `counts[b]` says how many are real (mask the rest).
pub fn top_k_by_hamming_batch(
    targets: &[u64],
    seq_codes: &[u64],
    valid_lens: &[u32],
    k: usize,
    scratch: &mut TopKScratch,
    out: &mut [u32],
    counts: &mut [u32],
) -> Result<()> {
    let batch = targets.len();
    if batch == 0 {
        return Ok(());
    }
    if !seq_codes.len().is_multiple_of(batch) {
        return Err(ModelsError::shape(
            "sequence codes [B, L] (a multiple of B)",
            batch * (seq_codes.len() / batch),
            seq_codes.len(),
        ));
    }
    let len = seq_codes.len() / batch;
    if valid_lens.len() != batch {
        return Err(ModelsError::shape(
            "valid lengths [B]",
            batch,
            valid_lens.len(),
        ));
    }
    if out.len() != batch * k {
        return Err(ModelsError::shape(
            "top-k indices [B, k]",
            batch * k,
            out.len(),
        ));
    }
    if counts.len() != batch {
        return Err(ModelsError::shape("top-k counts [B]", batch, counts.len()));
    }
    if k == 0 {
        counts.fill(0);
        return Ok(());
    }
    for (b, ((&target, &valid), (row_out, count))) in targets
        .iter()
        .zip(valid_lens)
        .zip(out.chunks_exact_mut(k).zip(counts.iter_mut()))
        .enumerate()
    {
        let row = &seq_codes[b * len..(b + 1) * len];
        let n = top_k_by_hamming(target, row, valid as usize, k, scratch, row_out);
        row_out[n..].fill(0);
        *count = n as u32;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
