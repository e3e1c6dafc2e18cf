//! The Slurm executor: `dermo sweep GRID --out DIR --executor slurm` submits the grid's tasks as
//! one job array (array index = task index, see [`super::grid`]) and a collect job that starts
//! once the array has ended, whatever its outcome.
//!
//! ```text
//! DIR/data/…                     the manifests, prepared by the submitting command; tasks only read them
//! DIR/cells/<cell>/seed-<s>/     one run folder per task, exactly as the local executor writes it
//! DIR/slurm/jobs.json            the task list and every submission (see record)
//! DIR/slurm/task.sh              the array's batch script: dermo sweep GRID --out DIR --slurm-task $SLURM_ARRAY_TASK_ID
//! DIR/slurm/collect.sh           the collect job's: dermo sweep GRID --out DIR --collect
//! DIR/slurm/logs/<A>_<I>.log     array job A's task I; a requeued task appends to it
//! DIR/slurm/logs/collect-<J>.log the collect job J
//! ```
//!
//! Guarantees, for a shared cluster:
//! - A task trains with resume, so whenever it runs again it continues from its run folder's
//!   last committed epoch and loses at most the epoch it was in.
//! - Tasks are submitted with `--requeue`: pre-emption, a node failure or `scontrol requeue` puts
//!   them back in the queue. Their SIGTERM stops the training at the next step boundary. With
//!   `requeue_before_limit = S`, Slurm sends SIGUSR1 S seconds before the time limit
//!   (`--signal=B:USR1@S`) and the task stops and requeues itself; without it, a task that reaches
//!   its time limit ends (TIMEOUT) and the next submission picks it up.
//! - Submitting again submits only the tasks that are neither done nor queued or running; when
//!   none is left and none is queued, it writes the results at once instead.
//! - The jobs need no shared home: every node must see the sweep folder, the grid's data and
//!   cache paths, the dermo binary, libtorch and the pretrained weights, at the same paths.
//!   Relative paths resolve against the folder `dermo sweep` was started in (`--chdir`), and the
//!   jobs inherit the submitting environment (sbatch's default), `DERMO_PRETRAINED` included.

mod command;
mod queue;
mod record;
mod sbatch;
pub(super) mod status;

pub(super) use record::Record;

use queue::{slurm_view, JobState, SlurmView};

use super::cell::{self, Setup};
use super::collect;
use super::data::Splits;
use super::grid::{Cell, Grid, SlurmOptions};
use crate::train::interrupt::{self, Stop};
use crate::train::run_folder::EVAL_TEST;
use crate::train::{pretrained, DeviceChoice, TrainError};
use anyhow::{ensure, Context};
use status::State;
use std::collections::BTreeSet;
use std::path::Path;

/// What [`submit`] is asked to do.
pub(super) struct Submit<'a> {
    pub grid_path: &'a Path,
    pub out: &'a Path,
    pub grid: &'a Grid,
    pub cells: &'a [Cell],
    pub device: DeviceChoice,
    /// The flags; the grid's table fills in the rest.
    pub flags: &'a SlurmOptions,
    /// Show the submission instead of making it.
    pub dry_run: bool,
}

