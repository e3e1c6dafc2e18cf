//! The two jobs of a submission, as text: the batch scripts and the `sbatch` arguments of the
//! task array and of the collect job that follows it.
//!
//! The scripts `exec` dermo, so that dermo itself is the batch step's process and receives
//! Slurm's signals (`--signal=B:…` signals only that process). Every option is passed on the
//! command line rather than as `#SBATCH` lines, so paths need no quoting there and the grid's
//! `sbatch_args`, which come last, override anything dermo chose.

use crate::eval::sweep::grid::SlurmOptions;
use crate::train::DeviceChoice;
use clap::ValueEnum;
use std::path::Path;

pub const ARRAY_JOB_NAME: &str = "dermo-sweep";
pub const COLLECT_JOB_NAME: &str = "dermo-collect";

/// Where the jobs run and what they run.
pub struct Job<'a> {
    /// The dermo binary (every node must see it at this path).
    pub binary: &'a Path,
    /// The folder relative paths are resolved against (the submitting command's).
    pub cwd: &'a Path,
    /// The grid and the sweep folder as the command line named them.
    pub grid: &'a Path,
    pub out: &'a Path,
    /// The log folder (absolute).
    pub logs: &'a Path,
}

/// The batch script of the array: task `$SLURM_ARRAY_TASK_ID` of the sweep.
pub fn task_script(job: &Job, device: DeviceChoice) -> String {
    let device = device
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    format!(
        "#!/bin/bash\n\
         # One task of a dermo sweep: trains and evaluates the (cell, seed) of array index\n\
         # $SLURM_ARRAY_TASK_ID (written by `dermo sweep --executor slurm`; see docs/cluster.md).\n\
         exec {} sweep {} --out {} --device {device} --slurm-task \"$SLURM_ARRAY_TASK_ID\"\n",
        shell_quote(&job.binary.to_string_lossy()),
        shell_quote(&job.grid.to_string_lossy()),
        shell_quote(&job.out.to_string_lossy()),
    )
}

/// The batch script of the collect job: sweep.json, results.csv and the report.
pub fn collect_script(job: &Job) -> String {
    format!(
        "#!/bin/bash\n\
         # Writes a dermo sweep's sweep.json, results.csv and report once its task array has ended\n\
         # (written by `dermo sweep --executor slurm`; see docs/cluster.md).\n\
         exec {} sweep {} --out {} --collect\n",
        shell_quote(&job.binary.to_string_lossy()),
        shell_quote(&job.grid.to_string_lossy()),
        shell_quote(&job.out.to_string_lossy()),
    )
}

/// sbatch arguments of the task array over `indices`.
pub fn array_args(opts: &SlurmOptions, indices: &[usize], job: &Job) -> Vec<String> {
    let mut array = array_spec(indices);
    if let Some(n) = opts.max_running {
        array.push_str(&format!("%{n}"));
    }
    let mut args = vec![
        format!("--job-name={ARRAY_JOB_NAME}"),
        format!("--array={array}"),
        format!("--chdir={}", job.cwd.display()),
        format!("--output={}", job.logs.join("%A_%a.log").display()),
        // A requeued task appends to the log of its earlier attempts.
        "--open-mode=append".into(),
        "--requeue".into(),
    ];
    let mut set = |flag: &str, value: &Option<String>| {
        if let Some(v) = value {
            args.push(format!("--{flag}={v}"));
        }
    };
    set("partition", &opts.partition);
    set("account", &opts.account);
    set("time", &opts.time);
    set("cpus-per-task", &opts.cpus_per_task.map(|n| n.to_string()));
    set("mem", &opts.mem);
    set("gres", &opts.gres);
    set(
        "signal",
        &opts.requeue_before_limit.map(|s| format!("B:USR1@{s}")),
    );
    args.extend(opts.sbatch_args.iter().cloned());
    args
}

