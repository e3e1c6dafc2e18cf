//! `dermo train` end to end: a run aborted mid-epoch (SIGABRT, like `kill -9`: no cleanup) and
//! resumed reaches the same step count as planned, with no duplicated metrics rows.

use crate::train_support::{dermo, run_ok, train_args, write_split};
use dermo_host::train::run_folder::TrainState;
use std::path::Path;

fn state(run: &Path) -> TrainState {
    serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap()
}

/// `dermo` with `args` in `dir`, aborting after `abort_after` training steps when given.
fn run(dir: &Path, args: &[String], abort_after: Option<&str>) -> std::process::Output {
    let mut c = dermo(dir, args);
    if let Some(steps) = abort_after {
        c.env("DERMO_TRAIN_ABORT_AFTER_STEPS", steps);
    }
    c.output().unwrap()
}

#[test]
fn an_aborted_run_resumes_to_the_same_step_count_without_duplicate_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v) = write_split(dir.path(), 12, 3, None);
    let common = train_args(&t, &v, "run", &[]);
    // 84 examples / 16 = 5 steps per epoch; abort in the middle of epoch 2.
    let out = run(dir.path(), &common, Some("7"));
    assert!(!out.status.success(), "the run should have aborted");
    let run_dir = dir.path().join("run");
    let s = state(&run_dir);
    assert_eq!((s.epoch, s.step), (1, 5), "only epoch 1 was committed");

    // Without --resume an existing run folder is refused.
    let out = run(dir.path(), &common, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));

    // The saved recipe and manifests are used: --resume needs no --set, --train or --val.
    let mut resume = vec![common[0].clone()];
    resume.extend_from_slice(&common[5..11]);
    resume.push("--resume".into());
    run_ok(dir.path(), &resume);
    let s = state(&run_dir);
    assert_eq!((s.epoch, s.step), (3, 15));

    let metrics = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let epochs: Vec<&str> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(epochs, ["1", "2", "3"], "{metrics}");
    let steps: Vec<&str> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(steps, ["5", "10", "15"]);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["resumed_at"].as_array().unwrap().len(), 1);
    // Only the committed epoch's checkpoint is kept.
    assert_eq!(std::fs::read_dir(run_dir.join("ckpt")).unwrap().count(), 2);
}

/// The columns of metrics.csv that do not depend on timing: all but `images_per_s`.
fn metrics_without_speed(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let speed = header.iter().position(|c| *c == "images_per_s").unwrap();
    text.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(speed);
            cells.join(",")
        })
        .collect()
}

#[test]
fn an_aborted_weight_averaged_run_resumes_to_the_same_model_as_an_unbroken_one() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v) = write_split(dir.path(), 12, 3, None);
    let args = |out| train_args(&t, &v, out, &["ema_decay=0.9"]);
    run_ok(dir.path(), &args("unbroken"));
    assert!(!run(dir.path(), &args("broken"), Some("7")).status.success());
    let mut resume = args("broken");
    resume.push("--resume".into());
    run_ok(dir.path(), &resume);

    let (unbroken, broken) = (dir.path().join("unbroken"), dir.path().join("broken"));
    assert_eq!(
        metrics_without_speed(&broken),
        metrics_without_speed(&unbroken)
    );
    let weights = |run: &Path| {
        let mut w = tch::Tensor::read_safetensors(run.join("last.safetensors")).unwrap();
        w.sort_by(|x, y| x.0.cmp(&y.0));
        w
    };
    let (a, b) = (weights(&unbroken), weights(&broken));
    assert_eq!(a.len(), b.len());
    for ((name, x), (other, y)) in a.iter().zip(&b) {
        assert_eq!(name, other);
        let gap = f64::try_from((x - y).abs().max()).unwrap();
        assert!(gap < 1e-5, "{name} differs by {gap} after resume");
    }
    // The saved model is the average, not the trained weights: those sit in the optimizer state.
    let ckpt = std::fs::read_dir(unbroken.join("ckpt")).unwrap();
    let optim = ckpt
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("optim"))
        .unwrap();
    let trained = tch::Tensor::read_safetensors(optim.path()).unwrap();
    let head = |list: &[(String, tch::Tensor)]| {
        list.iter()
            .find(|(n, _)| n.ends_with("_fc.weight"))
            .map(|(_, t)| t.shallow_clone())
            .unwrap()
    };
    let gap = f64::try_from((head(&a) - head(&trained)).abs().max()).unwrap();
    assert!(gap > 1e-6, "the average equals the trained head");
}

#[test]
fn cuda_requested_without_a_gpu_is_a_clear_error() {
    if tch::Cuda::is_available() {
        return; // the other branch is exercised on GPU machines by the real runs
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dermo(
        dir.path(),
        &[
            "train", "--train", "x.csv", "--val", "y.csv", "--out", "run", "--device", "cuda",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CUDA is not available"), "{err}");
}
