//! [`KafkaProducer`]: delivery-confirmed, optionally rate-limited sends (idempotent producer),
//! and [`create_topics`] for real brokers.

use std::time::Duration;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::time::Instant;

use super::{KafkaConfig, client_creation_error, kafka_error};
use crate::OperatorError;

/// Deliveries awaited at once before sending more (bounds memory on huge inputs).
const MAX_IN_FLIGHT: usize = 50_000;
/// How long a send waits when librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(20);

/// A producer for `ctrflow produce` and tests: idempotent (`enable.idempotence=true`),
/// `linger.ms=5`, plus the pass-through properties of the config (which may override both).
pub struct KafkaProducer {
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer").finish_non_exhaustive()
    }
}

type Delivered = Result<
    rdkafka::producer::future_producer::OwnedDeliveryResult,
    futures::channel::oneshot::Canceled,
>;

fn check_delivery(r: Delivered) -> Result<(), OperatorError> {
    match r {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, m))) => Err(kafka_error(
            format!("delivering a message to `{}`", rdkafka::Message::topic(&m)),
            &e,
        )),
        Err(_) => Err(OperatorError::Kafka {
            context: "delivering a message".into(),
            message: "the producer was dropped before the delivery report".into(),
            retryable: true,
        }),
    }
}

impl KafkaProducer {
    /// Validates `config` and creates the producer (connections are made lazily).
    pub fn new(config: &KafkaConfig) -> Result<Self, OperatorError> {
        config.validate()?;
        let client = config.producer_client_config();
        // At the process's priority, like the consumer's threads (see `crate::priority`).
        let producer = crate::priority::at_base_priority(move || client.create())
            .map_err(|e| client_creation_error("creating the kafka producer", e))?;
        Ok(KafkaProducer { producer })
    }

    /// Sends every `(topic, key, payload)` and waits until the brokers acknowledged all of them.
    /// `rate` caps the send rate (messages per second); `progress` is called with the number of
    /// messages delivered so far. Returns that number; fails on the first failed delivery (some
    /// later messages may still be delivered). Within one partition, order is preserved.
    pub async fn send_all<I, T, K, P>(
        &self,
        messages: I,
        rate: Option<f64>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, OperatorError>
    where
        I: IntoIterator<Item = (T, K, P)>,
        T: AsRef<str>,
        K: AsRef<[u8]>,
        P: AsRef<[u8]>,
    {
        if let Some(r) = rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(OperatorError::Config {
                field: "rate".into(),
                reason: format!("{r} is not a positive number of messages per second"),
            });
        }
        let start = Instant::now();
        let mut in_flight: FuturesUnordered<DeliveryFuture> = FuturesUnordered::new();
        let (mut sent, mut delivered) = (0u64, 0u64);
        let mut done = |d: Delivered| -> Result<(), OperatorError> {
            check_delivery(d)?;
            delivered += 1;
            progress(delivered);
            Ok(())
        };
        for (topic, key, payload) in messages {
            if let Some(r) = rate {
                let due = start + Duration::from_secs_f64(sent as f64 / r);
                while Instant::now() < due {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        Some(d) = in_flight.next(), if !in_flight.is_empty() => done(d)?,
                    }
                }
            }
            loop {
                let record = FutureRecord::to(topic.as_ref())
                    .key(key.as_ref())
                    .payload(payload.as_ref());
                match self.producer.send_result(record) {
                    Ok(f) => {
                        in_flight.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // librdkafka's queue is full: wait for a delivery, or a moment.
                        match tokio::time::timeout(QUEUE_FULL_WAIT, in_flight.next()).await {
                            Ok(Some(d)) => done(d)?,
                            Ok(None) => tokio::time::sleep(QUEUE_FULL_WAIT).await,
                            Err(_) => {}
                        }
                    }
                    Err((e, _)) => {
                        let context = format!("sending a message to `{}`", topic.as_ref());
                        return Err(kafka_error(context, &e));
                    }
                }
            }
            sent += 1;
            while in_flight.len() >= MAX_IN_FLIGHT {
                if let Some(d) = in_flight.next().await {
                    done(d)?;
                }
            }
            while let Some(Some(d)) = in_flight.next().now_or_never() {
                done(d)?;
            }
        }
        while let Some(d) = in_flight.next().await {
            done(d)?;
        }
        Ok(delivered)
    }
}

/// Creates `topics` (name, partitions) with `replication` replicas; existing topics are left
/// alone. Real brokers only: librdkafka's mock cluster does not implement the admin API (tests
/// on it create topics through the mock cluster itself).
pub async fn create_topics(
    config: &KafkaConfig,
    topics: &[(&str, i32)],
    replication: i32,
) -> Result<(), OperatorError> {
    let admin: AdminClient<DefaultClientContext> = config
        .admin_client_config()
        .create()
        .map_err(|e| client_creation_error("creating the kafka admin client", e))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(name, *partitions, TopicReplication::Fixed(replication))
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(|e| kafka_error("creating topics", &e))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(OperatorError::Kafka {
                    context: format!("creating topic `{name}`"),
                    message: code.to_string(),
                    retryable: false,
                });
            }
        }
    }
    Ok(())
}