/// sbatch arguments of the collect job, which starts once every job of `after` has ended
/// (whatever their outcome). It asks for no GPU, CPUs or memory of its own.
pub fn collect_args(opts: &SlurmOptions, after: &[String], job: &Job) -> Vec<String> {
    let mut args = vec![
        format!("--job-name={COLLECT_JOB_NAME}"),
        format!("--dependency=afterany:{}", after.join(":")),
        format!("--chdir={}", job.cwd.display()),
        format!("--output={}", job.logs.join("collect-%j.log").display()),
    ];
    for (flag, value) in [
        ("partition", &opts.partition),
        ("account", &opts.account),
        ("time", &opts.time),
    ] {
        if let Some(v) = value {
            args.push(format!("--{flag}={v}"));
        }
    }
    args.extend(opts.sbatch_args.iter().cloned());
    args
}

/// The indices as `--array` takes them: sorted, runs of consecutive ones as ranges (`0-3,5`).
pub fn array_spec(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The job id in `sbatch --parsable`'s answer (`ID` or `ID;CLUSTER`).
pub fn job_id(parsable: &str) -> Option<String> {
    let id = parsable.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// `s` as one word to bash.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn job<'a>(logs: &'a Path) -> Job<'a> {
        Job {
            binary: Path::new("/opt/dermo/bin/dermo"),
            cwd: Path::new("/shared/study"),
            grid: Path::new("experiments/my grid.toml"),
            out: Path::new("work/sweep"),
            logs,
        }
    }

    #[test]
    fn array_specs_join_runs_of_indices() {
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[5, 0, 2, 1, 7, 8]), "0-2,5,7-8");
        assert_eq!(array_spec(&[4]), "4");
        assert_eq!(array_spec(&[3, 3]), "3");
    }

    #[test]
    fn the_task_script_execs_dermo_with_the_array_index() {
        let logs = PathBuf::from("/shared/study/work/sweep/slurm/logs");
        let script = task_script(&job(&logs), DeviceChoice::Cuda);
        assert!(script.starts_with("#!/bin/bash\n"), "{script}");
        let last = script.lines().last().unwrap();
        assert_eq!(
            last,
            "exec /opt/dermo/bin/dermo sweep 'experiments/my grid.toml' --out work/sweep \
             --device cuda --slurm-task \"$SLURM_ARRAY_TASK_ID\""
        );
        let collect = collect_script(&job(&logs));
        assert!(collect.ends_with(
            "exec /opt/dermo/bin/dermo sweep 'experiments/my grid.toml' --out work/sweep --collect\n"
        ));
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn sbatch_arguments_carry_every_option_and_the_extra_ones_last() {
        let logs = PathBuf::from("/shared/study/work/sweep/slurm/logs");
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            account: Some("derm".into()),
            time: Some("4:00:00".into()),
            cpus_per_task: Some(8),
            mem: Some("32G".into()),
            gres: Some("gpu:1".into()),
            requeue_before_limit: Some(300),
            max_running: Some(4),
            sbatch_args: vec!["--qos=long".into()],
        };
        let args = array_args(&opts, &[0, 1, 2, 5], &job(&logs));
        assert_eq!(
            args,
            [
                "--job-name=dermo-sweep",
                "--array=0-2,5%4",
                "--chdir=/shared/study",
                "--output=/shared/study/work/sweep/slurm/logs/%A_%a.log",
                "--open-mode=append",
                "--requeue",
                "--partition=gpu",
                "--account=derm",
                "--time=4:00:00",
                "--cpus-per-task=8",
                "--mem=32G",
                "--gres=gpu:1",
                "--signal=B:USR1@300",
                "--qos=long",
            ]
        );
        let collect = collect_args(&opts, &["17".into(), "12".into()], &job(&logs));
        assert_eq!(
            collect,
            [
                "--job-name=dermo-collect",
                "--dependency=afterany:17:12",
                "--chdir=/shared/study",
                "--output=/shared/study/work/sweep/slurm/logs/collect-%j.log",
                "--partition=gpu",
                "--account=derm",
                "--time=4:00:00",
                "--qos=long",
            ]
        );
        let bare = array_args(&SlurmOptions::default(), &[1], &job(&logs));
        assert_eq!(bare.len(), 6, "{bare:?}");
    }

    #[test]
    fn job_ids_come_from_parsable_answers() {
        assert_eq!(job_id("1234\n").as_deref(), Some("1234"));
        assert_eq!(job_id("1234;cluster2\n").as_deref(), Some("1234"));
        assert_eq!(job_id("Submitted batch job 1234"), None);
        assert_eq!(job_id(""), None);
    }
}
