//! Typed ids and newtypes. Bare strings and integers never stand for these concepts anywhere in
//! ctrflow: each has a type with a `Display`, a `FromStr` that names what was wrong, and a
//! transparent serde representation.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::SchemaError;

/// Which traffic an event comes from. Natural (organic content) traffic is plentiful; ad traffic is
/// sparse. Cross-domain transfer moves knowledge from the first to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Organic content impressions (recommendations, feeds).
    Natural,
    /// Advertisement impressions.
    Ad,
}

impl Domain {
    /// Both domains, natural first.
    pub const ALL: [Domain; 2] = [Domain::Natural, Domain::Ad];

    /// The lower-case name used in object keys, SQL table names and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Natural => "natural",
            Domain::Ad => "ad",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Domain {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "natural" => Ok(Domain::Natural),
            "ad" => Ok(Domain::Ad),
            other => Err(SchemaError::Parse {
                what: "domain",
                input: other.to_string(),
                reason: "expected `natural` or `ad`".into(),
            }),
        }
    }
}

/// A UTC calendar day: the partition of the landing tables and the unit of the daily schedule.
/// Serialised as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventDate(NaiveDate);

impl EventDate {
    /// Builds a date from year, month and day; `None` when that day does not exist.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        NaiveDate::from_ymd_opt(year, month, day).map(EventDate)
    }

    /// The UTC day containing the instant `ms` milliseconds after the Unix epoch.
    pub fn from_timestamp_ms(ms: i64) -> Option<Self> {
        DateTime::<Utc>::from_timestamp_millis(ms).map(|t| EventDate(t.date_naive()))
    }

    /// Wraps a chrono date.
    pub fn from_naive(date: NaiveDate) -> Self {
        EventDate(date)
    }

    /// The chrono date.
    pub fn naive(self) -> NaiveDate {
        self.0
    }

    /// Milliseconds since the Unix epoch at 00:00:00.000 UTC of this day.
    pub fn start_ms(self) -> i64 {
        Utc.from_utc_datetime(&self.0.and_time(chrono::NaiveTime::MIN))
            .timestamp_millis()
    }

    /// Milliseconds since the Unix epoch at the first instant of the next day (exclusive end).
    pub fn end_ms(self) -> i64 {
        self.start_ms() + 86_400_000
    }

    /// The day after this one.
    pub fn succ(self) -> Self {
        EventDate(self.0 + chrono::Days::new(1))
    }

    /// The day `n` days after (negative: before) this one.
    pub fn offset(self, n: i64) -> Self {
        EventDate(self.0 + chrono::Duration::days(n))
    }

    /// Days from `self` to `other` (positive when `other` is later).
    pub fn days_until(self, other: EventDate) -> i64 {
        (other.0 - self.0).num_days()
    }

    /// `YYYYMMDD` as a compact string, used in version names.
    pub fn compact(self) -> String {
        format!(
            "{:04}{:02}{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }

    /// Every date from `self` to `last`, both included (empty when `last` is earlier).
    pub fn range_inclusive(self, last: EventDate) -> impl Iterator<Item = EventDate> {
        let n = self.days_until(last);
        (0..=n).map(move |i| self.offset(i))
    }
}

impl fmt::Display for EventDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl FromStr for EventDate {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(EventDate)
            .map_err(|e| SchemaError::Parse {
                what: "date (YYYY-MM-DD)",
                input: s.to_string(),
                reason: e.to_string(),
            })
    }
}

impl TryFrom<String> for EventDate {
    type Error = SchemaError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<EventDate> for String {
    fn from(d: EventDate) -> String {
        d.to_string()
    }
}

/// A checkpoint epoch of the streaming ingest: the unit of exactly-once landing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch after this one.
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The version of the JSON wire format / Arrow event schema an event was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SchemaVersion(pub u32);

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_newtype!(
    /// A user, by the raw 64-bit id of the upstream system.
    UserId
);
id_newtype!(
    /// An item (content item or ad), by the raw 64-bit id of the upstream system.
    ItemId
);
id_newtype!(
    /// An item category, by the raw 64-bit id of the upstream system.
    CategoryId
);

/// The three models of the E-CDCTR schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Tiny pre-training model: long horizon, natural data, publishes historical embeddings.
    Tpm,
    /// Complete pre-training model: short horizon, natural data, initialises A-CTR.
    Cpm,
    /// The served ad CTR model, fine-tuned daily.
    Actr,
}

