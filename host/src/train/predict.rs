//! Predictions of a trained run on a manifest, for the evaluator and the exporter.

use super::dataset::{normalized_batch, Examples};
use super::net::EfficientNetLite;
use super::recipe::Recipe;
use super::run_folder::{RunFolder, RunInfo};
use anyhow::Context;
use dermo_model::arch::ArchSpec;
use dermo_model::{PreprocessConfig, NUM_CLASSES};
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Logits and pooled features of every image of a manifest, in manifest order.
#[derive(Debug, Clone)]
pub struct Predictions {
    pub logits: Vec<[f32; NUM_CLASSES]>,
    /// Pooled head features (1280 per image).
    pub features: Vec<Vec<f32>>,
    pub labels: Vec<usize>,
    pub lesion_ids: Vec<String>,
    pub image_ids: Vec<String>,
}

/// A run's network loaded for inference.
pub struct TrainedModel {
    pub vs: VarStore,
    pub net: EfficientNetLite,
    pub recipe: Recipe,
    pub info: RunInfo,
    /// The weights file that was loaded.
    pub weights: PathBuf,
}

impl TrainedModel {
    /// Loads `best.safetensors` of a run folder (falling back to `last.safetensors`).
    pub fn load(run_dir: &Path, device: Device) -> anyhow::Result<TrainedModel> {
        let folder = RunFolder::new(run_dir);
        let recipe = folder.recipe()?;
        let info = folder.info()?;
        let weights = folder.weights()?;
        let mut vs = VarStore::new(device);
        let net = EfficientNetLite::new(&vs.root(), &ArchSpec::efficientnet_lite0(NUM_CLASSES));
        vs.load(&weights)
            .with_context(|| format!("cannot load {}", weights.display()))?;
        Ok(TrainedModel {
            vs,
            net,
            recipe,
            info,
            weights,
        })
    }

    /// The preprocessing the run was trained with.
    pub fn preprocess(&self) -> PreprocessConfig {
        self.recipe.preprocess
    }

    /// Logits and pooled features of already loaded examples.
    pub fn predict(&self, examples: &Examples) -> Predictions {
        const BATCH: i64 = 64;
        let device = self.vs.device();
        let n = examples.len() as i64;
        let mut logits = Vec::with_capacity(examples.len());
        let mut features = Vec::with_capacity(examples.len());
        tch::no_grad(|| {
            for start in (0..n).step_by(BATCH as usize) {
                let index =
                    Tensor::arange_start(start, (start + BATCH).min(n), (Kind::Int64, Device::Cpu));
                let x = normalized_batch(&examples.images, &index, device);
                let pooled = EfficientNetLite::pooled(&self.net.features_t(&x, false));
                let l = self.net.classify_t(&pooled, false);
                logits.extend(rows(&l).into_iter().map(|r| {
                    let mut a = [0f32; NUM_CLASSES];
                    a.copy_from_slice(&r);
                    a
                }));
                features.extend(rows(&pooled));
            }
        });
        Predictions {
            logits,
            features,
            labels: examples.labels.clone(),
            lesion_ids: examples.lesion_ids.clone(),
            image_ids: examples.image_ids.clone(),
        }
    }
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let t = t.to_kind(Kind::Float).to(Device::Cpu).contiguous();
    Vec::<Vec<f32>>::try_from(t).unwrap_or_default()
}

/// Predicts every image of `manifest` with the run's best checkpoint, preprocessing as the run
/// did and caching under the run's cache root.
pub fn predict_logits(
    run_dir: &Path,
    manifest: &Path,
    device: Device,
) -> anyhow::Result<Predictions> {
    let model = TrainedModel::load(run_dir, device)?;
    let cache_root = model.info.cache_root.clone();
    predict_with(&model, manifest, &cache_root)
}

/// [`predict_logits`] with an explicit cache root and an already loaded model.
pub fn predict_with(
    model: &TrainedModel,
    manifest: &Path,
    cache_root: &Path,
) -> anyhow::Result<Predictions> {
    let examples = Examples::load(manifest, &model.preprocess(), cache_root)?;
    Ok(model.predict(&examples))
}
