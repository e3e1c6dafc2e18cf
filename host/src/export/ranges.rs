//! Activation ranges for the int8-full variant: the fp32 file runs on a calibration subset with
//! every quantized tensor exposed, and dermo-calibration's histogram estimators pick each range.

use crate::eval::network::progress_bar;
use anyhow::Context;
use dermo_calibration::{ActivationHistogram, RangeMethod};
use dermo_model::arch::ArchSpec;
use dermo_model::onnx::activation_range_names;
use dermo_model::runtime::ActivationProbe;
use dermo_model::{preprocess_file, ModelFile, PreprocessConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Histogram resolution (TensorRT's choice).
const BINS: usize = 2048;

/// `(min, max)` for every tensor the int8-full writer quantizes.
pub fn activation_ranges(
    fp32: &ModelFile,
    spec: &ArchSpec,
    images: &[PathBuf],
    cfg: &PreprocessConfig,
    method: RangeMethod,
) -> anyhow::Result<BTreeMap<String, (f32, f32)>> {
    anyhow::ensure!(!images.is_empty(), "no calibration images for the activation ranges");
    let names = activation_range_names(spec);
    let probe = ActivationProbe::new(fp32, &names)?;
    let mut histograms = vec![ActivationHistogram::new(BINS)?; names.len()];
    let bar = progress_bar(images.len() as u64, true);
    bar.set_message("ranges");
    for path in images {
        let x = preprocess_file(path, cfg)?;
        for (h, values) in histograms.iter_mut().zip(probe.run(&x)?) {
            h.observe(&values)
                .with_context(|| format!("activations of {}", path.display()))?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    names
        .into_iter()
        .zip(&histograms)
        .map(|(name, h)| {
            let r = h
                .range(method)
                .with_context(|| format!("activation range of {name}"))?;
            Ok((name, (r.min, r.max)))
        })
        .collect()
}

/// `n` images spread evenly over `paths` (all of them when there are fewer).
pub fn spread(paths: &[PathBuf], n: usize) -> Vec<PathBuf> {
    if n >= paths.len() {
        return paths.to_vec();
    }
    (0..n).map(|i| paths[i * paths.len() / n].clone()).collect()
}
