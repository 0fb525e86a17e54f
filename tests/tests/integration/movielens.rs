//! `ctrflow import movielens` on the real MovieLens-100k files (fetched by the test command).
//! Expected numbers were counted independently with Python from the same files.

use std::process::ExitCode;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use ctrflow_operators::sql::run_query;
use ctrflow_schemas::EventSchema;
use ctrflow_storage::Storage;
use ctrflow_test_support::movielens_100k_dir;

fn i64_at(batches: &[RecordBatch], col: usize) -> i64 {
    batches[0].column(col).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_movielens_100k_with_the_documented_mapping() {
    let data = movielens_100k_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().display().to_string();
    let (d, s) = (data.display().to_string(), store.clone());
    let status = tokio::task::spawn_blocking(move || {
        ctrflow_pipeline::run(["ctrflow", "import", "movielens", &d, "--store", &s])
    })
    .await
    .expect("join");
    assert_eq!(status, ExitCode::SUCCESS);

    let storage = Storage::open(&store).expect("open");
    let schema = EventSchema::default();
    let b = run_query(
        &storage,
        &schema,
        "SELECT (SELECT count(*) FROM natural) + (SELECT count(*) FROM ad) AS total, \
                (SELECT sum(CAST(label AS BIGINT)) FROM natural) + (SELECT sum(CAST(label AS BIGINT)) FROM ad) AS likes, \
                (SELECT count(*) FROM ad) AS ad, \
                (SELECT sum(CAST(label AS BIGINT)) FROM ad) AS ad_likes, \
                (SELECT count(DISTINCT CAST(event_time AS DATE)) FROM natural) AS natural_days, \
                (SELECT count(DISTINCT user_id) FROM natural) + 0 AS users_natural",
    )
    .await
    .expect("query");
    assert_eq!(i64_at(&b, 0), 100_000, "every rating is an event");
    assert_eq!(i64_at(&b, 1), 55_375, "label = rating >= 4");
    assert_eq!(i64_at(&b, 2), 7_855, "ad = Children's or Animation");
    assert_eq!(i64_at(&b, 3), 3_874, "liked ad movies");
    assert!(i64_at(&b, 4) > 150, "events spread over the 213 days");

    // Sequences are causal: the first event of each user has an empty history, and a history
    // never exceeds the number of the user's earlier ratings.
    let b = run_query(
        &storage,
        &schema,
        "WITH e AS (SELECT user_id, event_time, array_length(hist_item_ids) AS n FROM natural \
                    UNION ALL SELECT user_id, event_time, array_length(hist_item_ids) AS n FROM ad), \
              r AS (SELECT n, row_number() OVER (PARTITION BY user_id ORDER BY event_time, n) - 1 AS earlier FROM e) \
         SELECT count(*) FILTER (WHERE coalesce(n, 0) > earlier) AS leaks, \
                count(*) FILTER (WHERE earlier = 0 AND coalesce(n, 0) = 0) AS firsts \
         FROM r",
    )
    .await
    .expect("causality query");
    assert_eq!(i64_at(&b, 0), 0, "no history contains later ratings");
    assert_eq!(
        i64_at(&b, 1),
        943,
        "each of the 943 users starts with an empty history"
    );

    // Every day from the first to the last rating is closed for both domains.
    let days = storage
        .list("landing/ad/")
        .await
        .expect("list")
        .into_iter()
        .filter(|o| o.key.ends_with("/_SUCCESS"))
        .count();
    assert_eq!(
        days, 215,
        "1997-09-20 ..= 1998-04-22, including the 2 days without ratings"
    );
}
