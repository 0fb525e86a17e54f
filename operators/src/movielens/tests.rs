//! Tests of the MovieLens import.

use super::*;

fn write_dataset(dir: &Path, inter: &str, item: &str) {
    std::fs::write(dir.join("tiny.inter"), inter).expect("write inter");
    std::fs::write(dir.join("tiny.item"), item).expect("write item");
}

const ITEMS: &str = "item_id:token\tmovie_title:token_seq\tclass:token_seq\n\
                     1\tToy Story\tAnimation Children's Comedy\n\
                     2\tHeat\tAction Crime\n\
                     3\tFargo\tCrime Drama\n";

#[test]
fn token_ids_are_numeric_or_stable_hashes() {
    assert_eq!(token_id("242"), 242);
    assert_eq!(token_id("1m_1"), token_id("1m_1"));
    assert_ne!(token_id("1m_1"), token_id("1m_2"));
}

#[tokio::test]
async fn converts_ratings_to_events_with_causal_sequences() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Day 0: user 7 rates 2 then 3; day 2: user 7 rates 1 (ad). CRLF endings tolerated.
    write_dataset(
        dir.path(),
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n\
         7\t3\t5\t200\r\n7\t2\t2\t100\r\n7\t1\t4\t172900\r\n",
        ITEMS,
    );
    let storage = Storage::open("memory://movielens-unit-1").expect("store");
    let schema = EventSchema::default();
    let s = import_movielens(
        dir.path(),
        &storage,
        &schema,
        &MovielensOptions::default(),
        |_, _| {},
    )
    .await
    .expect("import");
    assert_eq!(s.ratings, 3);
    assert_eq!(s.likes, 2);
    assert_eq!(s.archive.rows.get(&Domain::Ad), Some(&1));
    assert_eq!(s.archive.rows.get(&Domain::Natural), Some(&2));
    // Three days (one empty in the middle) closed for both domains.
    assert_eq!(s.archive.days.len(), 6);
    let key = ctrflow_schemas::KeyLayout.day_success(Domain::Ad, s.dates.1);
    let bytes = storage.get(&key).await.expect("manifest");
    let day: ctrflow_schemas::DayManifest =
        ctrflow_schemas::decode_manifest(&key, &bytes).expect("decode");
    let batches = storage.read_parquet(&day.files[0].key).await.expect("read");
    let events = ctrflow_schemas::events_from_batch(&batches[0]).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].hist_item_ids,
        vec![ItemId(3), ItemId(2)],
        "most recent first"
    );
    assert_eq!(events[0].label, 1);
    assert_eq!(
        events[0].category_id,
        CategoryId(2),
        "Animation is genre #2 of the 6 sorted genres"
    );
}

#[tokio::test]
async fn genre_content_is_multi_hot_over_the_sorted_genres() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_dataset(
        dir.path(),
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
         7\t1\t5\t100\n7\t3\t2\t200\n",
        ITEMS,
    );
    let options = MovielensOptions {
        content: MovielensContent::Genres,
        ..MovielensOptions::default()
    };
    let events = import_first_day_as(dir.path(), options.clone(), &EventSchema::new(8)).await;
    // Sorted genres: Action, Animation, Children's, Comedy, Crime, Drama; two zero pads.
    let toy_story = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    let fargo = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
    assert_eq!(events[0].item_content.as_deref(), Some(&toy_story[..]));
    assert_eq!(events[1].item_content.as_deref(), Some(&fargo[..]));

    // Six genres do not fit a 4-wide content vector: an error that names the setting.
    let storage = Storage::open("memory://movielens-unit-content").expect("store");
    let err = import_movielens(
        dir.path(),
        &storage,
        &EventSchema::new(4),
        &options,
        |_, _| {},
    )
    .await
    .expect_err("too narrow");
    assert!(err.to_string().contains("content-dim"), "{err}");
}

#[tokio::test]
async fn malformed_files_name_file_and_line() {
    let storage = Storage::open("memory://movielens-unit-2").expect("store");
    let schema = EventSchema::default();
    let cases = [
        (
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t9\t5\t1\n",
            "line 2",
            "not in the .item",
        ),
        (
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t1\t5\t1\n7\t1\tfive\t2\n",
            ":3",
            "rating",
        ),
        (
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t1\t5\n",
            ":2",
            "fields",
        ),
        (
            "user_id:token\trating:float\ttimestamp:float\n",
            ":1",
            "item_id",
        ),
    ];
    for (inter, place, what) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        write_dataset(dir.path(), inter, ITEMS);
        let err = import_movielens(
            dir.path(),
            &storage,
            &schema,
            &MovielensOptions::default(),
            |_, _| {},
        )
        .await
        .expect_err("malformed");
        let text = err.to_string();
        let place = place.replace("line ", ":");
        assert!(
            text.contains("tiny.inter") && text.contains(&place) && text.contains(what),
            "{text}"
        );
    }
    let empty = tempfile::tempdir().expect("tempdir");
    assert!(
        import_movielens(
            empty.path(),
            &storage,
            &schema,
            &MovielensOptions::default(),
            |_, _| {}
        )
        .await
        .is_err()
    );
}

