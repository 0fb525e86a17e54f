//! Publishing: artifact files first, then the manifest, then `LATEST` (a conditional swap).
//!
//! Artifact files are write-once objects under a directory named after a hash of their content
//! (`models/{kind}/{version}/{content-hash}/{blob}`, `embeddings/tpm/{version}/{content-hash}/
//! users.parquet`), so a rerun writes the same keys (idempotent), and a `--force` republish
//! with different content writes new keys instead of changing files an existing manifest
//! lists. A version exists for readers only once its `manifest.json` is written, and that is
//! written only after every file it lists; `LATEST` moves last. A crash at any point leaves
//! either the old published state or the new one, never a half-written version.

use arrow::array::{
    ArrayRef, Date32Array, FixedSizeListArray, Float32Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use chrono::Utc;
use ctrflow_models::embedding::{Day, SnapshotTable};
use ctrflow_models::nn::Checkpoint;
use ctrflow_models::train::{SrpArtifact, TrainerCheckpoint, blobs, srp};
use ctrflow_schemas::{
    EmbeddingManifest, EmbeddingTable, KeyLayout, LatestPointer, ModelKind, ModelManifest,
    ModelVersion, decode_manifest, encode_manifest, fingerprint,
};
use ctrflow_storage::{ParquetWriteOptions, Storage, encode_parquet};
use futures::TryStreamExt;
use std::sync::Arc;

use super::error::{DailyError, Result};
use super::state::Latest;

/// Name of the directory of a set of files: the first 16 hex digits of their content hash.
fn content_dir(parts: &[(&str, &[u8])]) -> String {
    let mut all = Vec::new();
    for (name, bytes) in parts {
        all.extend_from_slice(name.as_bytes());
        all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        all.extend_from_slice(&fingerprint(bytes).into_bytes());
    }
    fingerprint(&all)[..16].to_string()
}

/// Writes every blob of `checkpoint` and returns their keys (sorted by blob name).
pub async fn put_checkpoint(
    storage: &Storage,
    kind: ModelKind,
    version: &ModelVersion,
    checkpoint: &TrainerCheckpoint,
) -> Result<Vec<String>> {
    let parts: Vec<(&str, &[u8])> = checkpoint
        .blobs
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let dir = format!(
        "{}/{}",
        KeyLayout.model_dir(kind, version).trim_end_matches('/'),
        content_dir(&parts)
    );
    let mut keys = Vec::with_capacity(parts.len());
    for (name, bytes) in parts {
        let key = format!("{dir}/{name}");
        storage
            .put_once(&key, Bytes::copy_from_slice(bytes))
            .await?;
        keys.push(key);
    }
    Ok(keys)
}

/// The checkpoint blobs a manifest lists (its files under `models/`) whose names `wanted`
/// accepts; only those are fetched.
async fn get_blobs(
    storage: &Storage,
    manifest: &ModelManifest,
    wanted: impl Fn(&str) -> bool,
) -> Result<TrainerCheckpoint> {
    let prefix = KeyLayout.model_dir(manifest.model, &manifest.version);
    let mut checkpoint = TrainerCheckpoint::default();
    for key in manifest.files.iter().filter(|k| k.starts_with(&prefix)) {
        let name = key.rsplit('/').next().unwrap_or(key);
        if wanted(name) {
            let bytes = storage.get(key).await?;
            checkpoint.blobs.insert(name.to_string(), bytes.to_vec());
        }
    }
    Ok(checkpoint)
}

/// Reads the checkpoint blobs a manifest lists (its files under `models/`).
pub async fn get_checkpoint(
    storage: &Storage,
    manifest: &ModelManifest,
) -> Result<TrainerCheckpoint> {
    let checkpoint = get_blobs(storage, manifest, |_| true).await?;
    if checkpoint.blobs.is_empty() {
        return Err(DailyError::Artifact {
            model: manifest.model,
            version: manifest.version.clone(),
            reason: "its manifest lists no checkpoint files".into(),
        });
    }
    Ok(checkpoint)
}

/// The PPM plug-in tower a TPM version published with its checkpoint (its `plugin.json` and
/// `plugin.bpk`; only those two are read), or `None` if that TPM has no plug-in.
pub async fn get_plugin(storage: &Storage, manifest: &ModelManifest) -> Result<Option<Checkpoint>> {
    let checkpoint = get_blobs(storage, manifest, |name| {
        name == blobs::PLUGIN_CONFIG || name == blobs::PLUGIN_WEIGHTS
    })
    .await?;
    checkpoint.plugin().map_err(|e| DailyError::Artifact {
        model: manifest.model,
        version: manifest.version.clone(),
        reason: e.to_string(),
    })
}

/// The SRP4CTR encoder and tables a TPM version published with its checkpoint (only the
/// blobs `CtrNet` reads are fetched), or `None` if that TPM did not pre-train SRP4CTR.
pub async fn get_srp(storage: &Storage, manifest: &ModelManifest) -> Result<Option<SrpArtifact>> {
    let checkpoint = get_blobs(storage, manifest, |name| {
        srp::blobs::ARTIFACT.contains(&name)
    })
    .await?;
    checkpoint.srp().map_err(|e| DailyError::Artifact {
        model: manifest.model,
        version: manifest.version.clone(),
        reason: e.to_string(),
    })
}

/// The Arrow schema of an embedding snapshot file.
pub fn snapshot_schema(dim: usize) -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("vector", DataType::FixedSizeList(item, dim as i32), false),
        Field::new("frequency", DataType::UInt64, false),
        Field::new("last_seen", DataType::Date32, false),
        Field::new("version", DataType::Utf8, false),
        Field::new(
            "watermark",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]))
}

