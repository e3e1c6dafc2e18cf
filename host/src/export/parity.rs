//! Export checks its own output: the written file, run by tract, against the trainer's network
//! (libtorch) and against the fp32 file, on every image of the validation split.

use crate::eval::network::{Batch, Network, Scored};
use dermo_calibration::ConfusionMatrix;
use dermo_model::{ModelFile, PreprocessConfig, Runtime, Tensor, NUM_CLASSES};

/// fp32 file on tract vs the libtorch network: largest allowed logit difference.
pub const FP32_MAX_DELTA: f64 = 1e-3;
/// int8 file vs fp32 file: smallest allowed top-1 agreement (default of `--min-agreement`).
pub const INT8_MIN_AGREEMENT: f64 = 0.99;

/// A model file held in memory (not yet written), run with tract.
pub struct TractNetwork {
    name: String,
    runtime: Runtime,
    preprocess: PreprocessConfig,
}

impl TractNetwork {
    pub fn new(name: &str, file: &ModelFile) -> anyhow::Result<TractNetwork> {
        let input = &file.metadata.input;
        Ok(TractNetwork {
            name: name.to_string(),
            runtime: Runtime::new(file)?,
            preprocess: PreprocessConfig {
                size: input.size,
                color_constancy: input.color_constancy,
            },
        })
    }
}

impl Network for TractNetwork {
    fn describe(&self) -> String {
        format!("{} on tract", self.name)
    }

    fn preprocess(&self) -> PreprocessConfig {
        self.preprocess.clone()
    }

    fn run(&mut self, data: &[f32], batch: usize) -> anyhow::Result<Batch> {
        let s = self.runtime.input_size();
        let out = self.runtime.run(&Tensor {
            shape: [batch, 3, s, s],
            data: data.to_vec(),
        })?;
        Ok(Batch {
            logits: (0..batch)
                .map(|i| {
                    let mut a = [0f32; NUM_CLASSES];
                    a.copy_from_slice(out.logits_of(i));
                    a
                })
                .collect(),
            features: (0..batch)
                .filter_map(|i| out.features_of(i).map(<[f32]>::to_vec))
                .collect(),
        })
    }
}

/// Largest absolute logit difference between two scorings of the same images.
pub fn max_abs_delta(a: &Scored, b: &Scored) -> f64 {
    a.logits
        .iter()
        .zip(b.logits.iter())
        .map(|(x, y)| (x - y).abs())
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
