//! `dermo eval` on an exported model file runs it with tract, as the device does, and agrees
//! with the evaluation of the run's checkpoint with libtorch.

use crate::eval_support::{dermo, run, train_probe, write_subset};
use dermo_host::eval::record::{predictions_path, read_record};

/// `p_<class>` columns of a predictions table.
fn probabilities(path: &std::path::Path) -> Vec<Vec<f64>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    let columns: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].starts_with("p_") && &header[i] != "p_malignant")
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            columns.iter().map(|&i| r[i].parse().unwrap()).collect()
        })
        .collect()
}

#[test]
fn tract_on_the_fp32_model_file_matches_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = write_subset(&d.join("train.csv"), 0, 3, 5);
    let val = write_subset(&d.join("val.csv"), 1, 3, 3);
    let test = write_subset(&d.join("test.csv"), 2, 3, 3);
    let run_dir = d.join("run");
    train_probe(&train, &val, &run_dir, &d.join("cache"), &["epochs=2"]);
    let model = d.join("model.onnx");
    run(dermo()
        .arg("export")
        .arg(&run_dir)
        .arg("--out")
        .arg(&model)
        .args(["--precision", "fp32"]));

    // Export compared the file's class maps with libtorch's and reported the difference.
    let export: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("model.onnx.export.json")).unwrap()).unwrap();
    let maps_delta = export["class_maps_max_abs_delta_fp32"].as_f64().unwrap();
    assert!(
        maps_delta <= 1e-2,
        "class maps differ from libtorch's by {maps_delta}"
    );

    let by_torch = d.join("torch.json");
    let by_tract = d.join("tract.json");
    run(dermo()
        .args([
            "eval",
            "--device",
            "cpu",
            "--resamples",
            "50",
            "--uncalibrated",
        ])
        .arg(&run_dir)
        .arg("--data")
        .arg(&test)
        .arg("--out")
        .arg(&by_torch)
        .arg("--maps")
        .arg(d.join("maps-torch")));
    let out = run(dermo()
        .args([
            "eval",
            "--resamples",
            "50",
            "--uncalibrated",
            "--cache-root",
        ])
        .arg(d.join("cache"))
        .arg(&model)
        .arg("--data")
        .arg(&test)
        .arg("--out")
        .arg(&by_tract)
        .arg("--maps")
        .arg(d.join("maps-tract")));
    // The export was not signed: eval runs it but says so, on stderr and in the report.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("UNSIGNED"),
        "{stderr}"
    );
    let (a, b) = (
        read_record(&by_torch).unwrap(),
        read_record(&by_tract).unwrap(),
    );
    assert!(a.model.starts_with("checkpoint"), "{}", a.model);
    assert!(b.model.starts_with("model file"), "{}", b.model);
    assert!(b.model.contains("UNSIGNED"), "{}", b.model);
    assert_eq!(a.metrics.images, b.metrics.images);
    let (pa, pb) = (
        probabilities(&predictions_path(&by_torch)),
        probabilities(&predictions_path(&by_tract)),
    );
    let worst = pa
        .iter()
        .flatten()
        .zip(pb.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-3,
        "tract and libtorch probabilities differ by {worst}"
    );
    assert_eq!(a.metrics.confusion, b.metrics.confusion);
    // Where it looked: libtorch's maps and the file's peak on the same cells.
    let game = |dir: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join(dir).join("pointing.json")).unwrap()).unwrap()
    };
    let (gt, gf) = (game("maps-torch"), game("maps-tract"));
    assert_eq!(gt["pointing_game"]["images"], gf["pointing_game"]["images"]);
    assert_eq!(
        gt["pointing_game"]["hit_rate"]["estimate"],
        gf["pointing_game"]["hit_rate"]["estimate"]
    );
}

/// The pointing game on real HAM10000 images with the bundled model: the peak of the predicted
/// class's map lands on the lesion (its mask) clearly more often than a peak placed at random
/// would (the mean lesion area). The page shows the overlays, captioned.
#[test]
fn the_bundled_models_maps_point_at_the_lesion_more_often_than_chance() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let subset = write_subset(&d.join("subset.csv"), 2, 3, 30);
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/dermo-default.onnx");
    let maps = d.join("maps");
    let out = run(dermo()
        .args([
            "eval",
            "--resamples",
            "200",
            "--maps-per-group",
            "4",
            "--cache-root",
        ])
        .arg(d.join("cache"))
        .arg(&model)
        .arg("--data")
        .arg(&subset)
        .arg("--out")
        .arg(d.join("eval.json"))
        .arg("--maps")
        .arg(&maps));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pointing game on"), "{stdout}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(maps.join("pointing.json")).unwrap()).unwrap();
    let g = &doc["pointing_game"];
    let images = g["images"].as_u64().unwrap();
    assert!(images >= 200, "{g}");
    let (hit, chance) = (&g["hit_rate"], &g["chance"]);
    let at = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
    // On the whole test split: 44% against 29% (docs/results.md). Here, a third of its size:
    // the hit rate's interval lies above chance, by a margin.
    assert!(
        at(hit, "low") > at(chance, "high") && at(hit, "estimate") >= at(chance, "estimate") + 0.08,
        "the maps point at the lesion no more often than chance: {g}"
    );
    let page = std::fs::read_to_string(maps.join("index.html")).unwrap();
    let figures = page.matches("<figure>").count();
    assert!(figures >= 7 * 4, "{figures} overlays on the page");
    assert!(page.contains("true ") && page.contains("predicted "));
    let pngs = std::fs::read_dir(maps.join("images")).unwrap().count();
    assert!(pngs >= 7 * 4, "{pngs} overlay images");
}

/// A signed export evaluates with its signature verified (key given or found beside it); against
/// another key the report says the signature fails, and stderr warns.
#[test]
fn eval_reports_whether_the_model_files_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = write_subset(&d.join("train.csv"), 0, 2, 3);
    let val = write_subset(&d.join("val.csv"), 1, 2, 2);
    let run_dir = d.join("run");
    train_probe(&train, &val, &run_dir, &d.join("cache"), &["epochs=1"]);
    let (keys, stranger) = (d.join("keys"), d.join("stranger"));
    for k in [&keys, &stranger] {
        run(dermo().arg("keygen").arg("--out").arg(k));
    }
    let model = d.join("models/model.onnx");
    std::fs::create_dir_all(model.parent().unwrap()).unwrap();
    run(dermo()
        .arg("export")
        .arg(&run_dir)
        .arg("--out")
        .arg(&model)
        .args(["--precision", "fp32", "--sign"])
        .arg(keys.join("dermo-signing.key")));
    let eval = |key: &std::path::Path, out: &str| {
        let out_path = d.join(out);
        let o = run(dermo()
            .args(["eval", "--resamples", "20", "--cache-root"])
            .arg(d.join("cache"))
            .arg(&model)
            .arg("--data")
            .arg(&val)
            .arg("--key")
            .arg(key)
            .arg("--out")
            .arg(&out_path));
        (
            read_record(&out_path).unwrap().model,
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (label, stderr) = eval(&keys.join("dermo-signing.pub"), "good.json");
    assert!(label.contains("signature verified by"), "{label}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    let (label, stderr) = eval(&stranger.join("dermo-signing.pub"), "bad.json");
    assert!(label.contains("signature FAILS"), "{label}");
    assert!(stderr.contains("warning:"), "{stderr}");
}
