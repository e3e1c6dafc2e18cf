//! What a run folder contributes to a model file: weights, recipe, provenance, calibration and
//! test metrics, gathered into the file's [`Metadata`].

use crate::eval::calibrate::CALIBRATION_JSON;
use crate::files::read_json;
use crate::train::checkpoint::{self, RunFolder};
use crate::train::recipe::Recipe;
use crate::train::trainer::RunInfo;
use anyhow::Context;
use dermo_model::arch::ArchSpec;
use dermo_model::metadata::{CalibrationSpec, InputSpec, Metadata, Provenance};
use dermo_model::onnx::Precision;
use dermo_model::preprocess::{MEAN, STD};
use dermo_model::{NamedWeights, PreprocessConfig};
use std::path::{Path, PathBuf};

/// Evaluation files searched for the test metrics, best first.
const EVAL_FILES: [&str; 2] = ["eval-test.json", "eval.json"];

/// A run folder read for export.
pub struct RunSource {
    pub dir: PathBuf,
    pub weights_path: PathBuf,
    pub weights: NamedWeights,
    pub recipe: Recipe,
    pub info: RunInfo,
    pub calibration: CalibrationSpec,
    /// Where the calibration came from; `None` when the defaults apply.
    pub calibration_file: Option<PathBuf>,
    pub metrics: serde_json::Value,
    pub metrics_file: Option<PathBuf>,
}

impl RunSource {
    pub fn load(dir: &Path) -> anyhow::Result<RunSource> {
        let folder = RunFolder::new(dir);
        let weights_path = [checkpoint::BEST, checkpoint::LAST]
            .iter()
            .map(|n| folder.path(n))
            .find(|p| p.is_file())
            .with_context(|| format!("run folder {} has no best.safetensors", dir.display()))?;
        let weights = NamedWeights::load_safetensors(&weights_path)?;
        let recipe = Recipe::load(&folder.path(checkpoint::CONFIG))?;
        let info: RunInfo = read_json(&folder.path(checkpoint::RUN))?;
        let cal_path = dir.join(CALIBRATION_JSON);
        let (calibration, calibration_file) = if cal_path.is_file() {
            let spec = read_json::<CalibrationSpec>(&cal_path)?;
            (spec, Some(cal_path))
        } else {
            (CalibrationSpec::default(), None)
        };
        let metrics_file = EVAL_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file());
        let metrics = match &metrics_file {
            Some(p) => {
                let mut v: serde_json::Value = read_json(p)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "file".into(),
                        p.file_name().unwrap_or_default().to_string_lossy().into(),
                    );
                }
                v
            }
            None => serde_json::Value::Null,
        };
        Ok(RunSource {
            dir: dir.to_path_buf(),
            weights_path,
            weights,
            recipe,
            info,
            calibration,
            calibration_file,
            metrics,
            metrics_file,
        })
    }

    pub fn spec(&self) -> &ArchSpec {
        &self.info.arch
    }

    pub fn preprocess(&self) -> PreprocessConfig {
        PreprocessConfig {
            size: self.recipe.size,
            color_constancy: self.recipe.color_constancy,
        }
    }

    /// The metadata of a file of `precision` exported from this run.
    pub fn metadata(&self, precision: Precision) -> anyhow::Result<Metadata> {
        let input = InputSpec {
            size: self.recipe.size,
            mean: [MEAN; 3],
            std: [STD; 3],
            color_constancy: self.recipe.color_constancy,
            layout: "NCHW".into(),
        };
        let provenance = Provenance {
            manifest_hash: self.info.train_manifest_hash.clone(),
            split_seed: self.info.split_seed.unwrap_or(0),
            source_commit: self
                .info
                .source_commit
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            arch: self.spec().name.clone(),
            recipe: serde_json::to_value(&self.recipe).context("cannot serialize the recipe")?,
            created: chrono::Utc::now().to_rfc3339(),
            precision: precision.as_str().into(),
        };
        let mut meta = Metadata::new(input, self.calibration.clone(), provenance);
        meta.metrics = self.metrics.clone();
        Ok(meta)
    }
}
