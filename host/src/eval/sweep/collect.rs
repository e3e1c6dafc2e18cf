//! Collecting a sweep: every finished task's run folder becomes its entry of `sweep.json`, then
//! the results files and the report are written (see `crate::eval::sweep_results`). Built only
//! from the run folders, so a local sweep and a Slurm one write the same files.

use super::cell;
use super::data::Splits;
use super::grid::{Cell, Grid};
use crate::eval::record::{predictions_path, read_predictions, read_record, PredictionRow};
use crate::eval::report;
use crate::eval::sweep_results::{write_results, CellResult, SeedRun, SweepResults};
use crate::train::run_folder::EVAL_TEST;
use anyhow::Context;
use dermo_calibration::{BootstrapConfig, ConfusionMatrix, GroupBootstrap, Interval};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// No cells yet: the sweep of `grid` (the path as the command line named it), on the sweep
/// folder's copies of the manifests.
pub(super) fn empty_results(grid_path: &Path, grid: &Grid, splits: &Splits) -> SweepResults {
    SweepResults {
        grid: grid_path.to_owned(),
        design: grid.sweep.design,
        seeds: grid.sweep.seeds.clone(),
        train: splits.train.clone(),
        test: splits.test.clone(),
        axes: grid.axis_specs(),
        cells: Vec::new(),
    }
}

/// Balanced accuracy averaged over a cell's seed runs, with a percentile interval from
/// resampling test lesions: each resample draws lesions once and scores every seed on the same
/// draw, so the interval covers the test set's sampling and not only one seed's. `None` when the
/// runs were not scored on the same images.
fn seed_mean_balanced_accuracy(
    runs: &[SeedRun],
    config: BootstrapConfig,
) -> anyhow::Result<Option<Interval>> {
    let mut tables: Vec<BTreeMap<String, PredictionRow>> = Vec::new();
    for run in runs {
        let rows = read_predictions(&predictions_path(&run.run_dir.join(EVAL_TEST)))?;
        tables.push(rows.into_iter().map(|r| (r.image_id.clone(), r)).collect());
    }
    let Some(first) = tables.first() else {
        return Ok(None);
    };
    if first.is_empty() || tables.iter().any(|t| !t.keys().eq(first.keys())) {
        return Ok(None);
    }
    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tables {
        for s in t.values() {
            for c in [s.label.as_str(), s.predicted.as_str()] {
                let next = classes.len();
                classes.entry(c).or_insert(next);
            }
        }
    }
    let lesions: Vec<&str> = first.values().map(|s| s.lesion_id.as_str()).collect();
    let truth: Vec<usize> = first.values().map(|s| classes[s.label.as_str()]).collect();
    let predicted: Vec<Vec<usize>> = tables
        .iter()
        .map(|t| t.values().map(|s| classes[s.predicted.as_str()]).collect())
        .collect();
    let k = classes.len();
    // The matrix wants class indices: codes are numbered in order of first appearance.
    let statistic = |rows: &[usize]| -> f64 {
        let t: Vec<usize> = rows.iter().map(|&i| truth[i]).collect();
        let total: f64 = predicted
            .iter()
            .map(|p| {
                let p: Vec<usize> = rows.iter().map(|&i| p[i]).collect();
                ConfusionMatrix::from_predictions(&t, &p, k).map_or(0.0, |m| m.balanced_accuracy())
            })
            .sum();
        total / predicted.len() as f64
    };
    let all: Vec<usize> = (0..truth.len()).collect();
    let bootstrap = GroupBootstrap::new(&lesions, config)?;
    Ok(bootstrap.interval(statistic(&all), statistic))
}

/// A finished task's metrics, from its `eval-test.json`.
pub(super) fn seed_run(seed: u64, run_dir: PathBuf) -> anyhow::Result<SeedRun> {
    let record = read_record(&run_dir.join(EVAL_TEST))?;
    let m = &record.metrics;
    Ok(SeedRun {
        seed,
        run_dir,
        balanced_accuracy: m.balanced_accuracy,
        accuracy: m.accuracy,
        macro_auc: m.macro_auc,
        malignant_sensitivity: m.triage.sensitivity,
        malignant_specificity: m.triage.specificity,
    })
}

/// A cell's entry of sweep.json from its seed runs.
pub(super) fn cell_result(
    grid: &Grid,
    cell: &Cell,
    runs: Vec<SeedRun>,
) -> anyhow::Result<CellResult> {
    let config = BootstrapConfig {
        resamples: grid.sweep.resamples,
        seed: 0,
        level: 0.95,
    };
    let balanced_accuracy_mean = seed_mean_balanced_accuracy(&runs, config)
        .with_context(|| format!("cell {}: balanced accuracy over seeds", cell.name))?;
    Ok(CellResult {
        name: cell.name.clone(),
        values: grid.values(cell)?,
        runs,
        balanced_accuracy_mean,
    })
}

/// What [`collect`] found.
pub(super) struct Collected {
    /// The report's index.html, when at least one cell was complete.
    pub(super) report: Option<PathBuf>,
    /// The tasks without results, as `<cell> seed <seed>`.
    pub(super) missing: Vec<String>,
}

/// Writes sweep.json, results.csv and the report of `out` from every cell whose seeds are all
/// done, in grid order, and names the tasks still missing. This is what the Slurm collect job
/// runs, and what `dermo sweep` does when it finds nothing left to submit.
pub(super) fn collect(
    grid_path: &Path,
    grid: &Grid,
    cells: &[Cell],
    out: &Path,
) -> anyhow::Result<Collected> {
    let mut results = empty_results(grid_path, grid, &Splits::paths(out));
    let mut missing = Vec::new();
    for c in cells {
        let mut runs = Vec::new();
        for &seed in &grid.sweep.seeds {
            let run_dir = cell::run_dir(out, &c.name, seed);
            if cell::is_done(&run_dir) {
                runs.push(seed_run(seed, run_dir)?);
            } else {
                missing.push(format!("{} seed {seed}", c.name));
            }
        }
        if runs.len() == grid.sweep.seeds.len() {
            results.cells.push(cell_result(grid, c, runs)?);
        }
    }
    let report = if results.cells.is_empty() {
        None
    } else {
        write_results(out, &results)?;
        Some(write_report(out)?)
    };
    Ok(Collected { report, missing })
}

/// The sweep's report in `out/report/`.
pub(super) fn write_report(out: &Path) -> anyhow::Result<PathBuf> {
    report::write_report(out, &out.join("report"), None)
}
