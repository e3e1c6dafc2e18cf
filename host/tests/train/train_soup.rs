//! `dermo soup` end to end on two small real runs: the uniform soup is the mean of their weights
//! and scores on validation what `dermo eval` measures for it; the greedy soup never scores below
//! its best run; runs of another input size, or a folder that already holds files, are refused.
//! WiSE-FT moves one run's weights toward the ImageNet weights it started from by alpha; BatchNorm
//! statistics re-estimated on training images, or on an external set's, depend on the weights and
//! the images alone.

use crate::train_support::{
    arg, dermo, import_isic2017, pretrained, run_ok, train_args, write_split,
};
use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use tch::Tensor;

fn soup_fails(dir: &Path, args: &[&str]) -> Output {
    let out = dermo(dir, args).output().unwrap();
    assert!(!out.status.success(), "dermo {args:?} should have failed");
    out
}

fn weights(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

fn soup_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("soup.json")).unwrap()).unwrap()
}

#[test]
fn soups_average_runs_and_are_chosen_on_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (t, v) = write_split(dir, 12, 3, None);
    let train = |out, extra: &[&str]| run_ok(dir, &train_args(&t, &v, out, extra));
    train("a", &["epochs=2", "lr=1e-3"]);
    train("b", &["epochs=2", "lr=3e-3", "label_smoothing=0.0"]);
    let (a, b) = (
        weights(&dir.join("a/best.safetensors")),
        weights(&dir.join("b/best.safetensors")),
    );

    // Uniform: every tensor is the mean of the two runs'.
    run_ok(
        dir,
        &[
            "soup", "a", "b", "--val", "val.csv", "--method", "uniform", "--out", "u", "--device",
            "cpu",
        ],
    );
    let u = weights(&dir.join("u/best.safetensors"));
    assert_eq!(u.len(), a.len());
    let differing = a.keys().filter(|k| !a[*k].equal(&b[*k])).count();
    assert!(differing > 0, "the two runs trained the same weights");
    for (name, t) in &u {
        let mean = (&a[name] + &b[name]) / 2.0;
        let err = (t - mean).abs().max().double_value(&[]);
        assert!(err < 1e-6, "{name}: soup differs from the mean by {err}");
    }
    let record = soup_json(&dir.join("u"));
    let ingredients = record["ingredients"].as_array().unwrap();
    assert_eq!(ingredients.len(), 2);
    assert!(ingredients.iter().all(|i| i["in_soup"] == true));

    // The soup is an ordinary run folder: `dermo eval` scores it, and on validation it measures
    // the balanced accuracy the soup recorded.
    run_ok(
        dir,
        &[
            "eval",
            "u",
            "--data",
            "val.csv",
            "--resamples",
            "10",
            "--out",
            "u-val.json",
        ],
    );
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("u-val.json")).unwrap()).unwrap();
    let measured = eval["metrics"]["balanced_accuracy"]["estimate"]
        .as_f64()
        .unwrap();
    let recorded = record["val_bal_acc"].as_f64().unwrap();
    assert!(
        (measured - recorded).abs() < 1e-9,
        "eval {measured} vs soup.json {recorded}"
    );

    // Greedy: never below the best run on validation; it keeps the second run only if that
    // does not lower the score, and then holds the mean, otherwise the best run's weights.
    run_ok(
        dir,
        &[
            "soup", "a", "b", "--val", "val.csv", "--out", "g", "--device", "cpu",
        ],
    );
    let g = soup_json(&dir.join("g"));
    let best = &g["ingredients"][0];
    let runs_best = g["ingredients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["val_bal_acc"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(best["val_bal_acc"].as_f64().unwrap(), runs_best);
    assert!(g["val_bal_acc"].as_f64().unwrap() >= runs_best);
    let step = &g["steps"][0];
    let gw = weights(&dir.join("g/best.safetensors"));
    let expected = if step["kept"] == true {
        u
    } else if best["run"] == "a" {
        a
    } else {
        b
    };
    for (name, t) in &gw {
        let err = (t - &expected[name]).abs().max().double_value(&[]);
        assert!(
            err < 1e-6,
            "{name}: greedy soup holds other weights ({err})"
        );
    }

    // Another input size cannot be averaged into one model.
    train("c", &["epochs=2", "size=96"]);
    let soup = |a, b, out| {
        [
            "soup", a, b, "--val", "val.csv", "--out", out, "--device", "cpu",
        ]
    };
    let err = soup_fails(dir, &soup("a", "c", "x")).stderr;
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("c and a differ in input size"), "{err}");

    // An existing, non-empty folder is never overwritten.
    let err = soup_fails(dir, &soup("a", "b", "u")).stderr;
    assert!(String::from_utf8_lossy(&err).contains("already exists"));
}

