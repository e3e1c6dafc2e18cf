//! What a sweep produced, whichever executor ran it: `sweep.json` (every cell's seed runs and
//! metrics), `results.csv` (one row per seed run) and the report with one plot per axis. Both are
//! built only from the run folders, so a local sweep and a Slurm one write the same files.

use super::cell::{self, EVAL_NAME};
use super::data::Splits;
use super::grid::{sanitize, Cell, Grid};
use crate::eval::plots;
use crate::eval::record::{predictions_path, read_record};
use crate::eval::report::{self, with_interval};
use anyhow::Context;
use dermo_calibration::{BootstrapConfig, GroupBootstrap, Interval};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SWEEP_JSON: &str = "sweep.json";
pub const RESULTS_CSV: &str = "results.csv";

/// One axis as recorded in sweep.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AxisSpec {
    pub name: String,
    pub values: Vec<String>,
    pub question: String,
}

/// Everything a sweep produced, written to `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResults {
    pub grid: PathBuf,
    pub design: String,
    pub seeds: Vec<u64>,
    pub train: PathBuf,
    pub test: PathBuf,
    pub axes: Vec<AxisSpec>,
    pub cells: Vec<CellResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub name: String,
    /// The value of every axis in this cell (changed or from the base).
    pub values: BTreeMap<String, String>,
    pub runs: Vec<SeedRun>,
    /// Balanced accuracy averaged over the seeds, with an interval from resampling the test
    /// lesions once for all seeds (the cell's uncertainty, not one seed's).
    #[serde(default)]
    pub balanced_accuracy_mean: Option<Interval>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedRun {
    pub seed: u64,
    pub run_dir: PathBuf,
    pub balanced_accuracy: Option<Interval>,
    pub accuracy: Option<Interval>,
    pub macro_auc: Option<Interval>,
    pub malignant_sensitivity: Option<Interval>,
    pub malignant_specificity: Option<Interval>,
}

pub const TABLE_HEADER: [&str; 7] = [
    "cell",
    "seed",
    "balanced accuracy",
    "accuracy",
    "macro AUC",
    "malignant sensitivity @0.5",
    "malignant specificity @0.5",
];

impl SweepResults {
    /// No cells yet: the sweep of `grid` (the path as the command line named it), on the
    /// sweep folder's copies of the manifests.
    pub(super) fn new(grid_path: &Path, grid: &Grid, splits: &Splits) -> Self {
        SweepResults {
            grid: grid_path.to_owned(),
            design: grid.sweep.design.clone(),
            seeds: grid.sweep.seeds.clone(),
            train: splits.train.clone(),
            test: splits.test.clone(),
            axes: grid.axis_specs(),
            cells: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a sweep.json", path.display()))
    }

    /// One row per seed run and one with the mean over seeds per cell.
    pub fn table_rows(&self) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for cell in &self.cells {
            for run in &cell.runs {
                rows.push(vec![
                    cell.name.clone(),
                    run.seed.to_string(),
                    with_interval(&run.balanced_accuracy),
                    with_interval(&run.accuracy),
                    with_interval(&run.macro_auc),
                    with_interval(&run.malignant_sensitivity),
                    with_interval(&run.malignant_specificity),
                ]);
            }
            let mean = |f: fn(&SeedRun) -> Option<Interval>| {
                let v: Vec<f64> = cell
                    .runs
                    .iter()
                    .filter_map(|r| f(r).map(|i| i.estimate))
                    .collect();
                if v.is_empty() {
                    "—".to_string()
                } else {
                    format!("{:.3}", v.iter().sum::<f64>() / v.len() as f64)
                }
            };
            let balanced = match cell.balanced_accuracy_mean {
                Some(_) => with_interval(&cell.balanced_accuracy_mean),
                None => mean(|r| r.balanced_accuracy),
            };
            rows.push(vec![
                cell.name.clone(),
                "mean".into(),
                balanced,
                mean(|r| r.accuracy),
                mean(|r| r.macro_auc),
                mean(|r| r.malignant_sensitivity),
                mean(|r| r.malignant_specificity),
            ]);
        }
        rows
    }

    /// The cells that show `axis`: in a one-at-a-time design those that differ from the base
    /// cell in this axis only; in a full design all of them.
    fn cells_for(&self, axis: &str) -> Vec<&CellResult> {
        let Some(base) = self.cells.first() else {
            return Vec::new();
        };
        self.cells
            .iter()
            .filter(|c| {
                self.design == "full"
                    || c.values
                        .iter()
                        .all(|(k, v)| k == axis || base.values.get(k) == Some(v))
            })
            .collect()
    }
}

/// The file of an axis plot.
pub fn axis_plot_file(axis: &str) -> String {
    format!("sweep-{}.png", sanitize(axis))
}

/// Balanced accuracy against one axis, one mark per seed run.
pub fn plot_axis(
    results: &SweepResults,
    axis: &AxisSpec,
    path: &Path,
    baseline: Option<&crate::eval::record::EvalRecord>,
) -> anyhow::Result<()> {
    let cells = results.cells_for(&axis.name);
    let categories: Vec<(String, Vec<Interval>)> = axis
        .values
        .iter()
        .map(|v| {
            let intervals = cells
                .iter()
                .filter(|c| c.values.get(&axis.name) == Some(v))
                .flat_map(|c| c.runs.iter().filter_map(|r| r.balanced_accuracy))
                .collect();
            (v.clone(), intervals)
        })
        .collect();
    let reference = match baseline.and_then(|b| b.metrics.balanced_accuracy) {
        Some(b) => ("ABCD baseline".to_string(), b.estimate),
        None => ("chance (1/7)".to_string(), 1.0 / 7.0),
    };
    // Marks are coloured by position; name them by seed when each value holds one run per seed
    // (the one-at-a-time design), and leave them unnamed when cells share a value (full design).
    let per_seed = categories
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .all(|(_, v)| v.len() == results.seeds.len());
    let marks: Vec<String> = if per_seed {
        results.seeds.iter().map(|s| format!("seed {s}")).collect()
    } else {
        Vec::new()
    };
    let title = if axis.question.is_empty() {
        format!("Balanced accuracy by {}", axis.name)
    } else {
        axis.question.clone()
    };
    plots::intervals_by_category(
        path,
        &title,
        "balanced accuracy (test)",
        &categories,
        &marks,
        Some(reference),
    )
}

