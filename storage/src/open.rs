//! Turning a store URL into a [`Storage`] handle rooted at the URL's path.
//!
//! | URL | store | notes |
//! |---|---|---|
//! | `memory://NAME[/PREFIX]` | `InMemory` | process-wide registry keyed by `memory://NAME`: every `open` of the same name in one process shares one store (the path is a prefix inside it) |
//! | `file:///ABS/DIR`, `/abs/dir`, `./rel/dir`, `rel/dir` | `LocalFileSystem` | relative paths resolve against the current directory; the directory is created if missing |
//! | `s3://BUCKET[/PREFIX]` | `AmazonS3` (feature `aws`) | `AmazonS3Builder::from_env()`, explicit options override; plain-http endpoints are allowed automatically; conditional puts (`If-None-Match`/`If-Match`) enabled |
//! | `gs://BUCKET[/PREFIX]` | `GoogleCloudStorage` (feature `gcp`) | `GoogleCloudStorageBuilder::from_env()` |
//! | `az://`, `abfs://`, `abfss://` | `MicrosoftAzure` (feature `azure`) | `MicrosoftAzureBuilder::from_env()` |

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::error::{Result, StorageError};
use crate::pointer::PointerLockConfig;

/// Which backend a [`Storage`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// Process-local `InMemory` store (tests, demos).
    Memory,
    /// Local (or network-mounted) file system.
    Local,
    /// Amazon S3 or an S3-compatible server (MinIO, moto, R2, ...).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage / ADLS Gen2.
    Azure,
}

/// What the backend can do natively; decided by scheme when the store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend.
    pub kind: StoreKind,
    /// Atomic create-if-absent (`PutMode::Create`). True for every supported backend.
    pub create_if_absent: bool,
    /// Atomic compare-and-swap (`PutMode::Update`). False only for the local file system, where
    /// pointers are swapped under the lock protocol described in [`crate::pointer`].
    pub conditional_update: bool,
}

/// A handle on one object-store root. Cheap to clone; all keys are relative to the root.
///
/// See the crate docs for the atomicity guarantees of each operation.
#[derive(Debug, Clone)]
pub struct Storage {
    pub(crate) url: Url,
    pub(crate) caps: Capabilities,
    /// The store rooted at the URL's path: every key is relative to it.
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The un-prefixed store, for registering with the SQL engine.
    pub(crate) base: Arc<dyn ObjectStore>,
    pub(crate) base_url: Url,
    /// The root prefix inside `base`.
    pub(crate) root: Path,
    pub(crate) lock: PointerLockConfig,
}

static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Storage {
    /// Open the store named by `url` (see the module docs for the accepted forms).
    ///
    /// Cloud credentials and settings come from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn open(url: &str) -> Result<Storage> {
        Self::open_with_options(url, &[])
    }

    /// Like [`Storage::open`], with explicit builder options that override the environment, e.g.
    /// `[("aws_endpoint", "http://127.0.0.1:5055"), ("aws_access_key_id", "test")]`.
    ///
    /// Keys are the object_store config keys of the backend (`AmazonS3ConfigKey`,
    /// `GoogleConfigKey`, `AzureConfigKey`; case-insensitive). `memory://` and local paths accept
    /// no options.
    pub fn open_with_options(url: &str, options: &[(&str, &str)]) -> Result<Storage> {
        let invalid = |reason: &str| StorageError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.trim().is_empty() {
            return Err(invalid("empty"));
        }
        if !url.contains("://") && !url.starts_with("file:") {
            return open_local(url, PathBuf::from(url), options);
        }
        let parsed = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        match parsed.scheme() {
            "memory" => open_memory(url, &parsed, options),
            "file" => {
                if parsed
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(invalid(
                        "file:// URLs must not name a host (use file:///abs/dir)",
                    ));
                }
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute file path"))?;
                open_local(url, dir, options)
            }
            "s3" | "s3a" => cloud::open_s3(url, &parsed, options),
            "gs" => cloud::open_gcs(url, &parsed, options),
            "az" | "abfs" | "abfss" => cloud::open_azure(url, &parsed, options),
            other => Err(invalid(&format!("unknown scheme '{other}'"))),
        }
    }

    /// The normalized URL of this store root (e.g. `file:///abs/dir`, `s3://bucket/prefix`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// What the backend supports natively.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// Replace the pointer lock settings (only used where `conditional_update` is false).
    #[must_use]
    pub fn with_pointer_lock_config(mut self, config: PointerLockConfig) -> Self {
        self.lock = config;
        self
    }

    /// The pointer lock settings in force.
    pub fn pointer_lock_config(&self) -> &PointerLockConfig {
        &self.lock
    }

    /// Wraps the backend in a layer (an [`ObjectStore`] that delegates to the one it is given):
    /// request metrics, throttling, or fault injection in tests. Every operation of this handle,
    /// the SQL engine's reads included, goes through the layer; the capabilities stay those of
    /// the backend, so a layer must pass conditional puts through unchanged.
    #[must_use]
    pub fn with_layer(
        self,
        layer: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Storage {
        let base = layer(self.base);
        let lock = self.lock;
        Storage::assemble(self.url, self.caps.kind, base, self.base_url, self.root)
            .with_pointer_lock_config(lock)
    }

    /// **For the SQL engine only**: the URL (scheme + authority, e.g. `s3://bucket/`, `file:///`,
    /// `memory://name/`) under which to register [`Storage::object_store`] with DataFusion.
    pub fn object_store_url(&self) -> Url {
        self.base_url.clone()
    }

    /// **For the SQL engine only**: the *un-prefixed* store behind this handle, to register with
    /// DataFusion under [`Storage::object_store_url`]. Everything else must go through the
    /// methods of [`Storage`], which keep the write-once and pointer guarantees.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.base)
    }

    /// **For the SQL engine only**: the path of `key` inside [`Storage::object_store`], i.e. with
    /// the root prefix prepended (no leading `/`). `key` may be a prefix such as `landing/ad/`.
    pub fn full_path(&self, key: &str) -> String {
        let rel = key.trim_matches('/');
        match (self.root.as_ref(), rel) {
            ("", rel) => rel.to_string(),
            (root, "") => root.to_string(),
            (root, rel) => format!("{root}/{rel}"),
        }
    }

    fn assemble(
        url: Url,
        kind: StoreKind,
        base: Arc<dyn ObjectStore>,
        base_url: Url,
        root: Path,
    ) -> Storage {
        let store: Arc<dyn ObjectStore> = if root.as_ref().is_empty() {
            Arc::clone(&base)
        } else {
            Arc::new(PrefixStore::new(Arc::clone(&base), root.clone()))
        };
        Storage::from_parts(url, kind, store, base, base_url, root)
    }

    fn from_parts(
        url: Url,
        kind: StoreKind,
        store: Arc<dyn ObjectStore>,
        base: Arc<dyn ObjectStore>,
        base_url: Url,
        root: Path,
    ) -> Storage {
        Storage {
            url,
            caps: Capabilities {
                kind,
                create_if_absent: true,
                conditional_update: kind != StoreKind::Local,
            },
            store,
            base,
            base_url,
            root,
            lock: PointerLockConfig::default(),
        }
    }
}

