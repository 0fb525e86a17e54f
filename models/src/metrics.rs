//! Offline CTR metrics, exact and allocation-conscious:
//!
//! - **AUC**: the probability that a random positive scores above a random negative, ties
//!   counting one half. Computed exactly from ranks after one sort (Mann-Whitney U), O(n log n).
//! - **GAUC**: per-user AUC averaged with impression weights, over users that have both a positive
//!   and a negative (others carry no ranking information).
//! - **logloss**: mean binary cross-entropy, predictions clipped to [eps, 1 - eps] with eps the
//!   f64 machine epsilon (as scikit-learn).
//! - **calibration**: mean prediction / mean label (1.0 is perfectly calibrated).
//!
//! Values agree with scikit-learn (`roc_auc_score`, `log_loss`) on the fixed vectors in the tests.

use std::collections::HashMap;

use thiserror::Error;

/// Why metrics could not be computed.
#[derive(Debug, Error, PartialEq)]
pub enum MetricsError {
    /// Predictions and labels differ in length.
    #[error("{predictions} predictions but {labels} labels")]
    LengthMismatch {
        /// Number of predictions.
        predictions: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A prediction is NaN or infinite, or outside [0, 1] where a probability is required.
    #[error("prediction #{index} is {value}, expected a probability in [0, 1]")]
    InvalidPrediction {
        /// Position of the offending value.
        index: usize,
        /// The value.
        value: f64,
    },
    /// AUC needs both classes.
    #[error("AUC is undefined: {positives} positives and {negatives} negatives")]
    SingleClass {
        /// Number of positives.
        positives: usize,
        /// Number of negatives.
        negatives: usize,
    },
}

fn check(predictions: &[f64], labels: &[u8]) -> Result<(), MetricsError> {
    if predictions.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            predictions: predictions.len(),
            labels: labels.len(),
        });
    }
    if let Some((index, &value)) = predictions
        .iter()
        .enumerate()
        .find(|(_, p)| !(0.0..=1.0).contains(*p))
    {
        return Err(MetricsError::InvalidPrediction { index, value });
    }
    Ok(())
}

/// Exact AUC with ties counted as one half. `order` is scratch space reused across calls.
fn auc_with(scores: &[f64], labels: &[u8], order: &mut Vec<u32>) -> Result<f64, MetricsError> {
    let positives = labels.iter().filter(|&&l| l != 0).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(MetricsError::SingleClass {
            positives,
            negatives,
        });
    }
    order.clear();
    order.extend(0..scores.len() as u32);
    order.sort_unstable_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let score = scores[order[i] as usize];
        let mut j = i;
        let mut group_positives = 0usize;
        while j < order.len() && scores[order[j] as usize] == score {
            group_positives += usize::from(labels[order[j] as usize] != 0);
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += average_rank * group_positives as f64;
        i = j;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Exact AUC (ties count one half). Scores need not be probabilities but must not be NaN.
pub fn auc(scores: &[f64], labels: &[u8]) -> Result<f64, MetricsError> {
    validate_scores(scores, labels)?;
    auc_with(scores, labels, &mut Vec::new())
}

/// Group AUC: the impression-weighted mean of per-user AUC over users with both labels.
/// Returns `None` when no user has both labels.
pub fn gauc(scores: &[f64], labels: &[u8], users: &[u64]) -> Result<Option<f64>, MetricsError> {
    if users.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            predictions: users.len(),
            labels: labels.len(),
        });
    }
    validate_scores(scores, labels)?;
    let mut groups: HashMap<u64, Vec<u32>> = HashMap::new();
    for (i, &u) in users.iter().enumerate() {
        groups.entry(u).or_default().push(i as u32);
    }
    let (mut weighted, mut weight) = (0.0, 0.0);
    let (mut s, mut l, mut order) = (Vec::new(), Vec::new(), Vec::new());
    // Deterministic summation order regardless of hash-map iteration.
    let mut keys: Vec<u64> = groups.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let rows = &groups[&key];
        s.clear();
        l.clear();
        s.extend(rows.iter().map(|&r| scores[r as usize]));
        l.extend(rows.iter().map(|&r| labels[r as usize]));
        if let Ok(a) = auc_with(&s, &l, &mut order) {
            weighted += a * rows.len() as f64;
            weight += rows.len() as f64;
        }
    }
    Ok((weight > 0.0).then(|| weighted / weight))
}

fn validate_scores(scores: &[f64], labels: &[u8]) -> Result<(), MetricsError> {
    if scores.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            predictions: scores.len(),
            labels: labels.len(),
        });
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| s.is_nan()) {
        return Err(MetricsError::InvalidPrediction { index, value });
    }
    Ok(())
}

/// Mean binary cross-entropy of probabilities, clipped to [eps, 1 - eps] (eps = f64::EPSILON).
pub fn logloss(predictions: &[f64], labels: &[u8]) -> Result<f64, MetricsError> {
    check(predictions, labels)?;
    // Machine epsilon, as scikit-learn (eps="auto") does.
    const EPS: f64 = f64::EPSILON;
    let total: f64 = predictions
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            if y != 0 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    Ok(total / predictions.len().max(1) as f64)
}

/// Mean prediction divided by mean label (`None` when there are no positives).
pub fn calibration(predictions: &[f64], labels: &[u8]) -> Result<Option<f64>, MetricsError> {
    check(predictions, labels)?;
    let positives = labels.iter().filter(|&&l| l != 0).count();
    if positives == 0 {
        return Ok(None);
    }
    let mean_p: f64 = predictions.iter().sum::<f64>() / predictions.len() as f64;
    Ok(Some(mean_p / (positives as f64 / labels.len() as f64)))
}

/// All four metrics of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// AUC over all samples.
    pub auc: f64,
    /// Impression-weighted per-user AUC (NaN when no user has both labels).
    pub gauc: f64,
    /// Mean binary cross-entropy.
    pub logloss: f64,
    /// Mean prediction / mean label.
    pub calibration: f64,
    /// Number of samples.
    pub samples: usize,
}

/// Computes every metric over one evaluation set.
pub fn evaluate(
    predictions: &[f64],
    labels: &[u8],
    users: &[u64],
) -> Result<Evaluation, MetricsError> {
    Ok(Evaluation {
        auc: auc(predictions, labels)?,
        gauc: gauc(predictions, labels, users)?.unwrap_or(f64::NAN),
        logloss: logloss(predictions, labels)?,
        calibration: calibration(predictions, labels)?.unwrap_or(f64::NAN),
        samples: labels.len(),
    })
}

#[cfg(test)]
mod tests;
