//! What encoding one ingest landing file costs per row, with the ingest sink's own landing
//! settings (`SinkConfig::parquet_options`: zstd 3, dictionaries except on `event_id` /
//! `event_time` / `item_content`, page statistics except on the list and content values,
//! 64k-row row groups) against other ones, in one run. Generated events, behaviour sequences up to
//! `--len` (default 50) long, 10k-row batches as the decoder hands them over, one file of
//! `--rows` rows (default 100k) per encode.
//!
//! `--bench` runs three alternating rounds; without it (as `cargo test` runs benches) one round
//! of 2k rows checks that every variant encodes.

use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use ctrflow_operators::generate::{Generator, GeneratorConfig};
use ctrflow_operators::ingest::SinkConfig;
use ctrflow_schemas::{EventBatchBuilder, columns};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// How the two behaviour-list columns are encoded.
#[derive(Clone, Copy, PartialEq)]
enum Lists {
    /// As the landing writer does: dictionary.
    Dictionary,
    /// No dictionary: plain values.
    Plain,
    /// No dictionary on either list: `DELTA_BINARY_PACKED`.
    Delta,
    /// Item ids keep the dictionary; category ids `DELTA_BINARY_PACKED`.
    DeltaCategories,
}

/// One writer setting to compare: a change to the landing writer's properties.
struct Variant {
    name: &'static str,
    zstd: Option<i32>,
    statistics: Option<EnabledStatistics>,
    lists: Lists,
    /// The landing leaves before 2026-12-07: a dictionary on `item_content`'s floats and
    /// statistics on the list and content leaves too.
    earlier_leaves: bool,
    /// Compression of the two list columns' values, if not the file's (`Some(0)`: none; a
    /// zstd level otherwise).
    list_zstd: Option<i32>,
    /// The writer's mini-batch of values between page-size checks, if not the landing's (8,192).
    write_batch: Option<usize>,
}

const VARIANTS: [Variant; 12] = [
    Variant {
        name: "landing (the sink's settings)",
        zstd: None,
        statistics: None,
        lists: Lists::Dictionary,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "chunk statistics",
        zstd: None,
        statistics: Some(EnabledStatistics::Chunk),
        lists: Lists::Dictionary,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "no statistics",
        zstd: None,
        statistics: Some(EnabledStatistics::None),
        lists: Lists::Dictionary,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "zstd 1",
        zstd: Some(1),
        statistics: None,
        lists: Lists::Dictionary,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "no dictionary on the lists",
        zstd: None,
        statistics: None,
        lists: Lists::Plain,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "zstd 1, chunk statistics, plain lists",
        zstd: Some(1),
        statistics: Some(EnabledStatistics::Chunk),
        lists: Lists::Plain,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "delta-encoded lists",
        zstd: None,
        statistics: None,
        lists: Lists::Delta,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "delta-encoded category lists",
        zstd: None,
        statistics: None,
        lists: Lists::DeltaCategories,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "the earlier landing leaves (dictionary on item_content, statistics on every leaf)",
        zstd: None,
        statistics: None,
        lists: Lists::Dictionary,
        earlier_leaves: true,
        list_zstd: None,
        write_batch: None,
    },
    Variant {
        name: "lists uncompressed",
        zstd: None,
        statistics: None,
        lists: Lists::Dictionary,
        earlier_leaves: false,
        list_zstd: Some(0),
        write_batch: None,
    },
    Variant {
        name: "lists zstd 1",
        zstd: None,
        statistics: None,
        lists: Lists::Dictionary,
        earlier_leaves: false,
        list_zstd: Some(1),
        write_batch: None,
    },
    Variant {
        name: "mini-batches of 1,024 values (the parquet crate's default)",
        zstd: None,
        statistics: None,
        lists: Lists::Dictionary,
        earlier_leaves: false,
        list_zstd: None,
        write_batch: Some(1024),
    },
];

