//! The model on the device: a signed model file opened under the trust policy, run with tract
//! through `dermo_model`'s runtime, its logits turned into a decision by the shared rule.

use dermo_model::decision::{decide, Decision};
use dermo_model::preprocess::{prepare, to_tensor_with, Normalization, PreprocessConfig, Tensor};
use dermo_model::signature::{read_verifying_key, SignatureError};
use dermo_model::{
    AttentionMaps, ModelFile, ModelFileError, Runtime, RuntimeError, RuntimeOptions, TrustPolicy,
};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// What the model said about a frame that passed the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub decision: Decision,
    /// Where it looked, when the model file has class maps.
    pub maps: Option<AttentionMaps>,
}

/// Why the model cannot be used; each message names the file once.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("{0}")]
    Model(ModelFileError),
    #[error("{}", runtime_message(path, cause))]
    Runtime { path: PathBuf, cause: RuntimeError },
    #[error("trusted key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    /// A trusted-key file that cannot be read or parsed (the error names it).
    #[error("trusted key unusable: {0}")]
    KeyFile(SignatureError),
    #[error("{0}")]
    Inference(RuntimeError),
}

/// A runtime error that names the model already is shown as it is.
fn runtime_message(path: &Path, cause: &RuntimeError) -> String {
    match cause {
        RuntimeError::Load { .. } | RuntimeError::MissingOodOutput { .. } => cause.to_string(),
        _ => format!("model file {} cannot run: {cause}", path.display()),
    }
}

/// Builds the trust policy from public-key files, or directories of `*.pub` files.
pub fn trust_policy(
    keys: &[PathBuf],
    allow_unsigned: bool,
) -> Result<TrustPolicy, ClassifierError> {
    let key_err = |path: &Path, reason: String| ClassifierError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let mut files = Vec::new();
    for p in keys {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| key_err(p, e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "pub"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let trusted_keys = files
        .iter()
        .map(|p| read_verifying_key(p).map_err(ClassifierError::KeyFile))
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
    /// The file's own `(x − mean) / std` (its layout, NCHW, is checked when the file opens).
    normalization: Normalization,
    calibration: dermo_model::CalibrationSpec,
    runtime: Runtime,
}

impl Classifier {
    /// Opens `path` (signature and metadata checked against `trust`) and builds the tract plan.
    pub fn load(
        path: &Path,
        trust: &TrustPolicy,
        options: RuntimeOptions,
    ) -> Result<Classifier, ClassifierError> {
        let model = ModelFile::open(path, trust).map_err(ClassifierError::Model)?;
        let runtime =
            Runtime::with_options(&model, options).map_err(|cause| ClassifierError::Runtime {
                path: path.to_path_buf(),
                cause,
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
            preprocess: m.input.preprocess,
            normalization: m.input.normalization(),
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
        to_tensor_with(&prepare(img.clone(), &self.preprocess), &self.normalization)
    }

    /// Step 2: the network.
    pub fn infer(&self, input: &Tensor) -> Result<dermo_model::Output, ClassifierError> {
        self.runtime.run(input).map_err(ClassifierError::Inference)
    }

    /// Step 3: calibration, refer and abstain.
    pub fn decide(&self, out: &dermo_model::Output) -> Decision {
        decide(out.logits_of(0), out.ood_features_of(0), &self.calibration)
    }

    /// Step 3 and where the model looked.
    pub fn conclude(&self, out: &dermo_model::Output) -> Classified {
        Classified {
            decision: self.decide(out),
            maps: AttentionMaps::of(out, 0),
        }
    }

    /// All three steps.
    pub fn classify(&self, img: &RgbImage) -> Result<Classified, ClassifierError> {
        let out = self.infer(&self.preprocess(img))?;
        Ok(self.conclude(&out))
    }
}
