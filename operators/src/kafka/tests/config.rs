use std::time::Duration;

use ctrflow_schemas::Domain;

use super::super::*;
use crate::OperatorError;

fn field_of(e: OperatorError) -> String {
    match e {
        OperatorError::Config { field, .. } => field,
        other => panic!("expected a config error, got {other}"),
    }
}

fn with_secrets() -> KafkaConfig {
    let mut c = KafkaConfig::default();
    for (k, v) in [
        ("sasl.password", "hunter2"),
        ("ssl.key.password", "kp-secret-1"),
        ("ssl.keystore.password", "ks-secret-2"),
        ("sasl.oauthbearer.client.secret", "oauth-3"),
        ("my.custom.Secret.thing", "custom-4"),
        ("sasl.username", "alice"),
        ("security.protocol", "SASL_SSL"),
    ] {
        c.properties.insert(k.into(), v.into());
    }
    c
}

const SECRETS: [&str; 5] = [
    "hunter2",
    "kp-secret-1",
    "ks-secret-2",
    "oauth-3",
    "custom-4",
];

#[test]
fn defaults_are_documented_values_and_valid() {
    let c = KafkaConfig::default();
    assert_eq!(c.brokers, "127.0.0.1:9092");
    assert_eq!(c.group_id, "ctrflow-ingest");
    assert_eq!(c.topics.natural, "ctrflow.natural");
    assert_eq!(c.topics.ad, "ctrflow.ad");
    assert_eq!(c.session_timeout, Duration::from_secs(6));
    assert_eq!(c.max_batch_messages, 10_000);
    assert_eq!(c.max_batch_bytes, 32 << 20);
    assert_eq!(c.max_batch_wait, Duration::from_millis(100));
    assert_eq!(c.epoch_interval, Duration::from_secs(10));
    assert_eq!(c.epoch_max_messages, 200_000);
    assert_eq!(c.epoch_max_bytes, 1 << 30);
    c.validate().expect("defaults are valid");
}

#[test]
fn parses_kebab_case_and_human_durations() {
    let c: KafkaConfig = serde_json::from_str(
        r#"{"brokers": "b1:9092,b2:9092", "group-id": "g", "topics": {"ad": "ads"},
            "session-timeout": "5s", "max-batch-wait": "250ms", "epoch-interval": "1m",
            "epoch-max-messages": 7, "epoch-max-bytes": 4096,
            "properties": {"security.protocol": "SSL"}}"#,
    )
    .expect("parse");
    assert_eq!(c.brokers, "b1:9092,b2:9092");
    assert_eq!(c.topics.natural, "ctrflow.natural");
    assert_eq!(c.topics.ad, "ads");
    assert_eq!(c.session_timeout, Duration::from_secs(5));
    assert_eq!(c.max_batch_wait, Duration::from_millis(250));
    assert_eq!(c.epoch_interval, Duration::from_secs(60));
    assert_eq!(c.epoch_max_messages, 7);
    assert_eq!(c.epoch_max_bytes, 4096);
    c.validate().expect("valid");
}

