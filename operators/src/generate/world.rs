//! The latent world behind the generated logs: category centroids, item and ad factors and
//! content vectors, user interests, activity and devices, the exposure sampler and the per-user
//! behaviour history (a ring buffer of catalogue indices).
//!
//! Catalogue indices are `u32`: content items are `0..items`, ads are `items..items + ads`.
//! Raw ids are derived from indices by [`user_id`], [`item_id`] and [`category_id`].

use std::collections::VecDeque;

use ctrflow_schemas::{CategoryId, Device, Domain, ItemId, UserId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::GeneratorConfig;

/// Ads live in `[2^62, 2^63)`, content items and users in `[0, 2^62)`: disjoint ranges, and every
/// id fits a non-negative `i64`.
const AD_BIT: u64 = 1 << 62;
const ID_MASK: u64 = AD_BIT - 1;
// Odd multipliers are bijections modulo 2^62, so scattered ids never collide.
const USER_MULT: u64 = 0x9E37_79B9_7F4A_7C15;
const ITEM_MULT: u64 = 0xD6E8_FEB8_6659_FD93;
const CATEGORY_MULT: u64 = 0xA076_1D64_78BD_642F;

fn scatter(index: u64, mult: u64) -> u64 {
    (index + 1).wrapping_mul(mult) & ID_MASK
}

/// The raw id of user `index`: sparse, never dense, in `[0, 2^62)`.
pub fn user_id(index: u32) -> UserId {
    UserId(scatter(index.into(), USER_MULT))
}

/// The raw id of catalogue entry `index` given `items` content items: content ids are in
/// `[0, 2^62)`, ad ids (indices `>= items`) in `[2^62, 2^63)`.
pub fn item_id(index: u32, items: u32) -> ItemId {
    if index < items {
        ItemId(scatter(index.into(), ITEM_MULT))
    } else {
        ItemId(AD_BIT | scatter(u64::from(index - items), ITEM_MULT))
    }
}

/// The raw id of category `index`.
pub fn category_id(index: u16) -> CategoryId {
    CategoryId(scatter(index.into(), CATEGORY_MULT))
}

/// Samples an index from a cumulative weight table (last entry = total weight).
fn sample_cdf<T: Copy + Into<f64>>(cdf: &[T], rng: &mut ChaCha8Rng) -> usize {
    let total = cdf.last().map_or(0.0, |t| (*t).into());
    let u = rng.random::<f64>() * total;
    cdf.partition_point(|c| (*c).into() <= u)
        .min(cdf.len().saturating_sub(1))
}

fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .into_iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    StandardNormal.sample(rng)
}

/// The static part of the world plus every user's evolving history.
pub(super) struct World {
    d: usize,
    categories: usize,
    items: u32,
    max_seq_len: usize,
    /// Category of each catalogue entry.
    cat: Vec<u16>,
    /// Latent factor `φ_i` of each catalogue entry, `d` floats each.
    phi: Vec<f32>,
    /// `item_content` of each catalogue entry, `content_dim` floats each.
    content: Vec<f32>,
    content_dim: usize,
    /// Per domain (natural, ad), per category: catalogue indices in popularity-rank order.
    by_cat: [Vec<Vec<u32>>; 2],
    /// Per domain: cumulative catalogue share of each category (fallback exposure).
    share_cdf: [Vec<f64>; 2],
    /// Cumulative Zipf weights of popularity ranks.
    zipf_cdf: Vec<f64>,
    /// Latent interest `θ_u` of each user, `d` floats each.
    theta: Vec<f32>,
    /// Preferred device of each user.
    device: Vec<Device>,
    /// Cumulative activity weights of users.
    activity_cdf: Vec<f64>,
    /// Cumulative exposure distribution over categories, `categories` floats per user.
    exposure_cdf: Vec<f32>,
    /// Behaviour history of each user, most recent first, at most `max_seq_len` entries.
    history: Vec<VecDeque<u32>>,
}