#[test]
fn wise_ft_moves_one_run_toward_its_imagenet_weights_and_keeps_its_classifier() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (t, v) = write_split(dir, 12, 3, None);
    // Two trained blocks, so that the backbone has moved away from ImageNet.
    let extra = ["epochs=1", "lr=3e-3", "frozen_blocks=14"];
    run_ok(dir, &train_args(&t, &v, "a", &extra));
    let a = weights(&dir.join("a/best.safetensors"));
    let imagenet = weights(&pretrained());
    let wise = |run: &str, extra: &[&str]| {
        let mut args = vec![
            "soup", run, "--val", "val.csv", "--out", "w", "--device", "cpu",
        ];
        args.extend(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    run_ok(dir, &wise("a", &["--method", "wise-ft", "--alpha", "0.25"]));

    let w = weights(&dir.join("w/best.safetensors"));
    assert_eq!(w.len(), a.len());
    let mut moved = 0;
    for (name, t) in &w {
        let f64 = |t: &Tensor| t.to_kind(tch::Kind::Double);
        let expected = if name.starts_with("_fc.") {
            f64(&a[name])
        } else {
            f64(&a[name]) * 0.25 + f64(&imagenet[name]) * 0.75
        };
        // Within f32 rounding of the largest value (BatchNorm variances run into the hundreds).
        let bound = 1e-6 * (1.0 + expected.abs().max().double_value(&[]));
        let err = (f64(t) - expected).abs().max().double_value(&[]);
        assert!(
            err <= bound,
            "{name}: wise-ft differs from 0.25 run + 0.75 ImageNet by {err}"
        );
        moved += usize::from(!t.equal(&a[name]));
    }
    assert!(
        moved > 0,
        "no tensor moved: the run never left its ImageNet weights"
    );
    let record = soup_json(&dir.join("w"));
    assert_eq!(record["method"], "wise-ft");
    assert_eq!(record["alpha"], 0.25);

    // One run, and an alpha in [0, 1] that goes with wise-ft only.
    for (args, says) in [
        (
            wise("a", &["a", "--method", "wise-ft", "--alpha", "0.5"]),
            "one run",
        ),
        (wise("a", &["--method", "wise-ft"]), "needs --alpha"),
        (
            wise("a", &["--method", "wise-ft", "--alpha", "1.5"]),
            "must be in [0, 1]",
        ),
        (
            wise("a", &["a", "--method", "uniform", "--alpha", "0.5"]),
            "wise-ft only",
        ),
        (
            wise("a", &["a", "--recompute-bn", "2"]),
            "uniform or wise-ft",
        ),
        (
            wise(
                "a",
                &["--method", "wise-ft", "--alpha", "1", "--recompute-bn", "0"],
            ),
            "at least one batch",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = soup_fails(dir, &args).stderr;
        let err = String::from_utf8_lossy(&err);
        assert!(err.contains(says), "dermo {args:?}: {err}");
    }
}

fn is_bn_stat(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

#[test]
fn recomputed_batch_norm_statistics_depend_on_the_weights_not_on_the_old_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (t, v) = write_split(dir, 12, 3, None);
    run_ok(dir, &train_args(&t, &v, "a", &["epochs=1"]));
    // The same run with every BatchNorm statistic overwritten: means 0, variances 1.
    std::fs::create_dir(dir.join("z")).unwrap();
    for f in ["config.toml", "run.json"] {
        std::fs::copy(dir.join("a").join(f), dir.join("z").join(f)).unwrap();
    }
    let a = weights(&dir.join("a/best.safetensors"));
    let z: Vec<(String, Tensor)> = a
        .iter()
        .map(|(name, t)| {
            let t = match name {
                n if n.ends_with(".running_mean") => t.zeros_like(),
                n if n.ends_with(".running_var") => t.ones_like(),
                _ => t.shallow_clone(),
            };
            (name.clone(), t)
        })
        .collect();
    Tensor::write_safetensors(&z, dir.join("z/best.safetensors")).unwrap();

    // Statistics from another clinic's images (`--bn-data`): 16 ISIC 2017 images as an external set.
    let mut rows = 0;
    let isic = import_isic2017(dir, |_| {
        rows += 1;
        rows <= 16
    });
    let isic = arg(&isic);

    let mut plain_from_a = None;
    for (images, bn_data) in [("plain", None), ("augmented", None), ("plain", Some(isic))] {
        let name = format!("{images}{}", if bn_data.is_some() { "-isic" } else { "" });
        let recompute = |run: &str| {
            let out = format!("{run}-{name}");
            let mut args = vec![
                "soup",
                run,
                "--method",
                "wise-ft",
                "--alpha",
                "1",
                "--recompute-bn",
                "2",
                "--bn-images",
                images,
                "--val",
                "val.csv",
                "--out",
                &out,
                "--device",
                "cpu",
            ];
            if let Some(data) = bn_data {
                args.extend(["--bn-data", data]);
            }
            run_ok(dir, &args);
            (
                weights(&dir.join(&out).join("best.safetensors")),
                soup_json(&dir.join(&out)),
            )
        };
        let (from_a, record) = recompute("a");
        let (from_z, _) = recompute("z");
        let mut stats = 0;
        for (name, t) in &from_a {
            let err = (t - &from_z[name]).abs().max().double_value(&[]);
            let scale = 1.0 + t.abs().max().double_value(&[]);
            assert!(
                err <= 1e-5 * scale,
                "{images} {name}: {err} apart after re-estimation"
            );
            if is_bn_stat(name) {
                stats += 1;
            } else {
                assert!(t.equal(&a[name]), "{images} {name}: a weight changed");
            }
        }
        assert!(stats > 0, "no BatchNorm statistics in the checkpoint");
        let moved = |from: &HashMap<String, Tensor>, to: &HashMap<String, Tensor>| {
            from.iter()
                .filter(|(name, t)| is_bn_stat(name) && !t.allclose(&to[*name], 1e-3, 1e-4, false))
                .count()
        };
        assert!(
            moved(&from_a, &a) > 0,
            "{name}: re-estimation left the run's statistics as they were"
        );
        assert_eq!(record["recompute_bn"], serde_json::json!([2, images]));
        match bn_data {
            None => {
                assert!(record.get("bn_data").is_none(), "{record}");
                if images == "plain" {
                    plain_from_a = Some(from_a);
                }
            }
            Some(_) => {
                // Other images, other statistics; soup.json names the set by its content.
                let plain = plain_from_a.as_ref().expect("the plain run came first");
                assert!(
                    moved(&from_a, plain) > 0,
                    "--bn-data gave the training images' statistics"
                );
                let hash = record["bn_data"]["set_hash"].as_str().unwrap_or_default();
                assert_eq!(hash.len(), 64, "{record}");
            }
        }
    }
}
