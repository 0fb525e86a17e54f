use super::*;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    predictions: Vec<f64>,
    labels: Vec<u8>,
    users: Vec<u64>,
    auc: f64,
    gauc: f64,
    logloss: f64,
    calibration: f64,
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-9, "{what}: ours {a}, scikit-learn {b}");
}

#[test]
fn agrees_with_scikit_learn_on_fixed_vectors() {
    // Written by scripts/metrics_reference.py (scikit-learn 1.5.2).
    let cases: Vec<Case> =
        serde_json::from_str(include_str!("../../testdata/sklearn_metrics.json")).expect("json");
    assert_eq!(cases.len(), 3);
    for c in cases {
        let e = evaluate(&c.predictions, &c.labels, &c.users).expect("evaluate");
        close(e.auc, c.auc, &format!("{} auc", c.name));
        close(e.gauc, c.gauc, &format!("{} gauc", c.name));
        close(e.logloss, c.logloss, &format!("{} logloss", c.name));
        close(
            e.calibration,
            c.calibration,
            &format!("{} calibration", c.name),
        );
        assert_eq!(e.samples, c.labels.len());
    }
}

#[test]
fn auc_handles_ties_and_extremes() {
    assert_eq!(auc(&[0.1, 0.9], &[0, 1]), Ok(1.0));
    assert_eq!(auc(&[0.9, 0.1], &[0, 1]), Ok(0.0));
    assert_eq!(auc(&[0.5, 0.5, 0.5, 0.5], &[0, 1, 0, 1]), Ok(0.5));
    // One tie between a positive and a negative counts one half: (1 + 1 + 0.5) / 4... worked by hand:
    // pairs (p=0.8 vs n=0.2) 1, (p=0.8 vs n=0.5) 1, (p=0.5 vs n=0.2) 1, (p=0.5 vs n=0.5) 0.5.
    assert_eq!(auc(&[0.2, 0.5, 0.5, 0.8], &[0, 0, 1, 1]), Ok(3.5 / 4.0));
    assert!(matches!(
        auc(&[0.1, 0.2], &[1, 1]),
        Err(MetricsError::SingleClass {
            positives: 2,
            negatives: 0
        })
    ));
    assert!(auc(&[f64::NAN, 0.2], &[0, 1]).is_err());
    assert!(auc(&[0.1], &[0, 1]).is_err());
}

#[test]
fn gauc_skips_single_class_users_and_weights_by_impressions() {
    // User 1: perfect (2 rows); user 2: inverted (4 rows); user 3: only positives (ignored).
    let scores = [0.1, 0.9, 0.9, 0.8, 0.2, 0.1, 0.5];
    let labels = [0, 1, 0, 0, 1, 1, 1];
    let users = [1, 1, 2, 2, 2, 2, 3];
    let g = gauc(&scores, &labels, &users)
        .expect("gauc")
        .expect("defined");
    assert!((g - (1.0 * 2.0 + 0.0 * 4.0) / 6.0).abs() < 1e-12, "{g}");
    assert_eq!(gauc(&[0.3], &[1], &[1]).expect("gauc"), None);
}

#[test]
fn logloss_and_calibration_validate_inputs() {
    assert!(logloss(&[1.5], &[1]).is_err());
    assert!(logloss(&[0.5, 0.5], &[1]).is_err());
    let l = logloss(&[0.0, 1.0], &[1, 0]).expect("clipped");
    assert!(l.is_finite() && l > 30.0, "{l}");
    assert_eq!(
        calibration(&[0.5, 0.5], &[0, 0]).expect("calibration"),
        None
    );
    assert_eq!(
        calibration(&[0.25, 0.25], &[0, 1]).expect("calibration"),
        Some(0.5)
    );
}
