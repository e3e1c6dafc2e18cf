//! `dermo sweep GRID.toml`: trains and evaluates a grid of recipes, at least two seeds per
//! cell, skipping what is already done (so an interrupted sweep resumes), and writes one
//! results table plus balanced accuracy against each axis with intervals.
//!
//! A grid file has `[data]` (train/val/test manifests, optional lesion subset), `[base]` (recipe
//! keys for every cell), `[sweep]` (design, seeds) and `[[axis]]` entries. An axis is any recipe
//! key (`size`, `lr`, `augment.hflip`, …) or one of two data axes: `mask` (raw, masked, both)
//! and `balance` (none, smallest, or a per-class cap of training images).

use super::evaluation::evaluate_scored;
use super::network::{score_manifest, Checkpoint, Network};
use super::plots;
use super::record::{predictions_path, read_record, Operating};
use super::report::{self, with_interval};
use super::tta::Tta;
use crate::data::manifest::Manifest;
use crate::data::split::{self, MaskMode};
use crate::train::{pretrained, train, DeviceChoice, Recipe, TrainData, TrainOptions};
use anyhow::{bail, Context};
use clap::Args;
use dermo_calibration::{BootstrapConfig, GroupBootstrap, Interval};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const SWEEP_JSON: &str = "sweep.json";
pub const RESULTS_CSV: &str = "results.csv";
const EVAL_NAME: &str = "eval-test.json";

/// `dermo sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The grid TOML (see experiments/study.toml).
    pub grid: PathBuf,
    /// Sweep folder: data/, cells/<cell>/seed-<s>/ run folders, sweep.json, results.csv and the
    /// report. Re-running skips every finished cell and resumes an interrupted one.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// List the cells and exit without training.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grid {
    data: GridData,
    #[serde(default)]
    base: toml::Table,
    sweep: GridSweep,
    #[serde(default, rename = "axis")]
    axes: Vec<GridAxis>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridData {
    /// Manifests, relative to the grid file.
    train: PathBuf,
    val: PathBuf,
    test: PathBuf,
    /// Train on this fraction of each class's training lesions (all their images): a
    /// CPU-sized study that keeps the class imbalance. Validation and test stay whole, so the
    /// comparisons are judged on every lesion of the test split.
    lesion_fraction: Option<f64>,
    #[serde(default = "default_cache_root")]
    cache_root: PathBuf,
}

