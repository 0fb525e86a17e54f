//! The dense baseline of the throughput bench: the A-CTR network with its tables as burn
//! `Embedding` parameters, dense gradients and Adam over every row.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use ctrflow_models::ComputeDevice;
use ctrflow_models::eta::{SimHash, TopKScratch, top_k_by_hamming_batch};
use ctrflow_models::nn::{CtrNet, CtrNetInput, bce_with_logits};

use super::*;

/// The dense baseline: the same `CtrNet`, inputs and ETA retrieval, with the three tables as
/// burn `Embedding` parameters (row = id, ids are `0..rows`), so autodiff produces a dense
/// `[rows, d]` gradient per table and burn's Adam updates every row every step.
#[derive(Module, Debug)]
struct DenseModel {
    user: Embedding,
    item: Embedding,
    category: Embedding,
    net: CtrNet,
}

pub(crate) struct Dense {
    model: Option<DenseModel>,
    optim: ModuleOptimizer,
    device: Device,
    shape: Shape,
    simhash: SimHash,
    historical: HistoricalTables,
    scratch: DenseScratch,
}

#[derive(Default)]
struct DenseScratch {
    /// For each item id, the step stamp it was last collected at and its unique index.
    seen: Vec<(u64, u32)>,
    unique: Vec<i64>,
    codes: Vec<u64>,
    targets: Vec<u64>,
    seq_codes: Vec<u64>,
    valid: Vec<u32>,
    top_k: Vec<u32>,
    counts: Vec<u32>,
    topk_scratch: TopKScratch,
    stamp: u64,
}

fn ints(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn snapshot_tensor(tables: &[SnapshotTable], ids: &[u64], d: usize, device: &Device) -> Tensor<3> {
    let mut out = Vec::with_capacity(ids.len() * tables.len() * d);
    for &id in ids {
        for t in tables {
            match t.row(id) {
                Some(row) => out.extend_from_slice(row),
                None => out.extend(std::iter::repeat_n(0.0, d)),
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [ids.len(), tables.len(), d]), device)
}

impl Dense {
    pub(crate) fn new(shape: &Shape, device: ComputeDevice, historical: HistoricalTables) -> Self {
        let device = device.burn_device().expect("device").autodiff();
        device.seed(7);
        let table = |rows: u64| {
            EmbeddingConfig::new(rows as usize, shape.d)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.01,
                })
                .init(&device)
        };
        let model = DenseModel {
            user: table(shape.users),
            item: table(shape.items),
            category: table(shape.categories),
            net: net_config(shape).init(&device),
        };
        Dense {
            model: Some(model),
            optim: AdamConfig::new().init(),
            device,
            shape: shape.clone(),
            simhash: SimHash::new(shape.d, 32, 11).expect("simhash"),
            historical,
            scratch: DenseScratch::default(),
        }
    }
}

impl Variant for Dense {
    fn step(&mut self, b: &FeatureBatch) -> f32 {
        let (shape, device, s) = (&self.shape, &self.device, &mut self.scratch);
        let model = self.model.take().expect("model");
        let (rows, d, k, len) = (b.rows(), shape.d, shape.top_k, shape.long);
        // The batch's distinct candidate and long-sequence items, in first-appearance order.
        s.stamp += 1;
        s.seen.resize(shape.items as usize, (0, 0));
        s.unique.clear();
        for &id in b.item_ids.iter().chain(&b.long.ids) {
            let slot = &mut s.seen[id as usize];
            if slot.0 != s.stamp {
                *slot = (s.stamp, s.unique.len() as u32);
                s.unique.push(id as i64);
            }
        }
        // ETA: SimHash codes of their current rows (no gradient), Hamming top-k per row.
        let current = model
            .item
            .weight
            .val()
            .detach()
            .select(0, ints(s.unique.clone(), device))
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 rows");
        s.codes.resize(s.unique.len(), 0);
        self.simhash.encode(&current, &mut s.codes).expect("codes");
        let code = |id: u64| s.codes[s.seen[id as usize].1 as usize];
        s.targets.clear();
        s.targets.extend(b.item_ids.iter().map(|&id| code(id)));
        s.seq_codes.clear();
        s.seq_codes.extend(b.long.ids.iter().map(|&id| code(id)));
        s.valid.clear();
        s.valid.extend((0..rows).map(|r| b.long.len_of(r) as u32));
        s.top_k.resize(rows * k, 0);
        s.counts.resize(rows, 0);
        top_k_by_hamming_batch(
            &s.targets,
            &s.seq_codes,
            &s.valid,
            k,
            &mut s.topk_scratch,
            &mut s.top_k,
            &mut s.counts,
        )
        .expect("top-k");
        let picked: Vec<i64> = (0..rows * k)
            .map(|i| b.long.ids[(i / k) * len + s.top_k[i] as usize] as i64)
            .collect();

        let as_i64 = |ids: &[u64]| ids.iter().map(|&i| i as i64).collect::<Vec<_>>();
        let lookup =
            |table: &Embedding, ids: Vec<i64>| table.weight.val().select(0, ints(ids, device));
        let all_true = |n: usize| -> Tensor<2, Bool> {
            Tensor::from_data(TensorData::new(vec![true; rows * n], [rows, n]), device)
        };
        let item = lookup(&model.item, as_i64(&b.item_ids));
        let input = CtrNetInput {
            user: lookup(&model.user, as_i64(&b.user_ids)),
            item,
            category: lookup(&model.category, as_i64(&b.category_ids)),
            context: Some(Tensor::from_data(
                TensorData::new(b.context.clone(), [rows, CONTEXT_WIDTH]),
                device,
            )),
            short_seq: lookup(&model.item, as_i64(&b.short.ids)).reshape([rows, shape.short, d]),
            short_mask: all_true(shape.short),
            long_seq: lookup(&model.item, picked).reshape([rows, k, d]),
            long_mask: all_true(k),
            historical_user: Some(snapshot_tensor(
                &self.historical.user,
                &b.user_ids,
                d,
                device,
            )),
            historical_item: Some(snapshot_tensor(
                &self.historical.item,
                &b.item_ids,
                d,
                device,
            )),
            short_categories: None,
            long_categories: None,
            content: None,
            plugin: None,
            srp: None,
        };
        let labels = Tensor::from_data(TensorData::new(b.labels.clone(), [rows, 1]), device);
        let loss = bce_with_logits(model.net.forward(input), labels);
        let value: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(1e-3, model, grads));
        value
    }
}
