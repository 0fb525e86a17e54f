//! The storage contract, one generic check per item; [`super`] runs each against every backend.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::TryStreamExt;

use super::TestResult;
use crate::{ErrorClass, ParquetWriteOptions, PutOutcome, Storage, StorageError};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

pub(crate) async fn put_get_head_delete(s: &Storage) -> TestResult {
    let key = "landing/ad/date=2024-01-01/part-x.parquet";
    assert_eq!(s.get_opt(key).await?, None);
    assert!(!s.exists(key).await?);
    let missing = s
        .get(key)
        .await
        .expect_err("get of a missing key must fail");
    assert!(
        matches!(missing, StorageError::NotFound { .. }),
        "{missing}"
    );
    assert_eq!(missing.class(), ErrorClass::NotFound);
    assert!(
        missing.to_string().contains(key),
        "error names the key: {missing}"
    );

    assert_eq!(s.put_once(key, b("hello")).await?, PutOutcome::Created);
    assert_eq!(s.get(key).await?, b("hello"));
    assert_eq!(s.get_opt(key).await?, Some(b("hello")));
    let info = s.head_opt(key).await?.expect("head of an existing key");
    assert_eq!(info.key, key);
    assert_eq!(info.size, 5);
    assert!(s.exists(key).await?);

    s.delete(key).await?;
    assert!(!s.exists(key).await?);
    s.delete(key).await?; // deleting a missing key is fine

    for bad in ["", "/", "a//b", "a/../b", "a/./b", "dir/"] {
        let e = s
            .get_opt(bad)
            .await
            .expect_err("invalid key must be rejected");
        assert!(matches!(e, StorageError::InvalidKey { .. }), "{bad:?}: {e}");
        assert_eq!(e.class(), ErrorClass::User);
    }
    Ok(())
}

pub(crate) async fn list_and_list_dirs(s: &Storage) -> TestResult {
    let keys = [
        "landing/ad/date=2024-01-02/part-a",
        "landing/ad/date=2024-01-01/part-b",
        "landing/ad/date=2024-01-01/part-a",
        "landing/adx/date=2024-01-01/part-a",
        "landing/natural/date=2024-01-01/part-a",
        "top",
    ];
    for key in keys {
        s.put_once(key, Bytes::from(key.to_string())).await?;
    }
    let listed: Vec<String> = s
        .list("landing/ad")
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        listed,
        [
            "landing/ad/date=2024-01-01/part-a",
            "landing/ad/date=2024-01-01/part-b",
            "landing/ad/date=2024-01-02/part-a",
        ],
        "segment-wise prefix, sorted, relative to the root"
    );
    let with_slash: Vec<String> = s
        .list("landing/ad/")
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, with_slash);
    let all = s.list("").await?;
    assert_eq!(all.len(), keys.len());
    assert!(all.windows(2).all(|w| w[0].key < w[1].key), "sorted");
    assert_eq!(all.iter().find(|o| o.key == "top").map(|o| o.size), Some(3));
    let after: Vec<String> = s
        .list_after("landing/ad", "landing/ad/date=2024-01-01/part-a")
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        after,
        [
            "landing/ad/date=2024-01-01/part-b",
            "landing/ad/date=2024-01-02/part-a",
        ],
        "list_after: only later keys, sorted"
    );
    assert!(
        s.list_after("landing/ad", "landing/ad/date=2024-01-02/part-a")
            .await?
            .is_empty()
    );
    let streamed: Vec<_> = s.list_stream("landing")?.try_collect().await?;
    assert_eq!(streamed.len(), 5);

    assert_eq!(
        s.list_dirs("landing/ad").await?,
        ["landing/ad/date=2024-01-01", "landing/ad/date=2024-01-02"]
    );
    assert_eq!(
        s.list_dirs("landing").await?,
        ["landing/ad", "landing/adx", "landing/natural"]
    );
    assert_eq!(s.list_dirs("").await?, ["landing"]);
    assert!(s.list("nothing/here").await?.is_empty());
    assert!(s.list_dirs("nothing/here").await?.is_empty());
    Ok(())
}

