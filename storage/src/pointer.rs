//! Pointers: small objects (such as `models/{name}/LATEST`) replaced only by compare-and-swap.
//!
//! [`Storage::read_pointer`] returns the bytes and an opaque [`PointerVersion`];
//! [`Storage::swap_pointer`] writes new bytes only if the pointer is still at that version
//! (`expected = None`: only if it does not exist yet). A lost race is always
//! [`StorageError::PointerConflict`](crate::StorageError::PointerConflict); a pointer is never silently overwritten.
//!
//! # Native compare-and-swap
//! Where [`crate::Capabilities::conditional_update`] is true (memory, S3 with conditional puts,
//! GCS, Azure), the swap is one `PutMode::Create` or `PutMode::Update` request and atomic in the
//! store. The choice is made **by scheme** when the store is opened, never by probing, so every
//! writer of one store uses the same protocol.
//!
//! # Lock fallback (local file system)
//! `LocalFileSystem` has atomic create (hard link) and atomic replace (temp file + rename) but no
//! compare-and-swap. There a swap with `expected = None` is a plain atomic create; a swap with
//! `expected = Some(v)` runs this protocol:
//! 1. Take the lock: create `{key}.lock` with `PutMode::Create`, holding a unique holder token and
//!    the wall-clock time. If it exists and is older than [`PointerLockConfig::stale_after`]
//!    (default 30 s), break it (below) and try again; if it is fresh, wait with exponential backoff
//!    and jitter; after [`PointerLockConfig::max_wait`] give up with `PointerConflict`.
//! 2. Re-read the pointer's version (`head` e-tag; content hash if the store reports no e-tag) and
//!    return `PointerConflict` unless it equals `v`.
//! 3. Check the holder's own lease has not run out (held less than `stale_after / 2`), then write
//!    the new bytes with a plain put (atomic per object: temp file + rename).
//! 4. Delete the lock if it still holds our token.
//!
//! Breaking a stale lock: create the marker `{key}.lock.break-{holder}` with `PutMode::Create`
//! (only one breaker per stale holder wins), re-read the lock and delete it only if it still holds
//! that holder's token, then delete the marker. Markers left by a crashed breaker are removed once
//! older than `stale_after`.
//!
//! Limits: correctness needs writers that agree on the protocol (all ctrflow), a file system with
//! atomic `link`/`rename` (local disks; NFS v3 is risky), wall clocks within `stale_after / 2` of
//! each other, and no process pausing longer than `stale_after / 2` between step 3 and the rename.
//! A crashed writer blocks swaps of that pointer for up to `stale_after`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutPayload, PutResult, UpdateVersion};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Ctx, Result};
use crate::open::Storage;
use crate::ops::object_path;

/// A pointer's content and the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The pointer's content.
    pub bytes: Bytes,
    /// The version to pass to [`Storage::swap_pointer`] to replace exactly this content.
    pub version: PointerVersion,
}

/// Opaque version token of a pointer (entity tag and/or object version, or a content hash where
/// the store reports neither). Only meaningful for the store and key it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerVersion {
    e_tag: Option<String>,
    version: Option<String>,
    content_hash: Option<String>,
}

impl PointerVersion {
    fn new(e_tag: Option<String>, version: Option<String>, bytes: Option<&[u8]>) -> Self {
        // Keep a content hash only where the store gives no e-tag to compare.
        let content_hash = match (&e_tag, bytes) {
            (None, Some(b)) => Some(sha256_hex(b)),
            _ => None,
        };
        PointerVersion {
            e_tag,
            version,
            content_hash,
        }
    }

    fn from_put(result: PutResult, bytes: &[u8]) -> Self {
        Self::new(result.e_tag, result.version, Some(bytes))
    }

