//! Configuration of an embedding table and of its sparse optimiser.

use serde::{Deserialize, Serialize};

use crate::error::{ModelsError, Result};

/// Largest accepted row width.
pub const MAX_DIM: usize = 1 << 16;
/// Largest accepted number of rows (`max-rows` or `buckets`): slots are `u32` and slot 0 is the
/// shared default row.
pub const MAX_ROWS: usize = (u32::MAX - 1) as usize;

/// How ids are mapped to rows.
///
/// Written `{"type": "managed"}` or `{"type": "hashed", "buckets": N}` (in TOML,
/// `kind = { type = "hashed", buckets = 1024 }`); other fields are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KindRepr", into = "KindRepr")]
pub enum TableKind {
    /// Collision-free: every admitted id owns a row (frequency admission, expiry, a row bound with
    /// least-recently-seen eviction).
    Managed,
    /// A fixed number of buckets, `bucket = hash(id) % buckets`; every id has a row (shared with
    /// the ids that collide with it), no admission, eviction or expiry. For comparison.
    Hashed {
        /// Number of rows.
        buckets: usize,
    },
}

/// The wire form of [`TableKind`]: one flat object, so that unknown fields are refused for
/// every variant (serde's internally tagged enums ignore them on unit variants).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct KindRepr {
    #[serde(rename = "type")]
    kind: KindName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    buckets: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KindName {
    Managed,
    Hashed,
}

impl TryFrom<KindRepr> for TableKind {
    type Error = String;
    fn try_from(r: KindRepr) -> std::result::Result<Self, String> {
        match (r.kind, r.buckets) {
            (KindName::Managed, None) => Ok(TableKind::Managed),
            (KindName::Managed, Some(_)) => Err("a managed table takes no `buckets`".into()),
            (KindName::Hashed, Some(buckets)) => Ok(TableKind::Hashed { buckets }),
            (KindName::Hashed, None) => Err("a hashed table needs `buckets`".into()),
        }
    }
}

impl From<TableKind> for KindRepr {
    fn from(k: TableKind) -> Self {
        match k {
            TableKind::Managed => KindRepr {
                kind: KindName::Managed,
                buckets: None,
            },
            TableKind::Hashed { buckets } => KindRepr {
                kind: KindName::Hashed,
                buckets: Some(buckets),
            },
        }
    }
}

/// Hyper-parameters of the sparse lazy Adam update (AdamW-style decoupled weight decay).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SparseAdamConfig {
    /// Step size (default 0.001).
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f32,
    /// Decay of the first moment (default 0.9).
    #[serde(default = "default_beta1")]
    pub beta1: f32,
    /// Decay of the second moment (default 0.999).
    #[serde(default = "default_beta2")]
    pub beta2: f32,
    /// Added to the root of the second moment (default 1e-8).
    #[serde(default = "default_eps")]
    pub eps: f32,
    /// Decoupled weight decay per step, applied only to the rows a batch touches (default 0).
    #[serde(default)]
    pub weight_decay: f32,
}

fn default_learning_rate() -> f32 {
    1e-3
}
fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_eps() -> f32 {
    1e-8
}

impl Default for SparseAdamConfig {
    fn default() -> Self {
        SparseAdamConfig {
            learning_rate: default_learning_rate(),
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }
}

/// Configuration of one [`EmbeddingTable`](super::EmbeddingTable). Only `dim` is required.
///
/// ```
/// use ctrflow_models::embedding::{EmbeddingTableConfig, TableKind};
/// let c: EmbeddingTableConfig = serde_json::from_str(
///     r#"{"dim": 8, "admission-threshold": 2, "max-rows": 1000, "expiry-days": 30}"#,
/// ).expect("valid JSON");
/// assert_eq!(c.kind, TableKind::Managed);
/// c.validate().expect("valid config");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EmbeddingTableConfig {
    /// Width of every row (1..=65536).
    pub dim: usize,
    /// Managed (collision-free, default) or hashed rows.
    #[serde(default = "default_kind")]
    pub kind: TableKind,
    /// An id gets its own row once it has been seen this many times in training lookups; before
    /// that it reads the shared default row. 1 (default) admits on first sight. Managed only.
    #[serde(default = "default_admission_threshold")]
    pub admission_threshold: u32,
    /// Rows (and pending admission counts) unseen for this many days are removed by
    /// [`expire`](super::EmbeddingTable::expire); absent (default): never expire. Managed only.
    #[serde(default)]
    pub expiry_days: Option<u32>,
    /// Hard bound on the number of id rows (the default row not counted); when full, the
    /// least-recently-seen row is evicted to admit a new id (default 1 000 000). Managed only.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Bound on ids tracked while below the admission threshold; when reached, further new ids
    /// are not counted until [`expire`](super::EmbeddingTable::expire) prunes stale ones
    /// (default 1 000 000). Managed with `admission-threshold` > 1 only.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Standard deviation of the normal initialisation of a new row (default 0.01); the
    /// shared default row starts at zero.
    #[serde(default = "default_init_std")]
    pub init_std: f32,
    /// Seed of the initialisation: a row's initial values depend only on `(seed, id)`.
    #[serde(default)]
    pub seed: u64,
    /// Sparse optimiser applied by [`apply_gradients`](super::EmbeddingTable::apply_gradients).
    #[serde(default)]
    pub optimizer: SparseAdamConfig,
}

