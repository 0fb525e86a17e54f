//! Tests of the generator: determinism, statistics against the documented targets, the
//! cross-domain signal, chunking, ids and configuration validation.

use std::collections::{BTreeMap, HashMap, HashSet};

use ctrflow_schemas::{
    CategoryId, DayManifest, Domain, Event, KeyLayout, decode_manifest, events_from_batch,
};
use ctrflow_storage::Storage;

use super::*;
use crate::OperatorError;

/// A small world for fast tests.
fn tiny() -> GeneratorConfig {
    GeneratorConfig {
        users: 60,
        items: 400,
        ads: 40,
        categories: 8,
        days: 2,
        events_per_day: 600,
        max_seq_len: 40,
        content_dim: 4,
        ..GeneratorConfig::default()
    }
}

/// The configuration the statistics are checked on.
fn stats_config() -> GeneratorConfig {
    GeneratorConfig {
        users: 300,
        days: 3,
        events_per_day: 6000,
        max_seq_len: 200,
        ..GeneratorConfig::default()
    }
}

/// Every object of a store, key -> bytes.
async fn objects(storage: &Storage) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for info in storage.list("").await.expect("list") {
        let bytes = storage.get(&info.key).await.expect("get");
        out.insert(info.key, bytes.to_vec());
    }
    out
}

/// The events of an archive, both domains, in time order.
async fn read_archive(storage: &Storage) -> Vec<Event> {
    let mut events = Vec::new();
    for info in storage.list("landing/").await.expect("list") {
        if info.key.ends_with(".parquet") {
            for batch in storage.read_parquet(&info.key).await.expect("read") {
                events.extend(events_from_batch(&batch).expect("decode"));
            }
        }
    }
    events.sort_by_key(|e| e.event_time);
    events
}

fn all_events(cfg: &GeneratorConfig) -> Vec<DayEvents> {
    Generator::new(cfg).expect("valid config").collect()
}

#[tokio::test]
async fn same_seed_gives_identical_archive_bytes_and_other_seeds_differ() {
    let cfg = tiny();
    let mut stores = Vec::new();
    for (name, seed) in [("a", 42), ("b", 42), ("c", 43)] {
        let storage =
            Storage::open(&format!("memory://generate-determinism-{name}")).expect("open");
        let cfg = GeneratorConfig {
            seed,
            ..cfg.clone()
        };
        generate_archive(&storage, &cfg, |_| {})
            .await
            .expect("generate");
        stores.push(objects(&storage).await);
    }
    let [a, b, c] = &stores[..] else {
        panic!("three stores")
    };
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a.keys().any(|k| k.ends_with(".parquet")));
    for (key, bytes) in a {
        if key.ends_with("_SUCCESS") {
            // Day manifests record when they were closed; everything else must match.
            let decode = |bytes: &[u8]| {
                let mut m: DayManifest = decode_manifest(key, bytes).expect("manifest");
                m.closed_at = chrono::DateTime::UNIX_EPOCH;
                m
            };
            assert_eq!(decode(bytes), decode(&b[key]), "{key}");
        } else {
            assert!(
                bytes == &b[key],
                "{key} differs between two runs with the same seed"
            );
            assert!(
                c.get(key).is_none_or(|other| other != bytes),
                "{key} is identical with another seed"
            );
        }
    }
}

#[tokio::test]
async fn json_lines_hold_the_same_events_as_the_archive() {
    let cfg = tiny();
    let storage = Storage::open("memory://generate-jsonl-vs-archive").expect("open");
    let summary = generate_archive(&storage, &cfg, |_| {})
        .await
        .expect("generate");
    let archived = read_archive(&storage).await;

    let mut first = Vec::new();
    let mut days = Vec::new();
    let json_summary = write_jsonl(&cfg, &mut first, |p| days.push(p)).expect("jsonl");
    let mut second = Vec::new();
    write_jsonl(&cfg, &mut second, |_| {}).expect("jsonl");
    assert!(first == second, "JSON lines differ between two runs");

    let lines: Vec<Event> = first
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| Event::from_json(l).expect("wire format"))
        .collect();
    assert_eq!(lines.len(), archived.len());
    assert!(
        lines == archived,
        "the archive and the JSON lines hold different events"
    );
    assert_eq!(json_summary.bytes, first.len() as u64);
    assert_eq!(json_summary.events(), summary.events());
    assert_eq!(json_summary.ad_clicks, summary.ad_clicks);
    assert_eq!(days.len(), cfg.days as usize);
    assert_eq!(days[1].days_done, 2);
    assert_eq!(days[1].events_so_far, 2 * cfg.events_per_day);
}

