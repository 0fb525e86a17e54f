//! The JSON wire format (see [`ctrflow_schemas::Event`]) parsed straight into the column tails.
//!
//! A [`DeserializeSeed`] walks the object once: keys are matched as borrowed `&str` without
//! allocating, `event_id` bytes and the behaviour lists and content are appended to the value
//! vectors of [`EventColumns`], and fixed-width fields land in a [`Row`]. Limits are enforced
//! while parsing (an over-long list stops the parse at the first entry past the limit). On any
//! failure the tails are truncated back, so a rejected message leaves nothing behind.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;

use super::RejectReason;
use super::columns::{EventColumns, Limits, Mark, Reject, Row, check_row, too_long};
use super::plain::parse_plain;

/// The fields of wire format version 1; the discriminant is the bit in `State::seen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    SchemaVersion,
    EventId,
    EventTime,
    Domain,
    UserId,
    ItemId,
    CategoryId,
    Position,
    Hour,
    Device,
    HistItemIds,
    HistCategoryIds,
    ItemContent,
    Label,
    Other,
}

const KEYS: [(Key, &str); 14] = [
    (Key::SchemaVersion, "schema_version"),
    (Key::EventId, "event_id"),
    (Key::EventTime, "event_time"),
    (Key::Domain, "domain"),
    (Key::UserId, "user_id"),
    (Key::ItemId, "item_id"),
    (Key::CategoryId, "category_id"),
    (Key::Position, "position"),
    (Key::Hour, "hour"),
    (Key::Device, "device"),
    (Key::HistItemIds, "hist_item_ids"),
    (Key::HistCategoryIds, "hist_category_ids"),
    (Key::ItemContent, "item_content"),
    (Key::Label, "label"),
];

/// Every field but `item_content` (optional: absent means null, as in `Event`).
const REQUIRED: u16 = ((1u16 << KEYS.len()) - 1) & !(1u16 << (Key::ItemContent as u16));

/// Names of the `domain` values, in order (index 1 = ad).
const DOMAINS: &[&str] = &["natural", "ad"];
/// Names of the `device` values, in code order.
const DEVICES: &[&str] = &["unknown", "ios", "android", "web"];

impl Key {
    fn bit(self) -> u16 {
        1 << self as u16
    }

