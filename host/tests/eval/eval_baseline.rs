//! `dermo baseline` end to end on a small lesion-grouped subset of HAM10000: the classical
//! model beats chance in balanced accuracy and writes a complete eval.json.

use crate::eval_support::{dermo, run, write_subset};
use dermo_host::eval::record::{predictions_path, read_record};

#[test]
fn abcd_baseline_beats_chance_on_a_lesion_grouped_split() {
    let dir = tempfile::tempdir().unwrap();
    let train = write_subset(&dir.path().join("train.csv"), 0, 2, 40);
    let test = write_subset(&dir.path().join("test.csv"), 1, 2, 15);
    let out = dir.path().join("baseline/eval.json");
    run(dermo()
        .args(["baseline", "--train"])
        .arg(&train)
        .arg("--test")
        .arg(&test)
        .arg("--out")
        .arg(&out)
        .args(["--resamples", "300"]));
    let record = read_record(&out).unwrap();
    let m = &record.metrics;
    let bal = m.balanced_accuracy.unwrap();
    eprintln!(
        "baseline balanced accuracy {bal:?}, {} images / {} lesions",
        m.images, m.groups
    );
    // Several images per lesion: the bootstrap resamples fewer lesions than images.
    assert!(m.groups < m.images);
    // Chance is 1/7 ≈ 0.143 for seven classes.
    assert!(bal.estimate > 0.25, "balanced accuracy {}", bal.estimate);
    assert!(bal.low > 1.0 / 7.0, "interval {bal:?} reaches chance");
    assert!(m.macro_auc.unwrap().estimate > 0.6);
    let table = std::fs::read_to_string(predictions_path(&out)).unwrap();
    assert_eq!(table.lines().count(), m.images + 1);
    assert!(out.with_extension("model.json").is_file());
}
