//! `DIR/slurm/jobs.json`: the sweep's task list and every submission made for it, so that a
//! later `dermo sweep` knows which tasks Slurm still holds and `--status` can ask about them.
//!
//! Only the submitting command writes it (atomically, after `sbatch` answered); tasks read it to
//! check that their array index still means the task it meant at submission. Every submission
//! in the file refers to the task list in the file: a changed grid starts a new record.

use crate::eval::sweep::grid::Task;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const FILE: &str = "jobs.json";

/// The Slurm folder of a sweep folder: jobs.json, the batch scripts and `logs/`.
pub fn folder(out: &Path) -> PathBuf {
    out.join("slurm")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// The grid as the submitting command named it, and the folder it ran in.
    pub grid: PathBuf,
    pub cwd: PathBuf,
    /// Task `i` is array index `i` in every submission.
    pub tasks: Vec<Task>,
    pub submissions: Vec<Submission>,
}

/// One `sbatch` of the task array and its collect job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub array_job: String,
    /// The array indices submitted.
    pub indices: Vec<usize>,
    /// The job that writes the results once the array has ended.
    pub collect_job: String,
    pub submitted_at: String,
    /// The sbatch command line of the array.
    pub sbatch: Vec<String>,
}

impl Record {
    /// The record of a sweep folder; `None` when nothing was ever submitted from it.
    pub fn load(out: &Path) -> anyhow::Result<Option<Record>> {
        let path = folder(out).join(FILE);
        if !path.is_file() {
            return Ok(None);
        }
        crate::files::read_json(&path).map(Some)
    }

    /// The grid file the record's tasks came from.
    pub fn grid_file(&self) -> PathBuf {
        self.cwd.join(&self.grid)
    }

    pub fn save(&self, out: &Path) -> anyhow::Result<()> {
        let path = folder(out).join(FILE);
        crate::files::write_atomic(&path, &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The latest submission of task `index`.
    pub fn last_submission(&self, index: usize) -> Option<&Submission> {
        self.submissions
            .iter()
            .rev()
            .find(|s| s.indices.contains(&index))
    }

    /// The log file of task `index` in array job `array_job` (every attempt appends to it).
    pub fn log(out: &Path, array_job: &str, index: usize) -> PathBuf {
        folder(out)
            .join("logs")
            .join(format!("{array_job}_{index}.log"))
    }
}
