//! What PPM's cache saves: the frozen plug-in tower's outputs for a stream of training batches,
//! computed for every row (no cache) against served from `PluginCache` (the tower runs once
//! per new item), at several content widths.
//!
//! Batches of 1,024 rows; item ids drawn from 50,000 items with a skew (the square of a
//! uniform draw, so popular items repeat as in real traffic); each item has one fixed content
//! vector of width `w`; tower `w -> hidden -> 16`. Both sides run the same tower on the same
//! device (flex, no autodiff: the tower is frozen, so training needs only its forward pass).
//!
//! ```text
//! cargo bench -p ctrflow-models --bench plugin_cache -- [--batches N]
//! ```
//! Without `--bench` (as `cargo test --all-targets` runs it) a small run asserts that the
//! cached outputs equal the tower's.

use std::time::Instant;

use burn::tensor::Device;
use ctrflow_models::mix64;
use ctrflow_models::nn::{PluginTower, PluginTowerConfig};
use ctrflow_models::train::PluginCache;

const BATCH: usize = 1024;

/// One measured configuration.
struct Case {
    width: usize,
    hidden: Vec<usize>,
}

/// `batches` batches of item ids and their content rows.
fn stream(items: u64, width: usize, batches: usize) -> (Vec<Vec<u64>>, Vec<Vec<f32>>) {
    let value = |item: u64, j: usize| {
        let bits = mix64(item.wrapping_mul(0x9E37_79B9) ^ j as u64);
        (bits >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut state = 0x5EED_u64;
    let mut ids = Vec::with_capacity(batches);
    let mut contents = Vec::with_capacity(batches);
    for _ in 0..batches {
        let batch_ids: Vec<u64> = (0..BATCH)
            .map(|_| {
                state = mix64(state);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                (u * u * items as f64) as u64
            })
            .collect();
        let content = batch_ids
            .iter()
            .flat_map(|&item| (0..width).map(move |j| value(item, j)))
            .collect();
        ids.push(batch_ids);
        contents.push(content);
    }
    (ids, contents)
}

fn uncached(tower: &PluginTower, content: &[f32], device: &Device) -> Vec<f32> {
    tower.forward_rows(content.to_vec(), device)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let batches = args
        .iter()
        .position(|a| a == "--batches")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 200 } else { 4 });
    let cases = if bench {
        vec![
            Case {
                width: 16,
                hidden: vec![32],
            },
            Case {
                width: 256,
                hidden: vec![256],
            },
            Case {
                width: 768,
                hidden: vec![512, 256],
            },
        ]
    } else {
        vec![Case {
            width: 8,
            hidden: vec![8],
        }]
    };
    let device = Device::flex();
    device.seed(7);
    if bench {
        println!(
            "| content width w | tower | no cache, rows/s | cache, rows/s | cache / no cache | tower runs with the cache |"
        );
        println!("|---|---|---|---|---|---|");
    }
    for case in cases {
        let tower = PluginTowerConfig::new(case.width)
            .with_hidden(case.hidden.clone())
            .with_d_output(16)
            .init(&device);
        let (ids, contents) = stream(50_000, case.width, batches);

        let start = Instant::now();
        let mut direct = Vec::with_capacity(batches);
        for content in &contents {
            direct.push(uncached(&tower, content, &device));
        }
        let no_cache = start.elapsed().as_secs_f64();

        let mut cache = PluginCache::new(1 << 20);
        let mut out = Vec::new();
        let start = Instant::now();
        for (b, (batch_ids, content)) in ids.iter().zip(&contents).enumerate() {
            cache
                .outputs(&tower, batch_ids, content, case.width, &device, &mut out)
                .expect("cache");
            if !bench || b == 0 {
                for (a, e) in out.iter().zip(&direct[b]) {
                    assert!((a - e).abs() < 1e-5, "cached {a} vs tower {e}");
                }
            }
        }
        let cached = start.elapsed().as_secs_f64();
        let rows = (batches * BATCH) as f64;
        let runs = cache.stats().computed;
        assert!(
            runs < rows as u64,
            "repeated items are served from the cache"
        );
        if bench {
            let mut widths = vec![case.width.to_string()];
            widths.extend(case.hidden.iter().map(ToString::to_string));
            widths.push("16".into());
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.1}x | {} of {} rows ({:.1}%) |",
                case.width,
                widths.join("-"),
                rows / no_cache,
                rows / cached,
                no_cache / cached,
                runs,
                rows as u64,
                100.0 * runs as f64 / rows
            );
        }
    }
}
