//! Service configuration: built-in defaults, then a TOML file, then `CTRFLOW__*` environment
//! variables, then command-line flags. Loaded once in `main` and passed down.
//!
//! Environment variables address fields by path: `CTRFLOW__GENERATOR__EVENTS_PER_DAY=50000` sets
//! `generator.events-per-day` (`__` separates levels, `_` stands for `-`). Values are read as TOML
//! literals (`42`, `true`, `["a","b"]`, `"text"`), and as a plain string when they are not one.
//!
//! Every error names the file, line or variable and the field, and says what is allowed.

use std::path::{Path, PathBuf};

use ctrflow_operators::OperatorError;
use ctrflow_operators::generate::GeneratorConfig;
use ctrflow_operators::ingest::decode::DecodeConfig;
use ctrflow_operators::ingest::{CoordinatorConfig, SinkConfig};
use ctrflow_operators::kafka::KafkaConfig;
use ctrflow_schemas::{DEFAULT_CONTENT_DIM, DEFAULT_MAX_SEQ_LEN, EventSchema};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "CTRFLOW__";

/// A configuration problem. Always a user error (exit code 2).
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (message has line and column).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, naming line, column and key.
        message: String,
    },
    /// An environment override does not fit the schema.
    #[error("environment variable {var}: field `{field}`: {message}")]
    Env {
        /// The variable.
        var: String,
        /// The field path it addresses.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration `{field}`: {reason}")]
    Invalid {
        /// Dotted field path.
        field: String,
        /// What is allowed.
        reason: String,
    },
}

/// Where ctrflow keeps its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StoreConfig {
    /// Object-store root: `file:///abs/dir`, a local path, `s3://bucket/prefix`, `gs://...`,
    /// `az://...` or `memory://name`. `--store` overrides it.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "./ctrflow-data".into(),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `ctrflow=debug,datafusion=warn`; `RUST_LOG` overrides.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The Prometheus endpoint of long-running commands (`ctrflow ingest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct MetricsConfig {
    /// Address to serve `GET /metrics` (Prometheus text format) and `GET /healthz` on, e.g.
    /// `0.0.0.0:9464`. Unset (the default): no endpoint.
    pub listen: Option<String>,
}

/// How ctrflow's own threads run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RuntimeConfig {
    /// Niceness steps (0..=19) added to the process's own for ctrflow's worker threads (tokio's
    /// workers and blocking pool: decoding, Parquet encoding, training). librdkafka's threads and
    /// the Kafka poll thread keep the process's priority, so on a saturated CPU the next fetch, the
    /// group heartbeats and the commits go first, and so do other processes of normal priority on
    /// the host (a co-located broker, a sidecar). 0 leaves every thread at the process's priority.
    /// Under a container's CPU controller this only orders ctrflow's threads among themselves.
    pub worker_niceness: u8,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            worker_niceness: 19,
        }
    }
}

/// Event schema parameters shared by every job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SchemaConfig {
    /// Maximum length of the behaviour sequence (1..=100000).
    pub max_seq_len: usize,
    /// Width of the optional `item_content` vector (1..=4096).
    pub content_dim: usize,
}

impl Default for SchemaConfig {
    fn default() -> Self {
        SchemaConfig {
            max_seq_len: DEFAULT_MAX_SEQ_LEN,
            content_dim: DEFAULT_CONTENT_DIM,
        }
    }
}

impl SchemaConfig {
    /// The Arrow event schema these parameters describe.
    pub fn event_schema(&self) -> EventSchema {
        EventSchema::new(self.content_dim)
    }
}

/// MovieLens import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct MovielensConfig {
    /// Genres that make a movie an "ad" item; every other movie is natural content. Spelling as
    /// in the dataset (e.g. `Children's`, `Animation`).
    pub ad_genres: Vec<String>,
    /// Ratings at or above this value are clicks (label 1).
    pub like_threshold: f64,
    /// The behaviour sequence: `rated` (every earlier rated movie, ids only) or `liked` (earlier
    /// liked movies from strictly earlier seconds: a click sequence).
    pub history: ctrflow_operators::movielens::MovielensHistory,
    /// The domains of the sequence: `all` (cross-domain, default) or `same` (an ad event sees
    /// only earlier ads).
    pub history_domains: ctrflow_operators::movielens::HistoryDomains,
    /// The events' content vector: `none` (default) or `genres` (the movie's genres,
    /// multi-hot; needs `[schema] content-dim` >= the number of genres, 18 in ML-1M).
    pub content: ctrflow_operators::movielens::MovielensContent,
}

