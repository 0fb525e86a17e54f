use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_confirms_delivery_rate_limits_and_reports_progress() {
    let mock = cluster(2);
    let cfg = config(&mock.bootstrap_servers(), "unused");
    let producer = KafkaProducer::new(&cfg).expect("producer");
    let mut progress = Vec::new();
    let started = Instant::now();
    let n = producer
        .send_all(
            (0..40).map(|i| (AD, vec![i as u8], format!("p{i}"))),
            Some(200.0),
            |d| progress.push(d),
        )
        .await
        .expect("send");
    let took = started.elapsed();
    assert_eq!(n, 40);
    assert_eq!(progress.last(), Some(&40));
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "monotonic progress"
    );
    assert!(
        took >= Duration::from_millis(180),
        "40 msgs at 200/s took {took:?}"
    );
    // Every message is on the broker.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .expect("consumer");
    let total: i64 = (0..2)
        .map(|p| {
            let (lo, hi) = consumer
                .fetch_watermarks(AD, p, Duration::from_secs(5))
                .expect("watermarks");
            hi - lo
        })
        .sum();
    assert_eq!(total, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_fails_when_delivery_fails() {
    let mut cfg = KafkaConfig {
        brokers: "127.0.0.1:1".into(),
        ..KafkaConfig::default()
    };
    cfg.properties
        .insert("message.timeout.ms".into(), "500".into());
    let producer = KafkaProducer::new(&cfg).expect("producer");
    let e = producer
        .send_all([(NATURAL, b"k", b"v")], None, |_| {})
        .await
        .expect_err("no broker");
    match e {
        OperatorError::Kafka { retryable, .. } => assert!(retryable, "timeouts are retryable"),
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn send_all_rejects_a_bad_rate() {
    let producer = KafkaProducer::new(&KafkaConfig::default()).expect("producer");
    let e = producer
        .send_all([(NATURAL, b"k", b"v")], Some(0.0), |_| {})
        .await
        .expect_err("bad rate");
    assert!(matches!(e, OperatorError::Config { .. }), "{e}");
}