#[test]
fn rejects_unknown_fields() {
    let e = serde_json::from_str::<KafkaConfig>(r#"{"broker": "x:1"}"#).expect_err("unknown");
    assert!(e.to_string().contains("broker"), "{e}");
    let e =
        serde_json::from_str::<KafkaConfig>(r#"{"topics": {"nat": "x"}}"#).expect_err("unknown");
    assert!(e.to_string().contains("nat"), "{e}");
}

#[test]
fn validation_errors_name_the_field() {
    type Mutation = Box<dyn Fn(&mut KafkaConfig)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("kafka.brokers", Box::new(|c| c.brokers = "a:1,,b:2".into())),
        ("kafka.brokers", Box::new(|c| c.brokers = String::new())),
        ("kafka.group-id", Box::new(|c| c.group_id = " ".into())),
        (
            "kafka.topics.natural",
            Box::new(|c| c.topics.natural = "bad topic".into()),
        ),
        (
            "kafka.topics.ad",
            Box::new(|c| c.topics.ad = c.topics.natural.clone()),
        ),
        (
            "kafka.session-timeout",
            Box::new(|c| c.session_timeout = Duration::from_millis(10)),
        ),
        (
            "kafka.max-batch-messages",
            Box::new(|c| c.max_batch_messages = 0),
        ),
        ("kafka.max-batch-bytes", Box::new(|c| c.max_batch_bytes = 0)),
        (
            "kafka.max-batch-wait",
            Box::new(|c| c.max_batch_wait = Duration::ZERO),
        ),
        (
            "kafka.epoch-interval",
            Box::new(|c| c.epoch_interval = Duration::ZERO),
        ),
        (
            "kafka.epoch-max-messages",
            Box::new(|c| c.epoch_max_messages = 0),
        ),
        ("kafka.epoch-max-bytes", Box::new(|c| c.epoch_max_bytes = 0)),
    ];
    for (field, mutate) in cases {
        let mut c = KafkaConfig::default();
        mutate(&mut c);
        assert_eq!(field_of(c.validate().expect_err(field)), field);
    }
}

#[test]
fn reserved_properties_are_rejected() {
    for key in [
        "enable.auto.commit",
        "enable.auto.offset.store",
        "group.id",
        "bootstrap.servers",
        "session.timeout.ms",
    ] {
        let mut c = KafkaConfig::default();
        c.properties.insert(key.into(), "x".into());
        assert_eq!(
            field_of(c.validate().expect_err(key)),
            format!("kafka.properties.{key}")
        );
    }
}

#[test]
fn secrets_are_redacted_everywhere() {
    let c = with_secrets();
    let debug = format!("{c:?}");
    let display = c.to_string();
    let json = serde_json::to_string(&c).expect("serialize");
    for rendered in [&debug, &display, &json] {
        for s in SECRETS {
            assert!(!rendered.contains(s), "secret {s} leaked in {rendered}");
        }
        assert!(rendered.contains("alice"), "non-secret kept: {rendered}");
        assert!(rendered.contains(REDACTED));
    }
    let r = c.redacted_properties();
    assert_eq!(r["sasl.password"], REDACTED);
    assert_eq!(r["sasl.oauthbearer.client.secret"], REDACTED);
    assert_eq!(r["security.protocol"], "SASL_SSL");
    // The real values are still there for the client.
    assert_eq!(c.properties["sasl.password"], "hunter2");
}

#[test]
fn secret_keys_are_recognised() {
    for k in [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
        "X.PASSWORD.y",
    ] {
        assert!(is_secret_key(k), "{k}");
    }
    for k in [
        "sasl.username",
        "security.protocol",
        "ssl.ca.location",
        "linger.ms",
    ] {
        assert!(!is_secret_key(k), "{k}");
    }
}

#[test]
fn domain_of_maps_topics() {
    let c = KafkaConfig::default();
    assert_eq!(c.domain_of("ctrflow.natural"), Some(Domain::Natural));
    assert_eq!(c.domain_of("ctrflow.ad"), Some(Domain::Ad));
    assert_eq!(c.domain_of("other"), None);
    assert_eq!(c.topics.topic(Domain::Ad), "ctrflow.ad");
}

#[test]
fn invalid_librdkafka_property_is_a_config_error() {
    let mut c = KafkaConfig::default();
    c.properties
        .insert("fetch.wait.max.ms".into(), "soon".into());
    let (coordination, _end) = coordination_channels(
        ctrflow_schemas::Epoch(0),
        std::sync::Arc::new(std::collections::HashMap::new()),
        1,
    );
    let e = KafkaSource::new(&c, coordination)
        .err()
        .expect("invalid value");
    assert_eq!(field_of(e), "kafka.properties.fetch.wait.max.ms");
    let mut c = KafkaConfig::default();
    c.properties.insert("no.such.property".into(), "1".into());
    let e = KafkaProducer::new(&c).expect_err("unknown property");
    assert_eq!(field_of(e), "kafka.properties.no.such.property");
}
