//! The seeded synthetic two-domain log generator (`ctrflow generate`, `ctrflow demo`).
//!
//! It writes days of natural (content) and ad impressions with behaviour sequences, from a
//! latent ground truth under which natural behaviour really predicts ad clicks, so a downstream
//! experiment can show cross-domain transfer (E-CDCTR) and the value of long sequences (ETA).
//! The same seed and configuration give the same events, byte-identical Parquet data files and
//! identical JSON lines.
//!
//! # Ground truth
//! With `d` = `interest-dim`:
//! - **Users** have a latent interest `θ_u ~ N(0, I_d)`, shared by both domains, a log-normal
//!   activity weight (`activity-skew`: a few users are far more active) and a preferred device.
//! - **Categories** have centroids `c_k ~ N(0, I_d)`; every content item and ad has a category
//!   and a factor `φ_i = c_{cat(i)} + item-noise · N(0, I_d)`. Its `item_content` is `W φ_i/√d`
//!   plus `content-noise` Gaussian noise, for a fixed random `W` (`content-dim × d`), so a content
//!   model can learn from it.
//! - **Exposure** (recommender-like): a category from `(1 − ε) softmax_k(θ_u·c_k / (√d τ)) + ε ·
//!   share_k` (`exploration` ε, `exposure-temperature` τ, catalogue share of the category), then
//!   an item of that category by Zipf popularity rank (`popularity-exponent`); a uniform slot
//!   `position` in `0..20`, the hour of the time stamp, the user's device 90% of the time.
//! - **Natural click**: `logit = b_n + α θ_u·φ_i/√d − γ·position + ctx`, where `ctx` is a small
//!   diurnal (±0.15, evening peak) plus device (iOS +0.1, web −0.1) effect.
//! - **Ad click**: `logit = b_a + α_ad θ_u·φ_a/√d + β (share_u(cat(a)) − 1/K) − γ·position +
//!   ctx`, where `share_u(k)` is the share of category `k` in the user's whole history (up to
//!   `max-seq-len`). Users have few ad impressions, so their ad interest is mainly learnable from
//!   their natural behaviour (cross-domain) and from their long history (ETA).
//!
//! Default strengths give a natural CTR of about 10% and an ad CTR of about 4-5%.
//!
//! # Sequences and time
//! A user's history is every item they clicked (both domains), most recent first, after an
//! optional pre-archive history (`prior-history`: length uniform in `[0, max-seq-len]`, content
//! items exposed to the user and kept with probability `sigmoid(α θ_u·φ_i/√d)`). Each day's
//! impression times follow a diurnal curve, are strictly increasing and inside the UTC day, and
//! are simulated in that order: an event carries the history *at that moment*, truncated to
//! `max-seq-len`, and a click is pushed to the front after the event is labelled. Histories are
//! ring buffers of `u32` catalogue indices; the only per-event allocations build the output row.
//!
//! Exactly `round(events-per-day / (1 + natural-per-ad))` impressions of each day are ads.
//!
//! # Ids
//! Raw `u64` ids are scattered (index × odd constant modulo 2^62), never dense: users, content
//! items and categories are in `[0, 2^62)`, ads in `[2^62, 2^63)` (disjoint from content items;
//! every id also fits a non-negative `i64`). Event ids are `g{seed}-{YYYYMMDD}-{n}`, `n` the
//! position in the day's stream.
//!
//! # Reproducibility
//! All draws come from `ChaCha8Rng` seeded with `seed` (stream 0 for the world, stream `i + 1`
//! for day `i`). Transcendental functions (`exp`, `ln`, `cos`, `powf`) come from the platform's
//! math library, so identical output is guaranteed on one platform and expected, not promised,
//! across platforms.

mod config;
mod sim;
mod sink;
mod world;

#[cfg(test)]
mod tests;

pub use config::GeneratorConfig;
pub use sim::{DayChunk, DayEvents, Generator, POSITIONS};
pub use sink::{
    CHUNK_EVENTS, GenerateProgress, GenerateSummary, PRODUCER, SOURCE_TAG, generate_archive,
    write_jsonl,
};
pub use world::{category_id, item_id, user_id};
