//! [`KafkaConfig`]: where the brokers are, which topics carry which domain, how the source cuts
//! batches and epochs, and librdkafka pass-through properties (SASL/SSL, tuning).
//!
//! Secrets in `properties` (any key naming a password, secret, token, credential or private
//! key) are masked as `***` by `Debug`, `Display`, `Serialize` and
//! [`KafkaConfig::redacted_properties`]; only the librdkafka client configuration built inside
//! this module sees their values.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ctrflow_schemas::Domain;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize, Serializer};

use crate::OperatorError;

/// What a masked secret value is replaced with.
pub const REDACTED: &str = "***";

/// librdkafka properties ctrflow sets itself; setting them in `properties` is a config error.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `kafka.brokers` instead"),
    ("metadata.broker.list", "set `kafka.brokers` instead"),
    ("group.id", "set `kafka.group-id` instead"),
    ("session.timeout.ms", "set `kafka.session-timeout` instead"),
    (
        "enable.auto.commit",
        "offsets are committed only after the epoch manifest is durable",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed only after the epoch manifest is durable",
    ),
];

/// The topic of each domain (one topic per domain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct KafkaTopics {
    /// Topic carrying natural-traffic events.
    pub natural: String,
    /// Topic carrying ad-traffic events.
    pub ad: String,
}

impl Default for KafkaTopics {
    fn default() -> Self {
        KafkaTopics {
            natural: "ctrflow.natural".into(),
            ad: "ctrflow.ad".into(),
        }
    }
}

impl KafkaTopics {
    /// The topic of `domain`.
    pub fn topic(&self, domain: Domain) -> &str {
        match domain {
            Domain::Natural => &self.natural,
            Domain::Ad => &self.ad,
        }
    }

    /// The domain whose events `topic` carries, if it is one of ours.
    pub fn domain_of(&self, topic: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| self.topic(*d) == topic)
    }

    /// Both topics, natural first.
    pub fn all(&self) -> [&str; 2] {
        [&self.natural, &self.ad]
    }
}

/// Kafka settings of `ctrflow ingest` and `ctrflow produce` (the `[kafka]` table).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma separated `host:port` list.
    pub brokers: String,
    /// Consumer group of the ingest replicas (they share the partitions of both topics).
    pub group_id: String,
    /// The topic of each domain.
    pub topics: KafkaTopics,
    /// librdkafka properties passed through verbatim (e.g. `security.protocol`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`). Keys ctrflow
    /// sets itself (`bootstrap.servers`, `group.id`, `session.timeout.ms`,
    /// `enable.auto.commit`, `enable.auto.offset.store`) are rejected. Secret values are never
    /// logged or serialised.
    #[serde(serialize_with = "serialize_redacted")]
    pub properties: BTreeMap<String, String>,
    /// Consumer-group session timeout: a replica silent for this long loses its partitions.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Most rows in one emitted batch.
    pub max_batch_messages: usize,
    /// A batch is also emitted once its payloads reach this many bytes (default 32 MiB), so
    /// large messages do not make batches, and the channels that hold several of them, huge.
    pub max_batch_bytes: u64,
    /// Longest a partial batch waits for more messages before it is emitted.
    #[serde(with = "humantime_serde")]
    pub max_batch_wait: Duration,
    /// An epoch (barrier, manifest, offset commit) ends at most this long after it started.
    #[serde(with = "humantime_serde")]
    pub epoch_interval: Duration,
    /// An epoch also ends once it holds this many messages.
    pub epoch_max_messages: u64,
    /// An epoch also ends once its payloads reach this many bytes (default 1 GiB): it bounds
    /// what a crash makes ingest read again, and the offsets left uncommitted, when messages
    /// are large (200,000 messages of 40 KB would be 8 GB).
    pub epoch_max_bytes: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "ctrflow-ingest".into(),
            topics: KafkaTopics::default(),
            properties: BTreeMap::new(),
            session_timeout: Duration::from_secs(6),
            max_batch_messages: 10_000,
            max_batch_bytes: 32 << 20,
            max_batch_wait: Duration::from_millis(100),
            epoch_interval: Duration::from_secs(10),
            epoch_max_messages: 200_000,
            epoch_max_bytes: 1 << 30,
        }
    }
}

/// True when the value of librdkafka property `key` must never be shown.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "key.pem",
        "jaas",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k == "sasl.oauthbearer.config"
}

