//! Activation statistics for the int8 variants, measured by running the fp32 file on calibration
//! images with every quantized tensor exposed: per-channel means (for bias correction) and, for
//! int8-full, ranges picked by dermo-calibration's histogram estimators.

use crate::eval::network::progress_bar;
use anyhow::Context;
use dermo_calibration::{ActivationHistogram, RangeMethod};
use dermo_model::arch::ArchSpec;
use dermo_model::onnx::{activation_range_names, ood_range_names};
use dermo_model::runtime::{ActivationProbe, ActivationStats, ChannelMeans};
use dermo_model::{preprocess_file, ModelFile, PreprocessConfig};
use std::path::PathBuf;

/// Histogram resolution (TensorRT's choice).
const BINS: usize = 2048;

/// Ranges (by `method`) and channel means of every tensor the int8 writers need.
pub fn activation_stats(
    fp32: &ModelFile,
    spec: &ArchSpec,
    images: &[PathBuf],
    cfg: &PreprocessConfig,
    method: RangeMethod,
) -> anyhow::Result<ActivationStats> {
    anyhow::ensure!(
        !images.is_empty(),
        "no calibration images for the activation statistics"
    );
    let mut names = activation_range_names(spec);
    // A frozen OOD branch is quantized too (int8-full): its tensors need ranges of their own.
    if let Some(ood) = &fp32.metadata.calibration.ood {
        if let (true, Some(block)) = (ood.frozen_backbone, ood.block) {
            names.extend(ood_range_names(spec, block));
        }
    }
    let probe = ActivationProbe::new(fp32, &names)?;
    let mut histograms = vec![ActivationHistogram::new(BINS)?; names.len()];
    let mut means = ChannelMeans::default();
    let bar = progress_bar(images.len() as u64, true);
    bar.set_message("calibrate");
    for path in images {
        let x = preprocess_file(path, cfg)?;
        for ((h, a), name) in histograms.iter_mut().zip(probe.run(&x)?).zip(&names) {
            h.observe(&a.data)
                .with_context(|| format!("activation {name} of {}", path.display()))?;
            means.add(name, &a);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ranges = names
        .into_iter()
        .zip(&histograms)
        .map(|(name, h)| {
            let r = h
                .range(method)
                .with_context(|| format!("activation range of {name}"))?;
            Ok((name, (r.min, r.max)))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(ActivationStats {
        ranges,
        channel_means: means.finish(),
    })
}

/// `n` images spread evenly over `paths` (all of them when there are fewer).
pub fn spread(paths: &[PathBuf], n: usize) -> Vec<PathBuf> {
    if n >= paths.len() {
        return paths.to_vec();
    }
    (0..n).map(|i| paths[i * paths.len() / n].clone()).collect()
}
