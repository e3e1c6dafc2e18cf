//! The run folder: what a run writes, and the commit protocol that makes `--resume` exact.
//!
//! ```text
//! RUN/config.toml        the recipe (written once)
//! RUN/run.json           provenance: manifests, seeds, command line, commit, device, start time
//! RUN/metrics.csv        one row per finished epoch
//! RUN/best.safetensors   weights of the best epoch by validation balanced accuracy
//! RUN/last.safetensors   weights of the last finished epoch
//! RUN/state.json         the commit record: epoch, step, best, patience, loss scale
//! RUN/ckpt/              weights + optimizer state of the committed epoch
//! ```
//!
//! An epoch ends with: (1) weights and optimizer state into `ckpt/*-E.safetensors`, (2) the
//! metrics row, (3) `state.json` replaced atomically — the commit — then (4) `last` and `best`
//! copied from `ckpt/` and older `ckpt/` files removed. A `kill -9` anywhere loses at most the
//! running epoch: resume reads `state.json`, redoes step (4) and drops metrics rows past it.

use crate::files::write_atomic;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

pub const CONFIG: &str = "config.toml";
pub const RUN: &str = "run.json";
pub const METRICS: &str = "metrics.csv";
pub const BEST: &str = "best.safetensors";
pub const LAST: &str = "last.safetensors";
pub const STATE: &str = "state.json";
const CKPT: &str = "ckpt";

/// The commit record of the last finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Finished epochs.
    pub epoch: usize,
    /// Optimizer updates done.
    pub step: usize,
    pub best_epoch: usize,
    /// The best score of the run's selection criterion (`trainer::Selection`): validation
    /// balanced accuracy unless the run chose otherwise.
    pub best_val_bal_acc: f64,
    pub epochs_since_best: usize,
    /// Loss scale of mixed-precision training (1 when unused).
    pub loss_scale: f64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
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

    fn ckpt(&self, kind: &str, epoch: usize) -> PathBuf {
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
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let state = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a training state", path.display()))?;
        Ok(Some(state))
    }

    /// Writes a file atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(name);
        write_atomic(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Steps (1)–(3)+(4) of the epoch-end protocol; `metrics` is step (2).
    pub fn commit(
        &self,
        vs: &VarStore,
        optimizer_state: &[(String, Tensor)],
        state: &TrainState,
        metrics: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let weights = self.ckpt("weights", state.epoch);
        let optim = self.ckpt("optim", state.epoch);
        fs::create_dir_all(self.dir.join(CKPT))
            .with_context(|| format!("cannot create {}", self.dir.join(CKPT).display()))?;
        let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        write_tensors(&variables, &weights)
            .with_context(|| format!("cannot write {}", weights.display()))?;
        write_tensors(optimizer_state, &optim)
            .with_context(|| format!("cannot write {}", optim.display()))?;
        metrics()?;
        self.write(STATE, &serde_json::to_vec_pretty(state)?)?;
        self.publish(state)
    }

    /// Step (4): `last`/`best` from the committed checkpoint, older checkpoints removed.
    /// Idempotent, so resume runs it again.
    pub fn publish(&self, state: &TrainState) -> anyhow::Result<()> {
        let weights = self.ckpt("weights", state.epoch);
        let bytes =
            fs::read(&weights).with_context(|| format!("cannot read {}", weights.display()))?;
        self.write(LAST, &bytes)?;
        if state.best_epoch == state.epoch {
            self.write(BEST, &bytes)?;
        }
        let keep = [weights, self.ckpt("optim", state.epoch)];
        if let Ok(entries) = fs::read_dir(self.dir.join(CKPT)) {
            for e in entries.flatten() {
                if !keep.contains(&e.path()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Loads the committed weights into `vs` and returns the optimizer state tensors.
    pub fn restore(
        &self,
        vs: &mut VarStore,
        state: &TrainState,
    ) -> anyhow::Result<HashMap<String, Tensor>> {
        let weights = self.ckpt("weights", state.epoch);
        vs.load(&weights)
            .with_context(|| format!("cannot load checkpoint {}", weights.display()))?;
        let optim = self.ckpt("optim", state.epoch);
        let tensors = Tensor::read_safetensors(&optim)
            .with_context(|| format!("cannot load optimizer state {}", optim.display()))?;
        Ok(tensors
            .into_iter()
            .map(|(k, t)| (k, t.to(vs.device())))
            .collect())
    }
}

/// Writes named tensors as safetensors. A tensor laid out channels-last in memory (see
/// `train::precision`) is written as a plain contiguous copy: same shape and values, the layout
/// every reader (tch, the ONNX writer, PyTorch) expects.
pub fn write_tensors(named: &[(String, Tensor)], path: &Path) -> Result<(), tch::TchError> {
    let plain: Vec<(String, Tensor)> = named
        .iter()
        .map(|(name, t)| (name.clone(), t.contiguous()))
        .collect();
    Tensor::write_safetensors(&plain, path)
}