    /// Whether `current` denotes the same pointer state as `self`.
    fn matches(&self, current: &PointerVersion) -> bool {
        match (&self.e_tag, &current.e_tag) {
            (Some(a), Some(b)) => {
                a == b
                    && match (&self.version, &current.version) {
                        (Some(x), Some(y)) => x == y,
                        _ => true,
                    }
            }
            _ => match (&self.content_hash, &current.content_hash) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

impl std::fmt::Display for PointerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            self.e_tag.as_deref().map(|e| ("etag", e)),
            self.version.as_deref().map(|v| ("version", v)),
            self.content_hash.as_deref().map(|h| ("sha256", h)),
        ];
        let mut first = true;
        for (name, value) in parts.into_iter().flatten() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Settings of the pointer lock protocol used where the store has no native compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerLockConfig {
    /// A lock older than this is considered abandoned and is broken by the next writer; a holder
    /// refuses to write once it has held the lock for half of this. Default 30 s.
    pub stale_after: Duration,
    /// How long a writer waits for a fresh lock before returning `PointerConflict`. Default 10 s.
    pub max_wait: Duration,
    /// First backoff sleep while waiting. Default 5 ms.
    pub initial_backoff: Duration,
    /// Largest backoff sleep while waiting. Default 250 ms.
    pub max_backoff: Duration,
}

impl Default for PointerLockConfig {
    fn default() -> Self {
        PointerLockConfig {
            stale_after: Duration::from_secs(30),
            max_wait: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(250),
        }
    }
}

/// Content of a `{key}.lock` object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LockFile {
    pub(crate) holder: String,
    pub(crate) acquired_at_unix_ms: u64,
}

struct LockGuard {
    path: Path,
    holder: String,
    acquired: Instant,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn new_holder_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{nanos:x}-{n:x}", std::process::id())
}

fn lock_path(path: &Path) -> Path {
    Path::from(format!("{path}.lock"))
}

impl Storage {
    /// Read a pointer: its bytes and version, or `None` if it does not exist.
    pub async fn read_pointer(&self, key: &str) -> Result<Option<Pointer>> {
        let ctx = Ctx {
            op: "read_pointer",
            key,
        };
        let path = object_path(ctx, key)?;
        let result = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ctx.store(e)),
        };
        let meta = result.meta.clone();
        let bytes = match result.bytes().await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ctx.store(e)),
        };
        let version = PointerVersion::new(meta.e_tag, meta.version, Some(&bytes));
        Ok(Some(Pointer { bytes, version }))
    }

    /// Replace a pointer conditionally and return its new version.
    ///
    /// `expected = None`: create it only if it does not exist. `expected = Some(v)`: replace it
    /// only if it is still at version `v`. Otherwise [`StorageError::PointerConflict`](crate::StorageError::PointerConflict): re-read
    /// and decide again. See the module docs for how this is made atomic on each backend.
    ///
    /// After a transient failure the outcome of a swap can be unknown (the request may have
    /// landed before the connection broke); a later conflict may then be the caller's own write,
    /// so callers re-read the pointer and compare its content before retrying.
    pub async fn swap_pointer(
        &self,
        key: &str,
        new_bytes: Bytes,
        expected: Option<&PointerVersion>,
    ) -> Result<PointerVersion> {
        let ctx = Ctx {
            op: "swap_pointer",
            key,
        };
        let path = object_path(ctx, key)?;
        match expected {
            None => self.create_pointer(ctx, &path, new_bytes).await,
            Some(v) if self.caps.conditional_update => {
                if v.e_tag.is_none() && v.version.is_none() {
                    return Err(ctx.internal(
                        "pointer version carries no e-tag or version: it was not read from this store",
                    ));
                }
                let mode = PutMode::Update(UpdateVersion {
                    e_tag: v.e_tag.clone(),
                    version: v.version.clone(),
                });
                let payload = PutPayload::from_bytes(new_bytes.clone());
                match self.store.put_opts(&path, payload, mode.into()).await {
                    Ok(r) => Ok(PointerVersion::from_put(r, &new_bytes)),
                    Err(
                        object_store::Error::Precondition { .. }
                        | object_store::Error::AlreadyExists { .. }
                        | object_store::Error::NotFound { .. },
                    ) => Err(ctx.conflict()),
                    Err(e) => Err(ctx.store(e)),
                }
            }
            Some(v) => self.swap_under_lock(ctx, &path, new_bytes, v).await,
        }
    }

    async fn create_pointer(
        &self,
        ctx: Ctx<'_>,
        path: &Path,
        new_bytes: Bytes,
    ) -> Result<PointerVersion> {
        let payload = PutPayload::from_bytes(new_bytes.clone());
        match self
            .store
            .put_opts(path, payload, PutMode::Create.into())
            .await
        {
            Ok(r) => Ok(PointerVersion::from_put(r, &new_bytes)),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(ctx.conflict()),
            Err(e) => Err(ctx.store(e)),
        }
    }

    async fn swap_under_lock(
        &self,
        ctx: Ctx<'_>,
        path: &Path,
        new_bytes: Bytes,
        expected: &PointerVersion,
    ) -> Result<PointerVersion> {
        let guard = self.acquire_lock(ctx, path).await?;
        let result = async {
            let current = self.current_version(ctx, path).await?;
            if !current.is_some_and(|c| expected.matches(&c)) {
                return Err(ctx.conflict());
            }
            if guard.acquired.elapsed() >= self.lock.stale_after / 2 {
                tracing::warn!(
                    key = ctx.key,
                    "pointer lock lease ran out before the write; not writing"
                );
                return Err(ctx.conflict());
            }
            let payload = PutPayload::from_bytes(new_bytes.clone());
            let r = self
                .store
                .put_opts(path, payload, PutMode::Overwrite.into())
                .await
                .map_err(|e| ctx.store(e))?;
            Ok(PointerVersion::from_put(r, &new_bytes))
        }
        .await;
        if let Err(e) = self.release_lock(ctx, &guard).await {
            // The pointer write (if any) is complete; the lock just lingers until it is stale.
            tracing::warn!(key = ctx.key, error = %e, "could not release pointer lock");
        }
        result
    }

    async fn current_version(&self, ctx: Ctx<'_>, path: &Path) -> Result<Option<PointerVersion>> {
        match self.store.head(path).await {
            Ok(meta) if meta.e_tag.is_some() => {
                Ok(Some(PointerVersion::new(meta.e_tag, meta.version, None)))
            }
            Ok(meta) => Ok(self
                .get_path_opt(ctx, path)
                .await?
                .map(|b| PointerVersion::new(None, meta.version, Some(&b)))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ctx.store(e)),
        }
    }

    async fn acquire_lock(&self, ctx: Ctx<'_>, path: &Path) -> Result<LockGuard> {
        let lock = lock_path(path);
        let start = Instant::now();
        let mut backoff = self.lock.initial_backoff;
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            u64::from(std::process::id()) ^ unix_ms(SystemTime::now()).rotate_left(17),
        );
        loop {
            let holder = new_holder_token();
            let content = LockFile {
                holder: holder.clone(),
                acquired_at_unix_ms: unix_ms(SystemTime::now()),
            };
            let body = serde_json::to_vec(&content).map_err(|e| ctx.internal(e))?;
            match self
                .store
                .put_opts(&lock, PutPayload::from(body), PutMode::Create.into())
                .await
            {
                Ok(_) => {
                    return Ok(LockGuard {
                        path: lock,
                        holder,
                        acquired: Instant::now(),
                    });
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(ctx.store(e)),
            }
            let retry_now = match self.inspect_lock(ctx, &lock).await? {
                None => true, // released in between
                Some((holder, age)) if age >= self.lock.stale_after => {
                    self.break_stale_lock(ctx, &lock, &holder).await?
                }
                Some(_) => false,
            };
            if retry_now && start.elapsed() < self.lock.max_wait {
                continue;
            }
            if start.elapsed() + backoff > self.lock.max_wait {
                tracing::debug!(key = ctx.key, "pointer lock still held after max_wait");
                return Err(ctx.conflict());
            }
            let jitter = rng.random_range(0.5..1.0);
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(self.lock.max_backoff);
        }
    }

    /// Holder token and age of the lock, or `None` if it is gone.
    async fn inspect_lock(&self, ctx: Ctx<'_>, lock: &Path) -> Result<Option<(String, Duration)>> {
        let result = match self.store.get(lock).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ctx.store(e)),
        };
        let modified: SystemTime = result.meta.last_modified.into();
        let bytes = match result.bytes().await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ctx.store(e)),
        };
        let now = unix_ms(SystemTime::now());
        let (holder, acquired_ms) = match serde_json::from_slice::<LockFile>(&bytes) {
            Ok(l) => (l.holder, l.acquired_at_unix_ms),
            // Unreadable (e.g. written by something else): identify it by content, age by mtime.
            Err(_) => (sha256_hex(&bytes), unix_ms(modified)),
        };
        Ok(Some((
            holder,
            Duration::from_millis(now.saturating_sub(acquired_ms)),
        )))
    }

    /// Try to break the stale lock of `holder`; true if the caller should retry at once.
    async fn break_stale_lock(&self, ctx: Ctx<'_>, lock: &Path, holder: &str) -> Result<bool> {
        let marker = Path::from(format!("{lock}.break-{holder}"));
        let created = self
            .store
            .put_opts(
                &marker,
                PutPayload::from_static(b"breaking"),
                PutMode::Create.into(),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Someone else is breaking this lock, or crashed while doing so.
                if let Ok(meta) = self.store.head(&marker).await {
                    let age = SystemTime::now()
                        .duration_since(meta.last_modified.into())
                        .unwrap_or_default();
                    if age >= self.lock.stale_after {
                        self.delete_quietly(ctx, &marker).await?;
                        return Ok(true);
                    }
                }
                return Ok(false);
            }
            Err(e) => return Err(ctx.store(e)),
        }
        let still_stale = matches!(
            self.inspect_lock(ctx, lock).await?,
            Some((h, _)) if h == holder
        );
        if still_stale {
            tracing::warn!(key = ctx.key, holder, "breaking stale pointer lock");
            self.delete_quietly(ctx, lock).await?;
        }
        self.delete_quietly(ctx, &marker).await?;
        Ok(true)
    }

    async fn release_lock(&self, ctx: Ctx<'_>, guard: &LockGuard) -> Result<()> {
        match self.inspect_lock(ctx, &guard.path).await? {
            Some((holder, _)) if holder == guard.holder => {
                self.delete_quietly(ctx, &guard.path).await
            }
            _ => {
                tracing::warn!(
                    key = ctx.key,
                    "pointer lock was broken by another writer while held"
                );
                Ok(())
            }
        }
    }

    async fn delete_quietly(&self, ctx: Ctx<'_>, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ctx.store(e)),
        }
    }
}
