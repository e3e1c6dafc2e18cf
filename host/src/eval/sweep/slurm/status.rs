//! The state of every task of a sweep, from its run folder and, for the tasks a Slurm submission
//! holds, from `squeue`/`sacct`: what `dermo sweep DIR --status` prints and what a new Slurm
//! submission leaves out.

use super::queue::{self, SlurmView};
use super::record::Record;
use crate::eval::record::read_record;
use crate::eval::sweep::cell;
use crate::eval::sweep::grid::{Cell, Grid};
use crate::train::run_folder::RunFolder;
use crate::train::run_folder::EVAL_TEST;
use std::path::Path;

/// Lines of a failed task's log that `--status` shows.
const LOG_TAIL: usize = 6;

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::eval::sweep) enum State {
    /// Its `eval-test.json` is there.
    Done,
    /// Queued in array job `job` (with the reason it waits, when Slurm tells).
    Pending { job: String, reason: String },
    /// Running in array job `job`.
    Running { job: String },
    /// Submitted in array job `job`, not queued any more, and without results: Slurm's final
    /// state when it still knows it (CANCELLED, TIMEOUT, FAILED, …).
    Failed {
        job: String,
        slurm_state: Option<String>,
    },
    /// Not submitted (or no longer known to the record), with epochs committed but no results:
    /// an interrupted local run.
    Stopped,
    /// Not submitted, and nothing in its run folder.
    NotStarted,
}

impl State {
    /// Whether a Slurm submission should include the task.
    pub(in crate::eval::sweep) fn needs_submission(&self) -> bool {
        matches!(
            self,
            State::Failed { .. } | State::Stopped | State::NotStarted
        )
    }

    pub(in crate::eval::sweep) fn is_live(&self) -> bool {
        matches!(self, State::Pending { .. } | State::Running { .. })
    }
}

/// The state of every task of `grid` (index order), from the run folders in `out` and Slurm's
/// view of the submitted ones (see [`queue::slurm_view`]).
pub(in crate::eval::sweep) fn states(
    grid: &Grid,
    cells: &[Cell],
    out: &Path,
    view: &SlurmView,
) -> Vec<State> {
    grid.tasks(cells)
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let run_dir = cell::run_dir(out, &task.cell, task.seed);
            if cell::is_done(&run_dir) {
                return State::Done;
            }
            let Some((job, slurm_state)) = view.get(&i) else {
                return match finished_epochs(&run_dir) {
                    0 => State::NotStarted,
                    _ => State::Stopped,
                };
            };
            let job = job.clone();
            match slurm_state {
                Some(s) if s.is_pending() => State::Pending {
                    job,
                    reason: s.reason.clone(),
                },
                Some(s) if s.is_running() => State::Running { job },
                other => State::Failed {
                    job,
                    slurm_state: other.as_ref().map(|s| s.state.clone()),
                },
            }
        })
        .collect()
}

/// Prints the state of every task of the sweep in `out`.
pub(in crate::eval::sweep) fn print(grid: &Grid, cells: &[Cell], out: &Path) -> anyhow::Result<()> {
    let plan = grid.tasks(cells);
    let view = match Record::load(out)? {
        Some(record) if record.tasks == plan => queue::slurm_view(&record)?,
        Some(_) => {
            eprintln!(
                "note: the grid's tasks changed since the last Slurm submission; showing the run \
                 folders only"
            );
            SlurmView::new()
        }
        None => SlurmView::new(),
    };
    let states = states(grid, cells, out, &view);
    let count = |f: fn(&State) -> bool| states.iter().filter(|s| f(s)).count();
    println!(
        "{}: {} tasks ({} cells × {} seeds): {} done, {} running, {} pending, {} failed, {} \
         stopped, {} not started",
        out.display(),
        states.len(),
        cells.len(),
        grid.sweep.seeds.len(),
        count(|s| matches!(s, State::Done)),
        count(|s| matches!(s, State::Running { .. })),
        count(|s| matches!(s, State::Pending { .. })),
        count(|s| matches!(s, State::Failed { .. })),
        count(|s| matches!(s, State::Stopped)),
        count(|s| matches!(s, State::NotStarted)),
    );
    let width = plan.iter().map(|t| t.cell.len()).max().unwrap_or(0);
    for (i, (task, state)) in plan.iter().zip(&states).enumerate() {
        let run_dir = cell::run_dir(out, &task.cell, task.seed);
        let (cell, seed) = grid.task(cells, i).expect("a task of the plan");
        let epochs = format!(
            "{}/{} epochs",
            finished_epochs(&run_dir),
            grid.recipe(cell, seed)?.epochs
        );
        let line = match state {
            State::Done => {
                let record = read_record(&run_dir.join(EVAL_TEST))?;
                match record.metrics.balanced_accuracy {
                    Some(b) => format!("done        balanced accuracy {:.3}", b.estimate),
                    None => "done".into(),
                }
            }
            State::Running { job } => format!("running     job {job}_{i}, {epochs}"),
            State::Pending { job, reason } if reason.is_empty() => {
                format!("pending     job {job}_{i}, {epochs}")
            }
            State::Pending { job, reason } => {
                format!("pending     job {job}_{i} ({reason}), {epochs}")
            }
            State::Failed { job, slurm_state } => format!(
                "failed      job {job}_{i} {}, {epochs}",
                slurm_state
                    .as_deref()
                    .unwrap_or("(no longer known to Slurm)")
            ),
            State::Stopped => format!("stopped     {epochs}"),
            State::NotStarted => "not started".into(),
        };
        println!("  {:width$}  seed {:<4} {line}", task.cell, task.seed);
        if let State::Failed { job, .. } = state {
            let log = queue::log_path(out, job, i);
            match std::fs::read_to_string(&log) {
                Ok(text) => {
                    println!("      last lines of {}:", log.display());
                    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                    for l in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
                        println!("      | {l}");
                    }
                }
                Err(e) => println!("      no log at {}: {e}", log.display()),
            }
        }
    }
    Ok(())
}

/// Epochs a run folder has committed (0 when it has none).
fn finished_epochs(run_dir: &Path) -> usize {
    RunFolder::new(run_dir)
        .state()
        .ok()
        .flatten()
        .map_or(0, |s| s.epoch)
}
