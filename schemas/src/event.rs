//! The event: one impression of an item (content or ad) to a user, with its context, the user's
//! behaviour sequence at that moment and whether it was clicked. This is the Rust row type and the
//! JSON wire format (one event per Kafka message); the Arrow schema lives in [`crate::schema`].
//!
//! Wire format (schema version 1), one JSON object per message:
//! ```json
//! {"schema_version":1,"event_id":"n-42","event_time":1704067200000,"domain":"natural",
//!  "user_id":7,"item_id":1001,"category_id":12,"position":3,"hour":0,"device":"android",
//!  "hist_item_ids":[1000,998],"hist_category_ids":[12,4],"item_content":null,"label":1}
//! ```
//! `event_time` is milliseconds since the Unix epoch, UTC. Unknown fields are ignored (additive
//! evolution within a version); a missing field, a wrong type or another `schema_version` is an
//! error.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CategoryId, Domain, EventDate, ItemId, SchemaError, SchemaVersion, UserId};

/// The event schema version this build writes and reads.
pub const WIRE_SCHEMA_VERSION: SchemaVersion = SchemaVersion(1);

/// An instant in UTC, as milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTime(pub i64);

impl EventTime {
    /// The UTC day of this instant (`None` only for instants chrono cannot represent).
    pub fn date(self) -> Option<EventDate> {
        EventDate::from_timestamp_ms(self.0)
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(self.0) {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
            None => write!(f, "{}ms", self.0),
        }
    }
}

/// The device class an impression was served on. Stored as a small integer code in Arrow
/// (`0` unknown, `1` iOS, `2` Android, `3` web) and as a lower-case name on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// Not reported.
    #[default]
    Unknown,
    /// Apple iOS app.
    Ios,
    /// Android app.
    Android,
    /// Browser.
    Web,
}

impl Device {
    /// Every device, in code order.
    pub const ALL: [Device; 4] = [Device::Unknown, Device::Ios, Device::Android, Device::Web];

    /// The Arrow code of this device.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The device of an Arrow code.
    pub fn from_code(code: u8) -> Result<Self, SchemaError> {
        Device::ALL
            .get(usize::from(code))
            .copied()
            .ok_or_else(|| SchemaError::InvalidField {
                field: "device",
                reason: format!("code {code} is not one of 0..=3"),
            })
    }
}

/// One impression. Field semantics are documented once, on the Arrow fields in
/// [`crate::EventSchema`]; this struct mirrors them one to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Globally unique id of the impression; the deduplication key.
    pub event_id: String,
    /// When the impression happened.
    pub event_time: EventTime,
    /// Natural or ad traffic.
    pub domain: Domain,
    /// The user.
    pub user_id: UserId,
    /// The item shown (the ad id for ads).
    pub item_id: ItemId,
    /// The item's category.
    pub category_id: CategoryId,
    /// 0-based slot of the impression on the page.
    pub position: u32,
    /// Local hour of day, 0..=23.
    pub hour: u8,
    /// Device class.
    pub device: Device,
    /// The user's earlier items, most recent first.
    pub hist_item_ids: Vec<ItemId>,
    /// Categories aligned with `hist_item_ids`.
    pub hist_category_ids: Vec<CategoryId>,
    /// Optional content vector of the item (from a pre-trained encoder), for the PPM plug-in.
    pub item_content: Option<Vec<f32>>,
    /// 1 when clicked, 0 otherwise.
    pub label: u8,
}

#[derive(Serialize)]
struct WireOut<'a> {
    schema_version: SchemaVersion,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Deserialize)]
struct WireIn {
    schema_version: SchemaVersion,
    #[serde(flatten)]
    event: Event,
}

#[derive(Deserialize)]
struct VersionOnly {
    schema_version: SchemaVersion,
}

