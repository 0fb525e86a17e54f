//! End-to-end training checks: the loop a trainer runs (embedding leaf outside the module,
//! backward, row gradients back to the table, Adam on the dense parameters).

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};

use super::ctr_net::tests::{random_input, small_config};
use super::test_util::{device, normal, values};
use super::{CtrNetConfig, bce_with_logits};

#[test]
fn ctr_net_learns_a_separable_problem() {
    let device = device(91).autodiff();
    let config: CtrNetConfig = small_config().with_mlp_hidden(vec![16, 8]);
    let batch = 512;
    // Fixed random embeddings; the label is a fixed linear function of user and item.
    let input = random_input(&config, batch, 5, 8, &device);
    let w_user = normal([config.d_embed, 1], &device);
    let w_item = normal([config.d_embed, 1], &device);
    let labels = (input.user.clone().matmul(w_user.clone())
        + input.item.clone().matmul(w_item.clone()))
    .greater_elem(0.0)
    .float(); // [B, 1]

    // A held-out batch from the same rule.
    let held_out = random_input(&config, batch, 5, 8, &device);
    let held_out_labels = (held_out.user.clone().matmul(w_user.clone())
        + held_out.item.clone().matmul(w_item.clone()))
    .greater_elem(0.0)
    .float();

    let mut net = config.init(&device);
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..200 {
        let loss = bce_with_logits(net.forward(input.clone()), labels.clone());
        losses.push(values(loss.clone())[0]);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    let (start, end) = (losses[0], losses[losses.len() - 1]);
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(end < 0.7 * start, "loss {start} -> {end}");

    // It generalises: inference mode (running statistics) ranks the held-out batch well.
    let scores: Vec<f64> = values(net.valid().forward(held_out.clone()))
        .into_iter()
        .map(f64::from)
        .collect();
    let labels: Vec<u8> = values(held_out_labels.without_autodiff())
        .into_iter()
        .map(|l| l as u8)
        .collect();
    let auc = crate::metrics::auc(&scores, &labels).expect("both classes");
    assert!(auc > 0.85, "held-out AUC {auc}");
}

#[test]
fn embedding_leaf_receives_row_gradients_and_dense_params_step() {
    // The trainer's step: unique rows -> leaf requiring grad -> select to batch positions.
    let device = device(92).autodiff();
    let config = small_config();
    let d = config.d_embed;
    // Rows as the table holds them (plain f32, outside autodiff) become a leaf on the device.
    let table_rows: Vec<f32> = (0..3 * d).map(|i| (i as f32 * 0.37).sin()).collect();
    let unique_rows =
        Tensor::<2>::from_data(TensorData::new(table_rows, [3, d]), &*device).require_grad(); // [U, d]
    let positions =
        Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2, 2, 1], [4]), &*device);
    let mut input = random_input(&config, 4, 5, 4, &device);
    input.item = unique_rows.clone().select(0, positions); // [B, d]

    let net = config.init(&device);
    let before = values(net.mlp.output.weight.val());
    let labels = Tensor::ones([4, 1], &*device);
    let loss = bce_with_logits(net.forward(input.clone()), labels.clone());
    let mut grads = loss.backward();

    // Row gradients for the table (summed over the positions sharing a row).
    let row_grads = unique_rows
        .grad_remove(&mut grads)
        .expect("leaf requires grad");
    assert_eq!(row_grads.dims(), [3, d]);
    let row_grads = values(row_grads);
    assert!(row_grads.iter().all(|g| g.is_finite()));

    // Same batch with the per-position embeddings as the leaf: row 2 (positions 1 and 2) gets
    // the sum of its positions' gradients.
    let per_position = input.item.clone().detach().require_grad(); // [B, d] leaf
    input.item = per_position.clone();
    let position_grads = bce_with_logits(net.forward(input), labels).backward();
    let position_grads = values(per_position.grad(&position_grads).expect("leaf"));
    for j in 0..d {
        let summed = position_grads[d + j] + position_grads[2 * d + j];
        assert!((row_grads[2 * d + j] - summed).abs() < 1e-6);
        assert!((row_grads[j] - position_grads[j]).abs() < 1e-6);
    }

    // Dense parameters through burn's optimiser.
    let grads = GradientsParams::from_grads(grads, &net);
    let net = AdamConfig::new().init().step(1e-2, net, grads);
    assert_ne!(values(net.mlp.output.weight.val()), before);
}
