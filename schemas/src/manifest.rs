//! Manifests: small JSON documents that say what a set of objects in storage is, and the only
//! thing readers trust. Data files not listed by a manifest are orphans.
//!
//! Every manifest is encoded in an envelope `{"kind": ..., "format_version": ..., ...fields}` so a
//! reader can reject a document of the wrong kind or a newer format with an error that names both.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Domain, Epoch, EventDate, ModelKind, ModelVersion, SchemaError};

/// A manifest type: its `kind` tag and the format version this build writes.
pub trait Manifest: Serialize + DeserializeOwned {
    /// The `kind` tag in the envelope.
    const KIND: &'static str;
    /// The format version this build writes and reads.
    const FORMAT_VERSION: u32;
}

#[derive(Serialize)]
struct EnvelopeOut<'a, M> {
    kind: &'static str,
    format_version: u32,
    #[serde(flatten)]
    body: &'a M,
}

#[derive(Deserialize)]
struct EnvelopeHead {
    kind: String,
    format_version: u32,
}

#[derive(Deserialize)]
struct EnvelopeIn<M> {
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(rename = "format_version")]
    _format_version: u32,
    #[serde(flatten)]
    body: M,
}

/// Encodes a manifest as pretty JSON inside its envelope.
pub fn encode_manifest<M: Manifest>(manifest: &M) -> Vec<u8> {
    let env = EnvelopeOut {
        kind: M::KIND,
        format_version: M::FORMAT_VERSION,
        body: manifest,
    };
    // Manifests are plain data with string keys: serialisation cannot fail.
    serde_json::to_vec_pretty(&env).unwrap_or_default()
}

/// Decodes a manifest read from `key`, checking its kind and format version.
pub fn decode_manifest<M: Manifest>(key: &str, bytes: &[u8]) -> Result<M, SchemaError> {
    let err = |reason: String| SchemaError::Manifest {
        key: key.to_string(),
        reason,
    };
    let head: EnvelopeHead =
        serde_json::from_slice(bytes).map_err(|e| err(format!("not a manifest: {e}")))?;
    if head.kind != M::KIND {
        return Err(err(format!(
            "is a `{}` manifest, expected `{}`",
            head.kind,
            M::KIND
        )));
    }
    if head.format_version != M::FORMAT_VERSION {
        return Err(err(format!(
            "format version {} is not supported (this build reads {})",
            head.format_version,
            M::FORMAT_VERSION
        )));
    }
    serde_json::from_slice::<EnvelopeIn<M>>(bytes)
        .map(|e| e.body)
        .map_err(|e| err(e.to_string()))
}

/// Lower-case hex SHA-256 of `bytes`: the fingerprint used for config and schema hashes.
pub fn fingerprint(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a listed file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileRole {
    /// Valid events in the landing tables.
    Landing,
    /// Rejected messages with their reason.
    DeadLetter,
    /// Events that arrived after their day was closed.
    Late,
}

/// One data file listed by a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Object key relative to the store root.
    pub key: String,
    /// What the file holds.
    pub role: FileRole,
    /// Domain of its rows.
    pub domain: Domain,
    /// Event date partition of its rows.
    pub date: EventDate,
    /// Number of rows.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// The Kafka offsets one epoch consumed from one partition (inclusive range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// First offset consumed in the epoch.
    pub first_offset: i64,
    /// Last offset consumed in the epoch; consumption resumes at `last_offset + 1`.
    pub last_offset: i64,
}

/// Written once per ingest epoch after every sink finished its files; the source of truth for
/// what landed and which offsets are covered. Offsets are committed to Kafka only after this
/// manifest is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochManifest {
    /// The epoch number (unique across replicas: claimed with a create-if-absent put).
    pub epoch: Epoch,
    /// Which ingest replica wrote it.
    pub writer: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Files completed in this epoch.
    pub files: Vec<FileEntry>,
    /// Offsets covered by those files, per partition.
    pub offsets: Vec<OffsetRange>,
    /// Per-partition maximum event time seen so far (ms), for the watermark after restart.
    #[serde(default)]
    pub max_event_time_ms: BTreeMap<String, i64>,
}

impl Manifest for EpochManifest {
    const KIND: &'static str = "epoch";
    const FORMAT_VERSION: u32 = 1;
}

/// The newest landed offset of one partition and the epoch manifest that landed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandedThrough {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Every offset up to and including this one is landed.
    pub last_offset: i64,
    /// The replica whose manifest landed `last_offset`.
    pub writer: String,
    /// That manifest's epoch.
    pub epoch: Epoch,
}

