//! A-CTR training throughput on the CPU, and the embedding table at 10M rows (issue 5).
//!
//! One run measures, on the same batch shapes (batch 1024, user/item tables of 100k ids, d 16,
//! short sequence 50, long sequence 1000 with ETA top-50 over 32-bit SimHash codes, K = 3 TPM
//! snapshots of width 16, MLP 200-80-1 with batch norm):
//!
//! - `<device>-sparse-managed`: ctrflow's `CtrTrainer` as the daily job runs it: managed id
//!   tables outside autodiff, row-sparse lazy Adam on the batch's rows, burn's Adam on the
//!   dense network;
//! - `<device>-sparse-hashed`: the same with fixed-size hashed tables (no id map; the closest
//!   to the PyTorch reference's pre-indexed ids);
//! - `<device>-dense`: the same network with the tables as burn `Embedding` parameters: dense
//!   gradients and burn's Adam over every row (the baseline of the row-sparse target);
//! - `pytorch-sparse` / `pytorch-dense`: `scripts/torch_reference.py` (same architecture and
//!   sizes; `sparse=True` + SparseAdam, and dense), with as many threads as the Rust side.
//!
//! `<device>` is `flex`, plus `libtorch` in a `--features tch` build. Then the table section:
//! a managed table filled to 10M ids against a hashed table of 10M buckets (memory per row
//! from the process RSS, lookup / gather / lazy-Adam throughput on random 4096-id batches).
//!
//! ```text
//! cargo bench -p ctrflow-models --bench train_throughput -- [--steps N] [--rows R] [FILTER...]
//! ```
//! `--rows R` sets the user and item tables to R ids (default 100,000). The bench re-executes
//! itself with the malloc settings the training commands use (`ctrflow_models::malloc`);
//! `--default-malloc` measures with glibc's defaults instead. The sparse variants get their
//! batches as the training thread hands them over: copied and with their item ids
//! de-duplicated by a second thread while the previous step runs; `--serial` steps on each
//! batch as it is instead (the step de-duplicates its own ids).
//! FILTERs select variants by substring (`flex`, `pytorch`, `table`). The PyTorch reference
//! needs `scripts/setup-torch.sh` (or `CTRFLOW_TORCH_PYTHON` naming a python with torch).
//! Without `--bench` (as `cargo test --all-targets` runs it) a small smoke run asserts that
//! every Rust variant learns a repeated batch and that the 10M-row machinery holds its ids.

#[path = "train_throughput/dense.rs"]
mod dense;
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use ctrflow_models::ComputeDevice;
use ctrflow_models::embedding::{
    Day, EmbeddingTable, EmbeddingTableConfig, Lookup, SnapshotTable, TableKind,
};
use ctrflow_models::mix64;
use ctrflow_models::nn::CtrNetConfig;
use ctrflow_models::train::{
    CONTEXT_WIDTH, CtrTrainer, FeatureBatch, FeatureConfig, HistoricalTables, IndexedBatch,
    TrainConfig,
};
use support::{BatchShape, Rng, full_history_batch};

/// Sizes of one run.
#[derive(Debug, Clone)]
struct Shape {
    batch: usize,
    users: u64,
    items: u64,
    categories: u64,
    d: usize,
    short: usize,
    long: usize,
    top_k: usize,
    snapshots: usize,
    warmup: usize,
    steps: usize,
    distinct_batches: usize,
    table_rows: usize,
    table_batches: usize,
}

impl Shape {
    fn bench(steps: usize) -> Self {
        Shape {
            batch: 1024,
            users: 100_000,
            items: 100_000,
            categories: 1_000,
            d: 16,
            short: 50,
            long: 1000,
            top_k: 50,
            snapshots: 3,
            warmup: 3,
            steps,
            distinct_batches: 4,
            table_rows: 10_000_000,
            table_batches: 2_000,
        }
    }

    /// The smoke run: small enough for the test command.
    fn smoke() -> Self {
        Shape {
            batch: 64,
            users: 500,
            items: 2_000,
            categories: 20,
            d: 8,
            short: 10,
            long: 100,
            top_k: 10,
            snapshots: 3,
            warmup: 0,
            steps: 12,
            distinct_batches: 1,
            table_rows: 50_000,
            table_batches: 50,
        }
    }
}

