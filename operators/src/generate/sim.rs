//! [`Generator`]: simulates the days of the configured range one after the other, in time order
//! within each day, so behaviour sequences are causal and histories carry over between days.

use ctrflow_schemas::{Device, Domain, Event, EventDate, EventSchema, EventTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::GeneratorConfig;
use super::world::{World, category_id, item_id, sigmoid, user_id};
use crate::OperatorError;

/// Page slots an impression can occupy: `0..POSITIONS`.
pub const POSITIONS: u32 = 20;
/// Amplitude of the diurnal cycle of traffic and of the click logit (peak at 20:00 UTC).
const DIURNAL_TRAFFIC: f64 = 0.6;
const DIURNAL_LOGIT: f64 = 0.15;
const PEAK_HOUR: f64 = 20.0;
/// Probability that an impression is served on the user's preferred device.
const PREFERRED_DEVICE: f64 = 0.9;
const HOUR_MS: i64 = 3_600_000;

fn diurnal(hour: f64) -> f64 {
    (std::f64::consts::TAU * (hour - PEAK_HOUR) / 24.0).cos()
}

fn device_effect(device: Device) -> f64 {
    match device {
        Device::Ios => 0.1,
        Device::Android => 0.0,
        Device::Web => -0.1,
        Device::Unknown => -0.05,
    }
}

/// All events of one generated day, in time order (both domains interleaved).
#[derive(Debug, Clone, PartialEq)]
pub struct DayEvents {
    /// The day.
    pub date: EventDate,
    /// 0-based index of the day in the generated range.
    pub index: u32,
    /// The events, strictly time-ordered.
    pub events: Vec<Event>,
}

/// A consecutive run of one day's events, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct DayChunk {
    /// The day the events belong to.
    pub date: EventDate,
    /// 0-based index of the day in the generated range.
    pub index: u32,
    /// The events, continuing where the previous chunk of the day stopped.
    pub events: Vec<Event>,
    /// True when this chunk ends the day.
    pub ends_day: bool,
}

/// The plan of the day being simulated.
struct DayState {
    index: u32,
    date: EventDate,
    /// Sorted impression times.
    times: Vec<i64>,
    /// Which impressions are ads.
    is_ad: Vec<bool>,
    cursor: usize,
    rng: ChaCha8Rng,
}

/// The running generator. Produces the configured days in order, each in time order, either a
/// whole day at a time ([`next_day`](Self::next_day), also the [`Iterator`] item) or in bounded
/// chunks ([`next_chunk`](Self::next_chunk)); both give the same events whatever the chunk size.
///
/// Memory: the world (catalogue, users, one history ring of `max-seq-len` `u32`s per user), the
/// day's impression plan (9 bytes per impression) and the events handed out.
pub struct Generator {
    cfg: GeneratorConfig,
    schema: EventSchema,
    world: World,
    next_day: u32,
    day: Option<DayState>,
    /// `1/categories`: the affinity share of a user with no preference.
    uniform_share: f64,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("seed", &self.cfg.seed)
            .field("next_day", &self.next_day)
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// Validates `cfg` and draws the world (and prior histories when enabled).
    pub fn new(cfg: &GeneratorConfig) -> Result<Self, OperatorError> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut world = World::new(cfg, &mut rng);
        if cfg.prior_history {
            world.seed_prior_histories(cfg, &mut rng);
        }
        Ok(Generator {
            schema: EventSchema::new(cfg.content_dim as usize),
            uniform_share: 1.0 / world.categories() as f64,
            world,
            next_day: 0,
            day: None,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GeneratorConfig {
        &self.cfg
    }

    /// The event schema of the generated events (its `item_content` width is `content-dim`).
    pub fn schema(&self) -> &EventSchema {
        &self.schema
    }

    /// True when every configured day has been produced.
    pub fn is_done(&self) -> bool {
        self.day.is_none() && self.next_day >= self.cfg.days
    }

    /// The whole next day, or `None` after the last day. Finishes a day started by
    /// [`next_chunk`](Self::next_chunk) (returning only its remaining events).
    pub fn next_day(&mut self) -> Option<DayEvents> {
        let chunk = self.next_chunk(usize::MAX)?;
        Some(DayEvents {
            date: chunk.date,
            index: chunk.index,
            events: chunk.events,
        })
    }

    /// Up to `max` (at least 1) further events of the current day, starting the next day when
    /// the current one is finished; `None` after the last day. A chunk never spans two days.
    pub fn next_chunk(&mut self, max: usize) -> Option<DayChunk> {
        if self.day.is_none() {
            if self.next_day >= self.cfg.days {
                return None;
            }
            self.day = Some(self.plan_day(self.next_day));
            self.next_day += 1;
        }
        let mut day = self.day.take()?;
        let n = (day.times.len() - day.cursor).min(max.max(1));
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.simulate(&mut day));
        }
        let ends_day = day.cursor == day.times.len();
        let chunk = DayChunk {
            date: day.date,
            index: day.index,
            events,
            ends_day,
        };
        if !ends_day {
            self.day = Some(day);
        }
        Some(chunk)
    }

