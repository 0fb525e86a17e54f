//! Plain object operations: write-once puts, reads, deletes and listings.
//!
//! Data keys are **write-once**: [`Storage::put_once`] uses `PutMode::Create`, which every
//! supported backend performs atomically (S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`,
//! Azure `If-None-Match: *`, a hard link on the local file system, a map lookup in memory). A
//! replay that writes the same bytes again is reported as [`PutOutcome::AlreadyExisted`]; a writer
//! that tries to put different bytes under an existing key gets
//! [`StorageError::WriteOnceViolation`]. Objects are never visible half-written.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutPayload};

use crate::error::{Ctx, Result, StorageError};
use crate::open::Storage;

/// How many times [`Storage::put_once`] retries when the key is reported to exist but cannot be
/// read back (a concurrent create still in flight, or a racing delete).
const PUT_ONCE_ATTEMPTS: u32 = 5;

/// What [`Storage::put_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The key did not exist; it now holds the bytes.
    Created,
    /// The key already held exactly these bytes (an idempotent replay); nothing was written.
    AlreadyExisted,
}

/// Metadata of one object, with its key relative to the store root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store root, e.g. `landing/ad/date=2024-01-01/part-x.parquet`.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time reported by the store.
    pub last_modified: SystemTime,
    /// The store's entity tag, if it reports one.
    pub e_tag: Option<String>,
}

impl From<ObjectMeta> for ObjectInfo {
    fn from(meta: ObjectMeta) -> Self {
        ObjectInfo {
            key: meta.location.to_string(),
            size: meta.size,
            last_modified: meta.last_modified.into(),
            e_tag: meta.e_tag,
        }
    }
}

/// Parse an object key (not a prefix): non-empty, no `.`/`..`/empty segments, no trailing `/`.
pub(crate) fn object_path(ctx: Ctx<'_>, key: &str) -> Result<Path> {
    let invalid = |reason: String| StorageError::InvalidKey {
        key: key.to_string(),
        reason: format!("{reason} (in {})", ctx.op),
    };
    if key.trim_matches('/').is_empty() {
        return Err(invalid("an object key must not be empty".into()));
    }
    if key.ends_with('/') {
        return Err(invalid("an object key must not end with '/'".into()));
    }
    Path::parse(key).map_err(|e| invalid(e.to_string()))
}

/// Parse a listing prefix; empty (or `/`) means "everything under the root".
pub(crate) fn prefix_path(ctx: Ctx<'_>, prefix: &str) -> Result<Option<Path>> {
    if prefix.trim_matches('/').is_empty() {
        return Ok(None);
    }
    Path::parse(prefix)
        .map(Some)
        .map_err(|e| StorageError::InvalidKey {
            key: prefix.to_string(),
            reason: format!("{e} (in {})", ctx.op),
        })
}

