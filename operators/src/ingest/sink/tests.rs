use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::Schema;
use ctrflow_schemas::{
    CategoryId, Device, Event, EventBatchBuilder, EventTime, ItemId, UserId, events_from_batch,
    provenance_fields,
};

use super::*;
use crate::dataflow::{Message, drive};

fn day(s: &str) -> EventDate {
    s.parse().expect("date")
}

fn event(i: i64, domain: Domain, date: EventDate) -> Event {
    Event {
        event_id: format!("e{i}"),
        event_time: EventTime(date.start_ms() + i * 1000),
        domain,
        user_id: UserId(i as u64),
        item_id: ItemId(7),
        category_id: CategoryId(1),
        position: 0,
        hour: 0,
        device: Device::Web,
        hist_item_ids: vec![ItemId(1)],
        hist_category_ids: vec![CategoryId(1)],
        item_content: None,
        label: (i % 2) as u8,
    }
}

/// A decoded batch: event columns plus provenance (topic, partition, offset = i).
fn decoded(events: &[(i64, Domain, EventDate)], topic: &str, partition: i32) -> RecordBatch {
    let schema = EventSchema::default();
    let mut b = EventBatchBuilder::new(schema.clone(), events.len());
    for &(i, d, date) in events {
        b.push(&event(i, d, date)).expect("push");
    }
    let batch = b.finish().expect("finish");
    let mut fields: Vec<_> = schema
        .arrow()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(provenance_fields());
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec![topic; events.len()])));
    cols.push(Arc::new(Int32Array::from(vec![partition; events.len()])));
    cols.push(Arc::new(Int64Array::from(
        events.iter().map(|e| e.0).collect::<Vec<_>>(),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("decoded batch")
}

/// A landing sink over a fresh in-memory store, with the receiving end of its acks.
fn landing_sink(
    closed: ClosedDays,
    config: SinkConfig,
) -> (Storage, PartSink, mpsc::Receiver<SinkAck>) {
    let storage = Storage::open(&format!(
        "memory://{}",
        ctrflow_test_support::unique_name("sink")
    ))
    .expect("store");
    let (tx, rx) = mpsc::channel(4);
    let sink = PartSink::landing(storage.clone(), &EventSchema::default(), closed, config, tx);
    (storage, sink, rx)
}

#[tokio::test]
async fn landing_sink_writes_one_file_per_day_domain_and_partition_at_the_barrier() {
    let closed = ClosedDays::default();
    closed
        .write()
        .expect("lock")
        .insert((Domain::Ad, day("2024-01-01")));
    let (storage, mut sink, mut rx) = landing_sink(closed, SinkConfig::default());
    let d1 = day("2024-01-01");
    let d2 = day("2024-01-02");
    let input = decoded(
        &[
            (10, Domain::Natural, d1),
            (11, Domain::Natural, d2),
            (12, Domain::Ad, d1),
            (13, Domain::Natural, d1),
        ],
        "ctrflow.natural",
        3,
    );
    let out = drive(
        &mut sink,
        [Message::Batch(input), Message::Barrier(Epoch(1))],
        0,
    )
    .await
    .expect("drive");
    assert_eq!(
        out.rows(0),
        0,
        "a sink emits no rows, only forwards control"
    );
    let ack = rx.recv().await.expect("ack");
    assert_eq!(ack.epoch, Epoch(1));
    let mut keys: Vec<(String, u64, FileRole)> = ack
        .files
        .iter()
        .map(|f| (f.key.clone(), f.rows, f.role))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            (
                "landing/natural/date=2024-01-01/part-ctrflow.natural-3-00000000000000000010-00000000000000000013.parquet".to_string(),
                2,
                FileRole::Landing
            ),
            (
                "landing/natural/date=2024-01-02/part-ctrflow.natural-3-00000000000000000011-00000000000000000011.parquet".to_string(),
                1,
                FileRole::Landing
            ),
            (
                "late/ad/date=2024-01-01/part-ctrflow.natural-3-00000000000000000012-00000000000000000012.parquet".to_string(),
                1,
                FileRole::Late
            ),
        ]
    );
    // Written without provenance columns, readable as events.
    let batches = storage.read_parquet(&keys[0].0).await.expect("read");
    assert_eq!(
        batches[0].schema().fields(),
        EventSchema::default().arrow().fields()
    );
    let events = events_from_batch(&batches[0]).expect("events");
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
        ["e10", "e13"]
    );
    assert_eq!(
        ack.max_event_time_ms.get("ctrflow.natural/3"),
        Some(&(d2.start_ms() + 11_000))
    );
}