impl Event {
    /// Encodes the event as one wire-format JSON message.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireOut {
            schema_version: WIRE_SCHEMA_VERSION,
            event: self,
        };
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Decodes one wire-format JSON message and checks its schema version and field invariants.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SchemaError> {
        let wire: WireIn = match serde_json::from_slice(bytes) {
            Ok(w) => w,
            Err(e) => {
                // Report a version mismatch in preference to the field errors it causes.
                if let Ok(v) = serde_json::from_slice::<VersionOnly>(bytes) {
                    check_version(v.schema_version)?;
                }
                return Err(SchemaError::Json(e));
            }
        };
        check_version(wire.schema_version)?;
        wire.event.check()?;
        Ok(wire.event)
    }

    /// Checks the invariants that hold for every valid event regardless of configuration:
    /// non-empty id, label in {0, 1}, hour in 0..=23, aligned behaviour lists and finite content.
    pub fn check(&self) -> Result<(), SchemaError> {
        let invalid = |field, reason: String| Err(SchemaError::InvalidField { field, reason });
        if self.event_id.is_empty() {
            return invalid("event_id", "must not be empty".into());
        }
        if self.label > 1 {
            return invalid("label", format!("{} is not 0 or 1", self.label));
        }
        if self.hour > 23 {
            return invalid("hour", format!("{} is not in 0..=23", self.hour));
        }
        if self.hist_item_ids.len() != self.hist_category_ids.len() {
            return invalid(
                "hist_category_ids",
                format!(
                    "has {} entries but hist_item_ids has {}",
                    self.hist_category_ids.len(),
                    self.hist_item_ids.len()
                ),
            );
        }
        if let Some(v) = &self.item_content
            && v.iter().any(|x| !x.is_finite())
        {
            return invalid("item_content", "contains NaN or infinity".into());
        }
        Ok(())
    }
}

fn check_version(found: SchemaVersion) -> Result<(), SchemaError> {
    if found == WIRE_SCHEMA_VERSION {
        Ok(())
    } else {
        Err(SchemaError::UnsupportedSchemaVersion {
            found: found.0,
            supported: WIRE_SCHEMA_VERSION.0,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_event(seq_len: usize, content: Option<Vec<f32>>) -> Event {
        Event {
            event_id: format!("e-{seq_len}"),
            event_time: EventTime(1_704_067_200_123),
            domain: if seq_len.is_multiple_of(2) {
                Domain::Natural
            } else {
                Domain::Ad
            },
            user_id: UserId(u64::MAX),
            item_id: ItemId(42),
            category_id: CategoryId(7),
            position: 3,
            hour: 23,
            device: Device::Android,
            hist_item_ids: (0..seq_len as u64).map(ItemId).collect(),
            hist_category_ids: (0..seq_len as u64).map(|i| CategoryId(i % 13)).collect(),
            item_content: content,
            label: 1,
        }
    }

    #[test]
    fn json_round_trips_exactly() {
        for (len, content) in [(0, None), (1, Some(vec![0.5; 4])), (1000, None)] {
            let e = sample_event(len, content);
            let bytes = e.to_json();
            assert_eq!(Event::from_json(&bytes).expect("decode"), e);
        }
        let text = String::from_utf8(sample_event(0, None).to_json()).expect("utf8");
        assert!(text.starts_with("{\"schema_version\":1,"), "{text}");
        assert!(text.contains("\"device\":\"android\""), "{text}");
    }

    #[test]
    fn wrong_version_missing_fields_and_bad_values_are_named() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&sample_event(2, None).to_json()).expect("json");
        v["schema_version"] = 2.into();
        let err = Event::from_json(v.to_string().as_bytes()).expect_err("version 2");
        assert!(
            matches!(err, SchemaError::UnsupportedSchemaVersion { found: 2, .. }),
            "{err}"
        );

        let mut v: serde_json::Value =
            serde_json::from_slice(&sample_event(2, None).to_json()).expect("json");
        v.as_object_mut().expect("object").remove("user_id");
        let err = Event::from_json(v.to_string().as_bytes()).expect_err("missing user");
        assert!(err.to_string().contains("user_id"), "{err}");

        let mut v: serde_json::Value =
            serde_json::from_slice(&sample_event(2, None).to_json()).expect("json");
        v["label"] = 3.into();
        let err = Event::from_json(v.to_string().as_bytes()).expect_err("label 3");
        assert!(err.to_string().contains("label"), "{err}");

        v["label"] = (-1).into();
        assert!(Event::from_json(v.to_string().as_bytes()).is_err());

        let mut v: serde_json::Value =
            serde_json::from_slice(&sample_event(2, None).to_json()).expect("json");
        v["hist_category_ids"] = serde_json::json!([1]);
        let err = Event::from_json(v.to_string().as_bytes()).expect_err("misaligned");
        assert!(err.to_string().contains("hist_category_ids"), "{err}");

        assert!(Event::from_json(b"{\"schema_version\":1,").is_err());
        assert!(Event::from_json(&[0xff, 0x00, 0x13]).is_err());
    }

    #[test]
    fn device_codes_round_trip() {
        for d in Device::ALL {
            assert_eq!(Device::from_code(d.code()).expect("code"), d);
        }
        assert!(Device::from_code(4).is_err());
    }
}