/// The epoch manifests `1..=through` folded into one document, so that a reader starting cold
/// (an ingest replica opening, `landed_offsets`) reads the newest checkpoint and the manifests
/// after it instead of every manifest ever written. Derived data: the manifests stay the truth
/// and a missing or older checkpoint only means more manifests to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochCheckpoint {
    /// The last epoch folded in; every manifest from 1 to it is.
    pub through: Epoch,
    /// Per partition (`topic/partition`), the maximum event time over the folded manifests (ms).
    pub max_event_time_ms: BTreeMap<String, i64>,
    /// Per partition, the newest landed offset, in (topic, partition) order.
    pub landed: Vec<LandedThrough>,
    /// Landing files of the days that were still open when the checkpoint was written (a closed
    /// day's files are in its `_SUCCESS`).
    pub open_day_files: Vec<FileEntry>,
}

impl Manifest for EpochCheckpoint {
    const KIND: &'static str = "epoch-checkpoint";
    const FORMAT_VERSION: u32 = 1;
}

/// The `_SUCCESS` manifest of one domain and day: the day is closed and complete; the daily job
/// may read exactly the files listed here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayManifest {
    /// Domain of the day partition.
    pub domain: Domain,
    /// The closed day.
    pub date: EventDate,
    /// Rows in the day's landing files.
    pub rows: u64,
    /// The day's landing files.
    pub files: Vec<FileEntry>,
    /// The watermark (ms) that closed the day, when closed by a stream.
    pub watermark_ms: Option<i64>,
    /// What produced the day (`ingest`, `generate`, `import-movielens`).
    pub producer: String,
    /// When the day was closed.
    pub closed_at: DateTime<Utc>,
}

impl Manifest for DayManifest {
    const KIND: &'static str = "day";
    const FORMAT_VERSION: u32 = 1;
}

/// The data a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataWindow {
    /// First day, inclusive.
    pub from: EventDate,
    /// Last day, inclusive.
    pub to: EventDate,
    /// Rows read per domain.
    pub rows: BTreeMap<Domain, u64>,
}

/// The exact parent versions a model was built from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parents {
    /// TPM embedding snapshots used as historical embeddings, newest first.
    pub tpm: Vec<ModelVersion>,
    /// The CPM an A-CTR was initialised from.
    pub cpm: Option<ModelVersion>,
    /// The previous version of the same model that training continued from.
    pub previous: Option<ModelVersion>,
}

/// Offline evaluation of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Area under the ROC curve.
    pub auc: f64,
    /// Impression-weighted per-user AUC; `None` when no user has both a click and a non-click
    /// in the evaluation data (GAUC is then undefined).
    pub gauc: Option<f64>,
    /// Mean binary cross-entropy.
    pub logloss: f64,
    /// Mean prediction / mean label.
    pub calibration: f64,
    /// Number of evaluated samples.
    pub samples: u64,
}

/// The publish gate's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum GateVerdict {
    /// Published and made LATEST.
    Accepted,
    /// Not made LATEST; the previous model stays live.
    Rejected {
        /// Why.
        reason: String,
    },
    /// This kind of model is not gated.
    NotGated,
}

/// Lineage and evaluation of one published model version (`models/{kind}/{version}/manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Which model.
    pub model: ModelKind,
    /// Its version.
    pub version: ModelVersion,
    /// The schedule date it was trained for.
    pub date: EventDate,
    /// Training data.
    pub data_window: DataWindow,
    /// Parent versions.
    pub parents: Parents,
    /// With point-in-time historical reads (`[daily.network] historical-point-in-time`): every
    /// TPM snapshot the training rows read, newest first, starting with `parents.tpm`; rows of
    /// earlier days read the older ones. Empty when every row read `parents.tpm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub point_in_time_snapshots: Vec<ModelVersion>,
    /// Fingerprint of the model config.
    pub config_hash: String,
    /// Fingerprint of the event schema.
    pub schema_hash: String,
    /// Offline metrics, when evaluated.
    pub metrics: Option<ModelMetrics>,
    /// The gate's decision.
    pub gate: GateVerdict,
    /// ctrflow version that trained it.
    pub code_version: String,
    /// Files of the artifact.
    pub files: Vec<String>,
    /// When it was published.
    pub created_at: DateTime<Utc>,
}

impl Manifest for ModelManifest {
    const KIND: &'static str = "model";
    const FORMAT_VERSION: u32 = 1;
}