/// `count` batches of the shape (see [`support::full_history_batch`]).
fn batches(shape: &Shape, count: usize) -> Vec<FeatureBatch> {
    let mut rng = Rng(7);
    let batch = BatchShape {
        rows: shape.batch,
        users: shape.users,
        items: shape.items,
        categories: shape.categories,
        short: shape.short,
        long: shape.long,
    };
    (0..count)
        .map(|_| full_history_batch(&mut rng, &batch))
        .collect()
}

/// K snapshot tables holding every id of `0..ids` with random vectors.
fn snapshots(shape: &Shape, ids: u64, salt: u64) -> Vec<SnapshotTable> {
    let mut rng = Rng(salt);
    (0..shape.snapshots)
        .map(|_| {
            let mut t = SnapshotTable::empty(shape.d);
            let mut v = vec![0.0f32; shape.d];
            for id in 0..ids {
                v.iter_mut()
                    .for_each(|x| *x = rng.below(2000) as f32 / 1000.0 - 1.0);
                t.insert(id, &v, 1, Day(20_000)).expect("snapshot row");
            }
            t
        })
        .collect()
}

fn historical(shape: &Shape) -> HistoricalTables {
    HistoricalTables {
        user: snapshots(shape, shape.users, 1),
        item: snapshots(shape, shape.items, 2),
        point_in_time: None,
    }
}

fn net_config(shape: &Shape) -> CtrNetConfig {
    CtrNetConfig::new()
        .with_d_embed(shape.d)
        .with_d_context(CONTEXT_WIDTH)
        .with_short_len(shape.short)
        .with_eta_top_k(shape.top_k)
        .with_d_hist(shape.d)
        .with_long_heads(2)
}

fn train_config(shape: &Shape, device: ComputeDevice, hashed: bool) -> TrainConfig {
    // Managed tables are sized to hold every id (the default bound is 1M rows).
    let table = |rows: u64, seed: u64| {
        let mut c = EmbeddingTableConfig::new(shape.d);
        c.seed = seed;
        if hashed {
            c.kind = TableKind::Hashed {
                buckets: rows as usize,
            };
        } else {
            c.max_rows = c.max_rows.max(rows as usize);
        }
        Some(c)
    };
    TrainConfig {
        batch_size: shape.batch,
        shuffle_rows: shape.batch,
        seed: 7,
        features: FeatureConfig {
            short_len: shape.short,
            long_len: shape.long,
        },
        user_table: table(shape.users, 1),
        item_table: table(shape.items, 2),
        category_table: table(shape.categories, 3),
        device,
        ..TrainConfig::default()
    }
}

/// A trainer of one variant: one step on a batch returns its loss.
trait Variant {
    fn step(&mut self, batch: &FeatureBatch) -> f32;

    /// A step on a batch whose item ids were de-duplicated ahead, as the training thread's
    /// feature stage hands them over.
    fn step_indexed(&mut self, batch: &IndexedBatch) -> f32 {
        self.step(batch.features())
    }
}

struct Sparse(CtrTrainer);

impl Variant for Sparse {
    fn step(&mut self, batch: &FeatureBatch) -> f32 {
        self.0.train_step(batch).expect("train step")
    }

    fn step_indexed(&mut self, batch: &IndexedBatch) -> f32 {
        self.0.train_step_indexed(batch).expect("train step")
    }
}

/// One measured variant.
struct Measured {
    name: String,
    samples_per_s: f64,
    seconds_per_step: f64,
    first_loss: f32,
    last_loss: f32,
}

/// How the measured loop gets its batches.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Feed {
    /// Each step on a batch as it is (`train_step`: the step de-duplicates its own ids).
    Serial,
    /// As the training thread runs: a feature stage thread copies each step's batch (the
    /// stand-in for extracting it from Arrow) and de-duplicates its item ids while the
    /// previous step runs (`train_step_indexed`).
    Staged,
}