impl Default for MovielensConfig {
    fn default() -> Self {
        MovielensConfig {
            ad_genres: vec!["Children's".into(), "Animation".into()],
            like_threshold: 4.0,
            history: ctrflow_operators::movielens::MovielensHistory::Rated,
            history_domains: ctrflow_operators::movielens::HistoryDomains::All,
            content: ctrflow_operators::movielens::MovielensContent::None,
        }
    }
}

/// `ctrflow ingest`: decoding, sinks and the commit protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct IngestConfig {
    /// `[ingest.decode]`: validation rules and the bad-input ceiling. Its `max-seq-len` and
    /// `content-dim` are taken from `[schema]`.
    pub decode: DecodeConfig,
    /// `[ingest.sink]`: Parquet file rolling and compression.
    pub sink: SinkConfig,
    /// `[ingest.coordinator]`: day close.
    pub coordinator: CoordinatorConfig,
    /// Messages each channel between operators holds (backpressure bound).
    pub channel_capacity: usize,
    /// Name of this replica in epoch manifests (default: host name and process id).
    pub replica_id: Option<String>,
    /// Drain mode: stop (exit 0) once every partition this replica holds was read to the end
    /// offset it had when assigned, its last epoch landed and committed. For scheduled jobs that
    /// land what is available and exit; `--until-caught-up` sets it.
    pub until_caught_up: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            decode: DecodeConfig::default(),
            sink: SinkConfig::default(),
            coordinator: CoordinatorConfig::default(),
            channel_capacity: 8,
            replica_id: None,
            until_caught_up: false,
        }
    }
}

/// The whole configuration of ctrflow. Sections appear in the TOML file under these names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CtrflowConfig {
    /// `[store]`
    pub store: StoreConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[schema]`
    pub schema: SchemaConfig,
    /// `[generator]`
    pub generator: GeneratorConfig,
    /// `[movielens]`
    pub movielens: MovielensConfig,
    /// `[kafka]`
    pub kafka: KafkaConfig,
    /// `[ingest]`
    pub ingest: IngestConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[runtime]`
    pub runtime: RuntimeConfig,
    /// `[daily]`: the daily job, backfill and the demo's training.
    pub daily: crate::daily::config::DailyConfig,
}