/// The ingest sink's own landing properties with `v`'s changes.
fn properties(landing: &WriterProperties, v: &Variant) -> WriterProperties {
    let mut builder = landing.clone().into_builder();
    if let Some(level) = v.zstd {
        builder = builder.set_compression(Compression::ZSTD(
            ZstdLevel::try_new(level).expect("valid zstd level"),
        ));
    }
    if let Some(statistics) = v.statistics {
        builder = builder.set_statistics_enabled(statistics);
    }
    // A list's values are the leaf `<column>.list.item`: a path naming only the column matches
    // nothing (an earlier version of this bench did that, so its "plain lists" rows were the
    // landing settings).
    let leaf = |column: &str| ColumnPath::new(vec![column.into(), "list".into(), "item".into()]);
    let (plain, delta): (&[&str], &[&str]) = match v.lists {
        Lists::Dictionary => (&[], &[]),
        Lists::Plain => (&[columns::HIST_ITEM_IDS, columns::HIST_CATEGORY_IDS], &[]),
        Lists::Delta => (&[], &[columns::HIST_ITEM_IDS, columns::HIST_CATEGORY_IDS]),
        Lists::DeltaCategories => (&[], &[columns::HIST_CATEGORY_IDS]),
    };
    for &column in plain.iter().chain(delta) {
        builder = builder.set_column_dictionary_enabled(leaf(column), false);
    }
    if let Some(size) = v.write_batch {
        builder = builder.set_write_batch_size(size);
    }
    if let Some(level) = v.list_zstd {
        let compression = match level {
            0 => Compression::UNCOMPRESSED,
            level => Compression::ZSTD(ZstdLevel::try_new(level).expect("valid zstd level")),
        };
        for column in [columns::HIST_ITEM_IDS, columns::HIST_CATEGORY_IDS] {
            builder = builder.set_column_compression(leaf(column), compression);
        }
    }
    if v.earlier_leaves {
        builder = builder.set_column_dictionary_enabled(leaf(columns::ITEM_CONTENT), true);
        for column in [
            columns::HIST_ITEM_IDS,
            columns::HIST_CATEGORY_IDS,
            columns::ITEM_CONTENT,
        ] {
            builder = builder.set_column_statistics_enabled(leaf(column), EnabledStatistics::Page);
        }
    }
    for &column in delta {
        builder = builder.set_column_encoding(leaf(column), Encoding::DELTA_BINARY_PACKED);
    }
    builder.build()
}

/// Bytes of one file holding `batches`.
fn encode(batches: &[RecordBatch], props: WriterProperties) -> usize {
    let schema = batches[0].schema();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props)).expect("writer");
    for batch in batches {
        writer.write(batch).expect("write");
    }
    writer.into_inner().expect("finish").len()
}

fn flag(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let rows = flag(&args, "--rows").unwrap_or(if bench { 100_000 } else { 2_000 });
    let len = flag(&args, "--len").unwrap_or(50);
    let rounds = if bench { 3 } else { 1 };
    let config = GeneratorConfig {
        seed: 7,
        days: 5,
        users: 20_000,
        events_per_day: (rows / 5 + 1) as u64,
        max_seq_len: len as u32,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(&config).expect("generator");
    let schema = generator.schema().clone();
    let events: Vec<_> = std::iter::from_fn(|| generator.next_chunk(4096).map(|c| c.events))
        .flatten()
        .take(rows)
        .collect();
    let batches: Vec<RecordBatch> = events
        .chunks(10_000)
        .map(|chunk| {
            let mut builder = EventBatchBuilder::new(schema.clone(), chunk.len());
            for event in chunk {
                builder.push(event).expect("valid event");
            }
            builder.finish().expect("batch")
        })
        .collect();
    let mean_len = events.iter().map(|e| e.hist_item_ids.len()).sum::<usize>() / rows.max(1);
    println!("{rows} rows, mean sequence {mean_len}, {rounds} rounds\n");
    println!("| variant | us per row (per round) | bytes per row | vs landing |");
    println!("|---|---|---|---|");
    let landing = SinkConfig::default()
        .parquet_options(true)
        .writer_properties()
        .expect("landing properties");
    let mut baseline = 0.0;
    let mut times = vec![Vec::new(); VARIANTS.len()];
    let mut sizes = vec![0; VARIANTS.len()];
    for _ in 0..rounds {
        for (i, v) in VARIANTS.iter().enumerate() {
            let start = Instant::now();
            sizes[i] = encode(&batches, properties(&landing, v));
            times[i].push(start.elapsed().as_secs_f64() * 1e6 / rows as f64);
        }
    }
    for (i, v) in VARIANTS.iter().enumerate() {
        let mut sorted = times[i].clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        if i == 0 {
            baseline = median;
        }
        let per_round: Vec<String> = times[i].iter().map(|t| format!("{t:.2}")).collect();
        println!(
            "| {} | {} | {} | {:.2}x |",
            v.name,
            per_round.join(" / "),
            sizes[i] / rows.max(1),
            median / baseline
        );
    }
}
