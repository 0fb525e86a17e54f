//! One crafted payload (or several) per rejection reason: each lands on the dead-letter port with
//! that reason, its exact raw bytes and its topic/partition/offset, and never on the event port.

use serde_json::{Value, json};

use super::*;

const HOUR: i64 = 3_600_000;

fn base_event() -> Event {
    Event {
        event_id: "n-42".into(),
        event_time: EventTime(NOW - DAY),
        domain: Domain::Natural,
        user_id: UserId(7001),
        item_id: ItemId(42042),
        category_id: CategoryId(12),
        position: 3,
        hour: 5,
        device: Device::Android,
        hist_item_ids: vec![ItemId(1000), ItemId(998), ItemId(5)],
        hist_category_ids: vec![CategoryId(12), CategoryId(4), CategoryId(4)],
        item_content: Some(vec![0.5; 16]),
        label: 1,
    }
}

/// The base event with `f` applied to its JSON object.
fn with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(&base_event().to_json()).expect("json");
    f(v.as_object_mut().expect("object"));
    Some(serde_json::to_vec(&v).expect("encode"))
}

fn set(key: &'static str, value: Value) -> Option<Vec<u8>> {
    with(|o| {
        o.insert(key.into(), value);
    })
}

/// The base event's JSON text with `from` replaced by `to` (for numbers `Value` cannot hold).
fn replaced(from: &str, to: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8(base_event().to_json()).expect("utf8");
    assert!(text.contains(from), "{from} not in {text}");
    Some(text.replacen(from, to, 1).into_bytes())
}

fn long(n: usize) -> Value {
    Value::from((0..n as u64).collect::<Vec<_>>())
}