pub(crate) async fn write_once_replay_and_violation(s: &Storage) -> TestResult {
    let key = "models/tpm/0001/manifest.json";
    assert_eq!(s.put_once(key, b("{\"v\":1}")).await?, PutOutcome::Created);
    assert_eq!(
        s.put_once(key, b("{\"v\":1}")).await?,
        PutOutcome::AlreadyExisted,
        "identical replay is idempotent"
    );
    let e = s
        .put_once(key, b("{\"v\":2}"))
        .await
        .expect_err("different bytes must be refused");
    assert!(
        matches!(&e, StorageError::WriteOnceViolation { key: k } if k == key),
        "{e}"
    );
    assert!(e.is_conflict() && !e.is_retryable());
    assert_eq!(s.get(key).await?, b("{\"v\":1}"), "original content kept");
    Ok(())
}

pub(crate) async fn write_once_concurrent_identical(s: &Storage) -> TestResult {
    let key = "landing/_epochs/00000000000000000007.json";
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(
            async move { s.put_once(key, b("epoch-7")).await },
        ));
    }
    let mut created = 0;
    for t in tasks {
        if t.await?? == PutOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one writer creates the key");
    assert_eq!(s.get(key).await?, b("epoch-7"));
    Ok(())
}

pub(crate) async fn pointer_create_and_replace(s: &Storage) -> TestResult {
    let key = "models/actr/LATEST";
    assert_eq!(s.read_pointer(key).await?, None);
    let v1 = s.swap_pointer(key, b("0001"), None).await?;
    let p = s.read_pointer(key).await?.expect("pointer exists");
    assert_eq!(p.bytes, b("0001"));
    assert_eq!(
        p.version, v1,
        "read version equals the version the swap returned"
    );

    let e = s
        .swap_pointer(key, b("other"), None)
        .await
        .expect_err("create-only swap of an existing pointer");
    assert!(matches!(e, StorageError::PointerConflict { .. }), "{e}");

    let v2 = s.swap_pointer(key, b("0002"), Some(&v1)).await?;
    assert_ne!(v1, v2);
    assert_eq!(s.read_pointer(key).await?.map(|p| p.bytes), Some(b("0002")));
    let e = s
        .swap_pointer(key, b("0003"), Some(&v1))
        .await
        .expect_err("stale version must lose");
    assert!(matches!(e, StorageError::PointerConflict { .. }), "{e}");
    assert!(e.is_conflict() && !e.is_retryable());
    let v3 = s.swap_pointer(key, b("0003"), Some(&v2)).await?;
    let p = s.read_pointer(key).await?.expect("pointer exists");
    assert_eq!((p.bytes, p.version), (b("0003"), v3));
    // No lock or marker objects are left behind.
    let left: Vec<String> = s
        .list("models/actr")
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left, [key]);
    Ok(())
}

pub(crate) async fn pointer_lost_race(s: &Storage) -> TestResult {
    let key = "models/cpm/LATEST";
    s.swap_pointer(key, b("base"), None).await?;
    let a = s.read_pointer(key).await?.expect("pointer exists");
    let b_read = s.read_pointer(key).await?.expect("pointer exists");
    assert_eq!(a.version, b_read.version);
    let (ra, rb) = tokio::join!(
        s.swap_pointer(key, b("from-a"), Some(&a.version)),
        s.swap_pointer(key, b("from-b"), Some(&b_read.version)),
    );
    let winner = match (&ra, &rb) {
        (Ok(_), Err(StorageError::PointerConflict { .. })) => b("from-a"),
        (Err(StorageError::PointerConflict { .. }), Ok(_)) => b("from-b"),
        other => panic!("expected exactly one Ok and one PointerConflict, got {other:?}"),
    };
    assert_eq!(s.read_pointer(key).await?.map(|p| p.bytes), Some(winner));
    Ok(())
}

pub(crate) async fn pointer_concurrent_counter(s: &Storage) -> TestResult {
    const TASKS: u64 = 8;
    const INCREMENTS: u64 = 5;
    let key = "counters/LATEST";
    s.swap_pointer(key, b("0"), None).await?;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let (mut done, mut conflicts) = (0u64, 0u64);
            while done < INCREMENTS {
                let p = s.read_pointer(key).await?.ok_or("pointer vanished")?;
                let n: u64 = std::str::from_utf8(&p.bytes)?.parse()?;
                match s
                    .swap_pointer(key, Bytes::from((n + 1).to_string()), Some(&p.version))
                    .await
                {
                    Ok(_) => done += 1,
                    Err(StorageError::PointerConflict { .. }) => conflicts += 1,
                    Err(e) => return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((done, conflicts))
        }));
    }
    let (mut successes, mut conflicts) = (0, 0);
    for h in handles {
        let (d, c) = h.await??;
        successes += d;
        conflicts += c;
    }
    let final_value: u64 = std::str::from_utf8(&s.get(key).await?)?.parse()?;
    assert_eq!(successes, TASKS * INCREMENTS);
    assert_eq!(
        final_value, successes,
        "every successful swap is counted exactly once ({conflicts} conflicts retried)"
    );
    Ok(())
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, false),
    ]))
}