fn snapshot_batch(
    table: &SnapshotTable,
    version: &ModelVersion,
    watermark_ms: i64,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let schema = snapshot_schema(table.dim());
    let n = table.len();
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let vectors = FixedSizeListArray::try_new(
        item,
        table.dim() as i32,
        Arc::new(Float32Array::from(table.values().to_vec())),
        None,
    )?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(table.ids().to_vec())),
        Arc::new(vectors),
        Arc::new(UInt64Array::from(table.frequencies().to_vec())),
        Arc::new(Date32Array::from(
            table
                .last_seen()
                .iter()
                .map(|d| d.0 as i32)
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(vec![version.as_str(); n])),
        Arc::new(TimestampMillisecondArray::from(vec![watermark_ms; n]).with_timezone("UTC")),
    ];
    RecordBatch::try_new(schema, columns)
}

/// A TPM snapshot encoded as Parquet, ready to publish: per table its name, rows and bytes.
#[derive(Debug)]
pub struct EncodedSnapshot {
    dim: usize,
    watermark_ms: i64,
    tables: Vec<(EmbeddingTable, u64, Bytes)>,
}

/// Encodes the users and items tables of a TPM snapshot (CPU work: call it off the async
/// runtime).
pub fn encode_snapshot(
    version: &ModelVersion,
    users: &SnapshotTable,
    items: &SnapshotTable,
    watermark_ms: i64,
) -> Result<EncodedSnapshot> {
    let mut tables = Vec::new();
    for (name, table) in [
        (EmbeddingTable::Users, users),
        (EmbeddingTable::Items, items),
    ] {
        let batch =
            snapshot_batch(table, version, watermark_ms).map_err(|e| DailyError::Artifact {
                model: ModelKind::Tpm,
                version: version.clone(),
                reason: format!("building the {} snapshot: {e}", name.as_str()),
            })?;
        let bytes = encode_parquet(&batch.schema(), &[batch], &ParquetWriteOptions::default())?;
        tables.push((name, table.len() as u64, bytes));
    }
    Ok(EncodedSnapshot {
        dim: users.dim(),
        watermark_ms,
        tables,
    })
}

/// Writes an encoded TPM snapshot's tables, then its manifest. Returns the manifest and every
/// key written.
pub async fn put_snapshot(
    storage: &Storage,
    version: &ModelVersion,
    snapshot: EncodedSnapshot,
) -> Result<(EmbeddingManifest, Vec<String>)> {
    let EncodedSnapshot {
        dim,
        watermark_ms,
        tables: encoded,
    } = snapshot;
    let parts: Vec<(&str, &[u8])> = encoded
        .iter()
        .map(|(n, _, b)| (n.as_str(), b.as_ref()))
        .collect();
    let dir = content_dir(&parts);
    let mut keys = Vec::new();
    let mut entries = Vec::new();
    for (name, rows, bytes) in encoded {
        let fixed = KeyLayout.embeddings_table(version, name);
        let (parent, file) = fixed.rsplit_once('/').unwrap_or(("", fixed.as_str()));
        let key = format!("{parent}/{dir}/{file}");
        storage.put_once(&key, bytes).await?;
        entries.push((key.clone(), rows));
        keys.push(key);
    }
    let manifest = EmbeddingManifest {
        version: version.clone(),
        dim: dim as u32,
        users: entries[0].clone(),
        items: entries[1].clone(),
        watermark_ms,
        created_at: Utc::now(),
    };
    let manifest_key = KeyLayout.embeddings_manifest(version);
    storage
        .put(&manifest_key, Bytes::from(encode_manifest(&manifest)))
        .await?;
    keys.push(manifest_key);
    Ok((manifest, keys))
}

