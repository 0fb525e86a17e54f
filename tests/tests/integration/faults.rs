//! A fault-injecting object-store layer for the crash and outage tests (ingest and the daily
//! job): wraps a real store and fails writes from a chosen point on.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Delegates to `inner`; while `failing` is set, every write (put, multipart, copy) fails.
/// [`arm_after`](Self::arm_after): set `failing` by itself once `count` writes whose key
/// contains `pattern` succeeded (so the fault lands at a chosen point, deterministically).
#[derive(Debug)]
pub struct FailingWrites {
    inner: Arc<dyn ObjectStore>,
    failing: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    pattern: &'static str,
    arm_after: u64,
    matching_writes: AtomicU64,
}

impl fmt::Display for FailingWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingWrites({})", self.inner)
    }
}

impl FailingWrites {
    /// A layer over `inner` that fails writes while `failing` is set, counting them in
    /// `failed`. Not armed: only `failing` turns it on.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        failing: Arc<AtomicBool>,
        failed: Arc<AtomicU64>,
    ) -> Self {
        FailingWrites {
            inner,
            failing,
            failed,
            pattern: "",
            arm_after: 0,
            matching_writes: AtomicU64::new(0),
        }
    }

    /// Turns `failing` on after `count` successful writes of keys containing `pattern`.
    pub fn arm_after(mut self, pattern: &'static str, count: u64) -> Self {
        self.pattern = pattern;
        self.arm_after = count;
        self
    }

    fn check(&self, location: &Path) -> object_store::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "FailingWrites",
                source: format!("injected write failure on {location}").into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FailingWrites {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(location)?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        if self.arm_after > 0
            && location.as_ref().contains(self.pattern)
            && self.matching_writes.fetch_add(1, Ordering::SeqCst) + 1 == self.arm_after
        {
            self.failing.store(true, Ordering::SeqCst);
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check(to)?;
        self.inner.copy_opts(from, to, options).await
    }
}