fn default_kind() -> TableKind {
    TableKind::Managed
}
fn default_admission_threshold() -> u32 {
    1
}
fn default_max_rows() -> usize {
    1_000_000
}
fn default_max_pending() -> usize {
    1_000_000
}
fn default_init_std() -> f32 {
    0.01
}

impl EmbeddingTableConfig {
    /// A managed table of width `dim` with every other field at its default.
    pub fn new(dim: usize) -> Self {
        EmbeddingTableConfig {
            dim,
            kind: default_kind(),
            admission_threshold: default_admission_threshold(),
            expiry_days: None,
            max_rows: default_max_rows(),
            max_pending: default_max_pending(),
            init_std: default_init_std(),
            seed: 0,
            optimizer: SparseAdamConfig::default(),
        }
    }

    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(ModelsError::config(
                "dim",
                format!("{} is not in 1..={MAX_DIM}", self.dim),
            ));
        }
        if let TableKind::Hashed { buckets } = self.kind
            && (buckets == 0 || buckets > MAX_ROWS)
        {
            return Err(ModelsError::config(
                "kind.buckets",
                format!("{buckets} is not in 1..={MAX_ROWS}"),
            ));
        }
        if self.admission_threshold == 0 {
            return Err(ModelsError::config(
                "admission-threshold",
                "must be at least 1 (1 admits on first sight)",
            ));
        }
        if self.expiry_days == Some(0) {
            return Err(ModelsError::config(
                "expiry-days",
                "must be at least 1 (omit it to never expire)",
            ));
        }
        if self.max_rows == 0 || self.max_rows > MAX_ROWS {
            return Err(ModelsError::config(
                "max-rows",
                format!("{} is not in 1..={MAX_ROWS}", self.max_rows),
            ));
        }
        if self.admission_threshold > 1 && self.max_pending == 0 {
            return Err(ModelsError::config(
                "max-pending",
                "must be at least 1 when admission-threshold is above 1",
            ));
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(ModelsError::config(
                "init-std",
                format!("{} is not a finite non-negative number", self.init_std),
            ));
        }
        let o = &self.optimizer;
        if !(o.learning_rate.is_finite() && o.learning_rate > 0.0) {
            return Err(ModelsError::config(
                "optimizer.learning-rate",
                format!("{} is not a finite positive number", o.learning_rate),
            ));
        }
        if !(0.0..1.0).contains(&o.beta1) {
            return Err(ModelsError::config(
                "optimizer.beta1",
                format!("{} is not in [0, 1)", o.beta1),
            ));
        }
        if !(0.0..1.0).contains(&o.beta2) {
            return Err(ModelsError::config(
                "optimizer.beta2",
                format!("{} is not in [0, 1)", o.beta2),
            ));
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return Err(ModelsError::config(
                "optimizer.eps",
                format!("{} is not a finite positive number", o.eps),
            ));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(ModelsError::config(
                "optimizer.weight-decay",
                format!("{} is not a finite non-negative number", o.weight_decay),
            ));
        }
        if o.learning_rate * o.weight_decay >= 1.0 {
            return Err(ModelsError::config(
                "optimizer.weight-decay",
                format!(
                    "learning-rate x weight-decay = {} must be below 1",
                    o.learning_rate * o.weight_decay
                ),
            ));
        }
        Ok(())
    }

    /// Number of rows the table can hold for ids (`max-rows` or `buckets`).
    pub fn id_capacity(&self) -> usize {
        match self.kind {
            TableKind::Managed => self.max_rows,
            TableKind::Hashed { buckets } => buckets,
        }
    }
}
