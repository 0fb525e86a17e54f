//! The one error type of this crate.
//!
//! Every variant says which class it belongs to ([`ErrorClass`]): a user error (bad URL, bad key,
//! a cargo feature that is off), an external failure (the store or the file system failed; retry
//! with backoff), a conflict (a lost pointer race or a write-once violation: re-read, then decide),
//! a missing object, or an internal bug. Messages name the operation and the key.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The URL schemes [`crate::Storage::open`] understands, for error messages.
pub const SUPPORTED_SCHEMES: &str = "memory://NAME, file:///ABS/DIR or a plain path, s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], \
     az://CONTAINER[/PREFIX] or abfs[s]://CONTAINER[@ACCOUNT.dfs.core.windows.net][/PREFIX]";

/// What kind of failure a [`StorageError`] is, so callers can decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input or configuration (URL, key, option, disabled feature). Retrying will not help.
    User,
    /// The store or the file system failed. Retrying with backoff may help (see
    /// [`StorageError::is_retryable`] for the precise answer).
    External,
    /// A conditional write lost: a pointer changed since it was read, or a write-once key already
    /// holds different bytes. Re-read and decide; do not blindly retry.
    Conflict,
    /// The object does not exist.
    NotFound,
    /// A bug in ctrflow (e.g. a panicked blocking task).
    Internal,
}

/// Errors returned by [`crate::Storage`] and the Parquet helpers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The store URL could not be understood.
    #[error("invalid store URL '{url}': {reason}; supported: {SUPPORTED_SCHEMES}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The URL needs a cargo feature of `ctrflow-storage` that this build does not have.
    #[error(
        "store URL '{url}' needs the cargo feature '{feature}' of ctrflow-storage, which this build \
         does not enable; rebuild with `--features {feature}`"
    )]
    FeatureDisabled {
        /// The URL as given.
        url: String,
        /// The cargo feature to enable (`aws`, `gcp` or `azure`).
        feature: &'static str,
    },

    /// An option passed to [`crate::Storage::open_with_options`] is unknown or not accepted.
    #[error("invalid option '{key}' for store URL '{url}': {reason}")]
    InvalidOption {
        /// The URL as given.
        url: String,
        /// The option key.
        key: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A key is not a valid object key (empty, `.`/`..` segments, `//`, control characters).
    #[error("invalid object key '{key}': {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The object does not exist.
    #[error("{op} '{key}': object not found")]
    NotFound {
        /// The operation that was attempted.
        op: &'static str,
        /// The key, relative to the store root.
        key: String,
    },

    /// A write-once key already exists with different bytes.
    #[error("write-once violation at '{key}': the key already exists with different content")]
    WriteOnceViolation {
        /// The key, relative to the store root.
        key: String,
    },

    /// A conditional pointer swap lost a race: the pointer changed (or appeared, or disappeared)
    /// since the caller read it, or the pointer lock could not be taken in time.
    #[error(
        "pointer conflict at '{key}': it changed since it was read (or is locked); re-read and retry"
    )]
    PointerConflict {
        /// The key, relative to the store root.
        key: String,
    },

    /// The object store failed.
    #[error("{op} '{key}' failed: {source}")]
    ObjectStore {
        /// The operation that was attempted.
        op: &'static str,
        /// The key or prefix, relative to the store root.
        key: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },

    /// Building the object store client failed (bad credentials config, bad endpoint ...).
    #[error("cannot open store '{url}': {source}")]
    Open {
        /// The URL as given.
        url: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },

    /// A local file-system operation failed.
    #[error("{op} '{path}' failed: {source}")]
    Io {
        /// The operation that was attempted.
        op: &'static str,
        /// The file-system path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Encoding or decoding Parquet failed (or reading it from the store failed).
    #[error("parquet '{key}': {source}")]
    Parquet {
        /// The key, or `<in-memory>` for [`crate::encode_parquet`].
        key: String,
        /// The underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// A bug: something that should not happen did (e.g. a blocking task panicked).
    #[error("internal error during {op} '{key}': {message}")]
    Internal {
        /// The operation that was attempted.
        op: &'static str,
        /// The key, relative to the store root.
        key: String,
        /// What happened.
        message: String,
    },
}

impl StorageError {
    /// The class of this error (user, external, conflict, not found, internal).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidUrl { .. }
            | Self::FeatureDisabled { .. }
            | Self::InvalidOption { .. }
            | Self::InvalidKey { .. } => ErrorClass::User,
            Self::NotFound { .. } => ErrorClass::NotFound,
            Self::WriteOnceViolation { .. } | Self::PointerConflict { .. } => ErrorClass::Conflict,
            Self::ObjectStore { source, .. } => object_store_class(source),
            Self::Open { .. } => ErrorClass::User,
            Self::Io { .. } => ErrorClass::External,
            Self::Parquet { source, .. } => match source {
                parquet::errors::ParquetError::External(e) => e
                    .downcast_ref::<object_store::Error>()
                    .map(object_store_class)
                    .unwrap_or(ErrorClass::User),
                // Corrupt or mismatching data: retrying the same call will not help.
                _ => ErrorClass::User,
            },
            Self::Internal { .. } => ErrorClass::Internal,
        }
    }

    /// True when retrying the same call later (with backoff) may succeed: transient store or I/O
    /// failures. Conflicts are *not* retryable in this sense: the caller must re-read first.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::External
    }

    /// True for [`StorageError::PointerConflict`] and [`StorageError::WriteOnceViolation`].
    pub fn is_conflict(&self) -> bool {
        self.class() == ErrorClass::Conflict
    }

    /// True for [`StorageError::NotFound`] (and store errors that mean "not found").
    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::NotFound
    }
}

fn object_store_class(e: &object_store::Error) -> ErrorClass {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => ErrorClass::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => {
            ErrorClass::Conflict
        }
        E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. } => ErrorClass::User,
        E::JoinError { .. } => ErrorClass::Internal,
        _ => ErrorClass::External,
    }
}

/// A short operation name plus key, used to build errors tersely.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) op: &'static str,
    pub(crate) key: &'a str,
}

impl Ctx<'_> {
    /// Wrap an object_store error; `NotFound` becomes [`StorageError::NotFound`].
    pub(crate) fn store(self, source: object_store::Error) -> StorageError {
        match source {
            object_store::Error::NotFound { .. } => StorageError::NotFound {
                op: self.op,
                key: self.key.to_string(),
            },
            source => StorageError::ObjectStore {
                op: self.op,
                key: self.key.to_string(),
                source,
            },
        }
    }

    pub(crate) fn parquet(self, source: parquet::errors::ParquetError) -> StorageError {
        StorageError::Parquet {
            key: self.key.to_string(),
            source,
        }
    }

    pub(crate) fn internal(self, message: impl fmt::Display) -> StorageError {
        StorageError::Internal {
            op: self.op,
            key: self.key.to_string(),
            message: message.to_string(),
        }
    }

    pub(crate) fn conflict(self) -> StorageError {
        StorageError::PointerConflict {
            key: self.key.to_string(),
        }
    }
}