impl Storage {
    /// Write `bytes` under the write-once data key `key`.
    ///
    /// Plain overwrite of one object: atomic (visible whole or not at all) but unconditional.
    /// For objects whose every writer writes equivalent content (e.g. a deterministic
    /// producer's day manifest on rerun); use [`Storage::swap_pointer`] when writers may race.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let ctx = Ctx { op: "put", key };
        let path = object_path(ctx, key)?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| ctx.store(e))?;
        Ok(())
    }

    /// Atomic create-if-absent. If the key exists, it is read back: identical bytes give
    /// `Ok(PutOutcome::AlreadyExisted)` (idempotent replay), different bytes give
    /// [`StorageError::WriteOnceViolation`].
    pub async fn put_once(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        let ctx = Ctx {
            op: "put_once",
            key,
        };
        let path = object_path(ctx, key)?;
        for attempt in 1..=PUT_ONCE_ATTEMPTS {
            let payload = PutPayload::from_bytes(bytes.clone());
            match self
                .store
                .put_opts(&path, payload, PutMode::Create.into())
                .await
            {
                Ok(_) => return Ok(PutOutcome::Created),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(ctx.store(e)),
            }
            // Cheap check first: a different size is a violation without reading the object.
            if let Ok(meta) = self.store.head(&path).await
                && meta.size != bytes.len() as u64
            {
                return Err(StorageError::WriteOnceViolation {
                    key: key.to_string(),
                });
            }
            match self.get_path_opt(ctx, &path).await? {
                Some(existing) if existing == bytes => return Ok(PutOutcome::AlreadyExisted),
                Some(_) => {
                    return Err(StorageError::WriteOnceViolation {
                        key: key.to_string(),
                    });
                }
                None => {
                    tracing::debug!(
                        key,
                        attempt,
                        "put_once: key reported existing but not readable; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
            }
        }
        Err(ctx.store(object_store::Error::Generic {
            store: "ctrflow-storage",
            source: format!(
                "key reported as existing but could not be read back after {PUT_ONCE_ATTEMPTS} attempts"
            )
            .into(),
        }))
    }

    /// Read the whole object. A missing key is [`StorageError::NotFound`].
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let ctx = Ctx { op: "get", key };
        let path = object_path(ctx, key)?;
        self.get_path_opt(ctx, &path)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                op: ctx.op,
                key: key.to_string(),
            })
    }

    /// Read the whole object, or `None` if it does not exist.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>> {
        let ctx = Ctx { op: "get", key };
        let path = object_path(ctx, key)?;
        self.get_path_opt(ctx, &path).await
    }

    pub(crate) async fn get_path_opt(&self, ctx: Ctx<'_>, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(r) => match r.bytes().await {
                Ok(b) => Ok(Some(b)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(ctx.store(e)),
            },
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ctx.store(e)),
        }
    }

    /// Metadata of the object, or `None` if it does not exist.
    pub async fn head_opt(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let ctx = Ctx { op: "head", key };
        let path = object_path(ctx, key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                // PrefixStore's get/head report the full location; use the requested key.
                key: path.to_string(),
                ..meta.into()
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ctx.store(e)),
        }
    }

    /// Whether the object exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.head_opt(key).await?.is_some())
    }

    /// Delete the object; deleting a missing key is not an error.
    ///
    /// Meant for garbage collection of orphans; never delete a key a manifest lists.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let ctx = Ctx { op: "delete", key };
        let path = object_path(ctx, key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ctx.store(e)),
        }
    }

    /// All objects under `prefix` (recursive, segment-wise: `a/b` matches `a/b/c` but not
    /// `a/bc`), sorted by key. Keys are relative to the store root. An empty prefix lists the
    /// whole root.
    ///
    /// Note: on stores without native compare-and-swap, a pointer being swapped at that moment
    /// may show a transient `{pointer}.lock` object.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out: Vec<ObjectInfo> = self.list_stream(prefix)?.try_collect().await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Like [`Storage::list`], only the keys that sort after `after` (exclusive), sorted. On S3
    /// the listing starts there (`start-after`), so a log of zero-padded keys that only grows
    /// is read incrementally instead of from its beginning every time.
    pub async fn list_after(&self, prefix: &str, after: &str) -> Result<Vec<ObjectInfo>> {
        let ctx = Ctx {
            op: "list_after",
            key: prefix,
        };
        let path = prefix_path(ctx, prefix)?;
        let offset = object_path(ctx, after)?;
        let mut out: Vec<ObjectInfo> = self
            .store
            .list_with_offset(path.as_ref(), &offset)
            .map(|r| r.map(ObjectInfo::from).map_err(|e| ctx.store(e)))
            .try_collect()
            .await?;
        out.retain(|o| o.key.as_str() > after);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Like [`Storage::list`], as an unsorted stream (for very large listings).
    pub fn list_stream(&self, prefix: &str) -> Result<BoxStream<'static, Result<ObjectInfo>>> {
        let ctx = Ctx {
            op: "list",
            key: prefix,
        };
        let path = prefix_path(ctx, prefix)?;
        let owned = prefix.to_string();
        Ok(self
            .store
            .list(path.as_ref())
            .map(move |r| match r {
                Ok(meta) => Ok(ObjectInfo::from(meta)),
                Err(e) => Err(Ctx {
                    op: "list",
                    key: &owned,
                }
                .store(e)),
            })
            .boxed())
    }

    /// The "directories" directly under `prefix` (common prefixes), sorted, relative to the store
    /// root and without a trailing `/`: `list_dirs("landing/ad")` gives
    /// `["landing/ad/date=2024-01-01", ...]`. Used for partition discovery.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let ctx = Ctx {
            op: "list_dirs",
            key: prefix,
        };
        let path = prefix_path(ctx, prefix)?;
        let result = self
            .store
            .list_with_delimiter(path.as_ref())
            .await
            .map_err(|e| ctx.store(e))?;
        let mut dirs: Vec<String> = result
            .common_prefixes
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        dirs.sort();
        Ok(dirs)
    }
}
