//! What Slurm says about the sweep's array tasks: `squeue` for the jobs slurmctld still holds
//! (pending, running, and recently ended ones), `sacct` for older ones where accounting is on.

use super::command;
use super::record::Record;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Slurm's word on one array task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`, `TIMEOUT`, … (sacct's `CANCELLED by 0`
    /// is cut to its first word).
    pub state: String,
    /// Why a pending task waits (squeue's reason), empty when not told.
    pub reason: String,
}

impl JobState {
    /// Whether Slurm will still run (or is running) the task.
    pub fn is_live(&self) -> bool {
        self.is_pending() || self.is_running()
    }

    pub fn is_pending(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" | "SUSPENDED"
        )
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.state.as_str(),
            "RUNNING" | "CONFIGURING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" | "RESIZING"
        )
    }
}

/// The states of the tasks of `array_jobs`, by (array job id, task index). Tasks that Slurm no
/// longer knows about are absent. Fails only when `squeue` cannot be asked.
pub fn states(array_jobs: &[String]) -> anyhow::Result<BTreeMap<(String, usize), JobState>> {
    let mut states = BTreeMap::new();
    if array_jobs.is_empty() {
        return Ok(states);
    }
    let jobs = array_jobs.join(",");
    // Without accounting (no slurmdbd) sacct fails; squeue alone then speaks for the jobs
    // slurmctld still holds (MinJobAge after they end).
    if let Ok(text) = command::output(
        "sacct",
        &["-n", "-P", "-X", "-j", &jobs, "-o", "JobID,State"],
    ) {
        states.extend(parse_sacct(&text));
    }
    match command::output(
        "squeue",
        &["-h", "-r", "-t", "all", "-j", &jobs, "-o", "%F|%K|%T|%r"],
    ) {
        Ok(text) => states.extend(parse_squeue(&text)),
        // One job id that slurmctld has forgotten is an error to squeue, not an empty answer.
        Err(e) if format!("{e:#}").contains("Invalid job id") => {}
        Err(e) => return Err(e),
    }
    Ok(states)
}

/// Lines `ARRAYJOB|INDEX|STATE|REASON` of `squeue -r -o %F|%K|%T|%r`.
pub fn parse_squeue(text: &str) -> Vec<((String, usize), JobState)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.trim().split('|').collect();
            let [job, index, state, reason] = f[..] else {
                return None;
            };
            let reason = if reason == "None" { "" } else { reason };
            Some((
                (job.to_string(), index.parse().ok()?),
                JobState {
                    state: state.to_string(),
                    reason: reason.to_string(),
                },
            ))
        })
        .collect()
}

/// Lines `ARRAYJOB_INDEX|STATE` of `sacct -X -P -o JobID,State`; lines of arrays not yet split
/// into tasks (`12_[3-5]`) and of other jobs are skipped.
pub fn parse_sacct(text: &str) -> Vec<((String, usize), JobState)> {
    text.lines()
        .filter_map(|line| {
            let (id, state) = line.trim().split_once('|')?;
            let (job, index) = id.split_once('_')?;
            Some((
                (job.to_string(), index.parse().ok()?),
                JobState {
                    state: state.split_whitespace().next()?.to_string(),
                    reason: String::new(),
                },
            ))
        })
        .collect()
}

/// Slurm's view of a record's tasks: for each submitted task index, its latest array job and
/// what Slurm says of it (`None`: Slurm no longer knows it).
pub type SlurmView = BTreeMap<usize, (String, Option<JobState>)>;

/// Slurm's view of the record's tasks.
pub fn slurm_view(record: &Record) -> anyhow::Result<SlurmView> {
    let jobs: Vec<String> = record
        .submissions
        .iter()
        .map(|s| s.array_job.clone())
        .collect();
    let mut known = states(&jobs)?;
    Ok((0..record.tasks.len())
        .filter_map(|i| {
            let job = record.last_submission(i)?.array_job.clone();
            let state = known.remove(&(job.clone(), i));
            Some((i, (job, state)))
        })
        .collect())
}

/// The log of task `index` in `array_job`.
pub fn log_path(out: &Path, array_job: &str, index: usize) -> PathBuf {
    Record::log(out, array_job, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_one_state_per_task() {
        let text = "12|0|RUNNING|None\n12|3|PENDING|BeginTime\n12|4|COMPLETED|None\n\n";
        let states = parse_squeue(text);
        assert_eq!(states.len(), 3);
        assert_eq!(states[0].0, ("12".to_string(), 0));
        assert!(states[0].1.is_running() && states[0].1.reason.is_empty());
        assert_eq!(states[1].1.reason, "BeginTime");
        assert!(states[1].1.is_pending() && states[1].1.is_live());
        assert!(!states[2].1.is_live());
    }

    #[test]
    fn sacct_lines_drop_who_cancelled_and_unsplit_arrays() {
        let text = "12_1|CANCELLED by 0\n12_2|TIMEOUT\n12_[5-7]|PENDING\n13|COMPLETED\n";
        let states = parse_sacct(text);
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].0, ("12".to_string(), 1));
        assert_eq!(states[0].1.state, "CANCELLED");
        assert_eq!(states[1].1.state, "TIMEOUT");
        assert!(!states[0].1.is_live() && !states[1].1.is_live());
    }
}