fn cases() -> Vec<(&'static str, Option<Vec<u8>>, RejectReason)> {
    use RejectReason::*;
    let valid = base_event().to_json();
    let mut rng = StdRng::seed_from_u64(99);
    let random: Vec<u8> = (0..256).map(|_| rng.random()).collect();
    assert!(std::str::from_utf8(&random).is_err() && random[..4] != [0xFF; 4]);
    let mut latin1_id = valid.clone();
    let at = valid
        .windows(4)
        .position(|w| w == b"n-42")
        .expect("event id");
    latin1_id[at + 2] = 0xE9; // "n-\xE942": Latin-1, not UTF-8
    vec![
        ("zero bytes", Some(Vec::new()), EmptyPayload),
        ("null payload", None, EmptyPayload),
        ("random bytes", Some(random), NotUtf8),
        (
            "latin-1 string",
            Some(b"{\"event_id\":\"caf\xe9\"}".to_vec()),
            NotUtf8,
        ),
        (
            // Otherwise of the fast path's plain shape: its strings must be ASCII, so the
            // message goes to the UTF-8 check.
            "latin-1 byte in a complete message",
            Some(latin1_id),
            NotUtf8,
        ),
        (
            "truncated",
            Some(valid[..valid.len() / 2].to_vec()),
            BadJson,
        ),
        (
            "cut after version",
            Some(b"{\"schema_version\":1,".to_vec()),
            BadJson,
        ),
        ("not json", Some(b"hello world".to_vec()), BadJson),
        ("whitespace", Some(b"  \n".to_vec()), BadJson),
        (
            "trailing bytes",
            Some([valid.as_slice(), b"}".as_slice()].concat()),
            BadJson,
        ),
        (
            "duplicate field",
            replaced("\"label\":1", "\"label\":1,\"label\":0"),
            BadJson,
        ),
        (
            "float overflow",
            replaced("\"position\":3", "\"position\":1e400"),
            BadJson,
        ),
        (
            "no user_id",
            with(|o| {
                o.remove("user_id");
            }),
            MissingField,
        ),
        (
            "no label",
            with(|o| {
                o.remove("label");
            }),
            MissingField,
        ),
        (
            "no schema_version",
            with(|o| {
                o.remove("schema_version");
            }),
            MissingField,
        ),
        ("empty object", Some(b"{}".to_vec()), MissingField),
        ("string id", set("user_id", json!("7001")), WrongType),
        ("negative id", set("item_id", json!(-5)), WrongType),
        (
            "id > u64::MAX",
            replaced("\"item_id\":42042", "\"item_id\":18446744073709551616"),
            WrongType,
        ),
        ("float position", set("position", json!(1.5)), WrongType),
        (
            "position > u32",
            set("position", json!(1u64 << 33)),
            WrongType,
        ),
        (
            "string in list",
            set("hist_item_ids", json!(["a", "b", "c"])),
            WrongType,
        ),
        (
            "negative list id",
            set("hist_category_ids", json!([1, -2, 3])),
            WrongType,
        ),
        ("unknown device", set("device", json!("tablet")), WrongType),
        ("unknown domain", set("domain", json!("organic")), WrongType),
        (
            "string time",
            set("event_time", json!("2024-05-31")),
            WrongType,
        ),
        ("string label", set("label", json!("1")), WrongType),
        ("bool label", set("label", json!(true)), WrongType),
        (
            "string content",
            set("item_content", Value::from(vec!["x"; 16])),
            WrongType,
        ),
        ("array at top", Some(b"[1,2,3]".to_vec()), WrongType),
        ("number at top", Some(b"5".to_vec()), WrongType),
        (
            "version 2",
            set("schema_version", json!(2)),
            UnsupportedSchemaVersion,
        ),
        (
            "version 0",
            set("schema_version", json!(0)),
            UnsupportedSchemaVersion,
        ),
        (
            "version 2, other fields",
            // Keys serialise in sorted order: `category_id` fails before the version is read.
            with(|o| {
                o.insert("category_id".into(), json!("c-12"));
                o.remove("label");
                o.insert("schema_version".into(), json!(2));
            }),
            UnsupportedSchemaVersion,
        ),
        (
            "version 2 after a bad field",
            Some(br#"{"category_id":"x","hour":99,"schema_version":2}"#.to_vec()),
            UnsupportedSchemaVersion,
        ),
        (
            "100k-long sequence",
            with(|o| {
                o.insert("hist_item_ids".into(), long(100_000));
                o.insert("hist_category_ids".into(), long(100_000));
            }),
            SequenceTooLong,
        ),
        (
            "1001-long sequence",
            with(|o| {
                o.insert("hist_item_ids".into(), long(1001));
                o.insert("hist_category_ids".into(), long(1001));
            }),
            SequenceTooLong,
        ),
        (
            "misaligned",
            set("hist_category_ids", json!([1])),
            MisalignedSequence,
        ),
        ("label 2", set("label", json!(2)), BadLabel),
        ("label -1", set("label", json!(-1)), BadLabel),
        ("hour 24", set("hour", json!(24)), BadHour),
        ("hour 300", set("hour", json!(300)), BadHour),
        (
            "content width 3",
            set("item_content", json!([1.0, 2.0, 3.0])),
            BadContent,
        ),
        (
            "content width 17",
            set("item_content", Value::from(vec![1.0; 17])),
            BadContent,
        ),
        (
            "content overflows f32",
            set("item_content", Value::from(vec![1e39; 16])),
            BadContent,
        ),
        (
            "far future",
            set("event_time", json!(NOW + 2 * HOUR)),
            EventTimeOutOfWindow,
        ),
        (
            "old",
            set("event_time", json!(NOW - 31 * DAY)),
            EventTimeOutOfWindow,
        ),
        (
            "epoch zero",
            set("event_time", json!(0)),
            EventTimeOutOfWindow,
        ),
        ("empty event id", set("event_id", json!("")), EmptyEventId),
        (
            "bad ipc",
            Some([[0xFF; 4].as_slice(), b"not a stream".as_slice()].concat()),
            BadIpc,
        ),
    ]
}

#[tokio::test]
async fn every_rejection_reason_lands_in_the_dead_letters_with_its_raw_bytes() {
    let cases = cases();
    let msgs: Vec<Msg> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| ("ad", 2, 500 + i as i64, c.1.clone()))
        .collect();
    let mut d = decoder();
    let out = run(&mut d, vec![raw_batch(&msgs)]).await;
    assert_eq!(
        out.rows(EVENTS_PORT),
        0,
        "a bad message reached the event port"
    );
    let dead = out.batches(DEAD_LETTER_PORT);
    assert_eq!(dead.len(), 1);
    let dead = dead[0];
    assert_eq!(dead.schema(), dead_letter_schema());
    assert_eq!(dead.num_rows(), cases.len());
    let reasons = dead["reason"].as_string::<i32>();
    let details = dead["detail"].as_string::<i32>();
    let payloads = dead["payload"].as_binary::<i32>();
    let rejected_at =
        dead["rejected_at"].as_primitive::<arrow::datatypes::TimestampMillisecondType>();
    let timestamps = dead["timestamp"].as_primitive::<Int64Type>();
    for (i, (name, payload, reason)) in cases.iter().enumerate() {
        let detail = details.value(i);
        assert_eq!(reasons.value(i), reason.as_str(), "{name}: {detail}");
        assert!(!detail.is_empty(), "{name}");
        assert_eq!(payloads.is_null(i), payload.is_none(), "{name}");
        assert_eq!(
            payloads.value(i),
            payload.as_deref().unwrap_or_default(),
            "{name}"
        );
        assert_eq!(rejected_at.value(i), NOW);
        assert_eq!(timestamps.value(i), NOW - 500 - i as i64);
    }
    assert_eq!(
        dead["topic"]
            .as_string::<i32>()
            .iter()
            .flatten()
            .filter(|t| *t == "ad")
            .count(),
        cases.len()
    );
    assert_eq!(
        positions(dead, "partition", "offset"),
        (0..cases.len())
            .map(|i| (2, 500 + i as i64))
            .collect::<Vec<_>>()
    );
    let snapshot = d.stats().snapshot();
    for r in RejectReason::ALL {
        let n = cases.iter().filter(|c| c.2 == r).count() as u64;
        assert!(n > 0, "no case for {r}");
        assert_eq!(snapshot[r.as_str()], n, "{r}");
    }
    assert_eq!((d.stats().good(), d.stats().bad()), (0, cases.len() as u64));
}

