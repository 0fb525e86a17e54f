//! `ctrflow-storage`: the one place ctrflow talks to object storage.
//!
//! A [`Storage`] is opened from a URL (`memory://`, `file://` or a plain path, `s3://`, `gs://`,
//! `az://`; see [`Storage::open`]) and rooted at the URL's path: every key passed to it, such as
//! `landing/ad/date=2024-01-01/part-x.parquet`, is relative to that root.
//!
//! # Atomicity guarantees
//! - **Objects are never half-visible.** Every write is a single atomic put (a temp file plus
//!   rename on the local file system).
//! - **Data keys are write-once.** [`Storage::put_once`] creates a key only if it is absent
//!   (atomically, on every backend). Writing the same bytes again is an idempotent replay
//!   ([`PutOutcome::AlreadyExisted`]); different bytes are a [`StorageError::WriteOnceViolation`].
//!   [`Storage::write_parquet`] builds on it.
//! - **Pointers are swapped conditionally.** [`Storage::swap_pointer`] replaces a pointer (such
//!   as `models/{name}/LATEST`) only if it is unchanged since it was read
//!   ([`Storage::read_pointer`]), and reports a lost race as [`StorageError::PointerConflict`].
//!   Memory, S3, GCS and Azure do this natively; the local file system has no compare-and-swap,
//!   so there a small lock protocol is used, with the limits described in [`mod@pointer`].
//!
//! # Example
//! ```
//! # async fn demo() -> Result<(), ctrflow_storage::StorageError> {
//! use bytes::Bytes;
//! use ctrflow_storage::{PutOutcome, Storage};
//!
//! let store = Storage::open("memory://doc-example")?;
//! let data = Bytes::from_static(b"payload");
//! assert_eq!(store.put_once("a/part-0", data.clone()).await?, PutOutcome::Created);
//! assert_eq!(store.put_once("a/part-0", data).await?, PutOutcome::AlreadyExisted);
//!
//! let v1 = store.swap_pointer("LATEST", Bytes::from_static(b"v1"), None).await?;
//! store.swap_pointer("LATEST", Bytes::from_static(b"v2"), Some(&v1)).await?;
//! // A writer still holding v1 loses:
//! let lost = store.swap_pointer("LATEST", Bytes::from_static(b"v3"), Some(&v1)).await;
//! assert!(lost.is_err_and(|e| e.is_conflict()));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt").block_on(demo()).expect("demo");
//! ```

mod error;
mod open;
mod ops;
mod parquet_io;
pub mod pointer;

#[cfg(test)]
mod tests;

pub use crate::error::{ErrorClass, Result, SUPPORTED_SCHEMES, StorageError};
pub use crate::open::{Capabilities, Storage, StoreKind};
pub use crate::ops::{ObjectInfo, PutOutcome};
pub use crate::parquet_io::{
    ParquetCompression, ParquetEncoder, ParquetWriteOptions, WrittenFile, encode_parquet,
};
pub use crate::pointer::{Pointer, PointerLockConfig, PointerVersion};