fn domain_slot(domain: Domain) -> usize {
    match domain {
        Domain::Natural => 0,
        Domain::Ad => 1,
    }
}

impl World {
    /// Draws the world from `rng`. `cfg` must be valid.
    pub(super) fn new(cfg: &GeneratorConfig, rng: &mut ChaCha8Rng) -> Self {
        let d = cfg.interest_dim as usize;
        let k = cfg.categories as usize;
        let items = cfg.items as u32;
        let total = items as usize + cfg.ads as usize;
        let content_dim = cfg.content_dim as usize;

        let centroids: Vec<f32> = (0..k * d).map(|_| normal(rng)).collect();
        // Category sizes vary (log-normal weights); the first `k` entries of each domain cover
        // every category once so no category is empty when the catalogue is large enough.
        let cat_weights = cumulative((0..k).map(|_| f64::from(0.5 * normal(rng)).exp()));
        let mut cat = Vec::with_capacity(total);
        for len in [items as usize, cfg.ads as usize] {
            for j in 0..len {
                let c = if j < k {
                    j
                } else {
                    sample_cdf(&cat_weights, rng)
                };
                cat.push(c as u16);
            }
        }
        let mut phi = Vec::with_capacity(total * d);
        for &c in &cat {
            let centroid = &centroids[usize::from(c) * d..][..d];
            phi.extend(
                centroid
                    .iter()
                    .map(|m| m + cfg.item_noise as f32 * normal(rng)),
            );
        }
        // item_content = W φ / √d + noise, with a fixed random projection W.
        let scale = 1.0 / (d as f32).sqrt();
        let projection: Vec<f32> = (0..content_dim * d).map(|_| normal(rng) * scale).collect();
        let mut content = Vec::with_capacity(total * content_dim);
        for f in phi.chunks_exact(d) {
            for row in projection.chunks_exact(d) {
                let x: f32 = row.iter().zip(f).map(|(w, v)| w * v).sum();
                content.push(x + cfg.content_noise as f32 * normal(rng));
            }
        }
        let mut by_cat: [Vec<Vec<u32>>; 2] = [vec![Vec::new(); k], vec![Vec::new(); k]];
        for (i, &c) in cat.iter().enumerate() {
            let slot = usize::from(i >= items as usize);
            by_cat[slot][usize::from(c)].push(i as u32);
        }
        let share_cdf = [0, 1].map(|s| cumulative(by_cat[s].iter().map(|l| l.len() as f64)));
        let longest = by_cat.iter().flatten().map(Vec::len).max().unwrap_or(1);
        let zipf_cdf =
            cumulative((0..longest).map(|r| (r as f64 + 1.0).powf(-cfg.popularity_exponent)));

        let users = cfg.users as usize;
        let theta: Vec<f32> = (0..users * d).map(|_| normal(rng)).collect();
        let activity_cdf =
            cumulative((0..users).map(|_| (cfg.activity_skew * f64::from(normal(rng))).exp()));
        let device = (0..users)
            .map(|_| match rng.random_range(0..100u32) {
                0..=39 => Device::Ios,
                40..=84 => Device::Android,
                85..=97 => Device::Web,
                _ => Device::Unknown,
            })
            .collect();
        // Exposure over categories: (1 - ε) softmax(θ·c/(√d τ)) + ε catalogue share.
        let natural_total = share_cdf[0].last().copied().unwrap_or(1.0);
        let mut exposure_cdf = Vec::with_capacity(users * k);
        let mut logits = vec![0.0f64; k];
        for t in theta.chunks_exact(d) {
            for (l, c) in logits.iter_mut().zip(centroids.chunks_exact(d)) {
                *l = dot(t, c) / (d as f64).sqrt() / cfg.exposure_temperature;
            }
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            let mut acc = 0.0f64;
            for (j, l) in logits.iter().enumerate() {
                let share = by_cat[0][j].len() as f64 / natural_total;
                acc += (1.0 - cfg.exploration) * (l - max).exp() / z + cfg.exploration * share;
                exposure_cdf.push(acc as f32);
            }
        }
        World {
            d,
            categories: k,
            items,
            max_seq_len: cfg.max_seq_len as usize,
            cat,
            phi,
            content,
            content_dim,
            by_cat,
            share_cdf,
            zipf_cdf,
            theta,
            device,
            activity_cdf,
            exposure_cdf,
            history: vec![VecDeque::new(); users],
        }
    }