/// Submits the tasks that are neither done nor queued or running, with a collect job after
/// them; or, when there are none and nothing is queued, writes the results now.
pub(super) fn submit(s: &Submit) -> anyhow::Result<()> {
    // The cheapest question first: without sbatch nothing is written.
    command::output("sbatch", &["--version"])?;
    let (mut record, view) = current_record(s)?;
    let states = status::states(s.grid, s.cells, s.out, &view);
    let todo: Vec<usize> = (0..states.len())
        .filter(|&i| states[i].needs_submission())
        .collect();
    let live_arrays: BTreeSet<String> = view
        .values()
        .filter(|(_, state)| is_live(state))
        .map(|(job, _)| job.clone())
        .collect();
    eprintln!(
        "{} of {} task(s) done, {} queued or running, {} to submit",
        states.iter().filter(|t| matches!(t, State::Done)).count(),
        states.len(),
        states.iter().filter(|t| t.is_live()).count(),
        todo.len()
    );
    if todo.is_empty() {
        return nothing_to_submit(s, &live_arrays);
    }

    let pretrained = pretrained::default_path()?;
    ensure!(
        pretrained.is_file(),
        "{}: the pretrained weights ($DERMO_PRETRAINED) are not there; the tasks read them at \
         this path",
        pretrained.display()
    );
    let binary = std::env::current_exe().context("cannot tell where the dermo binary is")?;
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let logs = crate::files::absolute(s.out).join("slurm").join("logs");
    let job = sbatch::Job {
        binary: &binary,
        cwd: &cwd,
        grid: s.grid_path,
        out: s.out,
        logs: &logs,
    };
    let opts = s.flags.over(&s.grid.slurm);
    let array_args = sbatch::array_args(&opts, &todo, &job);
    let task_script = record::folder(s.out).join("task.sh");
    let collect_script = record::folder(s.out).join("collect.sh");
    if s.dry_run {
        eprintln!(
            "would submit: sbatch {} {}",
            array_args.join(" "),
            task_script.display()
        );
        return Ok(());
    }

    prepare_data(s)?;
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    for (path, text) in [
        (&task_script, sbatch::task_script(&job, s.device)),
        (&collect_script, sbatch::collect_script(&job)),
    ] {
        crate::files::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    // Tasks check their index against the record: it must be there before the first one starts.
    record.grid = s.grid_path.to_owned();
    record.cwd = cwd.clone();
    record.save(s.out)?;

    let array_job = sbatch(&array_args, &task_script)?;
    let after: Vec<String> = std::iter::once(array_job.clone())
        .chain(live_arrays)
        .collect();
    let collect_job = sbatch(&sbatch::collect_args(&opts, &after, &job), &collect_script)?;
    cancel_waiting_collect_jobs(&record);
    record.submissions.push(record::Submission {
        array_job: array_job.clone(),
        indices: todo.clone(),
        collect_job: collect_job.clone(),
        submitted_at: crate::files::now(),
        sbatch: array_args,
    });
    record.save(s.out)?;
    eprintln!(
        "submitted array job {array_job} ({} task(s): {}) and collect job {collect_job}; logs in \
         {}; `dermo sweep {} --status` shows progress",
        todo.len(),
        sbatch::array_spec(&todo),
        logs.display(),
        s.out.display()
    );
    Ok(())
}

/// The sweep folder's record and Slurm's view of its tasks. When the grid's tasks differ from
/// the record's, a fresh record — refused while tasks of the old one are still queued, since
/// their array indices would change meaning.
fn current_record(s: &Submit) -> anyhow::Result<(Record, SlurmView)> {
    let plan = s.grid.tasks(s.cells);
    let record = Record::load(s.out)?.unwrap_or_default();
    let view = slurm_view(&record)?;
    if record.tasks == plan {
        return Ok((record, view));
    }
    let live = view.values().filter(|(_, state)| is_live(state)).count();
    ensure!(
        live == 0,
        "{}: the grid's tasks changed since the last submission to {}, and {live} task(s) of that \
         submission are still queued or running: wait for them (dermo sweep {} --status) or \
         scancel them, then submit again",
        s.grid_path.display(),
        s.out.display(),
        s.out.display()
    );
    let fresh = Record {
        tasks: plan,
        ..Record::default()
    };
    Ok((fresh, SlurmView::new()))
}

/// Nothing left to submit: either the queued tasks' collect job will write the results, or
/// every task is done and they are written now.
fn nothing_to_submit(s: &Submit, live_arrays: &BTreeSet<String>) -> anyhow::Result<()> {
    if !live_arrays.is_empty() {
        eprintln!(
            "nothing to submit: the collect job of job(s) {} writes the results when they end; \
             `dermo sweep {} --status` shows their progress",
            live_arrays.iter().cloned().collect::<Vec<_>>().join(", "),
            s.out.display()
        );
    } else if !s.dry_run {
        let collected = collect::collect(s.grid_path, s.grid, s.cells, s.out)?;
        if let Some(html) = collected.report {
            eprintln!("every task is done: written {}", html.display());
        }
    }
    Ok(())
}

/// The manifests of every data variant, written once here: the tasks only read them.
fn prepare_data(s: &Submit) -> anyhow::Result<()> {
    let folder = s.grid_path.parent().unwrap_or(Path::new("."));
    let splits = Splits::prepare(&s.grid.data, folder, s.out)?;
    let mut written = BTreeSet::new();
    for c in s.cells {
        if written.insert(Splits::variant_paths(c, s.out).train) {
            splits.write_variant(c, s.out)?;
        }
    }
    Ok(())
}

/// Cancels the collect jobs of earlier submissions that still wait: the new one waits for every
/// array with live tasks and replaces them (an old one could otherwise write partial results
/// after the new one wrote complete ones).
fn cancel_waiting_collect_jobs(record: &Record) {
    let mut args = vec!["--quiet".to_string(), "--state=PENDING".to_string()];
    args.extend(record.submissions.iter().map(|s| s.collect_job.clone()));
    if args.len() > 2 {
        if let Err(e) = command::output("scancel", &args) {
            eprintln!("note: the collect jobs of earlier submissions may still run: {e:#}");
        }
    }
}

fn is_live(state: &Option<JobState>) -> bool {
    state.as_ref().is_some_and(JobState::is_live)
}

/// Submits `script` with `args`; the job id.
fn sbatch(args: &[String], script: &Path) -> anyhow::Result<String> {
    let mut all = vec!["--parsable".to_string()];
    all.extend(args.iter().cloned());
    all.push(script.to_string_lossy().into_owned());
    let answer = command::output("sbatch", &all)?;
    sbatch::job_id(&answer).with_context(|| format!("sbatch answered {answer:?}, not a job id"))
}

/// What one array task runs (`--slurm-task INDEX`): the task's training and evaluation, stopping
/// cleanly on Slurm's signals.
pub(super) fn run_task(
    grid_path: &Path,
    out: &Path,
    grid: &Grid,
    cells: &[Cell],
    device: DeviceChoice,
    index: usize,
) -> anyhow::Result<()> {
    interrupt::install().context("cannot install the SIGTERM/SIGUSR1 handlers")?;
    let record = Record::load(out)?.with_context(|| {
        format!(
            "{}: no slurm/jobs.json; --slurm-task runs inside the jobs `dermo sweep --executor \
             slurm` submits",
            out.display()
        )
    })?;
    let plan = grid.tasks(cells);
    let (cell, seed) = grid
        .task(cells, index)
        .with_context(|| format!("task {index}: the grid has {} tasks", plan.len()))?;
    ensure!(
        record.tasks.get(index) == plan.get(index),
        "task {index}: {} now makes it {} seed {seed}, but it was {:?} when submitted; submit \
         the sweep again",
        grid_path.display(),
        cell.name,
        record.tasks.get(index)
    );
    let run_dir = cell::run_dir(out, &cell.name, seed);
    if cell::is_done(&run_dir) {
        eprintln!("{} seed {seed}: done before, nothing to do", cell.name);
        return Ok(());
    }
    let env = |name: &str, none: &str| std::env::var(name).unwrap_or_else(|_| none.into());
    eprintln!(
        "task {index}: {} seed {seed} into {} (job {}_{index}, restart {}, node {})",
        cell.name,
        run_dir.display(),
        env("SLURM_ARRAY_JOB_ID", "?"),
        env("SLURM_RESTART_COUNT", "0"),
        env("SLURMD_NODENAME", "?"),
    );
    let data = Splits::variant_paths(cell, out);
    for manifest in [&data.train, &data.val, &data.test] {
        ensure!(
            manifest.is_file(),
            "{}: missing; the submitting `dermo sweep` writes it (is the sweep folder shared \
             with this node?)",
            manifest.display()
        );
    }
    let pretrained = pretrained::default_path()?;
    let setup = Setup {
        grid,
        device: device.resolve()?,
        pretrained: &pretrained,
    };
    let result = cell::train_and_evaluate(&setup, cell, seed, &data, &run_dir);
    if let Err(e) = &result {
        if let Some(TrainError::Interrupted {
            stop: Stop::TimeLimitNear,
            ..
        }) = e.downcast_ref::<TrainError>()
        {
            requeue_self()?;
        }
    }
    result?;
    eprintln!("done: {}", run_dir.join(EVAL_TEST).display());
    Ok(())
}

/// `scontrol requeue` of this job: it goes back to the queue and, when it runs again, resumes.
fn requeue_self() -> anyhow::Result<()> {
    let job = std::env::var("SLURM_JOB_ID")
        .context("SLURM_JOB_ID is not set: this is not a Slurm job, so it cannot requeue itself")?;
    eprintln!("time limit near: requeueing job {job}; it resumes from the last finished epoch");
    command::output("scontrol", &["requeue", &job])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_grid_table_and_sbatch_arguments_add_up() {
        let table: SlurmOptions = toml::from_str(
            r#"
partition = "gpu"
time = "2:00:00"
gres = "gpu:1"
sbatch_args = ["--qos=normal"]
"#,
        )
        .unwrap();
        let flags = SlurmOptions {
            time: Some("30:00".into()),
            max_running: Some(2),
            sbatch_args: vec!["--constraint=a100".into()],
            ..SlurmOptions::default()
        };
        let merged = flags.over(&table);
        assert_eq!(merged.partition.as_deref(), Some("gpu"));
        assert_eq!(merged.time.as_deref(), Some("30:00"));
        assert_eq!(merged.gres.as_deref(), Some("gpu:1"));
        assert_eq!(merged.max_running, Some(2));
        assert_eq!(merged.sbatch_args, ["--qos=normal", "--constraint=a100"]);
        let typo = toml::from_str::<SlurmOptions>("partion = \"gpu\"").unwrap_err();
        assert!(typo.to_string().contains("partion"), "{typo}");
    }
}
