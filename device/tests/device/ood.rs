//! Out-of-distribution, measured through the device pipeline (quality gate + model + decision):
//! non-dermoscopy input — scikit-image's sample photos, blank, noise and badly exposed frames —
//! must mostly be abstained on, and at most 5% of the shared test split.
//!
//! The model is `$DERMO_SCOPE_MODEL`, else the repository's trained `model/dermo-default.onnx`
//! (with the calibration and OOD statistics `dermo calibrate` put in it). Without a trained model
//! the test measures the mechanism on the ImageNet backbone instead: it fits the OOD statistics
//! itself on lesion-grouped training images, exactly as the host does, and writes them into the
//! model file. The test split is `$DERMO_TEST_SPLIT` (a manifest CSV with a `path` column, e.g.
//! from `dermo data split`), else a lesion-grouped hash split of the HAM10000 metadata.

use crate::common;

use crate::common::model::{build, seven_class_weights};
use dermo_device::{Classifier, QualityGate};
use dermo_model::metadata::{CalibrationSpec, OodSpec};
use dermo_model::onnx::Precision;
use dermo_model::TrustPolicy;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

const TEST_IMAGES: usize = 150;

/// Lesion-grouped split of the metadata: every image of a lesion lands in the same part.
fn grouped_split() -> (Vec<PathBuf>, Vec<PathBuf>, Vec<PathBuf>) {
    let root = common::ham10000();
    let mut rdr = csv::Reader::from_path(root.join("HAM10000_metadata.csv")).unwrap();
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for row in rdr.records() {
        let row = row.unwrap();
        let (lesion, image) = (&row[0], &row[1]);
        // FNV-1a: stable across platforms and runs.
        let h = lesion.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        let path = root.join("images").join(format!("{image}.jpg"));
        match h % 20 {
            0..=13 => train.push(path),
            14..=16 => val.push(path),
            _ => test.push(path),
        }
    }
    (train, val, test)
}

fn spread(v: &[PathBuf], n: usize) -> Vec<PathBuf> {
    v.iter()
        .step_by((v.len() / n).max(1))
        .take(n)
        .cloned()
        .collect()
}

fn test_split() -> Vec<PathBuf> {
    match std::env::var_os("DERMO_TEST_SPLIT") {
        Some(p) => {
            let mut rdr = csv::Reader::from_path(&p).unwrap();
            let col = rdr
                .headers()
                .unwrap()
                .iter()
                .position(|h| h == "path")
                .unwrap();
            let all: Vec<PathBuf> = rdr
                .records()
                .map(|r| PathBuf::from(&r.unwrap()[col]))
                .collect();
            spread(&all, TEST_IMAGES)
        }
        None => spread(&grouped_split().2, TEST_IMAGES),
    }
}

fn trained_model() -> Option<PathBuf> {
    std::env::var_os("DERMO_SCOPE_MODEL")
        .map(PathBuf::from)
        .or_else(|| Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/dermo-default.onnx")))
        .filter(|p| p.exists())
}

/// Pooled features of `images` through an (OOD-less) model.
fn features(model: &Path, images: &[PathBuf]) -> Vec<Vec<f32>> {
    let mf = dermo_model::ModelFile::open(model, &TrustPolicy::unsigned()).unwrap();
    let rt = dermo_model::Runtime::new(&mf).unwrap();
    let cfg = mf.metadata.input.preprocess;
    images
        .iter()
        .map(|p| {
            let t = dermo_model::preprocess_file(p, &cfg).unwrap();
            rt.run(&t)
                .unwrap()
                .features
                .expect("model has a features output")
        })
        .collect()
}

/// The ImageNet-backbone model with OOD statistics fitted as the host fits them: per-dimension
/// mean and std on training images, threshold at the 97.5th percentile of validation scores.
fn backbone_model_with_ood(dir: &Path) -> PathBuf {
    let (train, val, _) = grouped_split();
    let w = seven_class_weights();
    let plain = build(
        dir,
        "plain",
        &w,
        Precision::Int8,
        CalibrationSpec::default(),
    );
    let fit = features(&plain.path, &spread(&train, 200));
    let dims = fit[0].len();
    let n = fit.len() as f32;
    let mean: Vec<f32> = (0..dims)
        .map(|d| fit.iter().map(|f| f[d]).sum::<f32>() / n)
        .collect();
    let std: Vec<f32> = (0..dims)
        .map(|d| {
            (fit.iter().map(|f| (f[d] - mean[d]).powi(2)).sum::<f32>() / n)
                .sqrt()
                .max(1e-3)
        })
        .collect();
    let mut spec = OodSpec {
        block: None,
        frozen_backbone: false,
        feature_mean: mean,
        feature_std: std,
        threshold: f32::INFINITY,
    };
    let mut scores: Vec<f32> = features(&plain.path, &spread(&val, 100))
        .iter()
        .map(|f| spec.score(f).unwrap())
        .collect();
    scores.sort_by(f32::total_cmp);
    spec.threshold = scores[(scores.len() as f32 * 0.975) as usize - 1];
    let cal = CalibrationSpec {
        ood: Some(spec),
        ..CalibrationSpec::default()
    };
    build(dir, "ood", &w, Precision::Int8, cal).path
}

/// Non-dermoscopy frames: natural photos, blank, noise, badly exposed.
fn ood_frames() -> Vec<(String, RgbImage)> {
    let mut out = Vec::new();
    let sk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/lib/python3.11/site-packages/skimage/data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&sk)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", sk.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    files.sort();
    for f in files {
        if let Ok(img) = dermo_model::preprocess::decode_file(&f) {
            out.push((f.file_name().unwrap().to_string_lossy().into_owned(), img));
        }
    }
    for (name, c) in [
        ("black", [0, 0, 0]),
        ("grey", [128, 128, 128]),
        ("white", [255, 255, 255]),
        ("skin", [210, 160, 140]),
    ] {
        out.push((
            format!("blank-{name}"),
            RgbImage::from_pixel(320, 240, Rgb(c)),
        ));
    }
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 56) as u8
    };
    out.push((
        "noise-uniform".into(),
        RgbImage::from_fn(320, 240, |_, _| Rgb([next(), next(), next()])),
    ));
    out.push((
        "noise-grey".into(),
        RgbImage::from_fn(320, 240, |_, _| {
            let v = next();
            Rgb([v, v, v])
        }),
    ));
    for p in common::shared_images(4, 2000) {
        let img = dermo_model::preprocess::decode_file(&p).unwrap();
        let dark = RgbImage::from_fn(img.width(), img.height(), |x, y| {
            Rgb(img.get_pixel(x, y).0.map(|v| v / 8))
        });
        let bright = RgbImage::from_fn(img.width(), img.height(), |x, y| {
            Rgb(img.get_pixel(x, y).0.map(|v| v.saturating_mul(4)))
        });
        out.push(("under-exposed".into(), dark));
        out.push(("over-exposed".into(), bright));
    }
    out
}

