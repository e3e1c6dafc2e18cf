//! The grid file and the cells it spans.
//!
//! A grid file has `[data]` (train/val/test manifests, optional lesion subset), `[base]` (recipe
//! keys for every cell), `[sweep]` (design, seeds), `[[axis]]` entries and, for
//! `--executor slurm`, an optional `[slurm]` table (see [`SlurmOptions`]). An axis is
//! any recipe key (`size`, `lr`, `augment.hflip`, …) or one of two data axes: `mask` (raw, masked,
//! both) and `balance` (none, smallest, or a per-class cap of training images).
//!
//! The work of a sweep is a list of tasks, one per cell and seed, in a fixed order (cells in grid
//! order, seeds in `[sweep]` order): task `i` is cell `i / seeds` with seed `i % seeds`. Slurm array
//! indices are these task indices.

use crate::data::split::MaskMode;
use crate::eval::sweep_results::{AxisSpec, Design};
use crate::train::Recipe;
use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Grid {
    pub(super) data: GridData,
    #[serde(default)]
    pub(super) base: toml::Table,
    pub(super) sweep: GridSweep,
    #[serde(default, rename = "axis")]
    pub(super) axes: Vec<GridAxis>,
    /// How `--executor slurm` submits; the local executor ignores it.
    #[serde(default)]
    pub(super) slurm: SlurmOptions,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GridData {
    /// Manifests, relative to the grid file.
    pub(super) train: PathBuf,
    pub(super) val: PathBuf,
    pub(super) test: PathBuf,
    /// Train on this fraction of each class's training lesions (all their images): a
    /// CPU-sized study that keeps the class imbalance. Validation and test stay whole, so the
    /// comparisons are judged on every lesion of the test split.
    pub(super) lesion_fraction: Option<f64>,
    #[serde(default = "default_cache_root")]
    pub(super) cache_root: PathBuf,
}

fn default_cache_root() -> PathBuf {
    PathBuf::from("work/cache")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GridSweep {
    /// `one-at-a-time`: each axis varies alone around [base]; `full`: every combination.
    #[serde(default)]
    pub(super) design: Design,
    pub(super) seeds: Vec<u64>,
    #[serde(default = "default_resamples")]
    pub(super) resamples: usize,
}

fn default_resamples() -> usize {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GridAxis {
    pub(super) name: String,
    pub(super) values: Vec<toml::Value>,
    /// What the comparison asks, for the report.
    #[serde(default)]
    pub(super) question: String,
}

/// One axis as recorded in sweep.json.
/// One unit of work: a cell trained and evaluated with one seed, named as the run folder
/// `cells/<cell>/seed-<seed>/` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Task {
    pub(super) cell: String,
    pub(super) seed: u64,
}

/// A cell: its name, the recipe assignments and the data variant.
#[derive(Debug, Clone)]
pub(super) struct Cell {
    pub(super) name: String,
    pub(super) assignments: Vec<(String, String)>,
    pub(super) mask: MaskMode,
    pub(super) balance: Balance,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Balance {
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

    pub(super) fn label(self) -> String {
        match self {
            Balance::None => "none".into(),
            Balance::Smallest => "smallest".into(),
            Balance::AtMost(n) => n.to_string(),
        }
    }
}

/// A TOML value as an assignment right-hand side (strings bare, as `Recipe::set` accepts).
pub(super) fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Grid {
    pub(super) fn load(path: &Path) -> anyhow::Result<Self> {
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
    pub(super) fn cells(&self) -> anyhow::Result<Vec<Cell>> {
        let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for axis in &self.axes {
            let values: Vec<String> = axis.values.iter().map(value_text).collect();
            if self.sweep.design == Design::Full {
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

    /// Every task, in index order: cells in grid order, each with every seed.
    pub(super) fn tasks(&self, cells: &[Cell]) -> Vec<Task> {
        cells
            .iter()
            .flat_map(|c| {
                self.sweep.seeds.iter().map(|&seed| Task {
                    cell: c.name.clone(),
                    seed,
                })
            })
            .collect()
    }

    /// The cell and seed of task `index` (see [`Grid::tasks`]).
    pub(super) fn task<'a>(&self, cells: &'a [Cell], index: usize) -> Option<(&'a Cell, u64)> {
        let seeds = &self.sweep.seeds;
        let cell = cells.get(index / seeds.len())?;
        Some((cell, seeds[index % seeds.len()]))
    }

    /// The axes as sweep.json records them.
    pub(super) fn axis_specs(&self) -> Vec<AxisSpec> {
        self.axes
            .iter()
            .map(|x| AxisSpec {
                name: x.name.clone(),
                values: x.values.iter().map(value_text).collect(),
                question: x.question.clone(),
            })
            .collect()
    }

    /// The recipe of a cell for one seed: defaults, then [base], then the cell's keys.
    pub(super) fn recipe(&self, cell: &Cell, seed: u64) -> anyhow::Result<Recipe> {
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
    pub(super) fn values(&self, cell: &Cell) -> anyhow::Result<BTreeMap<String, String>> {
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

/// How the sweep's jobs are submitted: the grid's `[slurm]` table (same names, with `_` for `-`),
/// each key overridden by its flag.
#[derive(Args, Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(
    next_help_heading = "Slurm (with --executor slurm; each overrides the grid's [slurm] table)"
)]
pub struct SlurmOptions {
    /// Partition of the jobs (sbatch --partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Account the jobs are charged to (sbatch --account).
    #[arg(long)]
    pub account: Option<String>,
    /// Time limit of each task and of the collect job (sbatch --time), e.g. 4:00:00.
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs of each task (sbatch --cpus-per-task).
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Memory of each task (sbatch --mem), e.g. 32G.
    #[arg(long)]
    pub mem: Option<String>,
    /// Generic resources of each task (sbatch --gres), e.g. gpu:1 for one GPU.
    #[arg(long)]
    pub gres: Option<String>,
    /// Seconds before its time limit at which a task stops at a step boundary and requeues
    /// itself to continue (sbatch --signal=B:USR1@SECONDS). Without it, a task that reaches its
    /// time limit ends and the next `dermo sweep` resubmits it.
    #[arg(long, value_name = "SECONDS")]
    pub requeue_before_limit: Option<u32>,
    /// At most this many tasks run at once (the array's %N).
    #[arg(long, value_name = "N")]
    pub max_running: Option<u32>,
    /// A further sbatch argument, passed as is after dermo's own so it can override them
    /// (repeatable; in the grid: sbatch_args = [...]), e.g. --sbatch-arg=--qos=long.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

impl SlurmOptions {
    /// These (the flags) over `table` (the grid's): a flag wins; sbatch arguments add up, the
    /// table's first.
    pub fn over(&self, table: &SlurmOptions) -> SlurmOptions {
        SlurmOptions {
            partition: self.partition.clone().or_else(|| table.partition.clone()),
            account: self.account.clone().or_else(|| table.account.clone()),
            time: self.time.clone().or_else(|| table.time.clone()),
            cpus_per_task: self.cpus_per_task.or(table.cpus_per_task),
            mem: self.mem.clone().or_else(|| table.mem.clone()),
            gres: self.gres.clone().or_else(|| table.gres.clone()),
            requeue_before_limit: self.requeue_before_limit.or(table.requeue_before_limit),
            max_running: self.max_running.or(table.max_running),
            sbatch_args: [table.sbatch_args.clone(), self.sbatch_args.clone()].concat(),
        }
    }
}
