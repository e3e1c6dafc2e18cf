//! The commit protocol of a run folder (see [`super::run_folder`] for its files), which makes
//! `--resume` exact.
//!
//! An epoch ends with: (1) weights and optimizer state into `ckpt/*-E.safetensors`, (2) the
//! metrics row, (3) `state.json` replaced atomically — the commit — then (4) `last` and `best`
//! copied from `ckpt/` and older `ckpt/` files removed. A `kill -9` anywhere loses at most the
//! running epoch: resume reads `state.json`, redoes step (4) and drops metrics rows past it.

use super::run_folder::{RunFolder, TrainState, BEST, CKPT, LAST, STATE};
use anyhow::Context;
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use tch::nn::VarStore;
use tch::Tensor;

impl RunFolder {
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
