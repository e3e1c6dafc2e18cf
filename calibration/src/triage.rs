//! The malignant-versus-benign triage question: the summed probability of a group of classes,
//! sensitivity and specificity at a refer threshold, and the threshold that reaches a target
//! sensitivity.

use crate::error::{check_scores, CalibrationError, Result};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// The classes whose summed probability decides a referral (for HAM10000: akiec, bcc, mel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalignantGroup {
    classes: Vec<usize>,
}

impl MalignantGroup {
    /// A group of distinct class indices, each below `num_classes`, at least one.
    pub fn new(classes: &[usize], num_classes: usize) -> Result<Self> {
        const WHAT: &str = "malignant group";
        if classes.is_empty() {
            return Err(CalibrationError::Empty { what: WHAT });
        }
        let mut sorted = classes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != classes.len() {
            return Err(CalibrationError::InvalidArgument {
                what: WHAT,
                reason: format!("class indices {classes:?} repeat"),
            });
        }
        if let Some(&bad) = sorted.iter().find(|&&c| c >= num_classes) {
            return Err(CalibrationError::LabelOutOfRange {
                what: WHAT,
                row: 0,
                label: bad,
                classes: num_classes,
            });
        }
        Ok(Self { classes: sorted })
    }

    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    pub fn contains(&self, class: usize) -> bool {
        self.classes.contains(&class)
    }

    /// The summed probability of the group for every row of a probability matrix.
    pub fn scores(&self, probabilities: ArrayView2<f64>) -> Result<Vec<f64>> {
        if let Some(&c) = self.classes.iter().find(|&&c| c >= probabilities.ncols()) {
            return Err(CalibrationError::LabelOutOfRange {
                what: "malignant group scores",
                row: 0,
                label: c,
                classes: probabilities.ncols(),
            });
        }
        Ok(probabilities
            .rows()
            .into_iter()
            .map(|row| self.classes.iter().map(|&c| row[c]).sum())
            .collect())
    }

    /// Whether each label belongs to the group.
    pub fn truth(&self, labels: &[usize]) -> Vec<bool> {
        labels.iter().map(|&l| self.contains(l)).collect()
    }

    /// Group scores and truth of a labelled probability matrix, checked.
    pub fn scores_and_truth(
        &self,
        probabilities: ArrayView2<f64>,
        labels: &[usize],
    ) -> Result<(Vec<f64>, Vec<bool>)> {
        check_scores("malignant group", probabilities, labels)?;
        Ok((self.scores(probabilities)?, self.truth(labels)))
    }
}

/// A binary decision rule "positive when score ≥ threshold" and how it did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub threshold: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub true_positives: usize,
    pub false_negatives: usize,
    pub true_negatives: usize,
    pub false_positives: usize,
}

/// Sensitivity and specificity of "positive when score ≥ threshold".
pub fn operating_point(
    scores: &[f64],
    positive: &[bool],
    threshold: f64,
) -> Result<OperatingPoint> {
    const WHAT: &str = "operating point";
    if scores.len() != positive.len() {
        return Err(CalibrationError::LengthMismatch {
            what: WHAT,
            rows: scores.len(),
            labels: positive.len(),
        });
    }
    if let Some(row) = scores.iter().position(|s| !s.is_finite()) {
        return Err(CalibrationError::NonFinite { what: WHAT, row });
    }
    let (mut tp, mut fn_, mut tn, mut fp) = (0, 0, 0, 0);
    for (&s, &p) in scores.iter().zip(positive) {
        match (p, s >= threshold) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, false) => tn += 1,
            (false, true) => fp += 1,
        }
    }
    if tp + fn_ == 0 || tn + fp == 0 {
        return Err(CalibrationError::OneSided {
            what: WHAT,
            positives: tp + fn_,
            negatives: tn + fp,
        });
    }
    Ok(OperatingPoint {
        threshold,
        sensitivity: tp as f64 / (tp + fn_) as f64,
        specificity: tn as f64 / (tn + fp) as f64,
        true_positives: tp,
        false_negatives: fn_,
        true_negatives: tn,
        false_positives: fp,
    })
}

/// The highest threshold whose sensitivity reaches `target` (in (0, 1]), i.e. the operating
/// point with the best specificity among those that miss at most `1 − target` of the positives.
pub fn threshold_for_sensitivity(
    scores: &[f64],
    positive: &[bool],
    target: f64,
) -> Result<OperatingPoint> {
    if !(target > 0.0 && target <= 1.0) {
        return Err(CalibrationError::InvalidArgument {
            what: "refer threshold",
            reason: format!("target sensitivity {target} is not in (0, 1]"),
        });
    }
    // Validates lengths, finiteness and both classes.
    operating_point(scores, positive, f64::NEG_INFINITY)?;
    let mut positive_scores: Vec<f64> = scores
        .iter()
        .zip(positive)
        .filter(|(_, &p)| p)
        .map(|(&s, _)| s)
        .collect();
    positive_scores.sort_by(|a, b| b.total_cmp(a));
    // The smallest number of positives that must score at or above the threshold; the epsilon
    // keeps 0.95 × 20 = 19.000000000000004 from asking for 20.
    let needed = ((target * positive_scores.len() as f64) - 1e-9)
        .ceil()
        .max(1.0) as usize;
    let threshold = positive_scores[needed.min(positive_scores.len()) - 1];
    operating_point(scores, positive, threshold)
}