fn measure(
    name: &str,
    shape: &Shape,
    batches: &[FeatureBatch],
    feed: Feed,
    v: &mut dyn Variant,
) -> Measured {
    for i in 0..shape.warmup {
        v.step(&batches[i % batches.len()]);
    }
    let batch_at = |i: usize| &batches[(shape.warmup + i) % batches.len()];
    let mut losses = Vec::with_capacity(shape.steps);
    let start = Instant::now();
    match feed {
        Feed::Serial => {
            for i in 0..shape.steps {
                losses.push(v.step(batch_at(i)));
            }
        }
        Feed::Staged => std::thread::scope(|scope| {
            let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<IndexedBatch>(1);
            let (spent_tx, spent_rx) = std::sync::mpsc::channel::<IndexedBatch>();
            scope.spawn(move || {
                for i in 0..shape.steps {
                    let mut b = spent_rx
                        .try_recv()
                        .unwrap_or_else(|_| IndexedBatch::new(true));
                    b.refill(|f| {
                        f.clone_from(batch_at(i));
                        Ok::<_, ()>(())
                    })
                    .expect("copy");
                    if ready_tx.send(b).is_err() {
                        return;
                    }
                }
            });
            for b in ready_rx.iter() {
                losses.push(v.step_indexed(&b));
                let _ = spent_tx.send(b);
            }
        }),
    }
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        losses.iter().all(|l| l.is_finite()),
        "{name}: non-finite loss {losses:?}"
    );
    let m = Measured {
        name: name.to_string(),
        samples_per_s: (shape.steps * shape.batch) as f64 / seconds,
        seconds_per_step: seconds / shape.steps as f64,
        first_loss: losses[0],
        last_loss: losses[losses.len() - 1],
    };
    eprintln!(
        "{:<24} {:>9.0} samples/s  {:.3} s/step  loss {:.4} -> {:.4}",
        m.name, m.samples_per_s, m.seconds_per_step, m.first_loss, m.last_loss
    );
    m
}

fn torch_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CTRFLOW_TORCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".cache/ctrflow-tools/torch-venv/bin/python");
    p.exists().then_some(p)
}

