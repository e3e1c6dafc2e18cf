//! What a run folder contributes to a model file: weights, recipe, provenance, calibration and
//! test metrics, gathered into the file's [`Metadata`].

use crate::files::read_json;
use crate::train::recipe::Recipe;
use crate::train::run_folder::{RunFolder, RunInfo, TEST_EVALS};
use anyhow::Context;
use dermo_model::arch::ArchSpec;
use dermo_model::metadata::{CalibrationSpec, InputSpec, Metadata, Provenance};
use dermo_model::onnx::Precision;
use dermo_model::{NamedWeights, PreprocessConfig};
use std::path::{Path, PathBuf};

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
        let weights_path = folder.weights()?;
        let weights = NamedWeights::load_safetensors(&weights_path)?;
        let recipe = folder.recipe()?;
        let info = folder.info()?;
        let (calibration, calibration_file) = match folder.calibration()? {
            Some((spec, path)) => (spec, Some(path)),
            None => (CalibrationSpec::default(), None),
        };
        let metrics_file = TEST_EVALS.iter().map(|f| dir.join(f)).find(|p| p.is_file());
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
        self.recipe.preprocess
    }

    /// The metadata of a file of `precision` exported from this run.
    pub fn metadata(&self, precision: Precision) -> anyhow::Result<Metadata> {
        let input = InputSpec::new(self.recipe.preprocess);
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
            created: crate::files::now(),
            precision: precision.as_str().into(),
        };
        let mut meta = Metadata::new(input, self.calibration.clone(), provenance);
        meta.metrics = self.metrics.clone();
        Ok(meta)
    }
}
