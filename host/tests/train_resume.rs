//! `dermo train` end to end: a run aborted mid-epoch (SIGABRT, like `kill -9`: no cleanup) and
//! resumed reaches the same step count as planned, with no duplicated metrics rows.

mod train_support;

use dermo_host::train::checkpoint::TrainState;
use std::path::Path;
use std::process::Command;
use train_support::write_split;

fn dermo(args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dermo"));
    c.args(args).current_dir(dir).env("RAYON_NUM_THREADS", "2");
    c
}

fn state(run: &Path) -> TrainState {
    serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap()
}

#[test]
fn an_aborted_run_resumes_to_the_same_step_count_without_duplicate_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v) = write_split(dir.path(), 12, 3, None);
    let common = [
        "train",
        "--train",
        t.to_str().unwrap(),
        "--val",
        v.to_str().unwrap(),
        "--out",
        "run",
        "--device",
        "cpu",
        "--cache-root",
        "cache",
        "--set",
        "size=64",
        "--set",
        "batch=16",
        "--set",
        "epochs=3",
        "--set",
        "mode=partial",
        "--set",
        "frozen_blocks=10",
        "--set",
        "patience=0",
    ];
    // 84 examples / 16 = 5 steps per epoch; abort in the middle of epoch 2.
    let out = dermo(&common, dir.path())
        .env("DERMO_TRAIN_ABORT_AFTER_STEPS", "7")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run should have aborted");
    let run = dir.path().join("run");
    let s = state(&run);
    assert_eq!((s.epoch, s.step), (1, 5), "only epoch 1 was committed");

    // Without --resume an existing run folder is refused.
    let out = dermo(&common, dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));

    let out = dermo(
        &[
            "train",
            "--train",
            t.to_str().unwrap(),
            "--val",
            v.to_str().unwrap(),
            "--out",
            "run",
            "--device",
            "cpu",
            "--cache-root",
            "cache",
            "--resume",
        ],
        dir.path(),
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = state(&run);
    assert_eq!((s.epoch, s.step), (3, 15));

    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
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
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["resumed_at"].as_array().unwrap().len(), 1);
    // Only the committed epoch's checkpoint is kept.
    assert_eq!(std::fs::read_dir(run.join("ckpt")).unwrap().count(), 2);
}

/// The columns of metrics.csv that do not depend on timing.
fn metrics_without_speed(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

#[test]
fn an_aborted_weight_averaged_run_resumes_to_the_same_model_as_an_unbroken_one() {
    let dir = tempfile::tempdir().unwrap();
    let (t, v) = write_split(dir.path(), 12, 3, None);
    let args = |out: &'static str| {
        let mut a: Vec<String> = [
            "train", "--train", "", "--val", "", "--out", out, "--device", "cpu",
        ]
        .map(String::from)
        .to_vec();
        a[2] = t.to_str().unwrap().into();
        a[4] = v.to_str().unwrap().into();
        for set in [
            "size=64",
            "batch=16",
            "epochs=3",
            "mode=partial",
            "frozen_blocks=10",
            "patience=0",
            "ema_decay=0.9",
        ] {
            a.extend(["--set".into(), set.into()]);
        }
        a.extend(["--cache-root".into(), "cache".into()]);
        a
    };
    let run = |a: &[String], abort: Option<&str>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut c = dermo(&a, dir.path());
        if let Some(steps) = abort {
            c.env("DERMO_TRAIN_ABORT_AFTER_STEPS", steps);
        }
        c.output().unwrap()
    };
    let out = run(&args("unbroken"), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!run(&args("broken"), Some("7")).status.success());
    let mut resume = args("broken");
    resume.push("--resume".into());
    let out = run(&resume, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

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
        &[
            "train", "--train", "x.csv", "--val", "y.csv", "--out", "run", "--device", "cuda",
        ],
        dir.path(),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CUDA is not available"), "{err}");
}