impl CtrflowConfig {
    /// Loads defaults, then `file` (if any), then the `CTRFLOW__*` variables among `env`, and
    /// validates the result. Overrides are merged into the raw TOML table before it is
    /// deserialised once, so nothing is lost by a serialisation round trip (secrets, for
    /// instance, serialise redacted).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<CtrflowConfig, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                let parse_error = |message: String| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                };
                // Deserialise the file alone first: toml's errors carry line and column.
                toml::from_str::<CtrflowConfig>(&text).map_err(|e| parse_error(e.to_string()))?;
                text.parse::<toml::Table>()
                    .map_err(|e| parse_error(e.to_string()))?
            }
            None => toml::Table::new(),
        };
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (var, value) in &overrides {
            let path = env_path(var);
            set_path(&mut table, &path, parse_env_value(value)).map_err(|message| {
                ConfigError::Env {
                    var: var.clone(),
                    field: path.join("."),
                    message,
                }
            })?;
        }
        let config: CtrflowConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let field = e.path().to_string();
                let message = e.inner().to_string();
                // Name the variable whose path the failing field is on (or under).
                let var = overrides
                    .iter()
                    .map(|(var, _)| (var, env_path(var).join(".")))
                    .filter(|(_, p)| {
                        field.starts_with(p.as_str())
                            || message.contains(p.rsplit('.').next().unwrap_or(p))
                    })
                    .map(|(var, _)| var.clone())
                    .next()
                    .unwrap_or_else(|| "CTRFLOW__*".to_string());
                ConfigError::Env {
                    var,
                    field,
                    message,
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: &str| {
            Err(ConfigError::Invalid {
                field: field.into(),
                reason: reason.into(),
            })
        };
        if self.store.url.trim().is_empty() {
            return invalid("store.url", "must not be empty");
        }
        if !(1..=100_000).contains(&self.schema.max_seq_len) {
            return invalid("schema.max-seq-len", "must be in 1..=100000");
        }
        if !(1..=4096).contains(&self.schema.content_dim) {
            return invalid("schema.content-dim", "must be in 1..=4096");
        }
        if let Some(listen) = &self.metrics.listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            return invalid(
                "metrics.listen",
                "must be an address with a port, such as 0.0.0.0:9464",
            );
        }
        if self.runtime.worker_niceness > 19 {
            return invalid("runtime.worker-niceness", "must be between 0 and 19");
        }
        if self.movielens.ad_genres.is_empty() {
            return invalid("movielens.ad-genres", "must list at least one genre");
        }
        if !(self.movielens.like_threshold.is_finite()
            && (0.0..=10.0).contains(&self.movielens.like_threshold))
        {
            return invalid("movielens.like-threshold", "must be a number in 0..=10");
        }
        let section = |name: &'static str| {
            move |e: OperatorError| match e {
                OperatorError::Config { field, reason } => ConfigError::Invalid { field, reason },
                other => ConfigError::Invalid {
                    field: name.into(),
                    reason: other.to_string(),
                },
            }
        };
        self.generator.validate().map_err(section("generator"))?;
        self.daily.validate()?;
        self.kafka.validate().map_err(section("kafka"))?;
        self.ingest_decode()
            .validate()
            .map_err(section("ingest.decode"))?;
        if self.ingest.channel_capacity == 0 {
            return invalid("ingest.channel-capacity", "must be at least 1");
        }
        if self.ingest.sink.rows_per_file == 0 {
            return invalid("ingest.sink.rows-per-file", "must be at least 1");
        }
        if self.ingest.coordinator.checkpoint_every == 0 {
            return invalid("ingest.coordinator.checkpoint-every", "must be at least 1");
        }
        if !(1..=22).contains(&self.ingest.sink.zstd_level) {
            return invalid("ingest.sink.zstd-level", "must be between 1 and 22");
        }
        if self.generator.content_dim as usize != self.schema.content_dim {
            return invalid(
                "generator.content-dim",
                &format!(
                    "must equal schema.content-dim ({}), the width of item_content",
                    self.schema.content_dim
                ),
            );
        }
        if self.generator.max_seq_len as usize > self.schema.max_seq_len {
            return invalid(
                "generator.max-seq-len",
                &format!(
                    "must be at most schema.max-seq-len ({})",
                    self.schema.max_seq_len
                ),
            );
        }
        Ok(())
    }

    /// The decode settings with the schema parameters applied.
    pub fn ingest_decode(&self) -> DecodeConfig {
        let mut d = self.ingest.decode.clone();
        d.max_seq_len = self.schema.max_seq_len;
        d.content_dim = self.schema.content_dim;
        d
    }

    /// The effective configuration as TOML (what `ctrflow config check` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// `CTRFLOW__GENERATOR__EVENTS_PER_DAY` -> `["generator", "events-per-day"]`.
fn env_path(var: &str) -> Vec<String> {
    var[ENV_PREFIX.len()..]
        .split("__")
        .map(|p| p.to_ascii_lowercase().replace('_', "-"))
        .collect()
}

/// Sets `path` in `table`, creating intermediate tables.
fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty variable name".into());
    };
    if path.iter().any(String::is_empty) {
        return Err("empty path segment".into());
    }
    let mut slot = table;
    for (i, key) in parents.iter().enumerate() {
        slot = slot
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{}` is not a section", path[..=i].join(".")))?;
    }
    slot.insert(last.clone(), value);
    Ok(())
}

fn parse_env_value(value: &str) -> toml::Value {
    match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests;
