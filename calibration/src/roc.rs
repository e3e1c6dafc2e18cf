//! Receiver operating characteristic: curves and the area under them, one class against the rest.

use crate::error::{check_scores, CalibrationError, Result};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// Points of a ROC curve, one per distinct score (from the highest down), starting at (0, 0)
/// with an infinite threshold, as `sklearn.metrics.roc_curve(..., drop_intermediate=False)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    pub false_positive_rate: Vec<f64>,
    pub true_positive_rate: Vec<f64>,
    /// A sample counts as positive when its score is at or above the threshold. The first one
    /// is `f64::INFINITY` (serialized as `null`, JSON has no infinity).
    #[serde(with = "infinity_as_null")]
    pub thresholds: Vec<f64>,
}

mod infinity_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<Option<f64>> = values.iter().map(|&x| x.is_finite().then_some(x)).collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let v = Vec::<Option<f64>>::deserialize(d)?;
        Ok(v.into_iter().map(|x| x.unwrap_or(f64::INFINITY)).collect())
    }
}

/// Counts the positives and negatives, failing when either is missing or a score is not finite.
fn check_binary(what: &'static str, scores: &[f64], positive: &[bool]) -> Result<(usize, usize)> {
    if scores.len() != positive.len() {
        return Err(CalibrationError::LengthMismatch {
            what,
            rows: scores.len(),
            labels: positive.len(),
        });
    }
    if let Some(row) = scores.iter().position(|s| !s.is_finite()) {
        return Err(CalibrationError::NonFinite { what, row });
    }
    let positives = positive.iter().filter(|&&p| p).count();
    let negatives = positive.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(CalibrationError::OneSided {
            what,
            positives,
            negatives,
        });
    }
    Ok((positives, negatives))
}

/// Row indices sorted by descending score.
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// The ROC curve of `scores` for the binary truth `positive`.
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Result<RocCurve> {
    let (positives, negatives) = check_binary("ROC curve", scores, positive)?;
    let order = descending(scores);
    let mut curve = RocCurve {
        false_positive_rate: vec![0.0],
        true_positive_rate: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    let (mut tp, mut fp) = (0usize, 0usize);
    for (k, &i) in order.iter().enumerate() {
        if positive[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        // Tied scores form one point: emit only after the last of a run of equal scores.
        let last_of_run = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_run {
            curve.true_positive_rate.push(tp as f64 / positives as f64);
            curve.false_positive_rate.push(fp as f64 / negatives as f64);
            curve.thresholds.push(scores[i]);
        }
    }
    Ok(curve)
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann–Whitney statistic from mid-ranks), equal to the
/// trapezoidal area under [`roc_curve`] and to `sklearn.metrics.roc_auc_score`.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Result<f64> {
    let (positives, negatives) = check_binary("ROC AUC", scores, positive)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start..end (1-based start+1..=end) share their mean.
        let mid_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| positive[i]).count();
        positive_rank_sum += mid_rank * tied_positives as f64;
        start = end;
    }
    let p = positives as f64;
    Ok((positive_rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// One-vs-rest AUC of every class from a score matrix; `None` for a class that is absent from
/// the labels or present in all of them.
pub fn one_vs_rest_auc(scores: ArrayView2<f64>, labels: &[usize]) -> Result<Vec<Option<f64>>> {
    check_scores("one-vs-rest AUC", scores, labels)?;
    (0..scores.ncols())
        .map(|c| {
            let column = scores.column(c).to_vec();
            let positive: Vec<bool> = labels.iter().map(|&l| l == c).collect();
            match roc_auc(&column, &positive) {
                Ok(auc) => Ok(Some(auc)),
                Err(CalibrationError::OneSided { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .collect()
}

/// One-vs-rest ROC curves of every class; `None` where the AUC is `None`.
pub fn one_vs_rest_curves(
    scores: ArrayView2<f64>,
    labels: &[usize],
) -> Result<Vec<Option<RocCurve>>> {
    check_scores("one-vs-rest ROC curves", scores, labels)?;
    (0..scores.ncols())
        .map(|c| {
            let column = scores.column(c).to_vec();
            let positive: Vec<bool> = labels.iter().map(|&l| l == c).collect();
            match roc_curve(&column, &positive) {
                Ok(curve) => Ok(Some(curve)),
                Err(CalibrationError::OneSided { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .collect()
}

/// Unweighted mean of the defined per-class AUCs (`roc_auc_score(multi_class="ovr",
/// average="macro")` when every class is present); `None` when none is defined.
pub fn macro_auc(per_class: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = per_class.iter().flatten().copied().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}