fn default_cache_root() -> PathBuf {
    PathBuf::from("work/cache")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridSweep {
    /// `one-at-a-time`: each axis varies alone around [base]; `full`: every combination.
    #[serde(default = "default_design")]
    design: String,
    seeds: Vec<u64>,
    #[serde(default = "default_resamples")]
    resamples: usize,
}

fn default_design() -> String {
    "one-at-a-time".into()
}

fn default_resamples() -> usize {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridAxis {
    name: String,
    values: Vec<toml::Value>,
    /// What the comparison asks, for the report.
    #[serde(default)]
    question: String,
}

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
    baseline: Option<&super::record::EvalRecord>,
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

/// A cell: its name, the recipe assignments and the data variant.
#[derive(Debug, Clone)]
struct Cell {
    name: String,
    assignments: Vec<(String, String)>,
    mask: MaskMode,
    balance: Balance,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Balance {
    None,
    Smallest,
    AtMost(usize),
}

impl Balance {
    fn parse(value: &str) -> anyhow::Result<Self> {
        Ok(match value {
            "none" | "false" => Balance::None,
            "smallest" | "true" => Balance::Smallest,
            n => Balance::AtMost(n.parse().with_context(|| {
                format!("balance = {n:?}: expected none, smallest or a number of images per class")
            })?),
        })
    }

    fn label(self) -> String {
        match self {
            Balance::None => "none".into(),
            Balance::Smallest => "smallest".into(),
            Balance::AtMost(n) => n.to_string(),
        }
    }
}

/// A TOML value as an assignment right-hand side (strings bare, as `Recipe::set` accepts).
fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Grid {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read grid {}", path.display()))?;
        let grid: Grid =
            toml::from_str(&text).with_context(|| format!("grid {}", path.display()))?;
        if grid.sweep.seeds.len() < 2 {
            bail!(
                "grid {}: every cell needs at least 2 seeds, got {:?}",
                path.display(),
                grid.sweep.seeds
            );
        }
        if !["one-at-a-time", "full"].contains(&grid.sweep.design.as_str()) {
            bail!(
                "grid {}: design must be one-at-a-time or full, got {:?}",
                path.display(),
                grid.sweep.design
            );
        }
        if let Some(f) = grid.data.lesion_fraction {
            if !(f > 0.0 && f <= 1.0) {
                bail!(
                    "grid {}: lesion_fraction {f} must be in (0, 1]",
                    path.display()
                );
            }
        }
        Ok(grid)
    }

    /// The cells to run, the base cell first, duplicates (same values everywhere) dropped.
    fn cells(&self) -> anyhow::Result<Vec<Cell>> {
        let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for axis in &self.axes {
            let values: Vec<String> = axis.values.iter().map(value_text).collect();
            if self.sweep.design == "full" {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.push((axis.name.clone(), v.clone()));
                            c
                        })
                    })
                    .collect();
            } else {
                combos.extend(values.iter().map(|v| vec![(axis.name.clone(), v.clone())]));
            }
        }
        let mut cells = Vec::new();
        let mut seen = HashMap::new();
        for assignments in combos {
            let cell = self.cell(assignments)?;
            let key = format!("{:?}", self.values(&cell)?);
            if seen.insert(key, ()).is_none() {
                cells.push(cell);
            }
        }
        Ok(cells)
    }

    fn cell(&self, assignments: Vec<(String, String)>) -> anyhow::Result<Cell> {
        let (mut mask, mut balance) = (MaskMode::Raw, Balance::None);
        let mut recipe_keys = Vec::new();
        for (k, v) in &assignments {
            match k.as_str() {
                "mask" => {
                    mask = match v.as_str() {
                        "raw" => MaskMode::Raw,
                        "masked" => MaskMode::Masked,
                        "both" => MaskMode::Both,
                        other => bail!("mask = {other:?}: expected raw, masked or both"),
                    }
                }
                "balance" => balance = Balance::parse(v)?,
                _ => recipe_keys.push((k.clone(), v.clone())),
            }
        }
        let name = if assignments.is_empty() {
            "base".to_string()
        } else {
            assignments
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        Ok(Cell {
            name,
            assignments: recipe_keys,
            mask,
            balance,
        })
    }

    /// The recipe of a cell for one seed: defaults, then [base], then the cell's keys.
    fn recipe(&self, cell: &Cell, seed: u64) -> anyhow::Result<Recipe> {
        let mut r = Recipe::default();
        let mut base = Vec::new();
        for (k, v) in &self.base {
            flatten(k, v, &mut base);
        }
        for assignment in &base {
            r.set(assignment)?;
        }
        for (k, v) in &cell.assignments {
            r.set(&format!("{k}={v}"))?;
        }
        r.set(&format!("seed={seed}"))?;
        Ok(r)
    }

    /// The value of every axis in a cell.
    fn values(&self, cell: &Cell) -> anyhow::Result<BTreeMap<String, String>> {
        let recipe = toml::Value::try_from(self.recipe(cell, 0)?)?;
        let mut values = BTreeMap::new();
        for axis in &self.axes {
            let v = match axis.name.as_str() {
                "mask" => cell.mask.as_str().to_string(),
                "balance" => cell.balance.label(),
                key => {
                    let mut slot = &recipe;
                    for part in key.split('.') {
                        slot = slot.get(part).with_context(|| {
                            format!("axis {key:?} is not a recipe key nor mask/balance")
                        })?;
                    }
                    value_text(slot)
                }
            };
            values.insert(axis.name.clone(), v);
        }
        Ok(values)
    }
}

/// `key=value` assignments of a TOML value, dotted through tables (`[base.augment]` gives
/// `augment.hflip=…`), as `Recipe::set` takes them.
fn flatten(key: &str, value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                flatten(&format!("{key}.{k}"), v, out);
            }
        }
        other => out.push(format!("{key}={}", value_text(other))),
    }
}