    /// Fills every user's history with a pre-archive sequence of length uniform in
    /// `[0, max_seq_len]`: content items exposed to them and accepted with probability
    /// `sigmoid(α θ·φ/√d)`, so the history reflects their interests.
    pub(super) fn seed_prior_histories(&mut self, cfg: &GeneratorConfig, rng: &mut ChaCha8Rng) {
        for u in 0..self.history.len() as u32 {
            let len = rng.random_range(0..=self.max_seq_len);
            for _ in 0..len {
                let mut ix = self.expose(u, Domain::Natural, rng);
                for _ in 0..8 {
                    let p = sigmoid(cfg.interest_strength * self.interest(u, ix));
                    if rng.random::<f64>() < p {
                        break;
                    }
                    ix = self.expose(u, Domain::Natural, rng);
                }
                self.remember(u, ix);
            }
        }
    }

    /// Number of content items (the first ad's catalogue index).
    pub(super) fn items(&self) -> u32 {
        self.items
    }

    /// Number of categories.
    pub(super) fn categories(&self) -> usize {
        self.categories
    }

    /// A user drawn by activity.
    pub(super) fn active_user(&self, rng: &mut ChaCha8Rng) -> u32 {
        sample_cdf(&self.activity_cdf, rng) as u32
    }

    /// The user's preferred device.
    pub(super) fn device(&self, user: u32) -> Device {
        self.device[user as usize]
    }

    /// A catalogue entry of `domain` shown to `user`: a category from the user's exposure
    /// distribution (catalogue share when the category has no entry in the domain), then an
    /// entry of that category by Zipf popularity rank.
    pub(super) fn expose(&self, user: u32, domain: Domain, rng: &mut ChaCha8Rng) -> u32 {
        let slot = domain_slot(domain);
        let k = self.categories;
        let cdf = &self.exposure_cdf[user as usize * k..][..k];
        let mut list = &self.by_cat[slot][sample_cdf(cdf, rng)];
        if list.is_empty() {
            list = &self.by_cat[slot][sample_cdf(&self.share_cdf[slot], rng)];
        }
        let rank = sample_cdf(&self.zipf_cdf[..list.len()], rng);
        list.get(rank).copied().unwrap_or_default()
    }

    /// Category index of a catalogue entry.
    pub(super) fn category(&self, ix: u32) -> u16 {
        self.cat[ix as usize]
    }

    /// The interest match `θ_u·φ_i/√d`.
    pub(super) fn interest(&self, user: u32, ix: u32) -> f64 {
        let t = &self.theta[user as usize * self.d..][..self.d];
        let f = &self.phi[ix as usize * self.d..][..self.d];
        dot(t, f) / (self.d as f64).sqrt()
    }

    /// The `item_content` vector of a catalogue entry.
    pub(super) fn content(&self, ix: u32) -> &[f32] {
        &self.content[ix as usize * self.content_dim..][..self.content_dim]
    }

    /// The user's history, most recent first.
    pub(super) fn history(&self, user: u32) -> &VecDeque<u32> {
        &self.history[user as usize]
    }

    /// Pushes a clicked entry to the front of the user's history, dropping the oldest one when
    /// the history is full. Allocates the ring once per user, at its full size.
    pub(super) fn remember(&mut self, user: u32, ix: u32) {
        if self.max_seq_len == 0 {
            return;
        }
        let h = &mut self.history[user as usize];
        if h.capacity() == 0 {
            h.reserve_exact(self.max_seq_len);
        }
        if h.len() >= self.max_seq_len {
            h.pop_back();
        }
        h.push_front(ix);
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// The logistic function.
pub(super) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