#[tokio::test]
async fn full_parts_are_written_early_and_nothing_is_written_twice() {
    let (_storage, mut sink, mut rx) = landing_sink(
        ClosedDays::default(),
        SinkConfig {
            rows_per_file: 2,
            ..SinkConfig::default()
        },
    );
    let d = day("2024-03-03");
    let msgs = vec![
        Message::Batch(decoded(&[(1, Domain::Ad, d), (2, Domain::Ad, d)], "t", 0)),
        Message::Batch(decoded(&[(3, Domain::Ad, d)], "t", 0)),
        Message::Barrier(Epoch(5)),
        Message::Barrier(Epoch(6)),
    ];
    drive(&mut sink, msgs, 0).await.expect("drive");
    let first = rx.recv().await.expect("ack 5");
    assert_eq!(
        first.files.len(),
        2,
        "one early file of 2 rows, one at the barrier"
    );
    assert_eq!(first.files.iter().map(|f| f.rows).sum::<u64>(), 3);
    let second = rx.recv().await.expect("ack 6");
    assert!(second.files.is_empty(), "an empty epoch writes nothing");
}

#[tokio::test]
async fn dead_letters_are_dated_by_rejection_and_domained_by_topic() {
    let storage = Storage::open(&format!(
        "memory://{}",
        ctrflow_test_support::unique_name("dl")
    ))
    .expect("store");
    let (tx, mut rx) = mpsc::channel(4);
    let mut sink = PartSink::dead_letter(
        storage.clone(),
        HashMap::from([("ads".to_string(), Domain::Ad)]),
        SinkConfig::default(),
        tx,
    );
    let schema = dead_letter_schema();
    let rejected = day("2024-02-02").start_ms() + 5;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["ads", "ads"])),
            Arc::new(Int32Array::from(vec![1, 1])),
            Arc::new(Int64Array::from(vec![40, 41])),
            Arc::new(Int64Array::from(vec![Some(1), None])),
            Arc::new(arrow::array::BinaryArray::from(vec![
                Some(b"{bad".as_ref()),
                None,
            ])),
            Arc::new(StringArray::from(vec!["bad-json", "empty-payload"])),
            Arc::new(StringArray::from(vec!["eof", "no bytes"])),
            Arc::new(
                arrow::array::TimestampMillisecondArray::from(vec![rejected, rejected])
                    .with_timezone("UTC"),
            ),
        ],
    )
    .expect("dead-letter batch");
    drive(
        &mut sink,
        [Message::Batch(batch), Message::Barrier(Epoch(1))],
        0,
    )
    .await
    .expect("drive");
    let ack = rx.recv().await.expect("ack");
    assert_eq!(ack.files.len(), 1);
    assert_eq!(
        ack.files[0].key,
        "dead-letter/ad/date=2024-02-02/part-ads-1-00000000000000000040-00000000000000000041.parquet"
    );
    assert_eq!(ack.files[0].role, FileRole::DeadLetter);
    let back = storage.read_parquet(&ack.files[0].key).await.expect("read");
    assert_eq!(back[0].num_rows(), 2);
}

