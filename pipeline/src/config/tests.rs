//! Configuration layering (defaults, file, environment, flags) and errors that name the field.

use super::*;
use std::io::Write;

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_then_file_then_env() {
    let f = write("[generator]\nusers = 123\ndays = 3\n[store]\nurl = \"memory://x\"\n");
    let c = CtrflowConfig::load(
        Some(f.path()),
        env(&[
            ("CTRFLOW__GENERATOR__DAYS", "9"),
            ("CTRFLOW__MOVIELENS__AD_GENRES", "[\"Horror\"]"),
            ("CTRFLOW__LOG__LEVEL", "debug"),
            ("OTHER", "ignored"),
        ]),
    )
    .expect("load");
    assert_eq!(c.generator.users, 123, "file overrides default");
    assert_eq!(c.generator.days, 9, "env overrides file");
    assert_eq!(c.store.url, "memory://x");
    assert_eq!(c.movielens.ad_genres, vec!["Horror".to_string()]);
    assert_eq!(c.log.level, "debug", "a bare word is a string");
    assert_eq!(
        c.generator.items,
        GeneratorConfig::default().items,
        "untouched fields keep defaults"
    );
    let none = CtrflowConfig::load(None, env(&[])).expect("defaults");
    assert_eq!(none, CtrflowConfig::default());
}

#[test]
fn the_network_section_reaches_the_ctr_network() {
    let default = CtrflowConfig::default().daily.ctr_net(0);
    assert!(default.use_historical && default.historical_items);
    let f = write("[daily.network]\nhistorical-items = false\n");
    let c = CtrflowConfig::load(
        Some(f.path()),
        env(&[("CTRFLOW__DAILY__NETWORK__D_EMBED", "8")]),
    )
    .expect("load");
    let net = c.daily.ctr_net(0);
    assert!(net.use_historical && !net.historical_items);
    assert_eq!(net.d_embed, 8);
}

#[test]
fn initial_epochs_apply_to_restarts_and_are_validated() {
    use ctrflow_schedule::Start;
    let f = write("[daily.actr]\nepochs = 2\ninitial-epochs = 1\n");
    let c = CtrflowConfig::load(Some(f.path()), env(&[])).expect("load");
    let version = ctrflow_schemas::ModelVersion::for_date("2024-03-01".parse().expect("date"));
    assert_eq!(
        c.daily.actr.epochs_for(&Start::Continue(version.clone())),
        2
    );
    assert_eq!(c.daily.actr.epochs_for(&Start::FromCpm(version)), 1);
    assert_eq!(c.daily.actr.epochs_for(&Start::Fresh), 1);
    // Unset, a restart takes `epochs` too.
    assert_eq!(c.daily.cpm.epochs_for(&Start::Fresh), 1);
    let f = write("[daily.tpm]\nepochs = 3\n");
    let c = CtrflowConfig::load(Some(f.path()), env(&[])).expect("load");
    assert_eq!(c.daily.tpm.epochs_for(&Start::Fresh), 3);

    let f = write("[daily.cpm]\ninitial-epochs = 0\n");
    let text = CtrflowConfig::load(Some(f.path()), env(&[]))
        .expect_err("zero passes")
        .to_string();
    assert!(text.contains("daily.cpm.initial-epochs"), "{text}");
}

#[test]
fn only_actr_may_freeze_the_historical_attention() {
    let f = write("[daily.actr.train]\nfreeze-historical = true\n");
    let c = CtrflowConfig::load(Some(f.path()), env(&[])).expect("load");
    assert!(c.daily.actr.train.freeze_historical);
    assert!(!c.daily.cpm.train.freeze_historical);
    let f = write("[daily.cpm.train]\nfreeze-historical = true\n");
    let text = CtrflowConfig::load(Some(f.path()), env(&[]))
        .expect_err("CPM trains the attention")
        .to_string();
    assert!(text.contains("daily.cpm.train.freeze-historical"), "{text}");
}

#[test]
fn point_in_time_snapshots_need_the_historical_feature() {
    let f = write("[daily.network]\nhistorical-point-in-time = true\n");
    let c = CtrflowConfig::load(Some(f.path()), env(&[])).expect("load");
    assert!(c.daily.network.historical_point_in_time);
    let f = write("[daily.network]\nhistorical-point-in-time = true\nuse-historical = false\n");
    let text = CtrflowConfig::load(Some(f.path()), env(&[]))
        .expect_err("nothing to read point in time")
        .to_string();
    assert!(
        text.contains("daily.network.historical-point-in-time"),
        "{text}"
    );
}