/// Reads a published snapshot's users and items tables.
pub async fn get_snapshot(
    storage: &Storage,
    version: &ModelVersion,
) -> Result<(SnapshotTable, SnapshotTable)> {
    let key = KeyLayout.embeddings_manifest(version);
    let bytes = storage
        .get_opt(&key)
        .await?
        .ok_or_else(|| DailyError::NotPublished {
            model: ModelKind::Tpm,
            version: version.clone(),
        })?;
    let manifest: EmbeddingManifest = decode_manifest(&key, &bytes)?;
    let users = read_snapshot_table(storage, version, &manifest.users.0, manifest.dim).await?;
    let items = read_snapshot_table(storage, version, &manifest.items.0, manifest.dim).await?;
    Ok((users, items))
}

async fn read_snapshot_table(
    storage: &Storage,
    version: &ModelVersion,
    key: &str,
    dim: u32,
) -> Result<SnapshotTable> {
    let bad = |reason: String| DailyError::Artifact {
        model: ModelKind::Tpm,
        version: version.clone(),
        reason: format!("{key}: {reason}"),
    };
    let mut table = SnapshotTable::empty(dim as usize);
    let mut stream = storage.parquet_stream(key, 8192).await?;
    while let Some(batch) = stream.try_next().await? {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| bad(format!("no column `{name}`")))
        };
        let ids = column("id")?
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| bad("`id` is not UInt64".into()))?;
        let vectors = column("vector")?
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .ok_or_else(|| bad("`vector` is not a fixed-size list".into()))?;
        let values = vectors
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .ok_or_else(|| bad("`vector` items are not Float32".into()))?;
        let frequency = column("frequency")?
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| bad("`frequency` is not UInt64".into()))?;
        let last_seen = column("last_seen")?
            .as_any()
            .downcast_ref::<Date32Array>()
            .ok_or_else(|| bad("`last_seen` is not Date32".into()))?;
        if vectors.value_length() as u32 != dim {
            return Err(bad(format!(
                "vectors are {} wide, the manifest says {dim}",
                vectors.value_length()
            )));
        }
        let d = dim as usize;
        let start = vectors.value_offset(0).max(0) as usize;
        let values = &values.values()[start..start + batch.num_rows() * d];
        for row in 0..batch.num_rows() {
            table
                .insert(
                    ids.value(row),
                    &values[row * d..(row + 1) * d],
                    frequency.value(row),
                    Day(last_seen.value(row).max(0) as u32),
                )
                .map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(table)
}

/// Writes a model manifest (after every file it lists) and returns its key.
pub async fn put_manifest(storage: &Storage, manifest: &ModelManifest) -> Result<String> {
    let key = KeyLayout.model_manifest(manifest.model, &manifest.version);
    storage
        .put(&key, Bytes::from(encode_manifest(manifest)))
        .await?;
    Ok(key)
}

/// Points `models/{kind}/LATEST` at `version` with a conditional swap; retried when another
/// writer moved it in between (re-read, then swap again). Returns the pointer as it now is.
pub async fn swap_latest(
    storage: &Storage,
    kind: ModelKind,
    version: &ModelVersion,
) -> Result<Latest> {
    let key = KeyLayout.model_latest(kind);
    const ATTEMPTS: u32 = 5;
    for _ in 0..ATTEMPTS {
        let current = storage.read_pointer(&key).await?;
        if let Some(p) = &current {
            let pointer: LatestPointer = decode_manifest(&key, &p.bytes)?;
            if &pointer.version == version {
                return Ok(Latest {
                    pointer,
                    token: p.version.clone(),
                });
            }
        }
        let pointer = LatestPointer {
            model: kind,
            version: version.clone(),
            manifest_key: KeyLayout.model_manifest(kind, version),
            updated_at: Utc::now(),
        };
        let bytes = Bytes::from(encode_manifest(&pointer));
        match storage
            .swap_pointer(&key, bytes, current.as_ref().map(|p| &p.version))
            .await
        {
            Ok(token) => return Ok(Latest { pointer, token }),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DailyError::PointerContention {
        model: kind,
        attempts: ATTEMPTS,
    })
}