/// A part is encoded as its rows arrive, yet nothing is stored before the barrier, and the file
/// at the barrier is byte for byte the one encoding all of its rows at once would give (so a
/// replay of the same rows stays an idempotent put).
#[tokio::test]
async fn parts_encode_while_the_epoch_is_open_and_store_only_at_the_barrier() {
    let config = SinkConfig::default();
    let (storage, mut sink, mut rx) = landing_sink(ClosedDays::default(), config.clone());
    let d = day("2024-05-05");
    let inputs: Vec<RecordBatch> = (0..4i64)
        .map(|b| {
            let events: Vec<_> = (0..3).map(|i| (b * 3 + i, Domain::Natural, d)).collect();
            decoded(&events, "n", 2)
        })
        .collect();
    let mut out = crate::dataflow::VecCollector::new(1);
    for input in &inputs {
        sink.process_batch(input.clone(), &mut out)
            .await
            .expect("batch");
        assert!(
            storage.list("landing/").await.expect("list").is_empty(),
            "nothing is stored while the epoch is open"
        );
    }
    sink.on_barrier(Epoch(1), &mut out).await.expect("barrier");
    let ack = rx.recv().await.expect("ack");
    assert_eq!(ack.files.len(), 1);
    assert_eq!(ack.files[0].rows, 12);
    let stored = storage.get(&ack.files[0].key).await.expect("get");
    assert_eq!(ack.files[0].bytes, stored.len() as u64);

    let events = EventSchema::default();
    let projection: Vec<usize> = (0..events.arrow().fields().len()).collect();
    let rows: Vec<RecordBatch> = inputs
        .iter()
        .map(|b| b.project(&projection).expect("project"))
        .collect();
    let whole =
        ctrflow_storage::encode_parquet(events.arrow(), &rows, &config.parquet_options(true))
            .expect("encode");
    assert_eq!(stored, whole, "streamed and whole-epoch encodings differ");
    let back = storage.read_parquet(&ack.files[0].key).await.expect("read");
    let ids: Vec<String> = back
        .iter()
        .flat_map(|b| events_from_batch(b).expect("events"))
        .map(|e| e.event_id)
        .collect();
    let expected: Vec<String> = (0..12).map(|i| format!("e{i}")).collect();
    assert_eq!(ids, expected, "rows in arrival order");
}

/// The landing options name leaves that exist in a landing file (a path naming no leaf would
/// silently change nothing), and do what they say there.
#[test]
fn landing_encoding_options_apply_to_real_leaves() {
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let schema = EventSchema::default();
    let mut builder = EventBatchBuilder::new(schema.clone(), 100);
    for i in 0..100 {
        let mut e = event(i, Domain::Natural, day("2024-03-01"));
        e.hist_item_ids = vec![ItemId(1 + i as u64 % 3), ItemId(9)];
        e.hist_category_ids = vec![CategoryId(2), CategoryId(3)];
        e.item_content = Some(vec![0.25 * (i % 4) as f32; schema.content_dim()]);
        builder.push(&e).expect("push");
    }
    let batch = builder.finish().expect("batch");
    let options = SinkConfig::default().parquet_options(true);
    let bytes =
        ctrflow_storage::encode_parquet(schema.arrow(), &[batch], &options).expect("encode");
    let reader = SerializedFileReader::new(bytes).expect("read");
    // Per leaf path: (dictionary-encoded, has min/max statistics).
    let leaves: std::collections::BTreeMap<String, (bool, bool)> = reader
        .metadata()
        .row_group(0)
        .columns()
        .iter()
        .map(|c| {
            (
                c.column_path().string(),
                (
                    c.encodings().any(|e| e == Encoding::RLE_DICTIONARY),
                    c.statistics().is_some_and(|s| s.min_bytes_opt().is_some()),
                ),
            )
        })
        .collect();
    for path in options
        .plain_columns
        .iter()
        .chain(&options.unindexed_columns)
    {
        assert!(
            leaves.contains_key(path),
            "{path} is not a leaf of {leaves:?}"
        );
    }
    assert_eq!(leaves["event_id"], (false, true));
    assert_eq!(leaves["item_content.list.item"], (false, false));
    assert_eq!(leaves["hist_item_ids.list.item"], (true, false));
    assert_eq!(leaves["hist_category_ids.list.item"], (true, false));
    assert_eq!(leaves["user_id"], (true, true));
    // Dead-letter and late files keep the plain defaults.
    let other = SinkConfig::default().parquet_options(false);
    assert!(other.plain_columns.is_empty() && other.unindexed_columns.is_empty());
}
