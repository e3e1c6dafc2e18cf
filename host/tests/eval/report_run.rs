//! The whole evaluation path end to end with the real binary on a small lesion-grouped subset of
//! HAM10000: train a probe run, calibrate it, evaluate it with test-time augmentation, fit the
//! ABCD baseline, and render the report — then check that every figure the HTML page references
//! exists and decodes as an image.

use crate::eval_support::{dermo, run, train_probe, write_subset};
use dermo_host::eval::calibrate::CalibrationFit;
use dermo_host::eval::record::read_record;
use dermo_host::train::run_folder::{
    CALIBRATION as CALIBRATION_JSON, CALIBRATION_FIT as CALIBRATION_FIT_JSON,
};
use dermo_model::CalibrationSpec;
use std::path::Path;

/// The `src` attribute of every `<img>` of a page.
fn image_sources(html: &str) -> Vec<String> {
    html.split("<img src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect()
}

#[test]
fn train_calibrate_eval_baseline_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = write_subset(&d.join("train.csv"), 0, 3, 8);
    let val = write_subset(&d.join("val.csv"), 1, 3, 5);
    let test = write_subset(&d.join("test.csv"), 2, 3, 5);
    let run_dir = d.join("run");
    let cache = d.join("cache");
    train_probe(
        &train,
        &val,
        &run_dir,
        &cache,
        &["epochs=4", "batch=16", "lr=3e-3"],
    );

    // A probe's blocks are ImageNet's: the frozen ImageNet copy the default rule reads gives the
    // statistics that the classifier's own block 10 gives.
    let calibrate = |extra: &[&str]| -> CalibrationSpec {
        run(dermo()
            .args(["calibrate", "--device", "cpu"])
            .args(extra)
            .arg(&run_dir)
            .arg("--data")
            .arg(&val));
        serde_json::from_str(&std::fs::read_to_string(run_dir.join(CALIBRATION_JSON)).unwrap())
            .unwrap()
    };
    let own = calibrate(&["--ood-weights", "model"]);
    let spec = calibrate(&[]);
    let fit: CalibrationFit =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join(CALIBRATION_FIT_JSON)).unwrap())
            .unwrap();
    assert!(spec.temperature > 0.05 && spec.temperature < 20.0);
    assert!(fit.temperature.nll_after <= fit.temperature.nll_before + 1e-9);
    // The refer threshold reaches the target sensitivity on the validation split.
    assert!(fit.refer.sensitivity >= 0.95, "{:?}", fit.refer);
    let ood = spec
        .ood
        .as_ref()
        .expect("checkpoints expose pooled features");
    // By default the rule reads block 10's pooled output (112 channels), not the head's 1280.
    assert_eq!((ood.block, ood.feature_mean.len()), (Some(10), 112));
    let own = own.ood.unwrap();
    assert!(ood.frozen_backbone && !own.frozen_backbone);
    let gap = ood
        .feature_mean
        .iter()
        .zip(&own.feature_mean)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(gap < 1e-4, "frozen copy and probe block 10 differ by {gap}");
    let ood_fit = fit.ood.as_ref().unwrap();
    assert!(ood_fit.validation_abstain_rate <= 0.05);
    eprintln!(
        "synthetic frames rejected: {:.0}% ({:?})",
        100.0 * ood_fit.synthetic_abstain_rate,
        ood_fit
            .synthetic
            .iter()
            .map(|f| (&f.name, f.score, f.abstains))
            .collect::<Vec<_>>()
    );

    let eval_json = run_dir.join("eval-test.json");
    run(dermo()
        .args([
            "eval",
            "--device",
            "cpu",
            "--tta",
            "flips",
            "--resamples",
            "200",
            "--maps-per-group",
            "2",
        ])
        .arg(&run_dir)
        .arg("--data")
        .arg(&test)
        .arg("--maps")
        .arg(run_dir.join("maps-test")));
    let record = read_record(&eval_json).unwrap();
    // Equal up to JSON's decimal round trip (serde_json's default parser may land one ulp off).
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    assert!(same(record.temperature, f64::from(spec.temperature)));
    assert!(
        same(
            record.metrics.triage.threshold,
            f64::from(spec.refer_threshold)
        ),
        "{} vs {}",
        record.metrics.triage.threshold,
        spec.refer_threshold
    );
    assert!(record.metrics.groups < record.metrics.images);
    let bal = record.metrics.balanced_accuracy.unwrap();
    assert!(bal.low <= bal.estimate && bal.estimate <= bal.high);

    let baseline = d.join("baseline/eval.json");
    run(dermo()
        .args(["baseline", "--resamples", "200", "--train"])
        .arg(&train)
        .arg("--test")
        .arg(&test)
        .arg("--out")
        .arg(&baseline));

    let report = d.join("report");
    run(dermo()
        .arg("report")
        .arg(&run_dir)
        .arg("--out")
        .arg(&report)
        .arg("--baseline")
        .arg(&baseline));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let (overlays, sources): (Vec<String>, Vec<String>) = image_sources(&html)
        .into_iter()
        .partition(|s| s.starts_with("maps-test/images/"));
    // Where the model looked: the pointing game and the overlays as a grid, captioned with the
    // true and the predicted class, copied beside the report.
    assert!(html.contains("Where the model looked: maps-test"), "{html}");
    assert!(html.contains("chance (mean lesion area)"));
    // 2 images of each of the 7 classes and the most confident errors (at most 2).
    assert!((14..=16).contains(&overlays.len()), "{overlays:?}");
    for src in &overlays {
        let img = image::open(report.join(src)).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(img.width() >= 64, "{src} is {} wide", img.width());
    }
    assert!(html.contains(" · true ") && html.contains(" · predicted "));
    // Curves; and for the CNN and the baseline: confusion, ROC, reliability, recall.
    assert_eq!(sources.len(), 9, "{sources:?}");
    for src in &sources {
        let path = report.join(src);
        let img = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            img.width() >= 400 && img.height() >= 300,
            "{src} is {}×{}",
            img.width(),
            img.height()
        );
    }
    assert!(html.contains("decision-support tool, not a diagnosis"));
    assert!(html.contains("balanced accuracy"));
    let markdown = std::fs::read_to_string(report.join("report.md")).unwrap();
    for src in &sources {
        assert!(
            markdown.contains(&format!("]({src})")),
            "report.md lacks {src}"
        );
    }
    keep_for_inspection(&report);
}

/// Copies the rendered report to $DERMO_KEEP_REPORT (if set) so a person can look at it.
fn keep_for_inspection(report: &Path) {
    if let Some(dest) = std::env::var_os("DERMO_KEEP_REPORT") {
        let dest = Path::new(&dest);
        std::fs::create_dir_all(dest).unwrap();
        for entry in std::fs::read_dir(report).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
}
