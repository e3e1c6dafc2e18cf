//! What a sweep produced, whichever executor ran it: `sweep.json` (every cell's seed runs and
//! metrics), `results.csv` (one row per seed run), the results table and one plot per axis.
//!
//! This is the bottom of the grid → runs → results chain: `sweep` (which trains and evaluates
//! the runs, then collects them) and `report` (which draws them) both import it, and it imports
//! neither.

use crate::eval::plots;
use crate::eval::record::with_interval;
use crate::files::sanitize;
use anyhow::Context;
use dermo_calibration::Interval;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
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

/// How a grid's axes combine into cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Design {
    /// Each axis varies alone around the base cell.
    #[default]
    OneAtATime,
    /// Every combination of the axes' values.
    Full,
}

impl fmt::Display for Design {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Design::OneAtATime => "one-at-a-time",
            Design::Full => "full",
        })
    }
}

/// Everything a sweep produced, written to `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResults {
    pub grid: PathBuf,
    pub design: Design,
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
                self.design == Design::Full
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

/// Writes sweep.json and results.csv of `results` into `dir`.
pub fn write_results(dir: &Path, results: &SweepResults) -> anyhow::Result<()> {
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
