//! Activation ranges for int8 quantization, estimated from a histogram of observed values.
//!
//! The histogram counts magnitudes |x| on [0, limit] and grows by doubling its bin width, so
//! batches can be observed one after another without knowing the range up front. Three
//! estimators read a clipping threshold from it: the observed extremes, a percentile of |x|,
//! and the threshold that minimizes the KL divergence between the clipped distribution and its
//! 128-level quantization (TensorRT's entropy calibration, Migacz 2017).

use crate::error::{CalibrationError, Result};
use serde::{Deserialize, Serialize};

/// How to pick the clipping range from a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RangeMethod {
    /// The smallest and largest value observed.
    MinMax,
    /// Clip |x| at this percentile (e.g. 99.99).
    Percentile(f64),
    /// Clip |x| where the KL divergence to a quantization with this many levels is smallest
    /// (128 for symmetric int8).
    Entropy { quantized_bins: usize },
}

/// A clipping range `[min, max]` for one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivationRange {
    pub min: f32,
    pub max: f32,
}

impl ActivationRange {
    /// Scale of symmetric int8 quantization (`q = round(x / scale)`, |q| ≤ 127).
    pub fn symmetric_scale(&self) -> f32 {
        self.min.abs().max(self.max.abs()) / 127.0
    }
}

/// Counts of |x| in equal bins on `[0, bins × bin_width]`, plus the signed extremes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationHistogram {
    counts: Vec<u64>,
    bin_width: f64,
    min: f32,
    max: f32,
}

