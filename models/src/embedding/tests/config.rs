//! Table configuration: parsing with defaults, unknown fields, validation naming the field.

use super::*;

#[test]
fn config_parses_kebab_case_with_defaults_and_rejects_unknown_fields() {
    let c: EmbeddingTableConfig = serde_json::from_str(
        r#"{"dim": 8, "kind": {"type": "hashed", "buckets": 64}, "admission-threshold": 2,
            "optimizer": {"learning-rate": 0.05, "weight-decay": 0.01}}"#,
    )
    .expect("parse");
    assert_eq!(c.kind, TableKind::Hashed { buckets: 64 });
    assert_eq!(c.admission_threshold, 2);
    assert_eq!(c.optimizer.learning_rate, 0.05);
    assert_eq!(c.optimizer.beta2, 0.999);
    assert_eq!(c.max_rows, 1_000_000);
    assert_eq!(c.expiry_days, None);
    c.validate().expect("valid");

    let e = serde_json::from_str::<EmbeddingTableConfig>(r#"{"dim": 8, "max_rows": 3}"#)
        .expect_err("snake case is unknown");
    assert!(e.to_string().contains("max_rows"), "{e}");
    serde_json::from_str::<EmbeddingTableConfig>(r#"{"max-rows": 3}"#).expect_err("dim required");
    serde_json::from_str::<EmbeddingTableConfig>(
        r#"{"dim": 8, "kind": {"type": "managed", "buckets": 3}}"#,
    )
    .expect_err("managed has no buckets");
    serde_json::from_str::<EmbeddingTableConfig>(r#"{"dim": 8, "kind": {"type": "hashed"}}"#)
        .expect_err("hashed needs buckets");
    serde_json::from_str::<EmbeddingTableConfig>(
        r#"{"dim": 8, "kind": {"type": "hashed", "buckets": 3, "bucket": 4}}"#,
    )
    .expect_err("unknown kind field");
    // Serialising and parsing again gives the same config.
    let back: EmbeddingTableConfig =
        serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("parse");
    assert_eq!(back, c);
}

#[test]
fn validate_names_the_offending_field() {
    let cases: Vec<(EmbeddingTableConfig, &str)> = vec![
        (EmbeddingTableConfig::new(0), "dim"),
        (
            EmbeddingTableConfig {
                kind: TableKind::Hashed { buckets: 0 },
                ..config(4)
            },
            "kind.buckets",
        ),
        (
            EmbeddingTableConfig {
                admission_threshold: 0,
                ..config(4)
            },
            "admission-threshold",
        ),
        (
            EmbeddingTableConfig {
                expiry_days: Some(0),
                ..config(4)
            },
            "expiry-days",
        ),
        (
            EmbeddingTableConfig {
                max_rows: 0,
                ..config(4)
            },
            "max-rows",
        ),
        (
            EmbeddingTableConfig {
                init_std: f32::NAN,
                ..config(4)
            },
            "init-std",
        ),
        (
            EmbeddingTableConfig {
                optimizer: SparseAdamConfig {
                    beta1: 1.0,
                    ..SparseAdamConfig::default()
                },
                ..config(4)
            },
            "optimizer.beta1",
        ),
        (
            EmbeddingTableConfig {
                optimizer: SparseAdamConfig {
                    learning_rate: 0.0,
                    ..SparseAdamConfig::default()
                },
                ..config(4)
            },
            "optimizer.learning-rate",
        ),
        (
            EmbeddingTableConfig {
                optimizer: SparseAdamConfig {
                    eps: -1.0,
                    ..SparseAdamConfig::default()
                },
                ..config(4)
            },
            "optimizer.eps",
        ),
    ];
    for (c, field) in cases {
        match c.validate() {
            Err(ModelsError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
        assert!(EmbeddingTable::new(c).is_err());
    }
}
