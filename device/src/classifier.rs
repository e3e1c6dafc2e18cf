//! The model on the device: a signed model file opened under the trust policy, run with tract
//! through `dermo_model`'s runtime, its logits turned into a decision by the shared rule.

use dermo_model::decision::{decide, Decision};
use dermo_model::preprocess::{prepare, to_tensor, PreprocessConfig, Tensor};
use dermo_model::signature::read_verifying_key;
use dermo_model::{ModelFile, ModelFileError, Runtime, RuntimeError, TrustPolicy};
use image::RgbImage;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error(transparent)]
    Model(#[from] ModelFileError),
    #[error("model file {path} cannot run: {source}")]
    Runtime { path: PathBuf, source: RuntimeError },
    #[error("trusted key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(transparent)]
    Inference(RuntimeError),
}

/// Builds the trust policy from public-key files.
pub fn trust_policy(keys: &[PathBuf], allow_unsigned: bool) -> Result<TrustPolicy, ClassifierError> {
    let trusted_keys = keys
        .iter()
        .map(|p| {
            read_verifying_key(p).map_err(|e| ClassifierError::Key {
                path: p.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TrustPolicy {
        trusted_keys,
        allow_unsigned,
    })
}

pub struct Classifier {
    path: PathBuf,
    sha256: String,
    version: String,
    preprocess: PreprocessConfig,
    calibration: dermo_model::CalibrationSpec,
    runtime: Runtime,
}

impl Classifier {
    /// Opens `path` (signature and metadata checked against `trust`) and builds the tract plan.
    pub fn load(path: &Path, trust: &TrustPolicy) -> Result<Classifier, ClassifierError> {
        let model = ModelFile::open(path, trust)?;
        let runtime = Runtime::new(&model).map_err(|source| ClassifierError::Runtime {
            path: path.to_path_buf(),
            source,
        })?;
        let m = &model.metadata;
        let created = m.provenance.created.get(..10).unwrap_or("");
        let version = format!(
            "model {} {} {}",
            &model.sha256[..8.min(model.sha256.len())],
            m.provenance.precision,
            created
        )
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
        Ok(Classifier {
            path: path.to_path_buf(),
            sha256: model.sha256.clone(),
            version,
            preprocess: PreprocessConfig {
                size: m.input.size,
                color_constancy: m.input.color_constancy,
            },
            calibration: m.calibration.clone(),
            runtime,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hex SHA-256 of the model file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// A short version line for the screen: hash prefix, precision, export date.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Step 1: the shared preprocessing — the same function the host trains and evaluates with.
    pub fn preprocess(&self, img: &RgbImage) -> Tensor {
        to_tensor(&prepare(img.clone(), &self.preprocess))
    }

    /// Step 2: the network.
    pub fn infer(&self, input: &Tensor) -> Result<dermo_model::Output, ClassifierError> {
        self.runtime.run(input).map_err(ClassifierError::Inference)
    }

    /// Step 3: calibration, refer and abstain.
    pub fn decide(&self, out: &dermo_model::Output) -> Decision {
        decide(out.logits_of(0), out.features_of(0), &self.calibration)
    }

    /// All three steps.
    pub fn classify(&self, img: &RgbImage) -> Result<Decision, ClassifierError> {
        let out = self.infer(&self.preprocess(img))?;
        Ok(self.decide(&out))
    }
}