impl ModelKind {
    /// All kinds in schedule order.
    pub const ALL: [ModelKind; 3] = [ModelKind::Tpm, ModelKind::Cpm, ModelKind::Actr];

    /// The lower-case name used in object keys and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Tpm => "tpm",
            ModelKind::Cpm => "cpm",
            ModelKind::Actr => "actr",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tpm" => Ok(ModelKind::Tpm),
            "cpm" => Ok(ModelKind::Cpm),
            "actr" | "a-ctr" => Ok(ModelKind::Actr),
            other => Err(SchemaError::Parse {
                what: "model kind",
                input: other.to_string(),
                reason: "expected one of `tpm`, `cpm`, `actr`".into(),
            }),
        }
    }
}

/// The version name of a published model or embedding snapshot. It is part of object keys, so it
/// is restricted to `[A-Za-z0-9._-]`, 1..=64 characters. Versions of the daily job are derived
/// from the date they were trained for ([`ModelVersion::for_date`]), which makes reruns idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelVersion(String);

impl ModelVersion {
    /// Validates and wraps a version name.
    pub fn new(name: impl Into<String>) -> Result<Self, SchemaError> {
        let name = name.into();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
            return Err(SchemaError::Parse {
                what: "model version",
                input: name,
                reason: "expected 1..=64 characters from [A-Za-z0-9._-]".into(),
            });
        }
        Ok(ModelVersion(name))
    }

    /// The deterministic version of the model trained for `date`: `dYYYYMMDD`.
    pub fn for_date(date: EventDate) -> Self {
        ModelVersion(format!("d{}", date.compact()))
    }

    /// The version name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ModelVersion {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelVersion::new(s)
    }
}

impl TryFrom<String> for ModelVersion {
    type Error = SchemaError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ModelVersion::new(s)
    }
}

impl From<ModelVersion> for String {
    fn from(v: ModelVersion) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_date_parses_formats_and_bounds_a_day() {
        let d: EventDate = "2024-02-28".parse().expect("valid date");
        assert_eq!(d.to_string(), "2024-02-28");
        assert_eq!(d.succ().to_string(), "2024-02-29");
        assert_eq!(d.end_ms() - d.start_ms(), 86_400_000);
        assert_eq!(EventDate::from_timestamp_ms(d.start_ms()), Some(d));
        assert_eq!(EventDate::from_timestamp_ms(d.end_ms() - 1), Some(d));
        assert_eq!(EventDate::from_timestamp_ms(d.end_ms()), Some(d.succ()));
        assert_eq!(d.compact(), "20240228");
        assert_eq!(d.range_inclusive(d.offset(2)).count(), 3);
        assert_eq!(d.range_inclusive(d.offset(-1)).count(), 0);
        let err = "2024-13-01".parse::<EventDate>().expect_err("month 13");
        assert!(err.to_string().contains("2024-13-01"), "{err}");
        let json = serde_json::to_string(&d).expect("serialise");
        assert_eq!(json, "\"2024-02-28\"");
        assert_eq!(serde_json::from_str::<EventDate>(&json).expect("parse"), d);
    }

    #[test]
    fn domain_and_model_kind_round_trip_and_reject_unknown() {
        for d in Domain::ALL {
            assert_eq!(d.as_str().parse::<Domain>().expect("known"), d);
        }
        assert!("ads".parse::<Domain>().is_err());
        for k in ModelKind::ALL {
            assert_eq!(k.as_str().parse::<ModelKind>().expect("known"), k);
        }
        let err = "ctr".parse::<ModelKind>().expect_err("unknown");
        assert!(err.to_string().contains("tpm"), "{err}");
    }

    #[test]
    fn model_version_is_validated_and_derived_from_dates() {
        assert!(ModelVersion::new("d20240101").is_ok());
        assert!(ModelVersion::new("").is_err());
        assert!(ModelVersion::new("a/b").is_err());
        assert!(ModelVersion::new("x".repeat(65)).is_err());
        let v = ModelVersion::for_date(EventDate::from_ymd(2024, 1, 5).expect("date"));
        assert_eq!(v.as_str(), "d20240105");
        assert!(serde_json::from_str::<ModelVersion>("\"../etc\"").is_err());
    }
}