    /// Draws the impression times (diurnal, sorted) and the domain of each impression (exactly
    /// `round(n / (1 + natural-per-ad))` ads, at random positions) of day `index`.
    fn plan_day(&self, index: u32) -> DayState {
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed);
        // Stream 0 drew the world; day i uses stream i + 1, so a day's draws do not depend on
        // how many draws earlier days made.
        rng.set_stream(u64::from(index) + 1);
        let date = self.cfg.date(index);
        let start = date.start_ms();
        let n = self.cfg.events_per_day as usize;
        let mut hour_cdf = [0.0f64; 24];
        let mut acc = 0.0;
        for (h, c) in hour_cdf.iter_mut().enumerate() {
            acc += 1.0 + DIURNAL_TRAFFIC * diurnal(h as f64 + 0.5);
            *c = acc;
        }
        let mut times: Vec<i64> = (0..n)
            .map(|_| {
                let u = rng.random::<f64>() * acc;
                let hour = hour_cdf.partition_point(|&c| c <= u).min(23) as i64;
                start + hour * HOUR_MS + rng.random_range(0..HOUR_MS)
            })
            .collect();
        times.sort_unstable();
        // Make times strictly increasing (ties move by 1 ms), staying inside the day; validation
        // caps events-per-day at one per millisecond so this always fits.
        for i in 1..n {
            times[i] = times[i].max(times[i - 1] + 1);
        }
        let mut limit = date.end_ms() - 1;
        for t in times.iter_mut().rev() {
            if *t <= limit {
                break;
            }
            *t = limit;
            limit -= 1;
        }
        let ads = ((n as f64) / (1.0 + self.cfg.natural_per_ad)).round() as usize;
        let mut is_ad = vec![false; n];
        for i in rand::seq::index::sample(&mut rng, n, ads.min(n)) {
            is_ad[i] = true;
        }
        DayState {
            index,
            date,
            times,
            is_ad,
            cursor: 0,
            rng,
        }
    }

    /// Simulates the next impression of `day`: who sees what, where, and whether they click.
    fn simulate(&mut self, day: &mut DayState) -> Event {
        let cfg = &self.cfg;
        let world = &self.world;
        let n = day.cursor;
        day.cursor += 1;
        let rng = &mut day.rng;
        let time = day.times[n];
        let domain = if day.is_ad[n] {
            Domain::Ad
        } else {
            Domain::Natural
        };
        let user = world.active_user(rng);
        let ix = world.expose(user, domain, rng);
        let position = rng.random_range(0..POSITIONS);
        let hour = ((time - day.date.start_ms()) / HOUR_MS).clamp(0, 23) as u8;
        let device = if rng.random::<f64>() < PREFERRED_DEVICE {
            world.device(user)
        } else {
            Device::ALL[rng.random_range(0..Device::ALL.len())]
        };
        // The behaviour sequence at this moment; count the target's category on the way.
        let target_cat = world.category(ix);
        let history = world.history(user);
        let mut hist_item_ids = Vec::with_capacity(history.len());
        let mut hist_category_ids = Vec::with_capacity(history.len());
        let mut same_category = 0usize;
        for &h in history {
            let c = world.category(h);
            same_category += usize::from(c == target_cat);
            hist_item_ids.push(item_id(h, world.items()));
            hist_category_ids.push(category_id(c));
        }
        let context = -cfg.position_decay * f64::from(position)
            + DIURNAL_LOGIT * diurnal(f64::from(hour) + 0.5)
            + device_effect(device);
        let interest = world.interest(user, ix);
        let logit = match domain {
            Domain::Natural => cfg.natural_bias + cfg.interest_strength * interest + context,
            Domain::Ad => {
                let share = if history.is_empty() {
                    0.0
                } else {
                    same_category as f64 / history.len() as f64
                };
                cfg.ad_bias
                    + cfg.ad_interest_strength * interest
                    + cfg.affinity_strength * (share - self.uniform_share)
                    + context
            }
        };
        let label = u8::from(rng.random::<f64>() < sigmoid(logit));
        let event = Event {
            event_id: format!("g{}-{}-{n}", cfg.seed, day.date.compact()),
            event_time: EventTime(time),
            domain,
            user_id: user_id(user),
            item_id: item_id(ix, world.items()),
            category_id: category_id(target_cat),
            position,
            hour,
            device,
            hist_item_ids,
            hist_category_ids,
            item_content: Some(world.content(ix).to_vec()),
            label,
        };
        if label == 1 {
            self.world.remember(user, ix);
        }
        event
    }
}

impl Iterator for Generator {
    type Item = DayEvents;

    fn next(&mut self) -> Option<DayEvents> {
        self.next_day()
    }
}