fn pytorch(shape: &Shape, dense: bool, threads: usize) -> Measured {
    let python = torch_python().unwrap_or_else(|| {
        panic!("the PyTorch reference needs torch: run scripts/setup-torch.sh or set CTRFLOW_TORCH_PYTHON")
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/torch_reference.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--batch", &shape.batch.to_string()])
        .args(["--steps", &shape.steps.to_string()])
        .args(["--warmup", &shape.warmup.to_string()])
        .args(["--batches", &shape.distinct_batches.to_string()])
        .args(["--users", &shape.users.to_string()])
        .args(["--items", &shape.items.to_string()])
        .args(["--categories", &shape.categories.to_string()])
        .args([
            "--d",
            &shape.d.to_string(),
            "--d-hist",
            &shape.d.to_string(),
        ])
        .args(["--snapshots", &shape.snapshots.to_string()])
        .args(["--context", &CONTEXT_WIDTH.to_string()])
        .args(["--short-len", &shape.short.to_string()])
        .args(["--long-len", &shape.long.to_string()])
        .args(["--top-k", &shape.top_k.to_string()])
        .args(["--threads", &threads.to_string()]);
    if dense {
        cmd.arg("--dense");
    }
    let out = cmd.output().expect("run the PyTorch reference");
    assert!(
        out.status.success(),
        "torch_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("torch_reference.py prints one JSON object");
    let field = |k: &str| {
        json[k]
            .as_f64()
            .unwrap_or_else(|| panic!("no {k} in {json}"))
    };
    let m = Measured {
        name: if dense {
            "pytorch-dense"
        } else {
            "pytorch-sparse"
        }
        .to_string(),
        samples_per_s: field("samples_per_s"),
        seconds_per_step: field("seconds_per_step"),
        first_loss: field("first_loss") as f32,
        last_loss: field("last_loss") as f32,
    };
    eprintln!(
        "{:<24} {:>9.0} samples/s  {:.3} s/step  split {}",
        m.name, m.samples_per_s, m.seconds_per_step, json["split"]
    );
    m
}

/// Resident set size of this process in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Fills a table to `shape.table_rows` ids and times lookup, gather and lazy Adam on random
/// 4096-id batches of those ids. Returns (name, bytes per row, lookups/s, gathers/s, updates/s).
fn table_run(shape: &Shape, kind: TableKind) -> (String, f64, f64, f64, f64) {
    let name = match kind {
        TableKind::Managed => "managed",
        TableKind::Hashed { .. } => "hashed",
    };
    let mut config = EmbeddingTableConfig::new(16);
    config.kind = kind;
    config.max_rows = shape.table_rows;
    config.max_pending = 1;
    let before = rss_bytes();
    let mut table = EmbeddingTable::new(config).expect("table");
    let id_of = |i: u64| mix64(i ^ 0xC7F1);
    let mut lookup = Lookup::new();
    let chunk: Vec<u64> = Vec::with_capacity(65_536);
    let mut chunk = chunk;
    let fill = Instant::now();
    for start in (0..shape.table_rows as u64).step_by(65_536) {
        chunk.clear();
        chunk.extend((start..(start + 65_536).min(shape.table_rows as u64)).map(id_of));
        table.lookup(&chunk, Day(1), true, &mut lookup);
    }
    let fill_s = fill.elapsed().as_secs_f64();
    if matches!(kind, TableKind::Managed) {
        assert_eq!(table.len(), shape.table_rows, "every id admitted");
    }
    let bytes_per_row = (rss_bytes().saturating_sub(before)) as f64 / shape.table_rows as f64;
    let mut rng = Rng(99);
    let ids: Vec<Vec<u64>> = (0..shape.table_batches)
        .map(|_| {
            (0..4096)
                .map(|_| id_of(rng.below(shape.table_rows as u64)))
                .collect()
        })
        .collect();
    let (mut t_lookup, mut t_gather, mut t_update) = (0.0, 0.0, 0.0);
    let (mut looked_up, mut rows) = (0usize, 0usize);
    let mut values = Vec::new();
    let mut grads = Vec::new();
    for batch in &ids {
        let t = Instant::now();
        table.lookup(batch, Day(2), true, &mut lookup);
        t_lookup += t.elapsed().as_secs_f64();
        let t = Instant::now();
        table.gather(&lookup, &mut values).expect("gather");
        t_gather += t.elapsed().as_secs_f64();
        grads.clear();
        grads.extend(values.iter().map(|v| v * 0.01 + 0.001));
        let t = Instant::now();
        table.apply_gradients(&lookup, &grads).expect("update");
        t_update += t.elapsed().as_secs_f64();
        looked_up += batch.len();
        rows += lookup.unique_len();
    }
    if matches!(kind, TableKind::Managed) {
        assert_eq!(table.stats().default_reads, 0, "every id owns a row");
    }
    eprintln!(
        "table/{name:<8} fill {:.1} s ({:.2} M ids/s), {:.0} B/row (RSS), declared {} B/row; \
         lookup {:.2} M ids/s, gather {:.2} M rows/s, lazy Adam {:.2} M rows/s",
        fill_s,
        shape.table_rows as f64 / fill_s / 1e6,
        bytes_per_row,
        table.memory_bytes_per_row(),
        looked_up as f64 / t_lookup / 1e6,
        rows as f64 / t_gather / 1e6,
        rows as f64 / t_update / 1e6
    );
    (
        name.to_string(),
        bytes_per_row,
        looked_up as f64 / t_lookup,
        rows as f64 / t_gather,
        rows as f64 / t_update,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    // Measure what the training commands run with (see ctrflow_models::malloc), unless asked
    // for glibc's defaults.
    let default_malloc = args.iter().any(|a| a == "--default-malloc");
    let feed = if args.iter().any(|a| a == "--serial") {
        Feed::Serial
    } else {
        Feed::Staged
    };
    if bench && !default_malloc {
        ctrflow_models::malloc::reexec_with_training_malloc().expect("re-execute");
    }
    let tuned = std::env::var_os(ctrflow_models::malloc::TUNED_MARKER).is_some();
    let flag = |name: &str| -> Option<u64> {
        let i = args.iter().position(|a| a == name)?;
        let value = args.get(i + 1).and_then(|s| s.parse().ok());
        Some(value.unwrap_or_else(|| panic!("{name} takes a number")))
    };
    let steps = flag("--steps").map_or(20, |s| s as usize);
    let filters: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0 || !matches!(args[*i - 1].as_str(), "--steps" | "--rows"))
        })
        .map(|(_, a)| a)
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let mut shape = if bench {
        Shape::bench(steps)
    } else {
        Shape::smoke()
    };
    if let Some(rows) = flag("--rows") {
        (shape.users, shape.items) = (rows, rows);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "shape: {shape:?}, {threads} threads, sparse variants fed {feed:?}, malloc: {}",
        if tuned {
            "training settings"
        } else {
            "glibc defaults"
        }
    );
    let data = batches(&shape, shape.distinct_batches);

    let mut results = Vec::new();
    for device in ComputeDevice::compiled_cpu_devices() {
        let managed = format!("{device}-sparse-managed");
        if wanted(&managed) {
            let mut t = CtrTrainer::new(train_config(&shape, device, false), net_config(&shape))
                .expect("trainer");
            t.set_historical(historical(&shape)).expect("historical");
            results.push(measure(&managed, &shape, &data, feed, &mut Sparse(t)));
        }
        let hashed = format!("{device}-sparse-hashed");
        if wanted(&hashed) {
            let mut t = CtrTrainer::new(train_config(&shape, device, true), net_config(&shape))
                .expect("trainer");
            t.set_historical(historical(&shape)).expect("historical");
            results.push(measure(&hashed, &shape, &data, feed, &mut Sparse(t)));
        }
        let dense = format!("{device}-dense");
        if wanted(&dense) {
            let mut v = dense::Dense::new(&shape, device, historical(&shape));
            results.push(measure(&dense, &shape, &data, Feed::Serial, &mut v));
        }
    }
    if bench {
        for dense in [false, true] {
            let name = if dense {
                "pytorch-dense"
            } else {
                "pytorch-sparse"
            };
            if wanted(name) {
                results.push(pytorch(&shape, dense, threads));
            }
        }
    } else {
        // The smoke run trains one repeated batch: every variant must learn it.
        for m in &results {
            assert!(
                m.last_loss < m.first_loss * 0.9,
                "{}: loss did not fall on a repeated batch ({} -> {})",
                m.name,
                m.first_loss,
                m.last_loss
            );
        }
        eprintln!("smoke run: the PyTorch reference runs with --bench only");
    }

    if !results.is_empty() {
        let find = |n: &str| {
            results
                .iter()
                .find(|m| m.name == n)
                .map(|m| m.samples_per_s)
        };
        let torch = find("pytorch-sparse");
        println!("\n| variant | samples/s | s/step | vs pytorch-sparse | vs own dense |");
        println!("|---|---|---|---|---|");
        for m in &results {
            let own_dense = m
                .name
                .split('-')
                .next()
                .and_then(|dev| find(&format!("{dev}-dense")));
            let ratio = |base: Option<f64>| {
                base.map_or("-".into(), |b| format!("{:.2}x", m.samples_per_s / b))
            };
            println!(
                "| {} | {:.0} | {:.3} | {} | {} |",
                m.name,
                m.samples_per_s,
                m.seconds_per_step,
                ratio(torch),
                ratio(own_dense)
            );
        }
    }

    if wanted("table") {
        let managed = table_run(&shape, TableKind::Managed);
        let hashed = table_run(
            &shape,
            TableKind::Hashed {
                buckets: shape.table_rows,
            },
        );
        println!(
            "\n| {} rows, d 16 | bytes/row (RSS) | lookup ids/s | gather rows/s | lazy Adam rows/s |",
            shape.table_rows
        );
        println!("|---|---|---|---|---|");
        for t in [&managed, &hashed] {
            println!(
                "| {} | {:.0} | {:.2} M | {:.2} M | {:.2} M |",
                t.0,
                t.1,
                t.2 / 1e6,
                t.3 / 1e6,
                t.4 / 1e6
            );
        }
        println!(
            "| managed / hashed | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            managed.1 / hashed.1,
            managed.2 / hashed.2,
            managed.3 / hashed.3,
            managed.4 / hashed.4
        );
    }
}