fn reject_options(url: &str, options: &[(&str, &str)], what: &str) -> Result<()> {
    match options.first() {
        None => Ok(()),
        Some((key, _)) => Err(StorageError::InvalidOption {
            url: url.to_string(),
            key: (*key).to_string(),
            reason: format!("{what} stores take no options"),
        }),
    }
}

/// The root prefix encoded in a URL path (percent-decoded, no leading/trailing `/`).
pub(crate) fn root_from_url(url: &str, parsed: &Url) -> Result<Path> {
    Path::from_url_path(parsed.path()).map_err(|e| StorageError::InvalidUrl {
        url: url.to_string(),
        reason: format!("bad path: {e}"),
    })
}

/// `scheme://authority/` of a URL, for [`Storage::object_store_url`].
pub(crate) fn base_url_of(url: &str, parsed: &Url) -> Result<Url> {
    let authority = &parsed[url::Position::BeforeScheme..url::Position::BeforePath];
    Url::parse(&format!("{authority}/")).map_err(|e| StorageError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

fn open_memory(url: &str, parsed: &Url, options: &[(&str, &str)]) -> Result<Storage> {
    reject_options(url, options, "memory://")?;
    let name = parsed.host_str().unwrap_or_default().to_string();
    let base_url = base_url_of(url, parsed)?;
    let root = root_from_url(url, parsed)?;
    let store = {
        let mut stores = MEMORY_STORES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            stores
                .entry(base_url.to_string())
                .or_insert_with(|| Arc::new(InMemory::new())),
        )
    };
    let normalized = format!("memory://{name}/{root}");
    let normalized =
        Url::parse(normalized.trim_end_matches('/')).map_err(|e| StorageError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    Ok(Storage::assemble(
        normalized,
        StoreKind::Memory,
        store,
        base_url,
        root,
    ))
}

fn open_local(url: &str, dir: PathBuf, options: &[(&str, &str)]) -> Result<Storage> {
    reject_options(url, options, "local file-system")?;
    let io = |op: &'static str, path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| StorageError::Io { op, path, source }
    };
    let dir = std::path::absolute(&dir).map_err(io("resolve directory", &dir))?;
    std::fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
    let dir = std::fs::canonicalize(&dir).map_err(io("canonicalize directory", &dir))?;
    let invalid = |reason: String| StorageError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    let normalized =
        Url::from_directory_path(&dir).map_err(|()| invalid("not an absolute path".into()))?;
    // Url::from_directory_path ends in '/'; keep the canonical form without it.
    let normalized = Url::parse(normalized.as_str().trim_end_matches('/'))
        .map_err(|e| invalid(e.to_string()))?;
    let root = Path::from_absolute_path(&dir).map_err(|e| invalid(e.to_string()))?;
    let store = LocalFileSystem::new_with_prefix(&dir).map_err(|source| StorageError::Open {
        url: url.to_string(),
        source,
    })?;
    let base_url = Url::parse("file:///").map_err(|e| invalid(e.to_string()))?;
    Ok(Storage::from_parts(
        normalized,
        StoreKind::Local,
        Arc::new(store),
        Arc::new(LocalFileSystem::new()),
        base_url,
        root,
    ))
}

/// Cloud backends, each behind its cargo feature.
mod cloud {
    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    use std::sync::Arc;

    use url::Url;

    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    use super::{StoreKind, base_url_of, root_from_url};
    use crate::error::{Result, StorageError};
    use crate::open::Storage;

    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    fn bad_option(url: &str, key: &str, e: impl std::fmt::Display) -> StorageError {
        StorageError::InvalidOption {
            url: url.to_string(),
            key: key.to_string(),
            reason: e.to_string(),
        }
    }

    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    fn normalized(url: &str, parsed: &Url) -> Result<Url> {
        let mut u = parsed.clone();
        u.set_query(None);
        u.set_fragment(None);
        let trimmed = u.as_str().trim_end_matches('/').to_string();
        Url::parse(&trimmed).map_err(|e| StorageError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    #[cfg(any(feature = "aws", feature = "gcp"))]
    fn bucket(url: &str, parsed: &Url) -> Result<String> {
        match parsed.host_str() {
            Some(b) if !b.is_empty() => Ok(b.to_string()),
            _ => Err(StorageError::InvalidUrl {
                url: url.to_string(),
                reason: "missing bucket name".into(),
            }),
        }
    }

    #[cfg(feature = "aws")]
    pub(super) fn open_s3(url: &str, parsed: &Url, options: &[(&str, &str)]) -> Result<Storage> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in options {
            let k: AmazonS3ConfigKey = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|e| bad_option(url, key, e))?;
            builder = builder.with_config(k, *value);
        }
        let http_endpoint = [AmazonS3ConfigKey::Endpoint, AmazonS3ConfigKey::S3Endpoint]
            .iter()
            .filter_map(|k| builder.get_config_value(k))
            .any(|e| e.starts_with("http://"));
        if http_endpoint {
            builder = builder.with_allow_http(true);
        }
        let store = builder
            .with_bucket_name(bucket(url, parsed)?)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .build()
            .map_err(|source| StorageError::Open {
                url: url.to_string(),
                source,
            })?;
        Ok(Storage::assemble(
            normalized(url, parsed)?,
            StoreKind::S3,
            Arc::new(store),
            base_url_of(url, parsed)?,
            root_from_url(url, parsed)?,
        ))
    }

    #[cfg(not(feature = "aws"))]
    pub(super) fn open_s3(url: &str, _: &Url, _: &[(&str, &str)]) -> Result<Storage> {
        Err(StorageError::FeatureDisabled {
            url: url.to_string(),
            feature: "aws",
        })
    }

    #[cfg(feature = "gcp")]
    pub(super) fn open_gcs(url: &str, parsed: &Url, options: &[(&str, &str)]) -> Result<Storage> {
        use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
        let mut builder = GoogleCloudStorageBuilder::from_env();
        for (key, value) in options {
            let k: GoogleConfigKey = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|e| bad_option(url, key, e))?;
            builder = builder.with_config(k, *value);
        }
        let store = builder
            .with_bucket_name(bucket(url, parsed)?)
            .build()
            .map_err(|source| StorageError::Open {
                url: url.to_string(),
                source,
            })?;
        Ok(Storage::assemble(
            normalized(url, parsed)?,
            StoreKind::Gcs,
            Arc::new(store),
            base_url_of(url, parsed)?,
            root_from_url(url, parsed)?,
        ))
    }

    #[cfg(not(feature = "gcp"))]
    pub(super) fn open_gcs(url: &str, _: &Url, _: &[(&str, &str)]) -> Result<Storage> {
        Err(StorageError::FeatureDisabled {
            url: url.to_string(),
            feature: "gcp",
        })
    }

    #[cfg(feature = "azure")]
    pub(super) fn open_azure(url: &str, parsed: &Url, options: &[(&str, &str)]) -> Result<Storage> {
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        let mut builder = MicrosoftAzureBuilder::from_env();
        for (key, value) in options {
            let k: AzureConfigKey = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|e| bad_option(url, key, e))?;
            builder = builder.with_config(k, *value);
        }
        let store = builder
            .with_url(url)
            .build()
            .map_err(|source| StorageError::Open {
                url: url.to_string(),
                source,
            })?;
        Ok(Storage::assemble(
            normalized(url, parsed)?,
            StoreKind::Azure,
            Arc::new(store),
            base_url_of(url, parsed)?,
            root_from_url(url, parsed)?,
        ))
    }

    #[cfg(not(feature = "azure"))]
    pub(super) fn open_azure(url: &str, _: &Url, _: &[(&str, &str)]) -> Result<Storage> {
        Err(StorageError::FeatureDisabled {
            url: url.to_string(),
            feature: "azure",
        })
    }
}
