//! Binary cross-entropy on logits, the training loss of every ctrflow network.

use burn::tensor::Tensor;

/// Mean binary cross-entropy between `logits` and 0/1 `labels`, both `[B, 1]` (any equal
/// shapes work), as a one-element tensor.
///
/// Computed in the numerically stable form `max(x, 0) - x y + ln(1 + exp(-|x|))`, which never
/// overflows (`exp` only sees non-positive arguments) and equals
/// `-(y ln σ(x) + (1 - y) ln(1 - σ(x)))`.
///
/// `max(x, 0)` is written `(x + |x|) / 2` so that the gradient is exactly `σ(x) - y` even at
/// `x = 0`: the `|x|` terms, `|x| / 2 + ln(1 + e^{-|x|})`, have zero slope there, so the
/// subgradient burn picks for `|x|` (and for a clamp) at 0 does not matter.
pub fn bce_with_logits<const D: usize>(logits: Tensor<D>, labels: Tensor<D>) -> Tensor<1> {
    assert_eq!(
        logits.dims(),
        labels.dims(),
        "logits and labels must have the same shape"
    );
    let magnitude = logits.clone().abs(); // |x|
    let even_part = magnitude.clone().mul_scalar(0.5) + magnitude.neg().exp().log1p(); // |x|/2 + ln(1 + e^{-|x|})
    let odd_part = logits.clone().mul_scalar(0.5) - logits * labels; // x/2 - x y
    (even_part + odd_part).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::test_util::{device, values};

    fn reference(x: f64, y: f64) -> f64 {
        let p = 1.0 / (1.0 + (-x).exp());
        -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
    }

    #[test]
    fn matches_the_textbook_formula() {
        let device = device(61);
        let xs = [-3.0, -0.5, 0.0, 0.7, 4.0];
        let ys = [0.0, 1.0, 1.0, 0.0, 1.0];
        let loss = bce_with_logits(
            Tensor::<1>::from_floats(xs, &device),
            Tensor::<1>::from_floats(ys, &device),
        );
        let expected = xs
            .iter()
            .zip(ys)
            .map(|(&x, y)| reference(x, y))
            .sum::<f64>()
            / xs.len() as f64;
        assert!((f64::from(values(loss)[0]) - expected).abs() < 1e-6);
    }

    #[test]
    fn extreme_logits_stay_finite() {
        let device = device(62);
        let loss = bce_with_logits(
            Tensor::<2>::from_floats([[1000.0], [-1000.0], [1000.0]], &device),
            Tensor::<2>::from_floats([[1.0], [0.0], [0.0]], &device),
        );
        let v = values(loss)[0];
        // Two perfect predictions (loss 0) and one off by 1000.
        assert!((v - 1000.0 / 3.0).abs() < 1e-3, "{v}");
    }

    #[test]
    fn gradient_is_sigmoid_minus_label_over_batch() {
        let device = device(63).autodiff();
        let x = Tensor::<1>::from_floats([0.0, 2.0], &device).require_grad();
        let y = Tensor::<1>::from_floats([1.0, 0.0], &device);
        let grads = bce_with_logits(x.clone(), y).backward();
        let g = values(x.grad(&grads).expect("leaf requires grad"));
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        assert!((g[0] - (sigmoid(0.0) - 1.0) / 2.0).abs() < 1e-6);
        assert!((g[1] - sigmoid(2.0) / 2.0).abs() < 1e-6);
    }
}