/// A TPM historical-embedding snapshot (`embeddings/tpm/{version}/manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingManifest {
    /// Snapshot version (equal to the TPM model version that exported it).
    pub version: ModelVersion,
    /// Embedding width.
    pub dim: u32,
    /// Key of the users table and its row count.
    pub users: (String, u64),
    /// Key of the items table and its row count.
    pub items: (String, u64),
    /// Event-time watermark (ms) of the newest data the snapshot saw.
    pub watermark_ms: i64,
    /// When it was published.
    pub created_at: DateTime<Utc>,
}

impl Manifest for EmbeddingManifest {
    const KIND: &'static str = "embedding-snapshot";
    const FORMAT_VERSION: u32 = 1;
}

/// The content of `models/{kind}/LATEST`: which version is live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestPointer {
    /// Which model.
    pub model: ModelKind,
    /// The live version.
    pub version: ModelVersion,
    /// Its manifest key.
    pub manifest_key: String,
    /// When the pointer was swapped.
    pub updated_at: DateTime<Utc>,
}

impl Manifest for LatestPointer {
    const KIND: &'static str = "latest";
    const FORMAT_VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> DayManifest {
        let date: EventDate = "2024-01-02".parse().expect("date");
        DayManifest {
            domain: Domain::Ad,
            date,
            rows: 10,
            files: vec![FileEntry {
                key: "landing/ad/date=2024-01-02/part-gen-00000.parquet".into(),
                role: FileRole::Landing,
                domain: Domain::Ad,
                date,
                rows: 10,
                bytes: 1234,
            }],
            watermark_ms: Some(1),
            producer: "generate".into(),
            closed_at: DateTime::<Utc>::from_timestamp_millis(0).expect("ts"),
        }
    }

    #[test]
    fn manifests_round_trip_inside_their_envelope() {
        let m = day();
        let bytes = encode_manifest(&m);
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(text.contains("\"kind\": \"day\""), "{text}");
        assert!(text.contains("\"format_version\": 1"), "{text}");
        assert_eq!(
            decode_manifest::<DayManifest>("k", &bytes).expect("decode"),
            m
        );

        let model = ModelManifest {
            model: ModelKind::Actr,
            version: ModelVersion::for_date(m.date),
            date: m.date,
            data_window: DataWindow {
                from: m.date,
                to: m.date,
                rows: BTreeMap::from([(Domain::Ad, 10)]),
            },
            parents: Parents {
                tpm: vec![ModelVersion::new("d20231201").expect("v")],
                cpm: None,
                previous: None,
            },
            point_in_time_snapshots: Vec::new(),
            config_hash: fingerprint(b"cfg"),
            schema_hash: fingerprint(b"schema"),
            metrics: None,
            gate: GateVerdict::Rejected {
                reason: "auc fell".into(),
            },
            code_version: "0.1.0".into(),
            files: vec![],
            created_at: m.closed_at,
        };
        let bytes = encode_manifest(&model);
        assert_eq!(
            decode_manifest::<ModelManifest>("k", &bytes).expect("decode"),
            model
        );
        // Without point-in-time reads the field is left out (manifests written before it
        // existed decode the same); with them it round-trips.
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(!text.contains("point_in_time_snapshots"), "{text}");
        let with_history = ModelManifest {
            point_in_time_snapshots: vec![
                ModelVersion::new("d20231201").expect("v"),
                ModelVersion::new("d20231101").expect("v"),
            ],
            ..model
        };
        let bytes = encode_manifest(&with_history);
        assert_eq!(
            decode_manifest::<ModelManifest>("k", &bytes).expect("decode"),
            with_history
        );
    }

    #[test]
    fn wrong_kind_and_newer_format_are_rejected_with_the_key() {
        let bytes = encode_manifest(&day());
        let err = decode_manifest::<EpochManifest>("landing/_epochs/1.json", &bytes)
            .expect_err("kind mismatch");
        let text = err.to_string();
        assert!(
            text.contains("landing/_epochs/1.json") && text.contains("`day`"),
            "{text}"
        );

        let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        v["format_version"] = 9.into();
        let err = decode_manifest::<DayManifest>("x/_SUCCESS", v.to_string().as_bytes())
            .expect_err("format 9");
        assert!(err.to_string().contains("format version 9"), "{err}");
        assert!(decode_manifest::<DayManifest>("x", b"not json").is_err());
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(
            fingerprint(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
