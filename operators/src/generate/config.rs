//! [`GeneratorConfig`]: everything that shapes the synthetic logs, with documented defaults and a
//! [`validate`](GeneratorConfig::validate) that names the offending field and its allowed range.

use ctrflow_schemas::{DEFAULT_CONTENT_DIM, DEFAULT_MAX_SEQ_LEN, EventDate};
use serde::{Deserialize, Serialize};

use super::Generator;
use crate::OperatorError;

/// Largest accepted `users`, `items`: user and item indices are `u32` inside the generator.
const MAX_ENTITIES: u64 = 100_000_000;
/// Largest accepted `ads`.
const MAX_ADS: u64 = 10_000_000;
/// Largest accepted `categories` (categories are `u16` inside the generator).
const MAX_CATEGORIES: u32 = 65_535;
/// Largest accepted `days` (ten years).
const MAX_DAYS: u32 = 3_650;
/// Largest accepted `events-per-day`: one per millisecond, so times can be strictly increasing.
const MAX_EVENTS_PER_DAY: u64 = 86_400_000;
/// Largest accepted `max-seq-len`.
const MAX_SEQ_LEN: u32 = 100_000;
/// Largest accepted `content-dim` and `interest-dim`.
const MAX_DIM: u32 = 4_096;

/// Configuration of the seeded synthetic two-domain log generator (`ctrflow generate`).
///
/// Every field has a default, so an empty TOML table is a valid configuration. The ground-truth
/// model these parameters drive is described in the [module docs](super).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GeneratorConfig {
    /// Seed of every random draw: the same seed and configuration give identical events.
    /// Default 42.
    pub seed: u64,
    /// The first generated UTC day. Default 2024-01-01.
    pub start_date: EventDate,
    /// Number of consecutive days to generate (1..=3650). Default 7.
    pub days: u32,
    /// Number of users (1..=100000000). Default 2000.
    pub users: u64,
    /// Number of natural content items (1..=100000000). Default 5000.
    pub items: u64,
    /// Number of ad items (1..=10000000); their ids are disjoint from content item ids.
    /// Default 400.
    pub ads: u64,
    /// Number of categories, shared by content items and ads (1..=65535). Default 40.
    pub categories: u32,
    /// Impressions per day over both domains (1..=86400000); their times are strictly increasing.
    /// Default 20000.
    pub events_per_day: u64,
    /// Natural impressions per ad impression, in (0, 1000000]: natural traffic is this many times
    /// ad traffic. Default 20.
    pub natural_per_ad: f64,
    /// Longest behaviour sequence attached to an event (0..=100000). Default 1000.
    pub max_seq_len: u32,
    /// Give every user a pre-archive history of length uniform in `[0, max-seq-len]` drawn from
    /// their interests, so long sequences exist from the first day even at small scale.
    /// Default true.
    pub prior_history: bool,
    /// Width of the `item_content` vector (1..=4096). Default 16.
    pub content_dim: u32,
    /// Dimension `d` of the latent user interests and item factors (1..=4096). Default 8.
    pub interest_dim: u32,
    /// Bias `b_n` of the natural click logit (finite); sets the natural CTR (about 10% with the
    /// defaults). Default -3.15.
    pub natural_bias: f64,
    /// Bias `b_a` of the ad click logit (finite); sets the ad CTR (about 4-5% with the defaults).
    /// Default -3.7.
    pub ad_bias: f64,
    /// Weight `α` of the user-item interest match `θ_u·φ_i/√d` in the natural logit (finite).
    /// Default 0.8.
    pub interest_strength: f64,
    /// Weight `α_ad` of the user-ad interest match `θ_u·φ_a/√d` in the ad logit (finite).
    /// Default 0.4.
    pub ad_interest_strength: f64,
    /// Weight `β` of the long-term category affinity in the ad logit (finite): the share of the
    /// user's whole history in the ad's category, minus `1/categories`. Default 2.0.
    pub affinity_strength: f64,
    /// Position bias `γ` (finite, >= 0): the logit drops by `γ` per slot down the page.
    /// Default 0.04.
    pub position_decay: f64,
    /// Temperature `τ` (> 0) of the exposure softmax over categories `θ_u·c_k/(√d·τ)`: lower
    /// concentrates what a user sees on their favourite categories. Default 0.6.
    pub exposure_temperature: f64,
    /// Share `ε` of exposure (0..=1) drawn from catalogue popularity instead of the user's
    /// interests. Default 0.25.
    pub exploration: f64,
    /// Zipf exponent (0..=4) of item popularity within a category (0 = uniform). Default 1.0.
    pub popularity_exponent: f64,
    /// Standard deviation (0..=10) of an item's factor around its category centroid. Default 0.5.
    pub item_noise: f64,
    /// Standard deviation (0..=10) of the noise added to the projected `item_content`.
    /// Default 0.3.
    pub content_noise: f64,
    /// Log-normal sigma (0..=4) of per-user activity: larger makes some users far more active.
    /// Default 1.0.
    pub activity_skew: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            start_date: EventDate::from_ymd(2024, 1, 1).expect("2024-01-01 is a valid date"),
            days: 7,
            users: 2_000,
            items: 5_000,
            ads: 400,
            categories: 40,
            events_per_day: 20_000,
            natural_per_ad: 20.0,
            max_seq_len: DEFAULT_MAX_SEQ_LEN as u32,
            prior_history: true,
            content_dim: DEFAULT_CONTENT_DIM as u32,
            interest_dim: 8,
            natural_bias: -3.15,
            ad_bias: -3.7,
            interest_strength: 0.8,
            ad_interest_strength: 0.4,
            affinity_strength: 2.0,
            position_decay: 0.04,
            exposure_temperature: 0.6,
            exploration: 0.25,
            popularity_exponent: 1.0,
            item_noise: 0.5,
            content_noise: 0.3,
            activity_skew: 1.0,
        }
    }
}

