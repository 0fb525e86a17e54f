//! `ctrflow gc`: removes orphans, the files no manifest lists.
//!
//! Orphans are what a crash leaves behind under the write-then-publish protocol: Parquet parts
//! written by an ingest epoch whose manifest never landed, and artifact files of a publish that
//! stopped before its manifest (or that a `--force` republish replaced). Readers already ignore
//! them; gc reclaims the space.
//!
//! - Landing, dead-letter and late data files are kept when an epoch manifest or a day
//!   (`_SUCCESS`) manifest lists them.
//! - Model and embedding files are kept when the manifest of their version lists them.
//! - Manifests, pointers and their lock objects are never touched.
//! - Only objects older than the grace period are removed, so files of a writer that is still
//!   running (an ingest epoch in flight, a publish in progress) are safe. Keep it longer than
//!   the longest epoch and the longest publish (the default, 24 h, is far beyond both).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use ctrflow_schemas::{
    DayManifest, Domain, EmbeddingManifest, EpochManifest, KeyLayout, ModelManifest,
    decode_manifest,
};
use ctrflow_storage::{ObjectInfo, Storage, StorageError};

/// Why gc stopped. It deletes nothing it has not classified, so on an error nothing that a
/// manifest lists can have been removed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Object storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A manifest could not be read: gc cannot know what it lists, so it stops.
    #[error("gc stopped: manifest {key} is unreadable: {source}")]
    Manifest {
        /// The manifest.
        key: String,
        /// Why.
        source: ctrflow_schemas::SchemaError,
    },
}

/// What gc found (and removed, unless it was a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects examined.
    pub examined: u64,
    /// Orphans older than the grace period: removed (or, in a dry run, to remove).
    pub orphans: Vec<String>,
    /// Their total size in bytes.
    pub orphan_bytes: u64,
    /// Orphans younger than the grace period, left alone.
    pub too_young: u64,
}

fn is_protected(key: &str) -> bool {
    key.ends_with("/manifest.json")
        || key.ends_with("/_SUCCESS")
        || key.ends_with("/LATEST")
        || key.ends_with(".lock")
        || key.starts_with(KeyLayout.epochs_dir())
        || key.starts_with(KeyLayout.epoch_checkpoints_dir())
}

/// Every key a manifest vouches for.
async fn listed_keys(storage: &Storage) -> Result<HashSet<String>, GcError> {
    let layout = KeyLayout;
    let mut listed = HashSet::new();
    let decode_error = |source: ctrflow_schemas::SchemaError, key: &str| GcError::Manifest {
        key: key.to_string(),
        source,
    };
    for obj in storage.list(layout.epochs_dir()).await? {
        let bytes = storage.get(&obj.key).await?;
        let epoch: EpochManifest =
            decode_manifest(&obj.key, &bytes).map_err(|e| decode_error(e, &obj.key))?;
        listed.extend(epoch.files.into_iter().map(|f| f.key));
    }
    for domain in Domain::ALL {
        for obj in storage.list(&layout.landing_table(domain)).await? {
            if obj.key.ends_with("/_SUCCESS") {
                let bytes = storage.get(&obj.key).await?;
                let day: DayManifest =
                    decode_manifest(&obj.key, &bytes).map_err(|e| decode_error(e, &obj.key))?;
                listed.extend(day.files.into_iter().map(|f| f.key));
            }
        }
    }
    for prefix in ["models/", layout.embeddings_root()] {
        for obj in storage.list(prefix).await? {
            if !obj.key.ends_with("/manifest.json") {
                continue;
            }
            let bytes = storage.get(&obj.key).await?;
            if obj.key.starts_with("models/") {
                let m: ModelManifest =
                    decode_manifest(&obj.key, &bytes).map_err(|e| decode_error(e, &obj.key))?;
                listed.extend(m.files);
            } else {
                let m: EmbeddingManifest =
                    decode_manifest(&obj.key, &bytes).map_err(|e| decode_error(e, &obj.key))?;
                listed.insert(m.users.0);
                listed.insert(m.items.0);
            }
        }
    }
    Ok(listed)
}

/// Finds the orphans of `storage` older than `grace` and removes them unless `dry_run`.
pub async fn collect_garbage(
    storage: &Storage,
    grace: Duration,
    dry_run: bool,
) -> Result<GcReport, GcError> {
    let listed = listed_keys(storage).await?;
    let now = SystemTime::now();
    let mut report = GcReport::default();
    let areas = [
        "landing/",
        "dead-letter/",
        "late/",
        "models/",
        KeyLayout.embeddings_root(),
    ];
    for area in areas {
        let objects: Vec<ObjectInfo> = storage.list(area).await?;
        for obj in objects {
            report.examined += 1;
            if is_protected(&obj.key) || listed.contains(&obj.key) {
                continue;
            }
            let age = now.duration_since(obj.last_modified).unwrap_or_default();
            if age < grace {
                report.too_young += 1;
                continue;
            }
            if !dry_run {
                storage.delete(&obj.key).await?;
            }
            report.orphan_bytes += obj.size;
            report.orphans.push(obj.key);
        }
    }
    Ok(report)
}
