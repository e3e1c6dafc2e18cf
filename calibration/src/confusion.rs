//! The confusion matrix and the metrics read off it: accuracy, balanced accuracy and per-class
//! precision, recall, F1 and specificity.

use crate::error::{argmax, check_scores, CalibrationError, Result};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// Counts of (true class, predicted class) pairs: rows are the truth, columns the prediction,
/// as in `sklearn.metrics.confusion_matrix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    counts: Array2<u64>,
}

/// One class against the rest. Undefined ratios (a zero denominator) are 0, as scikit-learn's
/// `zero_division=0`; `support` and `predicted` tell whether that happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Samples whose true class this is.
    pub support: u64,
    /// Samples predicted as this class.
    pub predicted: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub specificity: f64,
}

impl ConfusionMatrix {
    /// Builds the matrix from true and predicted class indices.
    pub fn from_predictions(truth: &[usize], predicted: &[usize], classes: usize) -> Result<Self> {
        const WHAT: &str = "confusion matrix";
        if truth.len() != predicted.len() {
            return Err(CalibrationError::LengthMismatch {
                what: WHAT,
                rows: predicted.len(),
                labels: truth.len(),
            });
        }
        let mut counts = Array2::zeros((classes, classes));
        for (row, (&t, &p)) in truth.iter().zip(predicted).enumerate() {
            let label = t.max(p);
            if label >= classes {
                return Err(CalibrationError::LabelOutOfRange {
                    what: WHAT,
                    row,
                    label,
                    classes,
                });
            }
            counts[[t, p]] += 1;
        }
        Ok(Self { counts })
    }

    /// Builds the matrix from scores (probabilities or logits), predicting the arg-max class.
    pub fn from_scores(scores: ArrayView2<f64>, truth: &[usize]) -> Result<Self> {
        check_scores("confusion matrix", scores, truth)?;
        let predicted: Vec<usize> = scores.rows().into_iter().map(argmax).collect();
        Self::from_predictions(truth, &predicted, scores.ncols())
    }

    pub fn classes(&self) -> usize {
        self.counts.nrows()
    }

    /// The counts, rows = true class, columns = predicted class.
    pub fn counts(&self) -> ArrayView2<'_, u64> {
        self.counts.view()
    }

    /// The counts as nested rows, for serialization.
    pub fn to_rows(&self) -> Vec<Vec<u64>> {
        self.counts.rows().into_iter().map(|r| r.to_vec()).collect()
    }

    pub fn total(&self) -> u64 {
        self.counts.sum()
    }

    /// Fraction of samples on the diagonal (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        ratio(self.counts.diag().sum(), self.total())
    }

    /// Recall of one class, `None` when no sample has that class.
    pub fn recall(&self, class: usize) -> Option<f64> {
        let support = self.counts.row(class).sum();
        (support > 0).then(|| ratio(self.counts[[class, class]], support))
    }

    /// Mean recall over the classes present in the truth, as
    /// `sklearn.metrics.balanced_accuracy_score` (classes without support are left out).
    pub fn balanced_accuracy(&self) -> f64 {
        let recalls: Vec<f64> = (0..self.classes()).filter_map(|c| self.recall(c)).collect();
        if recalls.is_empty() {
            return 0.0;
        }
        recalls.iter().sum::<f64>() / recalls.len() as f64
    }

    /// Metrics of one class against the rest.
    pub fn class_metrics(&self, class: usize) -> ClassMetrics {
        let tp = self.counts[[class, class]];
        let support = self.counts.row(class).sum();
        let predicted = self.counts.column(class).sum();
        let negatives = self.total() - support;
        let false_positives = predicted - tp;
        let precision = ratio(tp, predicted);
        let recall = ratio(tp, support);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        ClassMetrics {
            support,
            predicted,
            precision,
            recall,
            f1,
            specificity: ratio(negatives - false_positives, negatives),
        }
    }

    /// [`Self::class_metrics`] for every class, in class order.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        (0..self.classes()).map(|c| self.class_metrics(c)).collect()
    }

    /// Unweighted mean F1 over all classes, as `f1_score(average="macro", zero_division=0)`.
    pub fn macro_f1(&self) -> f64 {
        let per_class = self.per_class();
        if per_class.is_empty() {
            return 0.0;
        }
        per_class.iter().map(|m| m.f1).sum::<f64>() / per_class.len() as f64
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}