    fn name(self) -> &'static str {
        KEYS.iter()
            .find(|(k, _)| *k == self)
            .map_or("(unknown)", |(_, n)| n)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                // A `match` compiles to a length switch plus one comparison; keep it in sync
                // with KEYS (a unit test checks both agree).
                Ok(match v {
                    "schema_version" => Key::SchemaVersion,
                    "event_id" => Key::EventId,
                    "event_time" => Key::EventTime,
                    "domain" => Key::Domain,
                    "user_id" => Key::UserId,
                    "item_id" => Key::ItemId,
                    "category_id" => Key::CategoryId,
                    "position" => Key::Position,
                    "hour" => Key::Hour,
                    "device" => Key::Device,
                    "hist_item_ids" => Key::HistItemIds,
                    "hist_category_ids" => Key::HistCategoryIds,
                    "item_content" => Key::ItemContent,
                    "label" => Key::Label,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Parse progress: fields seen, the field being read, and a rejection decided by a visitor
/// (which then aborts the parse with a placeholder serde error).
#[derive(Default)]
struct State {
    seen: u16,
    field: Option<Key>,
    fail: Option<Reject>,
}

/// Parses one wire-format message onto the tails of `cols` and checks it. On `Ok` the row's
/// variable-length parts are on the tails, ready for [`EventColumns::commit`]; on `Err` the
/// tails are as before the call.
///
/// A message of the plain shape takes the one-pass fast path ([`parse_plain`]), straight from
/// the bytes: that shape is ASCII only, so the payload needs no separate UTF-8 pass. Any other
/// is checked for UTF-8 ([`RejectReason::NotUtf8`]) and goes through serde ([`parse_serde`]),
/// which then decides and words its rejection.
pub(super) fn parse(
    cols: &mut EventColumns,
    payload: &[u8],
    limits: &Limits,
) -> Result<Row, Reject> {
    let mark = cols.mark();
    if let Some(row) = parse_plain(cols, payload, limits) {
        let checked = check_tail(cols, mark, row, limits);
        if checked.is_err() {
            cols.rollback(mark);
        }
        return checked;
    }
    cols.rollback(mark);
    let text = std::str::from_utf8(payload).map_err(|e| {
        Reject::new(
            RejectReason::NotUtf8,
            format!(
                "invalid UTF-8 at byte {} of {}",
                e.valid_up_to(),
                payload.len()
            ),
        )
    })?;
    parse_serde(cols, text, limits)
}

/// [`parse`] through serde only: every message shape, every rejection reason and detail.
pub(super) fn parse_serde(
    cols: &mut EventColumns,
    text: &str,
    limits: &Limits,
) -> Result<Row, Reject> {
    let mark = cols.mark();
    let mut state = State::default();
    let mut row = Row::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = RowSeed {
        cols: &mut *cols,
        row: &mut row,
        limits,
        state: &mut state,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    let result = match parsed {
        Err(e) => {
            let reject = state
                .fail
                .take()
                .unwrap_or_else(|| classify(&e, state.field));
            Err(prefer_version(reject, state.seen, text))
        }
        Ok(()) if state.seen & REQUIRED != REQUIRED => {
            let missing = KEYS
                .iter()
                .find(|(k, _)| k.bit() & REQUIRED & !state.seen != 0)
                .map_or("(unknown)", |(_, n)| n);
            let reject = Reject::new(
                RejectReason::MissingField,
                format!("required field `{missing}` is missing"),
            );
            Err(prefer_version(reject, state.seen, text))
        }
        Ok(()) => check_tail(cols, mark, row, limits),
    };
    if result.is_err() {
        cols.rollback(mark);
    }
    result
}

/// [`check_row`] on `row` and the variable-length parts appended since `mark`.
fn check_tail(cols: &EventColumns, mark: Mark, row: Row, limits: &Limits) -> Result<Row, Reject> {
    check_row(
        &row,
        &cols.event_id[mark.event_id..],
        cols.hist_items.len() - mark.hist_items,
        cols.hist_cats.len() - mark.hist_cats,
        &cols.content[mark.content..],
        limits,
    )
    .map(|()| row)
}

fn classify(e: &serde_json::Error, field: Option<Key>) -> Reject {
    match (e.classify(), field) {
        (Category::Data, Some(key)) => Reject::new(
            RejectReason::WrongType,
            format!("field `{}`: {e}", key.name()),
        ),
        (Category::Data, None) => Reject::new(RejectReason::WrongType, e.to_string()),
        (Category::Syntax | Category::Eof | Category::Io, _) => {
            Reject::new(RejectReason::BadJson, e.to_string())
        }
    }
}

/// A message of another schema version mostly fails on its fields first; report the version
/// instead (as `Event::from_json` does). Cold path: re-reads only `schema_version`.
fn prefer_version(reject: Reject, seen: u16, text: &str) -> Reject {
    #[derive(Deserialize)]
    struct Probe {
        schema_version: serde_json::Value,
    }
    if seen & Key::SchemaVersion.bit() != 0 {
        return reject;
    }
    match serde_json::from_str::<Probe>(text) {
        Ok(p) if p.schema_version.is_i64() || p.schema_version.is_u64() => {
            if p.schema_version.as_u64() == Some(1) {
                reject
            } else {
                unsupported(&p.schema_version)
            }
        }
        _ => reject,
    }
}

fn unsupported(found: &dyn fmt::Display) -> Reject {
    Reject::new(
        RejectReason::UnsupportedSchemaVersion,
        format!("schema_version {found} (this build reads version 1)"),
    )
}

fn abort<E: de::Error>(fail: &mut Option<Reject>, reject: Reject) -> E {
    let e = E::custom(&reject.detail);
    *fail = Some(reject);
    e
}

struct RowSeed<'a> {
    cols: &'a mut EventColumns,
    row: &'a mut Row,
    limits: &'a Limits,
    state: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a wire-format event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let RowSeed {
            cols,
            row,
            limits,
            state,
        } = self;
        while let Some(key) = map.next_key::<Key>()? {
            if key == Key::Other {
                state.field = None;
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if state.seen & key.bit() != 0 {
                let dup = Reject::new(
                    RejectReason::BadJson,
                    format!("duplicate field `{}`", key.name()),
                );
                return Err(abort(&mut state.fail, dup));
            }
            state.seen |= key.bit();
            state.field = Some(key);
            match key {
                Key::SchemaVersion => {
                    let v = map.next_value_seed(Int)?;
                    if v != 1 {
                        return Err(abort(&mut state.fail, unsupported(&v)));
                    }
                }
                Key::EventId => map.next_value_seed(StrInto(&mut cols.event_id))?,
                Key::EventTime => row.event_time = map.next_value()?,
                Key::Domain => row.domain_ad = map.next_value_seed(Names(DOMAINS))? == 1,
                Key::UserId => row.user_id = map.next_value()?,
                Key::ItemId => row.item_id = map.next_value()?,
                Key::CategoryId => row.category_id = map.next_value()?,
                Key::Position => row.position = map.next_value()?,
                Key::Hour => row.hour = map.next_value_seed(Int)?,
                Key::Device => {
                    // At most 3: DEVICES has four names.
                    row.device = map.next_value_seed(Names(DEVICES))? as u8;
                }
                Key::HistItemIds | Key::HistCategoryIds => {
                    let out = if key == Key::HistItemIds {
                        &mut cols.hist_items
                    } else {
                        &mut cols.hist_cats
                    };
                    map.next_value_seed(Ids {
                        out,
                        max: limits.max_seq_len,
                        name: key.name(),
                        fail: &mut state.fail,
                    })?;
                }
                Key::ItemContent => {
                    row.content_present = map.next_value_seed(Content {
                        out: &mut cols.content,
                        dim: limits.content_dim,
                        fail: &mut state.fail,
                    })?;
                }
                Key::Label => row.label = map.next_value_seed(Int)?,
                Key::Other => {}
            }
        }
        state.field = None;
        Ok(())
    }
}

/// Any JSON integer, widened (range checks come later).
struct Int;

impl<'de> DeserializeSeed<'de> for Int {
    type Value = i128;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i128, D::Error> {
        d.deserialize_i64(self)
    }
}

impl Visitor<'_> for Int {
    type Value = i128;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        Ok(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        Ok(v.into())
    }
}

/// A string appended to a byte vector.
struct StrInto<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for StrInto<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for StrInto<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.extend_from_slice(v.as_bytes());
        Ok(())
    }
}

