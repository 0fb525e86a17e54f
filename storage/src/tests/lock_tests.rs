//! The pointer lock fallback of the local file system: stale locks, fresh locks, break markers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::TestResult;
use super::harness::local;
use crate::pointer::LockFile;
use crate::{PointerLockConfig, StorageError};

const KEY: &str = "models/tpm/LATEST";

fn lock_body(holder: &str, age: Duration) -> Result<Bytes, serde_json::Error> {
    let acquired = SystemTime::now() - age;
    let ms = acquired
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok(Bytes::from(serde_json::to_vec(&LockFile {
        holder: holder.to_string(),
        acquired_at_unix_ms: ms,
    })?))
}

#[tokio::test]
async fn stale_lock_is_broken() -> TestResult {
    let backend = local("stale_lock")?;
    let s = &backend.storage;
    let v1 = s.swap_pointer(KEY, Bytes::from_static(b"1"), None).await?;
    // A writer crashed 60 s ago while holding the lock.
    s.put_once(
        &format!("{KEY}.lock"),
        lock_body("crashed", Duration::from_secs(60))?,
    )
    .await?;
    s.swap_pointer(KEY, Bytes::from_static(b"2"), Some(&v1))
        .await?;
    assert_eq!(s.get(KEY).await?, Bytes::from_static(b"2"));
    let left: Vec<String> = s.list("models").await?.into_iter().map(|o| o.key).collect();
    assert_eq!(left, [KEY], "stale lock and break marker removed");
    Ok(())
}

#[tokio::test]
async fn fresh_lock_makes_writer_wait_then_conflict() -> TestResult {
    let backend = local("fresh_lock")?;
    let s = backend
        .storage
        .clone()
        .with_pointer_lock_config(PointerLockConfig {
            max_wait: Duration::from_millis(300),
            ..Default::default()
        });
    let v1 = s.swap_pointer(KEY, Bytes::from_static(b"1"), None).await?;
    let lock = format!("{KEY}.lock");
    s.put_once(&lock, lock_body("busy", Duration::ZERO)?)
        .await?;
    let start = Instant::now();
    let e = s
        .swap_pointer(KEY, Bytes::from_static(b"2"), Some(&v1))
        .await
        .expect_err("lock is held");
    let waited = start.elapsed();
    assert!(matches!(e, StorageError::PointerConflict { .. }), "{e}");
    assert!(
        waited >= Duration::from_millis(100),
        "waited with backoff: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "bounded wait: {waited:?}");
    assert_eq!(
        s.get(KEY).await?,
        Bytes::from_static(b"1"),
        "pointer untouched"
    );
    assert!(
        s.exists(&lock).await?,
        "someone else's fresh lock is left alone"
    );

    // Once the holder releases, the swap goes through with the same expected version.
    s.delete(&lock).await?;
    s.swap_pointer(KEY, Bytes::from_static(b"2"), Some(&v1))
        .await?;
    assert_eq!(s.get(KEY).await?, Bytes::from_static(b"2"));
    Ok(())
}

#[tokio::test]
async fn writer_waits_for_a_lock_released_in_time() -> TestResult {
    let backend = local("released_lock")?;
    let s = backend.storage.clone();
    let v1 = s.swap_pointer(KEY, Bytes::from_static(b"1"), None).await?;
    let lock = format!("{KEY}.lock");
    s.put_once(&lock, lock_body("short", Duration::ZERO)?)
        .await?;
    let releaser = {
        let s = s.clone();
        let lock = lock.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.delete(&lock).await
        })
    };
    s.swap_pointer(KEY, Bytes::from_static(b"2"), Some(&v1))
        .await?;
    releaser.await??;
    assert_eq!(s.get(KEY).await?, Bytes::from_static(b"2"));
    Ok(())
}

#[tokio::test]
async fn orphaned_break_marker_expires() -> TestResult {
    let backend = local("orphan_marker")?;
    let s = backend
        .storage
        .clone()
        .with_pointer_lock_config(PointerLockConfig {
            stale_after: Duration::from_millis(200),
            max_wait: Duration::from_secs(3),
            ..Default::default()
        });
    let v1 = s.swap_pointer(KEY, Bytes::from_static(b"1"), None).await?;
    // A breaker crashed after creating its marker for the stale lock of "gone".
    s.put_once(
        &format!("{KEY}.lock"),
        lock_body("gone", Duration::from_secs(60))?,
    )
    .await?;
    s.put_once(
        &format!("{KEY}.lock.break-gone"),
        Bytes::from_static(b"breaking"),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(250)).await;
    s.swap_pointer(KEY, Bytes::from_static(b"2"), Some(&v1))
        .await?;
    assert_eq!(s.get(KEY).await?, Bytes::from_static(b"2"));
    let left: Vec<String> = s.list("models").await?.into_iter().map(|o| o.key).collect();
    assert_eq!(left, [KEY]);
    Ok(())
}

#[tokio::test]
async fn unreadable_lock_is_aged_by_mtime() -> TestResult {
    let backend = local("garbage_lock")?;
    let s = backend
        .storage
        .clone()
        .with_pointer_lock_config(PointerLockConfig {
            stale_after: Duration::from_millis(200),
            max_wait: Duration::from_secs(3),
            ..Default::default()
        });
    let v1 = s.swap_pointer(KEY, Bytes::from_static(b"1"), None).await?;
    s.put_once(&format!("{KEY}.lock"), Bytes::from_static(b"not json"))
        .await?;
    // Fresh by mtime: the writer waits, then the lock turns stale and is broken.
    s.swap_pointer(KEY, Bytes::from_static(b"2"), Some(&v1))
        .await?;
    assert_eq!(s.get(KEY).await?, Bytes::from_static(b"2"));
    Ok(())
}