#[tokio::test]
async fn archive_days_are_closed_time_ordered_and_counted() {
    let cfg = stats_config();
    let storage = Storage::open("memory://generate-archive-days").expect("open");
    let mut progress = Vec::new();
    let summary = generate_archive(&storage, &cfg, |p| progress.push(p))
        .await
        .expect("generate");
    assert_eq!(summary.days, cfg.days);
    assert_eq!(summary.events(), cfg.days as u64 * cfg.events_per_day);
    assert_eq!(
        progress.iter().map(|p| p.days_done).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let layout = KeyLayout;
    for index in 0..cfg.days {
        let date = cfg.date(index);
        for domain in Domain::ALL {
            let key = layout.day_success(domain, date);
            let bytes = storage
                .get(&key)
                .await
                .expect("every (domain, day) is closed");
            let manifest: DayManifest = decode_manifest(&key, &bytes).expect("manifest");
            assert_eq!(manifest.producer, PRODUCER);
            let mut rows = 0;
            let mut last = i64::MIN;
            for file in &manifest.files {
                for batch in storage.read_parquet(&file.key).await.expect("read") {
                    for e in events_from_batch(&batch).expect("decode") {
                        assert_eq!(e.domain, domain);
                        assert_eq!(e.event_time.date(), Some(date), "{}", e.event_id);
                        assert!(e.event_time.0 > last, "{} is out of order", e.event_id);
                        last = e.event_time.0;
                        rows += 1;
                    }
                }
                assert_eq!(
                    storage.parquet_row_count(&file.key).await.expect("rows"),
                    file.rows
                );
            }
            assert_eq!(rows, manifest.rows, "{key}");
            assert_eq!(
                manifest.files.iter().map(|f| f.rows).sum::<u64>(),
                manifest.rows
            );
            let expected = match domain {
                Domain::Natural => progress[index as usize].natural_events,
                Domain::Ad => progress[index as usize].ad_events,
            };
            assert_eq!(manifest.rows, expected, "{key}");
        }
    }
}

#[tokio::test]
async fn a_domain_without_events_still_gets_its_day_closed() {
    let cfg = GeneratorConfig {
        events_per_day: 10,
        natural_per_ad: 1e6,
        ..tiny()
    };
    let storage = Storage::open("memory://generate-empty-domain").expect("open");
    let summary = generate_archive(&storage, &cfg, |_| {})
        .await
        .expect("generate");
    assert_eq!(summary.ad_events, 0);
    for index in 0..cfg.days {
        let key = KeyLayout.day_success(Domain::Ad, cfg.date(index));
        let bytes = storage.get(&key).await.expect("closed");
        let manifest: DayManifest = decode_manifest(&key, &bytes).expect("manifest");
        assert_eq!(manifest.rows, 0);
    }
}

/// Events of `domain` over all days and their click-through rate.
fn ctr(days: &[DayEvents], domain: Domain) -> (u64, f64) {
    let events = days
        .iter()
        .flat_map(|d| &d.events)
        .filter(|e| e.domain == domain);
    let (n, clicks) = events.fold((0u64, 0u64), |(n, c), e| (n + 1, c + u64::from(e.label)));
    (n, clicks as f64 / n as f64)
}

#[test]
fn statistics_match_the_documented_targets() {
    let cfg = stats_config();
    let days = all_events(&cfg);
    assert_eq!(days.len(), 3);
    let (natural, natural_ctr) = ctr(&days, Domain::Natural);
    let (ad, ad_ctr) = ctr(&days, Domain::Ad);
    let ratio = natural as f64 / ad as f64;
    let events = days.iter().flat_map(|d| &d.events);
    let lens: Vec<usize> = events.clone().map(|e| e.hist_item_ids.len()).collect();
    let max_len = lens.iter().copied().max().unwrap_or(0);
    let mean_len = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
    eprintln!(
        "natural/ad {ratio:.2}, natural CTR {natural_ctr:.4}, ad CTR {ad_ctr:.4}, \
         sequence mean {mean_len:.1} max {max_len}"
    );
    assert!((15.0..=26.0).contains(&ratio), "natural/ad = {ratio}");
    assert!(
        (0.06..=0.16).contains(&natural_ctr),
        "natural CTR {natural_ctr}"
    );
    assert!((0.02..=0.09).contains(&ad_ctr), "ad CTR {ad_ctr}");
    assert!(max_len <= cfg.max_seq_len as usize);
    assert!(
        max_len as f64 >= 0.9 * f64::from(cfg.max_seq_len),
        "longest sequence {max_len}"
    );
    let users: HashSet<_> = events.clone().map(|e| e.user_id).collect();
    assert!(users.len() > 200, "only {} users active", users.len());
    for e in events {
        assert_eq!(
            e.hist_item_ids.len(),
            e.hist_category_ids.len(),
            "{}",
            e.event_id
        );
        assert_eq!(
            e.item_content.as_ref().map(Vec::len),
            Some(cfg.content_dim as usize)
        );
        assert!(e.position < POSITIONS && e.hour <= 23);
        e.check().expect("valid event");
    }
    for day in &days {
        assert!(
            day.events
                .windows(2)
                .all(|w| w[0].event_time < w[1].event_time)
        );
        assert!(
            day.events
                .iter()
                .all(|e| e.event_time.date() == Some(day.date))
        );
    }
}

fn top_categories(history: &[CategoryId], n: usize) -> Vec<CategoryId> {
    let mut counts: HashMap<CategoryId, usize> = HashMap::new();
    for c in history {
        *counts.entry(*c).or_default() += 1;
    }
    let mut ranked: Vec<_> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(n).map(|(c, _)| c).collect()
}

#[test]
fn ad_clicks_follow_natural_behaviour() {
    let days = all_events(&stats_config());
    // [in the user's top-3 history categories, not in them] x (impressions, clicks)
    let mut counts = [[0u64; 2]; 2];
    for e in days
        .iter()
        .flat_map(|d| &d.events)
        .filter(|e| e.domain == Domain::Ad)
    {
        let top = top_categories(&e.hist_category_ids, 3).contains(&e.category_id);
        let slot = &mut counts[usize::from(!top)];
        slot[0] += 1;
        slot[1] += u64::from(e.label);
    }
    let rate = |[n, c]: [u64; 2]| c as f64 / n.max(1) as f64;
    let (inside, outside) = (rate(counts[0]), rate(counts[1]));
    eprintln!("ad CTR in top-3 categories {inside:.4} ({counts:?}), elsewhere {outside:.4}");
    assert!(counts[0][0] > 100 && counts[1][0] > 100, "{counts:?}");
    assert!(
        inside >= 1.3 * outside,
        "lift {} is too small",
        inside / outside
    );
}

#[test]
fn histories_are_causal_and_chunking_does_not_change_events() {
    let cfg = GeneratorConfig {
        prior_history: false,
        ..tiny()
    };
    let whole = all_events(&cfg);
    let mut chunked = Generator::new(&cfg).expect("valid");
    let mut events = Vec::new();
    while let Some(chunk) = chunked.next_chunk(7) {
        assert!(chunk.events.len() <= 7);
        events.extend(chunk.events);
    }
    assert!(chunked.is_done());
    let flat: Vec<Event> = whole.into_iter().flat_map(|d| d.events).collect();
    assert!(events == flat, "chunked generation differs");

    // Without a prior history, a sequence holds exactly the user's earlier clicks.
    let mut clicks: HashMap<_, Vec<_>> = HashMap::new();
    for e in &flat {
        let earlier = clicks.entry(e.user_id).or_default();
        let expected: Vec<_> = earlier
            .iter()
            .rev()
            .take(cfg.max_seq_len as usize)
            .copied()
            .collect();
        assert_eq!(e.hist_item_ids, expected, "{}", e.event_id);
        if e.label == 1 {
            earlier.push(e.item_id);
        }
    }
}

#[test]
fn ids_are_sparse_and_ads_are_disjoint_from_content() {
    let cfg = tiny();
    let content: HashSet<u64> = (0..cfg.items as u32)
        .map(|i| item_id(i, cfg.items as u32).0)
        .collect();
    let ads: HashSet<u64> = (0..cfg.ads as u32)
        .map(|i| item_id(cfg.items as u32 + i, cfg.items as u32).0)
        .collect();
    assert_eq!(content.len(), cfg.items as usize);
    assert_eq!(ads.len(), cfg.ads as usize);
    assert!(content.iter().all(|id| *id < 1 << 62));
    assert!(ads.iter().all(|id| (1 << 62..1 << 63).contains(id)));
    assert!(content.iter().max() > Some(&(1 << 40)), "ids look dense");
    let users: HashSet<_> = (0..1000).map(user_id).collect();
    assert_eq!(users.len(), 1000);
    for e in all_events(&cfg).iter().flat_map(|d| &d.events) {
        let is_ad = ads.contains(&e.item_id.0);
        assert_eq!(is_ad, e.domain == Domain::Ad, "{}", e.event_id);
        assert!(is_ad || content.contains(&e.item_id.0));
    }
}

#[test]
fn invalid_configurations_name_the_field() {
    let cases: Vec<(&str, GeneratorConfig)> = vec![
        ("generator.users", GeneratorConfig { users: 0, ..tiny() }),
        ("generator.days", GeneratorConfig { days: 0, ..tiny() }),
        (
            "generator.events-per-day",
            GeneratorConfig {
                events_per_day: 0,
                ..tiny()
            },
        ),
        (
            "generator.content-dim",
            GeneratorConfig {
                content_dim: 0,
                ..tiny()
            },
        ),
        (
            "generator.natural-per-ad",
            GeneratorConfig {
                natural_per_ad: 0.0,
                ..tiny()
            },
        ),
        (
            "generator.natural-per-ad",
            GeneratorConfig {
                natural_per_ad: -1.0,
                ..tiny()
            },
        ),
        (
            "generator.natural-per-ad",
            GeneratorConfig {
                natural_per_ad: f64::NAN,
                ..tiny()
            },
        ),
        (
            "generator.exploration",
            GeneratorConfig {
                exploration: 1.5,
                ..tiny()
            },
        ),
    ];
    for (field, cfg) in cases {
        let err = Generator::new(&cfg).expect_err(field);
        match &err {
            OperatorError::Config { field: f, reason } => {
                assert_eq!(f, field);
                assert!(reason.contains("..") || reason.contains('('), "{reason}");
            }
            other => panic!("{field}: unexpected error {other}"),
        }
        assert!(err.to_string().contains(field), "{err}");
    }
    tiny().validate().expect("tiny is valid");
    GeneratorConfig::default()
        .validate()
        .expect("defaults are valid");
}

#[test]
fn config_reads_kebab_case_with_defaults_and_rejects_unknown_fields() {
    let cfg: GeneratorConfig =
        serde_json::from_str(r#"{"users": 10, "natural-per-ad": 5.0, "start-date": "2024-03-01"}"#)
            .expect("parse");
    assert_eq!(cfg.users, 10);
    assert_eq!(cfg.natural_per_ad, 5.0);
    assert_eq!(cfg.start_date.to_string(), "2024-03-01");
    assert_eq!(cfg.items, GeneratorConfig::default().items);
    let err = serde_json::from_str::<GeneratorConfig>(r#"{"userz": 10}"#).expect_err("unknown");
    assert!(err.to_string().contains("userz"), "{err}");
}
