//! The run folder: the names of everything a run holds, and typed reads and writes of each. Train,
//! calibrate, eval, soup, export, report and the sweep all go through it.
//!
//! ```text
//! RUN/config.toml            the recipe (written once)                       Recipe
//! RUN/run.json               provenance: manifests, seeds, command line,     RunInfo
//!                            commit, device, start time
//! RUN/metrics.csv            one row per finished epoch                      (train::metrics)
//! RUN/best.safetensors       weights of the best epoch by the run's Selection
//! RUN/last.safetensors       weights of the last finished epoch
//! RUN/state.json             the commit record: epoch, step, best, patience   TrainState
//! RUN/ckpt/                  weights + optimizer state of the committed epoch (train::checkpoint)
//! RUN/calibration.json       the decision rule `dermo calibrate` fitted       CalibrationSpec
//! RUN/calibration-fit.json   how it was fitted                                (eval::calibrate)
//! RUN/eval-<data>.json       `dermo eval RUN DATA`; eval-test.json is the test split's
//! RUN/soup.json              what went into a weight soup                     (train::soup)
//! ```

use super::recipe::{Mode, Recipe};
use crate::files::{read_json, write_atomic};
use anyhow::Context;
use dermo_model::arch::ArchSpec;
use dermo_model::CalibrationSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.toml";
pub const RUN: &str = "run.json";
pub const METRICS: &str = "metrics.csv";
pub const BEST: &str = "best.safetensors";
pub const LAST: &str = "last.safetensors";
pub const STATE: &str = "state.json";
pub(super) const CKPT: &str = "ckpt";
pub const CALIBRATION: &str = "calibration.json";
pub const CALIBRATION_FIT: &str = "calibration-fit.json";
/// The evaluation on the test split: the one a sweep task ends with and export quotes.
pub const EVAL_TEST: &str = "eval-test.json";
/// Evaluations export searches for the test metrics, best first.
pub const TEST_EVALS: [&str; 2] = [EVAL_TEST, "eval.json"];

/// The commit record of the last finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Finished epochs.
    pub epoch: usize,
    /// Optimizer updates done.
    pub step: usize,
    pub best_epoch: usize,
    /// The best score of the run's selection criterion ([`Selection`]): validation
    /// balanced accuracy unless the run chose otherwise.
    pub best_val_bal_acc: f64,
    pub epochs_since_best: usize,
    /// Loss scale of mixed-precision training (1 when unused).
    pub loss_scale: f64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// Provenance written once to `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub dermo_version: String,
    pub started_at: String,
    pub command_line: Vec<String>,
    pub source_commit: Option<String>,
    pub device: String,
    pub train_manifest: PathBuf,
    pub train_manifest_hash: String,
    pub val_manifest: PathBuf,
    pub val_manifest_hash: String,
    /// Seed of the lesion-grouped split, from `split.json` beside the training manifest.
    pub split_seed: Option<u64>,
    pub seed: u64,
    pub mode: Mode,
    pub cache_root: PathBuf,
    pub pretrained: PathBuf,
    pub pretrained_sha256: String,
    pub arch: ArchSpec,
    #[serde(default)]
    pub resumed_at: Vec<String>,
    /// How the best epoch is chosen.
    #[serde(default)]
    pub select: Selection,
    /// The external validation set and its content hash, when the run has one.
    #[serde(default)]
    pub external: Option<(PathBuf, String)>,
    /// The weights file the run started from instead of ImageNet's with a fresh classifier
    /// (`dermo train --init RUN`: that run's chosen weights), and its SHA-256.
    #[serde(default)]
    pub init: Option<(PathBuf, String)>,
}

/// How the best epoch (the `best` checkpoint) is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Validation balanced accuracy (HAM10000).
    #[default]
    BalAcc,
    /// The mean of validation balanced accuracy and the external set's melanoma AUC: a model
    /// that also holds up on other clinics' images (needs --external).
    BalAccExternalAuc,
}

impl Selection {
    /// The score of an epoch (higher is better).
    pub(super) fn score(self, val_bal_acc: f64, external_auc: Option<f64>) -> anyhow::Result<f64> {
        Ok(match self {
            Selection::BalAcc => val_bal_acc,
            Selection::BalAccExternalAuc => {
                let auc = external_auc.context(
                    "--select bal-acc-external-auc needs an external set (--external) with both labels",
                )?;
                (val_bal_acc + auc) / 2.0
            }
        })
    }
}

/// A run folder.
pub struct RunFolder {
    pub dir: PathBuf,
}

impl RunFolder {
    pub fn new(dir: &Path) -> RunFolder {
        RunFolder {
            dir: dir.to_owned(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A file of the committed epoch in `ckpt/` (see `train::checkpoint`).
    pub(super) fn ckpt(&self, kind: &str, epoch: usize) -> PathBuf {
        self.dir
            .join(CKPT)
            .join(format!("{kind}-{epoch}.safetensors"))
    }

    /// The committed state, if an epoch ever finished.
    pub fn state(&self) -> anyhow::Result<Option<TrainState>> {
        let path = self.path(STATE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let state = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a training state", path.display()))?;
        Ok(Some(state))
    }

    /// Writes a file atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(name);
        write_atomic(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The recipe the run trains (`config.toml`).
    pub fn recipe(&self) -> anyhow::Result<Recipe> {
        Ok(Recipe::load(&self.path(CONFIG))?)
    }

    /// The run's provenance (`run.json`).
    pub fn info(&self) -> anyhow::Result<RunInfo> {
        read_json(&self.path(RUN))
    }

    /// The weights to use: `best.safetensors`, else `last.safetensors`.
    pub fn weights(&self) -> anyhow::Result<PathBuf> {
        [BEST, LAST]
            .iter()
            .map(|n| self.path(n))
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "run folder {} has no checkpoint yet (no {BEST} or {LAST})",
                    self.dir.display()
                )
            })
    }

    /// The weights another run starts from (`dermo train --init THIS_RUN`): this run's chosen
    /// weights ([`RunFolder::weights`]), refused unless its input contract (size, colour
    /// constancy) is `recipe`'s — a classifier fitted to other inputs is no head start.
    pub fn init_weights(&self, recipe: &Recipe) -> anyhow::Result<PathBuf> {
        let own = self
            .recipe()
            .with_context(|| format!("--init {}: not a run folder", self.dir.display()))?;
        anyhow::ensure!(
            own.preprocess == recipe.preprocess,
            "--init {}: that run's inputs ({:?}) are not this recipe's ({:?}); train it with the same size and color_constancy",
            self.dir.display(),
            own.preprocess,
            recipe.preprocess
        );
        self.weights()
    }

    /// The fitted decision rule and its file, when `dermo calibrate` has written one.
    pub fn calibration(&self) -> anyhow::Result<Option<(CalibrationSpec, PathBuf)>> {
        let path = self.path(CALIBRATION);
        if !path.is_file() {
            return Ok(None);
        }
        Ok(Some((read_json(&path)?, path)))
    }
}
