//! Export checks its own output: the written file, run by tract, against the trainer's network
//! (libtorch) and against the fp32 file, on every image of the validation split.

use crate::eval::network::{normalized_batch, open_cache, Network, Scored};
use dermo_calibration::ConfusionMatrix;
use dermo_model::{ClassMaps, NUM_CLASSES};
use std::path::Path;

/// fp32 file on tract vs the libtorch network: largest allowed logit difference.
pub const FP32_MAX_DELTA: f64 = 1e-3;
/// fp32 file on tract vs libtorch: largest allowed class-map difference. A map cell is a logit
/// computed from one feature vector instead of their mean, so it carries more rounding than the
/// logit itself.
pub const FP32_MAX_MAP_DELTA: f64 = 1e-2;
/// How many validation images the class maps are compared on.
pub const MAP_IMAGES: usize = 32;
/// int8 file vs fp32 file: smallest allowed top-1 agreement (default of `--min-agreement`).
pub const INT8_MIN_AGREEMENT: f64 = 0.99;

/// Largest absolute logit difference between two scorings of the same images.
pub fn max_abs_delta(a: &Scored, b: &Scored) -> f64 {
    a.logits
        .iter()
        .zip(b.logits.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Largest absolute difference between the OOD features of the same image (∞ when one side
/// has none or their sizes differ).
pub fn max_abs_ood_delta(a: &Scored, b: &Scored) -> f64 {
    if a.ood.len() != b.ood.len() || a.ood.is_empty() {
        return f64::INFINITY;
    }
    let mut worst = 0f64;
    for (x, y) in a.ood.iter().zip(&b.ood) {
        if x.len() != y.len() {
            return f64::INFINITY;
        }
        for (p, q) in x.iter().zip(y) {
            worst = worst.max(f64::from((p - q).abs()));
        }
    }
    worst
}

/// The class maps of the first [`MAP_IMAGES`] images of `manifest` (`None`: the network has none).
pub fn first_class_maps(
    network: &mut dyn Network,
    manifest: &Path,
    cache_root: &Path,
) -> anyhow::Result<Option<ClassMaps>> {
    let (cache, _) = open_cache(manifest, &network.preprocess(), cache_root)?;
    let n = cache.len().min(MAP_IMAGES);
    let mut batch = Vec::new();
    normalized_batch(&cache, 0..n, &mut batch)?;
    network.class_maps(&batch, n)
}

/// Largest absolute difference between two sets of class maps (∞ when their shapes differ).
pub fn max_abs_map_delta(a: &ClassMaps, b: &ClassMaps) -> f64 {
    if a.side != b.side || a.values.len() != b.values.len() {
        return f64::INFINITY;
    }
    a.values
        .iter()
        .zip(&b.values)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

/// Fraction of images whose top-1 class is the same.
pub fn top1_agreement(a: &Scored, b: &Scored) -> f64 {
    let (pa, pb) = (top1(a), top1(b));
    let same = pa.iter().zip(&pb).filter(|(x, y)| x == y).count();
    same as f64 / pa.len().max(1) as f64
}

/// Balanced accuracy of the top-1 predictions against the labels.
pub fn balanced_accuracy(s: &Scored) -> anyhow::Result<f64> {
    let m = ConfusionMatrix::from_predictions(&s.labels, &top1(s), NUM_CLASSES)?;
    Ok(m.balanced_accuracy())
}

fn top1(s: &Scored) -> Vec<usize> {
    s.logits
        .rows()
        .into_iter()
        .map(|r| {
            (0..r.len())
                .max_by(|&i, &j| r[i].total_cmp(&r[j]))
                .unwrap_or(0)
        })
        .collect()
}