/// Balanced accuracy averaged over a cell's seed runs, with a percentile interval from
/// resampling test lesions: each resample draws lesions once and scores every seed on the same
/// draw, so the interval covers the test set's sampling and not only one seed's. `None` when the
/// runs were not scored on the same images.
fn seed_mean_balanced_accuracy(
    runs: &[SeedRun],
    config: BootstrapConfig,
) -> anyhow::Result<Option<Interval>> {
    struct Scored {
        lesion: String,
        truth: String,
        predicted: String,
    }
    let mut tables: Vec<BTreeMap<String, Scored>> = Vec::new();
    for run in runs {
        let path = predictions_path(&run.run_dir.join(EVAL_NAME));
        let mut reader = csv::Reader::from_path(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let header = reader.headers()?.clone();
        let column = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .with_context(|| format!("{}: no column {name}", path.display()))
        };
        let (image, lesion, truth, predicted) = (
            column("image_id")?,
            column("lesion_id")?,
            column("label")?,
            column("predicted")?,
        );
        let mut table = BTreeMap::new();
        for row in reader.records() {
            let row = row.with_context(|| format!("{}: malformed row", path.display()))?;
            table.insert(
                row[image].to_string(),
                Scored {
                    lesion: row[lesion].to_string(),
                    truth: row[truth].to_string(),
                    predicted: row[predicted].to_string(),
                },
            );
        }
        tables.push(table);
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
            for c in [s.truth.as_str(), s.predicted.as_str()] {
                let next = classes.len();
                classes.entry(c).or_insert(next);
            }
        }
    }
    let lesions: Vec<&str> = first.values().map(|s| s.lesion.as_str()).collect();
    let truth: Vec<usize> = first.values().map(|s| classes[s.truth.as_str()]).collect();
    let predicted: Vec<Vec<usize>> = tables
        .iter()
        .map(|t| t.values().map(|s| classes[s.predicted.as_str()]).collect())
        .collect();
    let k = classes.len();
    let statistic = |rows: &[usize]| -> f64 {
        let mut total = 0.0;
        for p in &predicted {
            let (mut support, mut hits) = (vec![0u64; k], vec![0u64; k]);
            for &i in rows {
                support[truth[i]] += 1;
                hits[truth[i]] += u64::from(p[i] == truth[i]);
            }
            let recalls: Vec<f64> = (0..k)
                .filter(|&c| support[c] > 0)
                .map(|c| hits[c] as f64 / support[c] as f64)
                .collect();
            total += recalls.iter().sum::<f64>() / recalls.len().max(1) as f64;
        }
        total / predicted.len() as f64
    };
    let all: Vec<usize> = (0..truth.len()).collect();
    let bootstrap = GroupBootstrap::new(&lesions, config)?;
    Ok(bootstrap.interval(statistic(&all), statistic))
}

/// A finished task's metrics, from its `eval-test.json`.
pub(super) fn seed_run(seed: u64, run_dir: PathBuf) -> anyhow::Result<SeedRun> {
    let record = read_record(&run_dir.join(EVAL_NAME))?;
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
    let mut results = SweepResults::new(grid_path, grid, &Splits::paths(out));
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

/// Writes sweep.json and results.csv of `results` into `dir`.
pub(super) fn write_results(dir: &Path, results: &SweepResults) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = dir.join(SWEEP_JSON);
    crate::files::write_atomic(&json, &serde_json::to_vec_pretty(results)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let csv_path = dir.join(RESULTS_CSV);
    let mut w = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    let mut header = vec!["cell".to_string(), "seed".into()];
    header.extend(results.axes.iter().map(|a| a.name.clone()));
    header.extend(
        [
            "bal_acc",
            "bal_acc_low",
            "bal_acc_high",
            "acc",
            "macro_auc",
            "mal_sens",
            "mal_spec",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    let f = |i: Option<Interval>, pick: fn(&Interval) -> f64| {
        i.map(|i| format!("{:.4}", pick(&i))).unwrap_or_default()
    };
    for cell in &results.cells {
        for run in &cell.runs {
            let mut row = vec![cell.name.clone(), run.seed.to_string()];
            row.extend(
                results
                    .axes
                    .iter()
                    .map(|a| cell.values.get(&a.name).cloned().unwrap_or_default()),
            );
            row.extend([
                f(run.balanced_accuracy, |i| i.estimate),
                f(run.balanced_accuracy, |i| i.low),
                f(run.balanced_accuracy, |i| i.high),
                f(run.accuracy, |i| i.estimate),
                f(run.macro_auc, |i| i.estimate),
                f(run.malignant_sensitivity, |i| i.estimate),
                f(run.malignant_specificity, |i| i.estimate),
            ]);
            w.write_record(&row)?;
        }
    }
    w.flush()
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    Ok(())
}
