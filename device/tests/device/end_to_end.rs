//! The real binary on a directory of shared images with a real signed model: result screens as
//! PNG, results as JSON, a journal that verifies, `--once` agreeing with `run`, the shared
//! preprocessing + tract runtime giving the same predictions, and an export bundle.

use crate::common;

use crate::common::model::{build, seven_class_weights};
use dermo_model::metadata::CalibrationSpec;
use dermo_model::onnx::Precision;
use std::path::Path;

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "most of its 100 s under qemu is the host-side int8 writer building the test model; \
              scripts/check-cross-predictions runs the aarch64 binary end to end instead (run, \
              journal verify, export), and x86-64 runs this"
)]
fn run_on_shared_images_writes_screens_results_journal_and_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = build(
        &t.join("model"),
        "scope",
        &seven_class_weights(),
        Precision::Int8,
        CalibrationSpec::default(),
    );
    let images = common::shared_images(8, 1250);
    let replay = t.join("replay");
    common::copy_into(&replay, &images);
    // Corrupt frames: a truncated JPEG and text named .jpg.
    let bytes = std::fs::read(&images[0]).unwrap();
    std::fs::write(replay.join("zz-truncated.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(replay.join("zz-text.jpg"), "not an image").unwrap();
    let config = common::write_config(t, &model.public_key, "");
    let screens = t.join("screens");
    let data = t.join("data");

    let out = common::dermo_scope()
        .args(["run", "--continuous", "--size", "320x240"])
        .arg("--config")
        .arg(&config)
        .arg("--model")
        .arg(&model.path)
        .arg("--source")
        .arg(format!("dir:{}", replay.display()))
        .arg("--display")
        .arg(format!("png:{}", screens.display()))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run failed: {stderr}");
    let ev = common::events(&out);
    let captures = common::of_kind(&ev, "capture");
    assert_eq!(captures.len(), images.len(), "{ev:#?}");
    let bad = common::of_kind(&ev, "bad_frame");
    assert_eq!(bad.len(), 2, "corrupt frames reported: {bad:?}");
    assert!(bad
        .iter()
        .all(|b| b["origin"].as_str().unwrap().contains("zz-")));

    // One result PNG per capture, real 320x240 images.
    let pngs = common::files_containing(&screens, "result");
    assert_eq!(pngs.len(), images.len());
    for (png, cap) in pngs.iter().zip(&captures) {
        assert_eq!(cap["screen"].as_str().unwrap(), png.to_str().unwrap());
        let img = image::open(png).unwrap();
        assert_eq!((img.width(), img.height()), (320, 240));
    }

    // Journal: every acknowledged capture is indexed and verifies.
    let entries = dermo_device::journal::read_index(&data).unwrap();
    assert_eq!(entries.len(), images.len());
    for (e, cap) in entries.iter().zip(&captures) {
        assert_eq!(cap["journal_id"], e.id.as_str());
        let rec = dermo_device::journal::read_record(&data, e).unwrap();
        assert_eq!(rec.result.model_sha256.len(), 64);
        assert!(rec.result.maps.is_some(), "the journal keeps the maps");
        // The journaled frame is the replayed file, byte for byte.
        let origin = Path::new(&rec.result.origin);
        assert_eq!(
            std::fs::read(data.join(&e.frame)).unwrap(),
            std::fs::read(origin).unwrap()
        );
    }

    // The same images through the shared preprocessing and the tract runtime directly (the path
    // the host's evaluation takes) give the same probabilities.
    let mf =
        dermo_model::ModelFile::open(&model.path, &dermo_model::TrustPolicy::unsigned()).unwrap();
    let rt = dermo_model::Runtime::new(&mf).unwrap();
    let cfg = mf.metadata.input.preprocess;
    for cap in &captures {
        let r: dermo_device::CaptureResult = serde_json::from_value(cap["result"].clone()).unwrap();
        let tensor = dermo_model::preprocess_file(Path::new(&r.origin), &cfg).unwrap();
        let o = rt.run(&tensor).unwrap();
        let d = dermo_model::decide(
            o.logits_of(0),
            o.ood_features_of(0),
            &mf.metadata.calibration,
        );
        let dev = r.decision.expect("real images pass the gate");
        assert_eq!(dev.top3[0].0, d.top3[0].0, "{}", r.origin);
        for (a, b) in dev.probs.iter().zip(&d.probs) {
            assert!((a - b).abs() < 1e-5, "{}: {a} vs {b}", r.origin);
        }
        // Where it looked: the capture carries the top class's and the malignant group's maps,
        // the same as the runtime's class maps for that image.
        let maps = r.maps.expect("the test model has class maps");
        let host = dermo_model::AttentionMaps::of(&o, 0).unwrap();
        assert_eq!((maps.side, maps.top_class), (host.side, host.top_class));
        assert_eq!(maps.side, 8, "256 px input: an 8×8 grid");
        assert_eq!(maps.top_class, dev.top3[0].0);
        for (a, b) in maps
            .top
            .iter()
            .zip(&host.top)
            .chain(maps.malignant.iter().zip(&host.malignant))
        {
            assert!((a - b).abs() < 1e-5, "{}: map {a} vs {b}", r.origin);
        }
        let mean = maps.top.iter().sum::<f32>() / maps.top.len() as f32;
        let logit = o.logits_of(0)[maps.top_class.index()];
        assert!(
            (mean - logit).abs() < 1e-3,
            "map mean {mean} vs logit {logit}"
        );
    }

    // --once prints the same result for the same file.
    let first: dermo_device::CaptureResult =
        serde_json::from_value(captures[0]["result"].clone()).unwrap();
    let once = common::dermo_scope()
        .arg("--config")
        .arg(&config)
        .arg("--model")
        .arg(&model.path)
        .arg("--once")
        .arg(&first.origin)
        .output()
        .unwrap();
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    let single: dermo_device::CaptureResult = serde_json::from_slice(&once.stdout).unwrap();
    assert_eq!(
        single.decision.unwrap().probs,
        first.decision.unwrap().probs
    );
    assert_eq!(single.maps, first.maps);
    assert!(String::from_utf8_lossy(&once.stdout).contains("\"malignant\""));
    assert_eq!(single.model_sha256, first.model_sha256);

    // Export for the host.
    let bundle = t.join("bundle");
    let ex = common::dermo_scope()
        .arg("--config")
        .arg(&config)
        .args(["export", "--out"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        ex.status.success(),
        "{}",
        String::from_utf8_lossy(&ex.stderr)
    );
    let mut rdr = csv::Reader::from_path(bundle.join("captures.csv")).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..3], ["file", "label", "lesion_id"]);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), images.len());
    for row in &rows {
        let file = bundle.join(&row[0]);
        assert!(image::open(&file).is_ok(), "{}", file.display());
        assert_eq!(&row[1], "", "labels are empty until a clinician adds them");
        let probs: f32 = dermo_model::CLASSES
            .iter()
            .map(|c| {
                row[col(&format!("prob_{}", c.code()))]
                    .parse::<f32>()
                    .unwrap()
            })
            .sum();
        assert_eq!(&row[col("model_sha256")], first.model_sha256.as_str());
        assert!((probs - 1.0).abs() < 1e-3);
    }
    // A second export into the same directory is refused, not merged.
    let again = common::dermo_scope()
        .arg("--config")
        .arg(&config)
        .args(["export", "--out"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());
}