fn config_error(field: &str, reason: impl Into<String>) -> OperatorError {
    OperatorError::Config {
        field: format!("generator.{field}"),
        reason: reason.into(),
    }
}

fn int_in(field: &str, value: u64, lo: u64, hi: u64) -> Result<(), OperatorError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(config_error(
            field,
            format!("{value} is not in {lo}..={hi}"),
        ))
    }
}

fn float_in(field: &str, value: f64, lo: f64, hi: f64) -> Result<(), OperatorError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(config_error(
            field,
            format!("{value} is not in {lo}..={hi}"),
        ))
    }
}

fn finite(field: &str, value: f64) -> Result<(), OperatorError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(config_error(
            field,
            format!("{value} is not a finite number"),
        ))
    }
}

impl GeneratorConfig {
    /// Checks every field; the error names the first invalid one (`generator.<field>`) and the
    /// range it must be in.
    pub fn validate(&self) -> Result<(), OperatorError> {
        int_in("days", self.days.into(), 1, MAX_DAYS.into())?;
        if self
            .start_date
            .naive()
            .checked_add_days(chrono::Days::new(self.days.into()))
            .is_none()
        {
            return Err(config_error(
                "start-date",
                "the last generated day is out of range",
            ));
        }
        int_in("users", self.users, 1, MAX_ENTITIES)?;
        int_in("items", self.items, 1, MAX_ENTITIES)?;
        int_in("ads", self.ads, 1, MAX_ADS)?;
        int_in(
            "categories",
            self.categories.into(),
            1,
            MAX_CATEGORIES.into(),
        )?;
        int_in("events-per-day", self.events_per_day, 1, MAX_EVENTS_PER_DAY)?;
        if !(self.natural_per_ad.is_finite()
            && self.natural_per_ad > 0.0
            && self.natural_per_ad <= 1e6)
        {
            return Err(config_error(
                "natural-per-ad",
                format!("{} is not in (0, 1000000]", self.natural_per_ad),
            ));
        }
        int_in(
            "max-seq-len",
            self.max_seq_len.into(),
            0,
            MAX_SEQ_LEN.into(),
        )?;
        int_in("content-dim", self.content_dim.into(), 1, MAX_DIM.into())?;
        int_in("interest-dim", self.interest_dim.into(), 1, MAX_DIM.into())?;
        finite("natural-bias", self.natural_bias)?;
        finite("ad-bias", self.ad_bias)?;
        finite("interest-strength", self.interest_strength)?;
        finite("ad-interest-strength", self.ad_interest_strength)?;
        finite("affinity-strength", self.affinity_strength)?;
        float_in("position-decay", self.position_decay, 0.0, f64::MAX)?;
        if !(self.exposure_temperature.is_finite() && self.exposure_temperature > 0.0) {
            return Err(config_error(
                "exposure-temperature",
                format!("{} is not a finite number > 0", self.exposure_temperature),
            ));
        }
        float_in("exploration", self.exploration, 0.0, 1.0)?;
        float_in("popularity-exponent", self.popularity_exponent, 0.0, 4.0)?;
        float_in("item-noise", self.item_noise, 0.0, 10.0)?;
        float_in("content-noise", self.content_noise, 0.0, 10.0)?;
        float_in("activity-skew", self.activity_skew, 0.0, 4.0)?;
        Ok(())
    }

    /// Validates the configuration and builds the running [`Generator`].
    pub fn build(&self) -> Result<Generator, OperatorError> {
        Generator::new(self)
    }

    /// The date of day `index` (0-based) of the generated range.
    pub fn date(&self, index: u32) -> EventDate {
        self.start_date.offset(i64::from(index))
    }

    /// The last generated day.
    pub fn last_date(&self) -> EventDate {
        self.date(self.days.saturating_sub(1))
    }
}
