//! `dermo data import binary-csv` + `dermo eval` on an external set: the melanoma-vs-rest AUC,
//! referral sensitivity and specificity, refer and abstention rates in the JSON equal a reference
//! computation (scikit-learn and plain counting in Python) on the per-image table it wrote, for
//! the bundled model on real ISIC 2017 images; the table's class probabilities sum to one and
//! its referral score is the malignant group's sum, referred at the threshold.

use crate::eval_support::{dermo, import_isic2017, run};
use std::path::Path;
use std::process::Command;

fn python() -> String {
    std::env::var("DERMO_PYTHON").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.venv/bin/python")
            .display()
            .to_string()
    })
}

#[test]
fn external_eval_matches_a_reference_computation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 15 melanomas and 25 others, the first of each in labels.csv.
    let (mut mel, mut other) = (0, 0);
    let external = import_isic2017(d, |melanoma| {
        let n = if melanoma { &mut mel } else { &mut other };
        *n += 1;
        *n <= if melanoma { 15 } else { 25 }
    });
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/dermo-default.onnx");
    let out = d.join("eval.json");
    run(dermo()
        .arg("eval")
        .arg(&model)
        .arg("--data")
        .arg(&external)
        .args(["--resamples", "200", "--out"])
        .arg(&out));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let m = &record["metrics"];
    assert_eq!(
        (m["images"].as_u64(), m["melanomas"].as_u64()),
        (Some(40), Some(15))
    );
    let script = r#"
import csv, json, sys
from sklearn.metrics import roc_auc_score
rows = list(csv.DictReader(open(sys.argv[1])))
y = [int(r["melanoma"]) for r in rows]
p = [float(r["melanoma_prob"]) for r in rows]
ref = [int(r["refer"]) for r in rows]
ab = [int(r["abstain"]) for r in rows]
# The table's other columns: every class probability and the referral score they sum to.
threshold = float(sys.argv[2])
for r in rows:
    probs = [float(r["p_" + c]) for c in ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]]
    malignant = float(r["p_malignant"])
    assert abs(sum(probs) - 1) < 1e-5, r
    assert abs(float(r["p_mel"]) - float(r["melanoma_prob"])) < 1e-6, r
    assert abs(malignant - (float(r["p_mel"]) + float(r["p_bcc"]) + float(r["p_akiec"]))) < 3e-6, r
    # Referred exactly when the referral score reaches the threshold (the columns are rounded).
    if abs(malignant - threshold) > 1e-6:
        assert int(r["refer"]) == (malignant >= threshold), (r, threshold)
mel = [i for i in range(len(y)) if y[i] == 1]
oth = [i for i in range(len(y)) if y[i] == 0]
print(json.dumps({
    "auc": roc_auc_score(y, p),
    "sensitivity": sum(ref[i] for i in mel) / len(mel),
    "specificity": sum(1 - ref[i] for i in oth) / len(oth),
    "refer_rate": sum(ref) / len(ref),
    "abstention_rate": sum(ab) / len(ab),
}))
"#;
    let reference = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(out.with_extension("predictions.csv"))
        .arg(record["calibration"]["refer_threshold"].to_string())
        .output()
        .unwrap();
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&reference.stdout).unwrap();
    for key in [
        "auc",
        "sensitivity",
        "specificity",
        "refer_rate",
        "abstention_rate",
    ] {
        let ours = m[key]["estimate"].as_f64().unwrap();
        let theirs = want[key].as_f64().unwrap();
        // The table holds each probability exactly (shortest round-trip decimal).
        assert!(
            (ours - theirs).abs() < 1e-9,
            "{key}: dermo {ours} vs reference {theirs}"
        );
        let (lo, hi) = (
            m[key]["low"].as_f64().unwrap(),
            m[key]["high"].as_f64().unwrap(),
        );
        assert!(
            lo <= ours && ours <= hi,
            "{key}: {ours} outside [{lo}, {hi}]"
        );
    }
    // The bundled model does better than chance on these images, worse than perfectly.
    let auc = m["auc"]["estimate"].as_f64().unwrap();
    assert!(auc > 0.5 && auc < 1.0, "AUC {auc}");
}
