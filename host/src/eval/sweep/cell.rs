//! The work of one task, the same under every executor: train a cell's recipe with one seed into
//! its run folder and evaluate it on the test manifest.
//!
//! ```text
//! DIR/cells/<cell>/seed-<seed>/              the run folder (see crate::train::run_folder)
//! DIR/cells/<cell>/seed-<seed>/eval-test.json  written last: its presence means the task is done
//! ```
//!
//! Training always resumes what the folder holds, so a task stopped anywhere (a signal, a crash,
//! a requeue) continues from its last committed epoch when run again.

use super::data::Variant;
use super::grid::{Cell, Grid};
use crate::eval::evaluation::evaluate_scored;
use crate::eval::network::{score_manifest, Checkpoint, Network};
use crate::eval::tta::Tta;
use crate::files::sanitize;
use crate::train::run_folder::EVAL_TEST;
use crate::train::{train, TrainData, TrainOptions};
use anyhow::Context;
use dermo_calibration::BootstrapConfig;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

/// The run folder of a cell and seed.
pub(super) fn run_dir(out: &Path, cell: &str, seed: u64) -> PathBuf {
    out.join("cells")
        .join(sanitize(cell))
        .join(format!("seed-{seed}"))
}

/// Whether the task with this run folder has finished (trained and evaluated).
pub(super) fn is_done(run_dir: &Path) -> bool {
    run_dir.join(EVAL_TEST).is_file()
}

/// Where and with what a task trains.
pub(super) struct Setup<'a> {
    pub(super) grid: &'a Grid,
    pub(super) device: Device,
    pub(super) pretrained: &'a Path,
}

/// Trains `cell` with `seed` on `data` into `run_dir` (resuming what is there) and writes its
/// evaluation on the test manifest.
pub(super) fn train_and_evaluate(
    setup: &Setup,
    cell: &Cell,
    seed: u64,
    data: &Variant,
    run_dir: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let recipe = setup.grid.recipe(cell, seed)?;
    let cfg = recipe.preprocess;
    let cache_root = &setup.grid.data.cache_root;
    let train_data = TrainData::load(&data.train, &data.val, &cfg, cache_root)?;
    let options = TrainOptions {
        device: setup.device,
        cache_root: cache_root.clone(),
        pretrained: setup.pretrained.to_owned(),
        resume: true,
        command_line: std::env::args().collect(),
        progress: true,
        external: None,
        select: None,
        init: None,
    };
    train(&recipe, &train_data, run_dir, &options)
        .with_context(|| format!("training cell {} seed {seed}", cell.name))?;
    let mut checkpoint = Checkpoint::load(run_dir, setup.device)?;
    let scored = score_manifest(&mut checkpoint, &data.test, Tta::None, cache_root, true)?;
    evaluate_scored(
        &scored,
        checkpoint.describe(),
        &data.test,
        Tta::None,
        &dermo_model::CalibrationSpec::default(),
        None,
        BootstrapConfig {
            resamples: setup.grid.sweep.resamples,
            seed: 0,
            level: 0.95,
        },
        started.elapsed().as_secs_f64(),
        &run_dir.join(EVAL_TEST),
    )?;
    Ok(())
}
