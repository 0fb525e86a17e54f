//! `ctrflow generate` end to end: the CLI writes a Parquet archive with day manifests, and SQL
//! over the store sees exactly what the manifests list.

use std::process::ExitCode;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use ctrflow_operators::sql::{run_query, trusted_landing_files};
use ctrflow_schemas::{DayManifest, Domain, EventSchema, KeyLayout, decode_manifest};
use ctrflow_storage::Storage;

fn i64_at(batches: &[RecordBatch], col: usize, row: usize) -> i64 {
    batches[0]
        .column(col)
        .as_primitive::<Int64Type>()
        .value(row)
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_archive_is_queryable_and_matches_its_manifests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().display().to_string();
    let s = store.clone();
    let status = tokio::task::spawn_blocking(move || {
        ctrflow_pipeline::run([
            "ctrflow",
            "generate",
            "--store",
            &s,
            "--days",
            "3",
            "--users",
            "300",
            "--events-per-day",
            "4200",
            "--seed",
            "11",
            "--start-date",
            "2024-05-01",
        ])
    })
    .await
    .expect("join");
    assert_eq!(status, ExitCode::SUCCESS);

    let storage = Storage::open(&store).expect("open");
    let layout = KeyLayout;
    let mut manifest_rows = 0;
    for domain in Domain::ALL {
        for date in ["2024-05-01", "2024-05-02", "2024-05-03"] {
            let key = layout.day_success(domain, date.parse().expect("date"));
            let bytes = storage.get(&key).await.expect("day manifest exists");
            let day: DayManifest = decode_manifest(&key, &bytes).expect("decode");
            assert!(day.rows > 0, "{key} has rows");
            manifest_rows += day.rows;
        }
    }

    let schema = EventSchema::default();
    let batches = run_query(
        &storage,
        &schema,
        "SELECT (SELECT count(*) FROM natural) AS n, (SELECT count(*) FROM ad) AS a, \
                (SELECT count(DISTINCT event_id) FROM natural) AS n_distinct",
    )
    .await
    .expect("query");
    let (n, a, distinct) = (
        i64_at(&batches, 0, 0),
        i64_at(&batches, 1, 0),
        i64_at(&batches, 2, 0),
    );
    assert_eq!(
        (n + a) as u64,
        manifest_rows,
        "SQL sees exactly the manifest rows"
    );
    assert_eq!(n, distinct, "event ids are unique");
    assert!(
        (15.0..=26.0).contains(&(n as f64 / a as f64)),
        "natural/ad = {}",
        n as f64 / a as f64
    );

    let batches = run_query(
        &storage,
        &schema,
        "SELECT CAST(event_time AS DATE) AS day, count(*) AS events, avg(CAST(label AS DOUBLE)) AS ctr, \
                max(array_length(hist_item_ids)) AS longest \
         FROM ad GROUP BY 1 ORDER BY 1",
    )
    .await
    .expect("per-day query");
    let b = &batches[0];
    assert_eq!(b.num_rows(), 3, "three days");
    let ctr = b.column(2).as_primitive::<Float64Type>();
    for i in 0..3 {
        assert!(
            (0.01..0.15).contains(&ctr.value(i)),
            "ad ctr {}",
            ctr.value(i)
        );
    }

    // An orphan file (listed by no manifest) is invisible to SQL.
    let files = trusted_landing_files(&storage, Domain::Ad, None)
        .await
        .expect("files");
    let orphan = files[0].replace("part-gen-", "part-orphan-");
    let bytes = storage.get(&files[0]).await.expect("read file");
    storage
        .put_once(&orphan, bytes)
        .await
        .expect("write orphan");
    let again = run_query(&storage, &schema, "SELECT count(*) FROM ad")
        .await
        .expect("count");
    assert_eq!(i64_at(&again, 0, 0), a, "orphans are ignored");
}

#[tokio::test(flavor = "multi_thread")]
async fn same_seed_gives_identical_bytes_through_the_cli() {
    let mut listings = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().display().to_string();
        let s = store.clone();
        let status = tokio::task::spawn_blocking(move || {
            ctrflow_pipeline::run([
                "ctrflow",
                "generate",
                "--store",
                &s,
                "--days",
                "1",
                "--users",
                "100",
                "--events-per-day",
                "1000",
                "--seed",
                "5",
            ])
        })
        .await
        .expect("join");
        assert_eq!(status, ExitCode::SUCCESS);
        let storage = Storage::open(&store).expect("open");
        let mut files = Vec::new();
        for obj in storage.list("landing/").await.expect("list") {
            if obj.key.ends_with(".parquet") {
                files.push((obj.key.clone(), storage.get(&obj.key).await.expect("get")));
            }
        }
        assert!(!files.is_empty());
        listings.push((files, dir));
    }
    assert_eq!(
        listings[0].0, listings[1].0,
        "same seed, same keys and bytes"
    );
}