#[tokio::test]
async fn details_name_the_field_and_edges_of_the_window_are_accepted() {
    let msgs: Vec<Msg> = vec![
        ("natural", 0, 1, set("user_id", json!(-1))),
        ("natural", 0, 2, set("label", json!(2))),
        ("natural", 0, 3, set("event_time", json!(NOW + HOUR))),
        ("natural", 0, 4, set("event_time", json!(NOW - 30 * DAY))),
        (
            "natural",
            0,
            5,
            with(|o| {
                o.remove("item_content");
            }),
        ),
        ("natural", 0, 6, set("item_content", Value::Null)),
        (
            "natural",
            0,
            7,
            set("unknown_field", json!({"nested": [1, "x", null]})),
        ),
        (
            "natural",
            0,
            8,
            set("event_id", json!("\u{1F600} \"q\" \\ \u{0001}")),
        ),
    ];
    let mut d = decoder();
    let out = run(&mut d, vec![raw_batch(&msgs)]).await;
    let dead = out.batches(DEAD_LETTER_PORT)[0];
    let details = dead["detail"].as_string::<i32>();
    assert!(details.value(0).contains("user_id"), "{}", details.value(0));
    assert!(details.value(1).contains("label 2"), "{}", details.value(1));
    assert_eq!(out.rows(EVENTS_PORT), 6);
    let events = out.batches(EVENTS_PORT)[0];
    assert_eq!(events.column(11).null_count(), 2);
    let ids = events["event_id"].as_string::<i32>();
    assert_eq!(ids.value(5), "\u{1F600} \"q\" \\ \u{0001}");
}
