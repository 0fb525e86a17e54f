//! `ctrflow demo` end to end: on librdkafka's mock cluster with a local store, and against a real
//! broker (tansu) and S3 (moto).

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_end_to_end_on_the_mock_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo_dir = dir.path().join("demo");
    let d = demo_dir.display().to_string();
    let status = tokio::task::spawn_blocking(move || {
        ctrflow_pipeline::run([
            "ctrflow",
            "demo",
            "--dir",
            &d,
            "--days",
            "3",
            "--events-per-day",
            "2500",
            "--users",
            "300",
        ])
    })
    .await
    .expect("join");
    assert_eq!(
        format!("{status:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    let storage = Storage::open(&demo_dir.join("store").display().to_string()).expect("store");
    let published = Published::load(&storage, &storage).await.expect("load");
    for kind in ModelKind::ALL {
        assert!(published.latest.contains_key(&kind), "{kind} has no LATEST");
    }
    assert_eq!(published.versions(ModelKind::Actr).count(), 2);
    assert!(published.closed[&ctrflow_schemas::Domain::Ad].len() >= 3);
    assert_consistent(&storage, "after the demo").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_against_a_real_broker_and_s3() {
    let bucket = ctrflow_test_support::s3_bucket(&ctrflow_test_support::unique_name("demo"));
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = ctrflow_test_support::s3_endpoint();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ctrflow-under-test"))
        .args([
            "demo",
            "--brokers",
            &ctrflow_test_support::brokers(),
            "--store",
            &bucket.url,
            "--dir",
            &dir.path().display().to_string(),
            "--days",
            "3",
            "--events-per-day",
            "2500",
            "--users",
            "300",
        ])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .output()
        .await
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n"),
        stdout
    );
    assert!(stdout.contains("actr"), "{stdout}");
    let storage = Storage::open_with_options(&bucket.url, &bucket.option_refs()).expect("s3 store");
    let published = Published::load(&storage, &storage).await.expect("load");
    for kind in ModelKind::ALL {
        assert!(
            published.latest.contains_key(&kind),
            "{kind} has no LATEST on S3"
        );
    }
    assert_consistent(&storage, "after the demo on S3").await;
}