/// Imports `dir` with `options` into a fresh in-memory store and returns the events of its
/// first day (every test dataset fits in one day), in time order.
async fn import_first_day(dir: &Path, options: MovielensOptions) -> Vec<Event> {
    import_first_day_as(dir, options, &EventSchema::default()).await
}

/// [`import_first_day`] with the event schema `schema`.
async fn import_first_day_as(
    dir: &Path,
    options: MovielensOptions,
    schema: &EventSchema,
) -> Vec<Event> {
    let storage = Storage::open(&format!(
        "memory://{}",
        ctrflow_test_support::unique_name("movielens-unit")
    ))
    .expect("store");
    let s = import_movielens(dir, &storage, schema, &options, |_, _| {})
        .await
        .expect("import");
    let mut events = Vec::new();
    for domain in Domain::ALL {
        let key = ctrflow_schemas::KeyLayout.day_success(domain, s.dates.0);
        let bytes = storage.get(&key).await.expect("manifest");
        let day: ctrflow_schemas::DayManifest =
            ctrflow_schemas::decode_manifest(&key, &bytes).expect("decode");
        for file in &day.files {
            for batch in storage.read_parquet(&file.key).await.expect("read") {
                events.extend(ctrflow_schemas::events_from_batch(&batch).expect("events"));
            }
        }
    }
    events.sort_by_key(|e| (e.event_time.0, e.item_id.0));
    events
}

fn histories(events: &[Event]) -> Vec<Vec<ItemId>> {
    events.iter().map(|e| e.hist_item_ids.clone()).collect()
}

#[tokio::test]
async fn liked_and_signed_histories_use_feedback_from_earlier_seconds_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    // User 7: likes 3 at t=100, dislikes 2 at t=150, likes 1 at t=300 and, in the same
    // second, rates 2 again (a second rating row of the same user).
    write_dataset(
        dir.path(),
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
         7\t3\t5\t100\n7\t2\t1\t150\n7\t1\t4\t300\n7\t2\t2\t300\n",
        ITEMS,
    );
    let liked = import_first_day(
        dir.path(),
        MovielensOptions {
            history: MovielensHistory::Liked,
            ..MovielensOptions::default()
        },
    )
    .await;
    // t=100: nothing before; t=150: the like of 3; t=300 (both rows): still only 3 - the
    // dislike of 2 is not a behaviour and the like of 1 in the same second is not seen.
    let (i2, i3) = (ItemId(2), ItemId(3));
    assert_eq!(
        histories(&liked),
        vec![vec![], vec![i3], vec![i3], vec![i3]]
    );

    // Signed: every rating from earlier seconds, the dislike as its own token.
    let signed = import_first_day(
        dir.path(),
        MovielensOptions {
            history: MovielensHistory::Signed,
            ..MovielensOptions::default()
        },
    )
    .await;
    let disliked_2 = disliked_token(i2);
    assert_ne!(disliked_2, i2);
    assert_eq!(
        histories(&signed),
        vec![vec![], vec![i3], vec![disliked_2, i3], vec![disliked_2, i3]]
    );
}

#[tokio::test]
async fn same_domain_history_keeps_natural_ratings_out_of_ad_sequences() {
    let dir = tempfile::tempdir().expect("tempdir");
    // User 7 rates 3 and 2 (natural), then 1 (ad), then 3 again.
    write_dataset(
        dir.path(),
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
         7\t3\t5\t100\n7\t2\t2\t200\n7\t1\t4\t300\n7\t3\t4\t400\n",
        ITEMS,
    );
    let events = import_first_day(
        dir.path(),
        MovielensOptions {
            history_domains: HistoryDomains::Same,
            ..MovielensOptions::default()
        },
    )
    .await;
    // The ad event (t=300) sees no natural rating; the last natural one skips the ad.
    assert_eq!(
        histories(&events),
        vec![vec![], vec![ItemId(3)], vec![], vec![ItemId(2), ItemId(3)]]
    );
    assert_eq!(events[2].domain, Domain::Ad);
}
