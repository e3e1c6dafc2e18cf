//! `dermo sweep GRID.toml --out DIR`: trains and evaluates a grid of recipes, at least two seeds
//! per cell, skipping what is already done (so an interrupted sweep resumes), and writes one
//! results table plus balanced accuracy against each axis with intervals.
//!
//! ```text
//! DIR/data/…                    the manifests the cells read (see data)
//! DIR/cells/<cell>/seed-<s>/    one run folder per task: a cell with one seed (see cell)
//! DIR/sweep.json, results.csv   every finished cell's runs and metrics (see sweep_results)
//! DIR/report/                   the report, with balanced accuracy against each axis
//! DIR/slurm/                    with --executor slurm only: the jobs and their logs (see slurm)
//! ```
//!
//! Layers: [`grid`] (the grid file, its cells and tasks); [`data`] (the manifests); [`cell`] (one
//! task's training and evaluation, the same under every executor); [`collect`] (the finished run
//! folders become `crate::eval::sweep_results`, which the report draws); the executors [`local`] (one
//! task after another, here) and [`slurm`] (a job array and a collect job, and `slurm::status`: where each
//! task stands).

mod cell;
mod collect;
mod data;
mod grid;
mod local;
mod slurm;

pub use data::lesion_subset;
pub use grid::SlurmOptions;

use crate::eval::sweep_results::SWEEP_JSON;
use crate::train::DeviceChoice;
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use grid::Grid;
use std::path::{Path, PathBuf};

/// `dermo sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The grid TOML (see experiments/study.toml). With --status, the sweep folder instead (or
    /// the grid, with --out).
    pub grid: PathBuf,
    /// Sweep folder: data/, cells/<cell>/seed-<s>/ run folders, sweep.json, results.csv and the
    /// report. Re-running skips every finished cell and resumes an interrupted one.
    #[arg(long, required_unless_present = "status")]
    pub out: Option<PathBuf>,
    /// cpu, cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Where the tasks run: local (here, one after another) or slurm (one job array, a task per
    /// cell and seed, then a collect job that writes the results; see docs/cluster.md).
    /// Submitting again submits only the tasks that are neither done nor queued or running.
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// List the cells and exit without training (with --executor slurm: also show what would be
    /// submitted).
    #[arg(long)]
    pub dry_run: bool,
    /// Show every task's state (done, running, pending, failed with its log's last lines,
    /// stopped with epochs but no results, not started) from the run folders and, for a Slurm
    /// sweep, squeue and sacct. Takes the sweep folder: `dermo sweep DIR --status`.
    #[arg(long, conflicts_with_all = ["collect", "slurm_task", "dry_run"])]
    pub status: bool,
    /// Write sweep.json, results.csv and the report from the finished cells without training
    /// (what the Slurm collect job runs); fails, after writing, when tasks are missing.
    #[arg(long, conflicts_with = "slurm_task")]
    pub collect: bool,
    /// Run task INDEX of the grid (cell INDEX / seeds, seed INDEX % seeds): what each task of the
    /// Slurm job array runs.
    #[arg(long, value_name = "INDEX", hide = true)]
    pub slurm_task: Option<usize>,
    #[command(flatten)]
    pub slurm: SlurmOptions,
}

/// Where a sweep's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// On this machine, one task after another.
    Local,
    /// As a Slurm job array submitted with sbatch.
    Slurm,
}

pub fn run_sweep(a: SweepArgs) -> anyhow::Result<()> {
    if a.status {
        return status(&a);
    }
    let out = a.out.as_deref().context("--out is required")?;
    let grid = Grid::load(&a.grid)?;
    let cells = grid.cells()?;
    if let Some(index) = a.slurm_task {
        return slurm::run_task(&a.grid, out, &grid, &cells, a.device, index);
    }
    if a.collect {
        let collected = collect::collect(&a.grid, &grid, &cells, out)?;
        if let Some(html) = &collected.report {
            eprintln!(
                "written {} and {}",
                out.join(SWEEP_JSON).display(),
                html.display()
            );
        }
        if !collected.missing.is_empty() {
            bail!(
                "{} task(s) have no results yet: {}; `dermo sweep {} --status` says why",
                collected.missing.len(),
                collected.missing.join(", "),
                out.display()
            );
        }
        return Ok(());
    }
    eprintln!(
        "{} cells × {} seeds ({} design)",
        cells.len(),
        grid.sweep.seeds.len(),
        grid.sweep.design
    );
    for cell in &cells {
        eprintln!("  {}", cell.name);
    }
    match a.executor {
        Executor::Local if a.dry_run => Ok(()),
        Executor::Local => local::run(&a.grid, &grid, &cells, out, a.device),
        Executor::Slurm => slurm::submit(&slurm::Submit {
            grid_path: &a.grid,
            out,
            grid: &grid,
            cells: &cells,
            device: a.device,
            flags: &a.slurm,
            dry_run: a.dry_run,
        }),
    }
}

/// `--status`: `dermo sweep DIR --status` (the grid from DIR's Slurm record) or
/// `dermo sweep GRID --out DIR --status`.
fn status(a: &SweepArgs) -> anyhow::Result<()> {
    let (grid_path, out): (PathBuf, &Path) = match &a.out {
        Some(out) => (a.grid.clone(), out),
        None => {
            let out = a.grid.as_path();
            let record = slurm::Record::load(out)?.with_context(|| {
                format!(
                    "{}: no slurm/jobs.json, so the grid is unknown; name it: dermo sweep GRID \
                     --out {} --status",
                    out.display(),
                    out.display()
                )
            })?;
            (record.grid_file(), out)
        }
    };
    let grid = Grid::load(&grid_path)?;
    let cells = grid.cells()?;
    slurm::status::print(&grid, &cells, out)
}