/// One of a fixed set of names, as its index.
struct Names(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Names {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Names {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {:?}", self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.0
            .iter()
            .position(|n| *n == v)
            .ok_or_else(|| E::unknown_variant(v, self.0))
    }
}

/// A list of u64 ids appended to a vector, stopping past `max` entries.
struct Ids<'a> {
    out: &'a mut Vec<u64>,
    max: usize,
    name: &'static str,
    fail: &'a mut Option<Reject>,
}

impl<'de> DeserializeSeed<'de> for Ids<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Ids<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of unsigned 64-bit ids")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let end = self.out.len() + self.max;
        while let Some(id) = seq.next_element::<u64>()? {
            if self.out.len() == end {
                return Err(abort(self.fail, too_long(self.name, self.max)));
            }
            self.out.push(id);
        }
        Ok(())
    }
}

/// `item_content`: null (returns false) or a list of floats appended to a vector (true),
/// stopping past `dim` values.
struct Content<'a> {
    out: &'a mut Vec<f32>,
    dim: usize,
    fail: &'a mut Option<Reject>,
}

impl<'de> DeserializeSeed<'de> for Content<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Content<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or a list of numbers")
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let end = self.out.len() + self.dim;
        while let Some(x) = seq.next_element::<f32>()? {
            if self.out.len() == end {
                let reject = Reject::new(
                    RejectReason::BadContent,
                    format!(
                        "item_content has more than {} values, the schema expects {}",
                        self.dim, self.dim
                    ),
                );
                return Err(abort(self.fail, reject));
            }
            self.out.push(x);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_and_bits_agree() {
        for (i, (key, name)) in KEYS.iter().enumerate() {
            let parsed: Key = serde_json::from_str(&format!("\"{name}\"")).expect("key");
            assert_eq!(parsed, *key);
            assert_eq!(key.name(), *name);
            assert_eq!(key.bit(), 1 << i);
        }
        let other: Key = serde_json::from_str("\"extra\"").expect("key");
        assert_eq!(other, Key::Other);
        assert_eq!(REQUIRED.count_ones(), 13);
    }
}
