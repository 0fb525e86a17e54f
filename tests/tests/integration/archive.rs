//! Event schema round trips JSON -> Arrow -> Parquet (in object storage) -> Arrow -> JSON on every
//! kind of store, including empty and 1000-long sequences and null content vectors.

use ctrflow_schemas::{
    CategoryId, Device, Domain, Event, EventBatchBuilder, EventSchema, EventTime, ItemId, UserId,
    events_from_batch,
};
use ctrflow_storage::{ParquetWriteOptions, Storage};
use ctrflow_test_support::{s3_bucket, unique_name};

fn events() -> Vec<Event> {
    (0..50u64)
        .map(|i| {
            let len = match i {
                0 => 0,
                1 => 1000,
                _ => (i * 37 % 200) as usize,
            };
            Event {
                event_id: format!("evt-{i}"),
                event_time: EventTime(1_704_067_200_000 + i as i64 * 61_003),
                domain: if i % 21 == 0 {
                    Domain::Ad
                } else {
                    Domain::Natural
                },
                user_id: UserId(u64::MAX - i),
                item_id: ItemId(i * 1_000_003),
                category_id: CategoryId(i % 17),
                position: (i % 20) as u32,
                hour: (i % 24) as u8,
                device: Device::ALL[(i % 4) as usize],
                hist_item_ids: (0..len as u64).map(|k| ItemId(k * 7 + i)).collect(),
                hist_category_ids: (0..len as u64).map(|k| CategoryId(k % 17)).collect(),
                item_content: (i % 3 != 0)
                    .then(|| (0..16).map(|d| d as f32 * 0.5 - i as f32).collect()),
                label: (i % 5 == 0) as u8,
            }
        })
        .collect()
}

async fn round_trip(storage: &Storage) {
    let schema = EventSchema::default();
    let originals = events();
    // JSON wire format in, through Arrow.
    let mut builder = EventBatchBuilder::new(schema.clone(), 16);
    for e in &originals {
        let decoded = Event::from_json(&e.to_json()).expect("decode wire JSON");
        builder.push(&decoded).expect("push");
    }
    let batch = builder.finish().expect("batch");
    let empty = EventBatchBuilder::new(schema.clone(), 0)
        .finish()
        .expect("empty batch");

    // Parquet in object storage and back.
    let key = format!(
        "landing/natural/date=2024-01-01/part-rt-{}.parquet",
        unique_name("x")
    );
    let written = storage
        .write_parquet(
            &key,
            schema.arrow(),
            &[batch.clone(), empty],
            &ParquetWriteOptions::default(),
        )
        .await
        .expect("write parquet");
    assert_eq!(written.rows, originals.len() as u64);
    let read = storage.read_parquet(&key).await.expect("read parquet");
    let back: Vec<Event> = read
        .iter()
        .flat_map(|b| {
            assert_eq!(
                b.schema().fields(),
                schema.arrow().fields(),
                "fields incl. their docs survive Parquet"
            );
            events_from_batch(b).expect("events from batch")
        })
        .collect();
    assert_eq!(back, originals);
    // And back to identical JSON bytes.
    for (a, b) in back.iter().zip(&originals) {
        assert_eq!(a.to_json(), b.to_json());
    }
}

#[tokio::test]
async fn round_trip_on_memory_store() {
    let storage = Storage::open(&format!("memory://{}", unique_name("rt"))).expect("memory store");
    round_trip(&storage).await;
}

#[tokio::test]
async fn round_trip_on_local_filesystem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(&format!("file://{}", dir.path().display())).expect("file store");
    round_trip(&storage).await;
}

#[tokio::test]
async fn round_trip_on_s3_api_server() {
    let bucket = s3_bucket(&unique_name("rt"));
    let storage = Storage::open_with_options(&bucket.url, &bucket.option_refs()).expect("s3 store");
    round_trip(&storage).await;
}