fn batch(
    schema: &SchemaRef,
    start: i64,
    rows: i64,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let ids: Vec<i64> = (start..start + rows).collect();
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|i| (i % 7 != 0).then(|| format!("user-{}", i % 13)))
        .collect();
    let scores: Vec<f64> = ids.iter().map(|i| *i as f64 * 0.5).collect();
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(scores)),
        ],
    )
}

pub(crate) async fn parquet_round_trip(s: &Storage) -> TestResult {
    let schema = schema();
    let batches = vec![
        batch(&schema, 0, 1000)?,
        batch(&schema, 1000, 1000)?,
        batch(&schema, 2000, 500)?,
    ];
    let key = "landing/ad/date=2024-01-01/part-ad-0-0-2499.parquet";
    let opts = ParquetWriteOptions {
        key_value_metadata: vec![("ctrflow.schema".into(), "v1".into())],
        ..Default::default()
    };
    let written = s.write_parquet(key, &schema, &batches, &opts).await?;
    assert_eq!((written.rows, written.outcome), (2500, PutOutcome::Created));
    assert_eq!(Some(written.bytes), s.head_opt(key).await?.map(|o| o.size));
    let replay = s.write_parquet(key, &schema, &batches, &opts).await?;
    assert_eq!(
        replay.outcome,
        PutOutcome::AlreadyExisted,
        "deterministic encoding"
    );

    let read = s.read_parquet(key).await?;
    let expected = concat_batches(&schema, &batches)?;
    let got = concat_batches(&schema, &read)?;
    assert_eq!(got, expected);
    assert_eq!(s.parquet_row_count(key).await?, 2500);

    let other = vec![batch(&schema, 5, 10)?];
    let e = s
        .write_parquet(key, &schema, &other, &opts)
        .await
        .expect_err("different content under the same key");
    assert!(matches!(e, StorageError::WriteOnceViolation { .. }), "{e}");
    let e = s
        .read_parquet("landing/missing.parquet")
        .await
        .expect_err("missing");
    assert!(e.is_not_found(), "{e}");
    Ok(())
}

pub(crate) async fn parquet_stream_row_groups(s: &Storage) -> TestResult {
    let schema = schema();
    let batches: Vec<RecordBatch> = (0..4)
        .map(|i| batch(&schema, i * 3000, 3000))
        .collect::<Result<_, _>>()?;
    let key = "landing/natural/date=2024-01-01/part-natural-0-0-11999.parquet";
    let opts = ParquetWriteOptions {
        max_row_group_rows: 1000,
        ..Default::default()
    };
    s.write_parquet(key, &schema, &batches, &opts).await?;
    let streamed: Vec<RecordBatch> = s.parquet_stream(key, 256).await?.try_collect().await?;
    assert!(streamed.iter().all(|b| b.num_rows() <= 256));
    let total: usize = streamed.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(total, 12_000);
    let got = concat_batches(&schema, &streamed)?;
    let ids = got
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("id column is Int64")?;
    assert!(ids.values().iter().copied().eq(0..12_000), "rows in order");
    assert_eq!(
        got.column(1).null_count(),
        concat_batches(&schema, &batches)?.column(1).null_count()
    );
    assert_eq!(s.parquet_row_count(key).await?, 12_000);
    Ok(())
}

pub(crate) async fn parquet_empty(s: &Storage) -> TestResult {
    let schema = schema();
    let key = "dead-letter/ad/date=2024-01-01/part-empty.parquet";
    let written = s
        .write_parquet(key, &schema, &[], &ParquetWriteOptions::default())
        .await?;
    assert_eq!(written.rows, 0);
    assert!(written.bytes > 0, "a valid (footer-only) file");
    assert_eq!(s.parquet_row_count(key).await?, 0);
    let read = s.read_parquet(key).await?;
    assert_eq!(read.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    let streamed: Vec<RecordBatch> = s.parquet_stream(key, 100).await?.try_collect().await?;
    assert_eq!(streamed.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    Ok(())
}
