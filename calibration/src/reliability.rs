//! Reliability diagram and expected calibration error of the top-1 confidence.

use crate::error::{argmax, check_scores, CalibrationError, Result};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// Samples whose top-1 confidence falls in `(lower, upper]` (the first bin also takes 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean top-1 probability in the bin (0 when empty).
    pub mean_confidence: f64,
    /// Fraction of the bin whose top-1 class is right (0 when empty).
    pub accuracy: f64,
}

/// The bins and the calibration errors they give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    pub bins: Vec<ReliabilityBin>,
    /// Expected calibration error: Σ (count / n) · |accuracy − confidence| over the bins.
    pub ece: f64,
    /// Maximum calibration error over the non-empty bins.
    pub mce: f64,
}

/// Reliability of a probability matrix against labels with `bins` equal-width bins.
pub fn reliability(
    probabilities: ArrayView2<f64>,
    labels: &[usize],
    bins: usize,
) -> Result<Reliability> {
    check_scores("reliability", probabilities, labels)?;
    if bins == 0 {
        return Err(CalibrationError::InvalidArgument {
            what: "reliability",
            reason: "needs at least one bin".into(),
        });
    }
    let mut count = vec![0usize; bins];
    let mut confidence_sum = vec![0.0; bins];
    let mut correct = vec![0usize; bins];
    for (row, &label) in probabilities.rows().into_iter().zip(labels) {
        let top = argmax(row);
        let confidence = row[top];
        let bin = ((confidence * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[bin] += 1;
        confidence_sum[bin] += confidence;
        correct[bin] += usize::from(top == label);
    }
    let n = labels.len() as f64;
    let mut ece = 0.0;
    let mut mce: f64 = 0.0;
    let bins: Vec<ReliabilityBin> = (0..bins)
        .map(|b| {
            let (mean_confidence, accuracy) = if count[b] == 0 {
                (0.0, 0.0)
            } else {
                let c = count[b] as f64;
                (confidence_sum[b] / c, correct[b] as f64 / c)
            };
            if count[b] > 0 {
                let gap = (accuracy - mean_confidence).abs();
                ece += count[b] as f64 / n * gap;
                mce = mce.max(gap);
            }
            ReliabilityBin {
                lower: b as f64 / bins as f64,
                upper: (b + 1) as f64 / bins as f64,
                count: count[b],
                mean_confidence,
                accuracy,
            }
        })
        .collect();
    Ok(Reliability { bins, ece, mce })
}