fn redact(properties: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    properties
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_key(k) {
                REDACTED.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

fn serialize_redacted<S: Serializer>(
    properties: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    redact(properties).serialize(s)
}

fn config_error(field: impl Into<String>, reason: impl Into<String>) -> OperatorError {
    OperatorError::Config {
        field: field.into(),
        reason: reason.into(),
    }
}

impl KafkaConfig {
    /// The domain whose events `topic` carries, if it is one of ours.
    pub fn domain_of(&self, topic: &str) -> Option<Domain> {
        self.topics.domain_of(topic)
    }

    /// `properties` with secret values replaced by `***` (safe to log).
    pub fn redacted_properties(&self) -> BTreeMap<String, String> {
        redact(&self.properties)
    }

    /// Checks every field; the error names the first invalid one (`kafka.<field>`).
    pub fn validate(&self) -> Result<(), OperatorError> {
        let brokers: Vec<&str> = self.brokers.split(',').map(str::trim).collect();
        if brokers.iter().any(|b| b.is_empty()) {
            return Err(config_error(
                "kafka.brokers",
                format!("`{}` is not a comma-separated host:port list", self.brokers),
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(config_error("kafka.group-id", "must not be empty"));
        }
        for (name, topic) in [("natural", &self.topics.natural), ("ad", &self.topics.ad)] {
            if topic.is_empty()
                || topic.len() > 249
                || !topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(config_error(
                    format!("kafka.topics.{name}"),
                    format!("`{topic}` is not a valid topic name ([a-zA-Z0-9._-], 1-249 chars)"),
                ));
            }
        }
        if self.topics.natural == self.topics.ad {
            return Err(config_error(
                "kafka.topics.ad",
                "must differ from `kafka.topics.natural` (one topic per domain)",
            ));
        }
        for (key, why) in RESERVED {
            if self.properties.contains_key(*key) {
                return Err(config_error(
                    format!("kafka.properties.{key}"),
                    format!("is set by ctrflow: {why}"),
                ));
            }
        }
        if let Some(key) = self.properties.keys().find(|k| k.trim().is_empty()) {
            return Err(config_error(
                "kafka.properties",
                format!("empty property name `{key}`"),
            ));
        }
        let ms = self.session_timeout.as_millis();
        if !(1_000..=3_600_000).contains(&ms) {
            return Err(config_error(
                "kafka.session-timeout",
                "must be between 1s and 1h",
            ));
        }
        if self.max_batch_messages == 0 {
            return Err(config_error(
                "kafka.max-batch-messages",
                "must be at least 1",
            ));
        }
        if self.max_batch_bytes == 0 {
            return Err(config_error("kafka.max-batch-bytes", "must be at least 1"));
        }
        if self.max_batch_wait.is_zero() {
            return Err(config_error("kafka.max-batch-wait", "must be positive"));
        }
        if self.epoch_interval.is_zero() {
            return Err(config_error("kafka.epoch-interval", "must be positive"));
        }
        if self.epoch_max_messages == 0 {
            return Err(config_error(
                "kafka.epoch-max-messages",
                "must be at least 1",
            ));
        }
        if self.epoch_max_bytes == 0 {
            return Err(config_error("kafka.epoch-max-bytes", "must be at least 1"));
        }
        Ok(())
    }

    /// Pass-through properties plus the broker list (shared by consumer, producer and admin).
    fn base_client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c.set("bootstrap.servers", &self.brokers);
        c
    }

    /// The consumer configuration: manual commits only, our group and session timeout.
    pub fn consumer_client_config(&self) -> ClientConfig {
        let mut c = self.base_client_config();
        c.set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "session.timeout.ms",
                self.session_timeout.as_millis().to_string(),
            );
        for (k, v) in [
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("statistics.interval.ms", "5000"),
        ] {
            if !self.properties.contains_key(k) {
                c.set(k, v);
            }
        }
        c
    }

    /// The producer configuration: idempotent, short linger, unless overridden in `properties`.
    pub(super) fn producer_client_config(&self) -> ClientConfig {
        let mut c = self.base_client_config();
        for (k, v) in [("enable.idempotence", "true"), ("linger.ms", "5")] {
            if !self.properties.contains_key(k) {
                c.set(k, v);
            }
        }
        c
    }

    /// The admin-client configuration.
    pub(super) fn admin_client_config(&self) -> ClientConfig {
        self.base_client_config()
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("properties", &self.redacted_properties())
            .field("session_timeout", &self.session_timeout)
            .field("max_batch_messages", &self.max_batch_messages)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_batch_wait", &self.max_batch_wait)
            .field("epoch_interval", &self.epoch_interval)
            .field("epoch_max_messages", &self.epoch_max_messages)
            .field("epoch_max_bytes", &self.epoch_max_bytes)
            .finish()
    }
}

impl fmt::Display for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "brokers={} group={} topics=[natural={}, ad={}] session-timeout={:?} \
             batch<={} msgs/{} bytes/{:?} epoch<={} msgs/{} bytes/{:?}",
            self.brokers,
            self.group_id,
            self.topics.natural,
            self.topics.ad,
            self.session_timeout,
            self.max_batch_messages,
            self.max_batch_bytes,
            self.max_batch_wait,
            self.epoch_max_messages,
            self.epoch_max_bytes,
            self.epoch_interval,
        )?;
        for (k, v) in self.redacted_properties() {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}