pub fn run_sweep(a: SweepArgs) -> anyhow::Result<()> {
    let grid = Grid::load(&a.grid)?;
    let cells = grid.cells()?;
    eprintln!(
        "{} cells × {} seeds ({} design)",
        cells.len(),
        grid.sweep.seeds.len(),
        grid.sweep.design
    );
    for cell in &cells {
        eprintln!("  {}", cell.name);
    }
    if a.dry_run {
        return Ok(());
    }
    let folder = a.grid.parent().unwrap_or(Path::new("."));
    let data = Splits::prepare(&grid.data, folder, &a.out)?;
    let device = a.device.resolve()?;
    let pretrained = pretrained::default_path()?;
    let mut results = SweepResults {
        grid: a.grid.clone(),
        design: grid.sweep.design.clone(),
        seeds: grid.sweep.seeds.clone(),
        train: data.train.clone(),
        test: data.test.clone(),
        axes: grid
            .axes
            .iter()
            .map(|x| AxisSpec {
                name: x.name.clone(),
                values: x.values.iter().map(value_text).collect(),
                question: x.question.clone(),
            })
            .collect(),
        cells: Vec::new(),
    };
    let total = cells.len() * grid.sweep.seeds.len();
    let mut done = 0;
    for cell in &cells {
        let (train_csv, val_csv, test_csv) = data.variant(cell.mask, cell.balance, &a.out)?;
        let mut runs = Vec::new();
        for &seed in &grid.sweep.seeds {
            done += 1;
            let run_dir = a
                .out
                .join("cells")
                .join(sanitize(&cell.name))
                .join(format!("seed-{seed}"));
            let eval_path = run_dir.join(EVAL_NAME);
            if !eval_path.is_file() {
                eprintln!("[{done}/{total}] {} seed {seed}: training", cell.name);
                let started = Instant::now();
                let recipe = grid.recipe(cell, seed)?;
                let cfg = dermo_model::PreprocessConfig {
                    size: recipe.size,
                    color_constancy: recipe.color_constancy,
                };
                let cache_root = &grid.data.cache_root;
                let train_data = TrainData::load(&train_csv, &val_csv, &cfg, cache_root)?;
                let options = TrainOptions {
                    device,
                    cache_root: cache_root.clone(),
                    pretrained: pretrained.clone(),
                    resume: true,
                    command_line: std::env::args().collect(),
                    progress: true,
                    external: None,
                    select: None,
                };
                train(&recipe, &train_data, &run_dir, &options)
                    .with_context(|| format!("training cell {} seed {seed}", cell.name))?;
                let mut checkpoint = Checkpoint::load(&run_dir, device)?;
                let scored =
                    score_manifest(&mut checkpoint, &test_csv, Tta::None, cache_root, true)?;
                evaluate_scored(
                    &scored,
                    checkpoint.describe(),
                    &test_csv,
                    Tta::None,
                    Operating::default(),
                    None,
                    BootstrapConfig {
                        resamples: grid.sweep.resamples,
                        seed: 0,
                        level: 0.95,
                    },
                    started.elapsed().as_secs_f64(),
                    &eval_path,
                )?;
            } else {
                eprintln!(
                    "[{done}/{total}] {} seed {seed}: done before, skipped",
                    cell.name
                );
            }
            let record = read_record(&eval_path)?;
            let m = &record.metrics;
            runs.push(SeedRun {
                seed,
                run_dir,
                balanced_accuracy: m.balanced_accuracy,
                accuracy: m.accuracy,
                macro_auc: m.macro_auc,
                malignant_sensitivity: m.triage.sensitivity,
                malignant_specificity: m.triage.specificity,
            });
        }
        let config = BootstrapConfig {
            resamples: grid.sweep.resamples,
            seed: 0,
            level: 0.95,
        };
        let balanced_accuracy_mean = seed_mean_balanced_accuracy(&runs, config)
            .with_context(|| format!("cell {}: balanced accuracy over seeds", cell.name))?;
        results.cells.push(CellResult {
            name: cell.name.clone(),
            values: grid.values(cell)?,
            runs,
            balanced_accuracy_mean,
        });
        // Written after every cell, so a report can be drawn while the sweep goes on.
        write_results(&a.out, &results)?;
    }
    let html = report::write_report(&a.out, &a.out.join("report"), None)?;
    eprintln!(
        "written {} and {}",
        a.out.join(SWEEP_JSON).display(),
        html.display()
    );
    Ok(())
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

fn write_results(dir: &Path, results: &SweepResults) -> anyhow::Result<()> {
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

/// The sweep's copies of the split manifests (subset when asked) and their variants.
struct Splits {
    train: PathBuf,
    val: PathBuf,
    test: PathBuf,
}

impl Splits {
    fn prepare(data: &GridData, grid_folder: &Path, out: &Path) -> anyhow::Result<Self> {
        let dir = out.join("data");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let copy = |name: &str, source: &Path, fraction: Option<f64>| -> anyhow::Result<PathBuf> {
            let source = if source.is_absolute() {
                source.to_owned()
            } else {
                grid_folder.join(source)
            };
            let m = Manifest::load(&source)?;
            let m = match fraction {
                Some(f) => lesion_subset(&m, f),
                None => m,
            };
            let path = dir.join(format!("{name}.csv"));
            m.save(&path)?;
            Ok(path)
        };
        Ok(Splits {
            train: copy("train", &data.train, data.lesion_fraction)?,
            val: copy("val", &data.val, None)?,
            test: copy("test", &data.test, None)?,
        })
    }

    /// Manifests for a mask mode and balance: training in that mode (balanced when asked);
    /// validation and test in the same mode, except that `both` is judged on raw images (what
    /// a camera delivers).
    fn variant(
        &self,
        mask: MaskMode,
        balance: Balance,
        out: &Path,
    ) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
        let dir = out
            .join("data")
            .join(format!("{}-{}", mask.as_str(), balance.label()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let eval_mode = if mask == MaskMode::Both {
            MaskMode::Raw
        } else {
            mask
        };
        let write = |name: &str,
                     source: &Path,
                     mode: MaskMode,
                     balance: Balance|
         -> anyhow::Result<PathBuf> {
            let m = split::with_mask_mode(&Manifest::load(source)?, mode)
                .with_context(|| format!("{}: mask mode {}", source.display(), mode.as_str()))?;
            let m = match balance {
                Balance::None => m,
                Balance::Smallest => {
                    let n = split::smallest_class(&m);
                    split::balance(&m, n, 0)
                }
                Balance::AtMost(n) => split::balance(&m, n, 0),
            };
            let path = dir.join(format!("{name}.csv"));
            m.save(&path)?;
            Ok(path)
        };
        Ok((
            write("train", &self.train, mask, balance)?,
            write("val", &self.val, eval_mode, Balance::None)?,
            write("test", &self.test, eval_mode, Balance::None)?,
        ))
    }
}

/// The first `fraction` of each class's lesions, in manifest order (at least one per class
/// present), with all their images.
pub fn lesion_subset(m: &Manifest, fraction: f64) -> Manifest {
    let mut lesions_of_class: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    let mut class_of: HashMap<&str, usize> = HashMap::new();
    for r in &m.records {
        if !class_of.contains_key(r.lesion_id.as_str()) {
            class_of.insert(&r.lesion_id, r.label.index());
            lesions_of_class
                .entry(r.label.index())
                .or_default()
                .push(&r.lesion_id);
        }
    }
    let mut keep: HashMap<&str, ()> = HashMap::new();
    for lesions in lesions_of_class.values() {
        let n = ((lesions.len() as f64 * fraction).ceil() as usize).max(1);
        keep.extend(lesions.iter().take(n).map(|&l| (l, ())));
    }
    Manifest::new(
        m.records
            .iter()
            .filter(|r| keep.contains_key(r.lesion_id.as_str()))
            .cloned()
            .collect(),
    )
}