/// Whether the device declines to answer: the gate refuses or the decision abstains.
fn abstains(classifier: &Classifier, gate: &QualityGate, img: &RgbImage) -> bool {
    !gate.check(img).passed() || classifier.classify(img).unwrap().decision.abstain.is_some()
}

/// Measures what the device does with `model` and asserts it declines at least `min_ood_rate` of
/// the non-dermoscopy frames and at most 5% of the test split.
fn assert_abstention(model: &Path, which: &str, min_ood_rate: f64) {
    let classifier = Classifier::load(model, &TrustPolicy::unsigned(), Default::default()).unwrap();
    let gate = QualityGate::default();

    let ood = ood_frames();
    let missed: Vec<String> = ood
        .iter()
        .filter(|(_, img)| !abstains(&classifier, &gate, img))
        .map(|(n, _)| n.clone())
        .collect();
    let ood_rate = 1.0 - missed.len() as f64 / ood.len() as f64;

    let test = test_split();
    let abstained = test
        .iter()
        .filter(|p| {
            abstains(
                &classifier,
                &gate,
                &dermo_model::preprocess::decode_file(p).unwrap(),
            )
        })
        .count();
    let test_rate = abstained as f64 / test.len() as f64;
    println!(
        "OOD ({which}, {}): abstained on {:.1}% of {} non-dermoscopy frames (answered: {missed:?}); \
         {:.1}% of {} test-split images",
        model.display(),
        ood_rate * 100.0,
        ood.len(),
        test_rate * 100.0,
        test.len()
    );
    assert!(
        ood_rate >= min_ood_rate,
        "abstained on only {:.1}% of non-dermoscopy frames; answered {missed:?}",
        ood_rate * 100.0
    );
    assert!(
        test_rate <= 0.05,
        "abstained on {:.1}% of the test split",
        test_rate * 100.0
    );
}

/// The mechanism (gate + feature statistics + threshold at the 97.5th validation percentile) on
/// ImageNet features: at least 95% of non-dermoscopy frames declined, at most 5% of the test split.
#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "a measurement over ~400 frames that takes over 10 minutes under qemu; the aarch64 build's \
              decisions are checked against x86-64 by scripts/check-cross-predictions"
)]
fn the_ood_rule_on_imagenet_features_declines_non_dermoscopy_input() {
    let tmp = tempfile::tempdir().unwrap();
    let model = backbone_model_with_ood(tmp.path());
    assert_abstention(&model, "ImageNet backbone + fitted OOD statistics", 0.95);
}

/// The trained default model, with the rule `dermo calibrate` fitted on the pooled output of block
/// 10 (its last ImageNet block; the fine-tuned head maps many natural photos close to lesions, so
/// the same rule there declined only 62.5%): at least 95% of non-dermoscopy frames declined, at
/// most 5% of the test split.
#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "a measurement over ~400 frames that takes over 10 minutes under qemu; the aarch64 build's \
              decisions are checked against x86-64 by scripts/check-cross-predictions"
)]
fn the_default_model_answers_the_test_split_and_declines_most_non_dermoscopy_input() {
    let Some(model) = trained_model() else {
        eprintln!("no trained model (model/dermo-default.onnx or $DERMO_SCOPE_MODEL): skipped");
        return;
    };
    assert_abstention(&model, "trained model", 0.95);
}