impl ActivationHistogram {
    /// An empty histogram with `bins` bins (TensorRT uses 2048). Odd counts are rounded up so
    /// that bins can merge in pairs when the range doubles.
    pub fn new(bins: usize) -> Result<Self> {
        if bins < 2 {
            return Err(CalibrationError::InvalidArgument {
                what: "activation histogram",
                reason: format!("needs at least 2 bins, got {bins}"),
            });
        }
        Ok(Self {
            counts: vec![0; bins + bins % 2],
            bin_width: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        })
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn bin_width(&self) -> f64 {
        self.bin_width
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper end of the magnitude range.
    pub fn limit(&self) -> f64 {
        self.bin_width * self.counts.len() as f64
    }

    /// Adds a batch of values. NaN or infinite values are an error (a broken network, not data).
    pub fn observe(&mut self, values: &[f32]) -> Result<()> {
        if let Some(row) = values.iter().position(|v| !v.is_finite()) {
            return Err(CalibrationError::NonFinite {
                what: "activation histogram",
                row,
            });
        }
        let Some(largest) = values.iter().map(|v| v.abs() as f64).reduce(f64::max) else {
            return Ok(());
        };
        for &v in values {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        if self.bin_width == 0.0 {
            if largest == 0.0 {
                // All zeros so far: remember them in bin 0 with a nominal width.
                self.counts[0] += values.len() as u64;
                return Ok(());
            }
            self.bin_width = largest / self.counts.len() as f64;
        }
        while largest > self.limit() {
            self.double_width();
        }
        let bins = self.counts.len();
        for &v in values {
            let bin = ((v.abs() as f64 / self.bin_width) as usize).min(bins - 1);
            self.counts[bin] += 1;
        }
        Ok(())
    }

    /// Merges bins in pairs: same number of bins, twice the width, twice the range.
    fn double_width(&mut self) {
        let bins = self.counts.len();
        let merged: Vec<u64> = self
            .counts
            .chunks(2)
            .map(|pair| pair.iter().sum())
            .collect();
        self.counts.fill(0);
        self.counts[..bins / 2].copy_from_slice(&merged);
        self.bin_width *= 2.0;
    }

    /// The clipping range the method picks. A symmetric threshold t gives
    /// `[max(min, −t), min(max, t)]`, so a ReLU output keeps its zero lower end.
    pub fn range(&self, method: RangeMethod) -> Result<ActivationRange> {
        const WHAT: &str = "activation range";
        if self.total() == 0 {
            return Err(CalibrationError::Empty { what: WHAT });
        }
        if self.bin_width == 0.0 {
            return Ok(ActivationRange { min: 0.0, max: 0.0 });
        }
        let threshold = match method {
            RangeMethod::MinMax => {
                return Ok(ActivationRange {
                    min: self.min,
                    max: self.max,
                })
            }
            RangeMethod::Percentile(p) => {
                if !(p > 0.0 && p <= 100.0) {
                    return Err(CalibrationError::InvalidArgument {
                        what: WHAT,
                        reason: format!("percentile {p} is not in (0, 100]"),
                    });
                }
                self.percentile(p)
            }
            RangeMethod::Entropy { quantized_bins } => self.entropy_threshold(quantized_bins)?,
        } as f32;
        Ok(ActivationRange {
            min: self.min.max(-threshold),
            max: self.max.min(threshold),
        })
    }

    /// The magnitude below which `p` percent of the values lie, interpolated inside its bin.
    fn percentile(&self, p: f64) -> f64 {
        let target = p / 100.0 * self.total() as f64;
        let mut cumulative = 0.0;
        for (bin, &count) in self.counts.iter().enumerate() {
            let next = cumulative + count as f64;
            if next >= target && count > 0 {
                let inside = (target - cumulative) / count as f64;
                return (bin as f64 + inside) * self.bin_width;
            }
            cumulative = next;
        }
        self.limit()
    }

    /// TensorRT's entropy calibration: for each candidate number of kept bins i, the reference
    /// P is the first i bins with everything beyond folded into the last one, and Q the same
    /// i bins merged into `quantized_bins` levels and spread back over P's non-empty bins;
    /// the threshold is the upper edge of the i with the smallest KL(P ‖ Q).
    fn entropy_threshold(&self, quantized_bins: usize) -> Result<f64> {
        let bins = self.counts.len();
        if quantized_bins < 2 || quantized_bins > bins {
            return Err(CalibrationError::InvalidArgument {
                what: "entropy calibration",
                reason: format!("{quantized_bins} quantized levels for {bins} histogram bins"),
            });
        }
        let counts: Vec<f64> = self.counts.iter().map(|&c| c as f64).collect();
        let mut best = (f64::INFINITY, bins);
        let mut outliers: f64 = counts[quantized_bins..].iter().sum();
        for kept in quantized_bins..=bins {
            if kept > quantized_bins {
                outliers -= counts[kept - 1];
            }
            let sliced = &counts[..kept];
            let mut p = sliced.to_vec();
            p[kept - 1] += outliers;
            let q = quantize_and_expand(sliced, &p, quantized_bins);
            if let Some(divergence) = kl_divergence(&p, &q) {
                if divergence < best.0 {
                    best = (divergence, kept);
                }
            }
        }
        Ok(best.1 as f64 * self.bin_width)
    }
}

/// Merges `sliced` into `levels` groups of `len / levels` bins (the last group also takes the
/// remainder) and spreads each group's count evenly over the bins where `p` is non-zero.
fn quantize_and_expand(sliced: &[f64], p: &[f64], levels: usize) -> Vec<f64> {
    let len = sliced.len();
    let merged = len / levels;
    let mut q = vec![0.0; len];
    for level in 0..levels {
        let start = level * merged;
        let stop = if level == levels - 1 {
            len
        } else {
            start + merged
        };
        let mass: f64 = sliced[start..stop].iter().sum();
        let nonzero = p[start..stop].iter().filter(|&&v| v != 0.0).count();
        if nonzero > 0 {
            for i in start..stop {
                if p[i] != 0.0 {
                    q[i] = mass / nonzero as f64;
                }
            }
        }
    }
    q
}

/// Moves a little mass (ε = 1e-4) onto empty bins so that KL stays finite.
fn smooth(p: &[f64]) -> Option<Vec<f64>> {
    const EPS: f64 = 1e-4;
    let zeros = p.iter().filter(|&&v| v == 0.0).count();
    let nonzeros = p.len() - zeros;
    if nonzeros == 0 {
        return None;
    }
    let taken = EPS * zeros as f64 / nonzeros as f64;
    Some(
        p.iter()
            .map(|&v| if v == 0.0 { EPS } else { v - taken })
            .collect(),
    )
}

/// KL(P ‖ Q) of two unnormalized histograms after smoothing (`scipy.stats.entropy(p, q)`).
fn kl_divergence(p: &[f64], q: &[f64]) -> Option<f64> {
    let p = smooth(p)?;
    let q = smooth(q)?;
    let (sum_p, sum_q): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let mut divergence = 0.0;
    for (&pi, &qi) in p.iter().zip(&q) {
        let (pi, qi) = (pi / sum_p, qi / sum_q);
        if pi > 0.0 {
            if qi <= 0.0 {
                return None;
            }
            divergence += pi * (pi / qi).ln();
        }
    }
    Some(divergence)
}