#[test]
fn unknown_keys_name_the_key_and_the_allowed_ones() {
    let f = write("[generator]\nuserz = 1\n");
    let err = CtrflowConfig::load(Some(f.path()), env(&[])).expect_err("unknown");
    let text = err.to_string();
    assert!(text.contains("userz") && text.contains("users"), "{text}");
    assert!(text.contains("line 2"), "{text}");

    let f = write("[trainer]\nx = 1\n");
    let text = CtrflowConfig::load(Some(f.path()), env(&[]))
        .expect_err("section")
        .to_string();
    assert!(text.contains("trainer"), "{text}");

    let err = CtrflowConfig::load(None, env(&[("CTRFLOW__GENERATOR__USERZ", "1")]))
        .expect_err("unknown env");
    let text = err.to_string();
    assert!(
        text.contains("CTRFLOW__GENERATOR__USERZ") && text.contains("userz"),
        "{text}"
    );
}

#[test]
fn wrong_types_are_named() {
    let f = write("[generator]\nusers = \"many\"\n");
    let text = CtrflowConfig::load(Some(f.path()), env(&[]))
        .expect_err("type")
        .to_string();
    assert!(text.contains("users") && text.contains("line 2"), "{text}");

    let err = CtrflowConfig::load(None, env(&[("CTRFLOW__SCHEMA__MAX_SEQ_LEN", "lots")]))
        .expect_err("env type");
    let text = err.to_string();
    assert!(
        text.contains("schema.max-seq-len") && text.contains("lots"),
        "{text}"
    );

    let f = write("[log]\nformat = \"xml\"\n");
    let text = CtrflowConfig::load(Some(f.path()), env(&[]))
        .expect_err("enum")
        .to_string();
    assert!(
        text.contains("xml") && text.contains("text") && text.contains("json"),
        "{text}"
    );

    let f = write("this is not toml");
    assert!(matches!(
        CtrflowConfig::load(Some(f.path()), env(&[])),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        CtrflowConfig::load(Some(Path::new("/nonexistent/ctrflow.toml")), env(&[])),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn out_of_range_values_name_field_and_range() {
    let cases = [
        ("CTRFLOW__SCHEMA__MAX_SEQ_LEN", "0", "schema.max-seq-len"),
        ("CTRFLOW__SCHEMA__CONTENT_DIM", "5000", "schema.content-dim"),
        ("CTRFLOW__MOVIELENS__AD_GENRES", "[]", "movielens.ad-genres"),
        (
            "CTRFLOW__MOVIELENS__LIKE_THRESHOLD",
            "11",
            "movielens.like-threshold",
        ),
        ("CTRFLOW__STORE__URL", "\" \"", "store.url"),
        ("CTRFLOW__GENERATOR__USERS", "0", "generator.users"),
        ("CTRFLOW__GENERATOR__DAYS", "0", "generator.days"),
        ("CTRFLOW__METRICS__LISTEN", "\"9464\"", "metrics.listen"),
        (
            "CTRFLOW__RUNTIME__WORKER_NICENESS",
            "20",
            "runtime.worker-niceness",
        ),
        (
            "CTRFLOW__INGEST__SINK__ZSTD_LEVEL",
            "0",
            "ingest.sink.zstd-level",
        ),
        (
            "CTRFLOW__INGEST__SINK__ZSTD_LEVEL",
            "23",
            "ingest.sink.zstd-level",
        ),
        (
            "CTRFLOW__INGEST__COORDINATOR__CHECKPOINT_EVERY",
            "0",
            "ingest.coordinator.checkpoint-every",
        ),
    ];
    for (var, value, field) in cases {
        let err = CtrflowConfig::load(None, env(&[(var, value)])).expect_err(var);
        match &err {
            ConfigError::Invalid { field: f, .. } => assert_eq!(f, field, "{err}"),
            other => panic!("{var}: expected Invalid, got {other}"),
        }
    }
    let err = CtrflowConfig::load(None, env(&[("CTRFLOW__GENERATOR__CONTENT_DIM", "8")]))
        .expect_err("mismatch");
    assert!(err.to_string().contains("schema.content-dim"), "{err}");
}

#[test]
fn the_shipped_config_files_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for name in [
        "demo.toml",
        "production.example.toml",
        "bench.toml",
        "experiment-ml1m.toml",
        "experiment-generated.toml",
    ] {
        CtrflowConfig::load(Some(&root.join(name)), env(&[]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn effective_config_renders_and_reloads() {
    let c = CtrflowConfig::default();
    let f = write(&c.to_toml());
    assert_eq!(
        CtrflowConfig::load(Some(f.path()), env(&[])).expect("reload"),
        c
    );
}
