//! The row-sparse lazy Adam(W) update: only the batch rows move, exactly as a full step would.

use super::*;

#[test]
fn apply_gradients_touches_only_the_batch_rows() {
    let mut t = managed(3, 1, 100);
    train(&mut t, &[1, 2, 3, 4], 1);
    let untouched: Vec<(u64, Vec<u32>)> = [2u64, 4]
        .iter()
        .map(|&id| (id, bits(t.row(id).expect("row"))))
        .collect();
    let default_before = bits(t.default_row());
    let l = train(&mut t, &[3, 1, 3], 2);
    t.apply_gradients(&l, &[0.5, -1.0, 2.0, 0.1, 0.2, 0.3])
        .expect("apply");
    for (id, before) in untouched {
        assert_eq!(bits(t.row(id).expect("row")), before, "row {id} changed");
        let s = t.index[&id] as usize;
        assert_eq!(t.steps[s], 0);
        assert!(t.m[s * 3..(s + 1) * 3].iter().all(|&x| x == 0.0));
    }
    assert_eq!(bits(t.default_row()), default_before);
    assert_eq!(t.steps[t.index[&1] as usize], 1);
    assert_eq!(t.steps[t.index[&3] as usize], 1);
    assert_eq!(t.steps[0], 0);
}

#[test]
fn apply_gradients_to_steps_only_the_given_rows_exactly_as_a_full_step_would() {
    let mut full = managed(2, 1, 100);
    let mut subset = managed(2, 1, 100);
    for t in [&mut full, &mut subset] {
        train(t, &[1, 2, 3], 1);
    }
    // Looked up 3, 1, 2 (unique order); only rows 0 (id 3) and 2 (id 2) have gradients.
    let lf = train(&mut full, &[3, 1, 2], 2);
    let ls = train(&mut subset, &[3, 1, 2], 2);
    let id1_before = bits(subset.row(1).expect("row"));
    full.apply_gradients(&lf, &[0.5, -1.0, 0.0, 0.0, 2.0, 0.25])
        .expect("full");
    subset
        .apply_gradients_to(&ls, &[0, 2], &[0.5, -1.0, 2.0, 0.25])
        .expect("subset");
    for id in [3, 2] {
        assert_eq!(
            bits(subset.row(id).expect("row")),
            bits(full.row(id).expect("row"))
        );
    }
    assert_eq!(
        bits(subset.row(1).expect("row")),
        id1_before,
        "row without gradient moved"
    );
    assert_eq!(subset.steps[subset.index[&1] as usize], 0);
    assert_eq!(full.steps[full.index[&1] as usize], 1);
    // Unordered, repeated or out-of-range rows and misaligned gradients are refused.
    for (rows, grads) in [
        (&[2u32, 0][..], &[0.0f32; 4][..]),
        (&[1, 1], &[0.0; 4]),
        (&[3], &[0.0; 2]),
        (&[0, 1], &[0.0; 2]),
    ] {
        assert!(
            subset.apply_gradients_to(&ls, rows, grads).is_err(),
            "{rows:?}"
        );
    }
}

#[test]
fn one_row_matches_a_hand_computed_adamw_step() {
    let mut t = EmbeddingTable::new(EmbeddingTableConfig {
        optimizer: SparseAdamConfig {
            learning_rate: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        ..config(2)
    })
    .expect("valid");
    let l = train(&mut t, &[5], 1);
    let w0: Vec<f64> = t
        .row(5)
        .expect("row")
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    // Step 1 with g = (0.5, -2): m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2, so each
    // weight moves by -lr * sign(g) (eps negligible) after decay by 1 - lr * wd = 0.999.
    t.apply_gradients(&l, &[0.5, -2.0]).expect("apply");
    let w1: Vec<f64> = t
        .row(5)
        .expect("row")
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    let expected1 = [w0[0] * 0.999 - 0.1, w0[1] * 0.999 + 0.1];
    for j in 0..2 {
        assert!(
            (w1[j] - expected1[j]).abs() < 1e-6,
            "{j}: {w1:?} vs {expected1:?}"
        );
    }
    // Step 2 with g = (1, 0): written out in f64.
    t.apply_gradients(&l, &[1.0, 0.0]).expect("apply");
    let w2 = t.row(5).expect("row");
    let g1 = [0.5f64, -2.0];
    let g2 = [1.0f64, 0.0];
    for j in 0..2 {
        let m = 0.9 * (0.1 * g1[j]) + 0.1 * g2[j];
        let v = 0.999 * (0.001 * g1[j] * g1[j]) + 0.001 * g2[j] * g2[j];
        let m_hat = m / (1.0 - 0.9f64.powi(2));
        let v_hat = v / (1.0 - 0.999f64.powi(2));
        let expected = w1[j] * 0.999 - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!(
            (f64::from(w2[j]) - expected).abs() < 1e-6,
            "{j}: {} vs {expected}",
            w2[j]
        );
    }
}

#[test]
fn bias_correction_advances_per_row_lazily() {
    // Row 2 gets two updates; in `a` row 1 gets three updates in between.
    let run = |busy: bool| {
        let mut t = managed(2, 1, 100);
        train(&mut t, &[1, 2], 1);
        let l = train(&mut t, &[2], 1);
        t.apply_gradients(&l, &[0.3, -0.7]).expect("apply");
        if busy {
            let l1 = train(&mut t, &[1], 1);
            for _ in 0..3 {
                t.apply_gradients(&l1, &[1.0, 1.0]).expect("apply");
            }
        }
        let l = train(&mut t, &[1, 2], 1);
        t.apply_gradients(&l, &[0.0, 0.0, 0.2, 0.9]).expect("apply");
        let steps = (t.steps[t.index[&1] as usize], t.steps[t.index[&2] as usize]);
        (steps, bits(t.row(2).expect("row 2")))
    };
    let (busy_steps, busy_row) = run(true);
    let (idle_steps, idle_row) = run(false);
    assert_eq!(busy_steps, (4, 2));
    assert_eq!(idle_steps, (1, 2));
    assert_eq!(busy_row, idle_row, "row 2's update ignores row 1's history");
}

#[test]
fn the_default_row_is_trained() {
    let mut t = managed(2, 5, 100);
    let l = train(&mut t, &[1, 2], 1);
    assert_eq!(l.unique_slots(), &[DEFAULT_SLOT]);
    t.apply_gradients(&l, &[1.0, -1.0]).expect("apply");
    let d = t.default_row();
    assert!(d[0] < 0.0 && d[1] > 0.0, "{d:?}");
    assert_eq!(t.steps[0], 1);
}

#[test]
fn bad_gradients_are_rejected_without_changes() {
    let mut t = managed(2, 1, 100);
    let l = train(&mut t, &[1, 2], 1);
    let before = t.to_bytes();
    match t.apply_gradients(&l, &[0.0; 3]) {
        Err(ModelsError::ShapeMismatch {
            expected, found, ..
        }) => assert_eq!((expected, found), (4, 3)),
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    match t.apply_gradients(&l, &[0.0, 1.0, f32::NAN, 0.0]) {
        Err(ModelsError::NonFiniteGradient { row, column, .. }) => {
            assert_eq!((row, column), (1, 0))
        }
        other => panic!("expected a non-finite gradient error, got {other:?}"),
    }
    assert_eq!(t.to_bytes(), before);
}
