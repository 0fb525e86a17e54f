//! The Arrow schema of events (version 1), shared by both domains and by every table that holds
//! events: the landing tables `natural` and `ad`, the training readers and the archive. Every
//! field carries its documentation in the Arrow field metadata under `doc`, so `DESCRIBE` and
//! Parquet readers show it too.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::WIRE_SCHEMA_VERSION;

/// Default maximum length of the behaviour sequence.
pub const DEFAULT_MAX_SEQ_LEN: usize = 1000;
/// Default width of the optional `item_content` vector.
pub const DEFAULT_CONTENT_DIM: usize = 16;
/// Schema-level metadata key holding the event schema version.
pub const SCHEMA_VERSION_METADATA_KEY: &str = "ctrflow.event_schema_version";

/// Column names of the event schema, in schema order.
pub mod columns {
    /// `event_id`
    pub const EVENT_ID: &str = "event_id";
    /// `event_time`
    pub const EVENT_TIME: &str = "event_time";
    /// `domain`
    pub const DOMAIN: &str = "domain";
    /// `user_id`
    pub const USER_ID: &str = "user_id";
    /// `item_id`
    pub const ITEM_ID: &str = "item_id";
    /// `category_id`
    pub const CATEGORY_ID: &str = "category_id";
    /// `position`
    pub const POSITION: &str = "position";
    /// `hour`
    pub const HOUR: &str = "hour";
    /// `device`
    pub const DEVICE: &str = "device";
    /// `hist_item_ids`
    pub const HIST_ITEM_IDS: &str = "hist_item_ids";
    /// `hist_category_ids`
    pub const HIST_CATEGORY_IDS: &str = "hist_category_ids";
    /// `item_content`
    pub const ITEM_CONTENT: &str = "item_content";
    /// `label`
    pub const LABEL: &str = "label";
}

/// The event schema for one `item_content` width. Build it once and share the [`SchemaRef`].
#[derive(Debug, Clone)]
pub struct EventSchema {
    schema: SchemaRef,
    content_dim: usize,
}

impl Default for EventSchema {
    fn default() -> Self {
        EventSchema::new(DEFAULT_CONTENT_DIM)
    }
}

fn documented(field: Field, doc: &str) -> Field {
    field.with_metadata(HashMap::from([("doc".to_string(), doc.to_string())]))
}

/// The element field of the behaviour lists (non-null ids).
pub(crate) fn list_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::UInt64, false))
}

/// The element field of `item_content` (non-null floats).
pub(crate) fn content_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Float32, false))
}

impl EventSchema {
    /// The schema with an `item_content` vector of `content_dim` floats.
    pub fn new(content_dim: usize) -> Self {
        use columns::*;
        let fields = vec![
            documented(
                Field::new(EVENT_ID, DataType::Utf8, false),
                "Globally unique id of the impression; the deduplication key.",
            ),
            documented(
                Field::new(
                    EVENT_TIME,
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    false,
                ),
                "When the impression happened, UTC, millisecond precision.",
            ),
            documented(
                Field::new(DOMAIN, DataType::Utf8, false),
                "`natural` (organic content) or `ad` (advertisement).",
            ),
            documented(
                Field::new(USER_ID, DataType::UInt64, false),
                "Raw 64-bit user id of the upstream system.",
            ),
            documented(
                Field::new(ITEM_ID, DataType::UInt64, false),
                "Raw 64-bit id of the item shown; the ad id for ads.",
            ),
            documented(
                Field::new(CATEGORY_ID, DataType::UInt64, false),
                "Raw 64-bit category id of the item.",
            ),
            documented(
                Field::new(POSITION, DataType::UInt32, false),
                "0-based slot of the impression on the page.",
            ),
            documented(
                Field::new(HOUR, DataType::UInt8, false),
                "Hour of day of the impression, 0..=23.",
            ),
            documented(
                Field::new(DEVICE, DataType::UInt8, false),
                "Device class code: 0 unknown, 1 iOS, 2 Android, 3 web.",
            ),
            documented(
                Field::new(HIST_ITEM_IDS, DataType::List(list_item_field()), false),
                "The user's earlier items, most recent first (up to the configured maximum, \
                 default 1000).",
            ),
            documented(
                Field::new(HIST_CATEGORY_IDS, DataType::List(list_item_field()), false),
                "Categories of hist_item_ids, aligned element by element.",
            ),
            documented(
                Field::new(
                    ITEM_CONTENT,
                    DataType::FixedSizeList(content_item_field(), content_dim as i32),
                    true,
                ),
                "Optional content vector of the item from a pre-trained encoder (PPM plug-in).",
            ),
            documented(
                Field::new(LABEL, DataType::UInt8, false),
                "1 when the impression was clicked, 0 otherwise.",
            ),
        ];
        let metadata = HashMap::from([(
            SCHEMA_VERSION_METADATA_KEY.to_string(),
            WIRE_SCHEMA_VERSION.0.to_string(),
        )]);
        EventSchema {
            schema: Arc::new(Schema::new_with_metadata(fields, metadata)),
            content_dim,
        }
    }

    /// The Arrow schema.
    pub fn arrow(&self) -> &SchemaRef {
        &self.schema
    }

    /// The width of `item_content`.
    pub fn content_dim(&self) -> usize {
        self.content_dim
    }

    /// A stable fingerprint of the schema (field names, types, nullability, version), recorded in
    /// manifests so a model can tell which schema its data had.
    pub fn fingerprint(&self) -> String {
        let mut text = format!("v{};", WIRE_SCHEMA_VERSION.0);
        for f in self.schema.fields() {
            text.push_str(&format!(
                "{}:{}:{};",
                f.name(),
                f.data_type(),
                f.is_nullable()
            ));
        }
        crate::fingerprint(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_documented_and_named_as_in_sql() {
        let s = EventSchema::default();
        let names: Vec<&str> = s
            .arrow()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "event_id",
                "event_time",
                "domain",
                "user_id",
                "item_id",
                "category_id",
                "position",
                "hour",
                "device",
                "hist_item_ids",
                "hist_category_ids",
                "item_content",
                "label"
            ]
        );
        for f in s.arrow().fields() {
            assert!(f.metadata().contains_key("doc"), "{} lacks doc", f.name());
        }
        assert_eq!(
            s.arrow()
                .metadata()
                .get(SCHEMA_VERSION_METADATA_KEY)
                .map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn fingerprint_depends_on_content_dim() {
        assert_eq!(
            EventSchema::new(8).fingerprint(),
            EventSchema::new(8).fingerprint()
        );
        assert_ne!(
            EventSchema::new(8).fingerprint(),
            EventSchema::new(16).fingerprint()
        );
    }
}
