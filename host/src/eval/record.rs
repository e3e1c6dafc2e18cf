//! `eval.json` and `predictions.csv`: what an evaluation writes, and how it is computed from
//! probabilities, labels and lesion ids.

use super::tta::Tta;
use anyhow::Context;
use dermo_calibration::{
    evaluate, reliability, BootstrapConfig, Evaluation, EvaluationOptions, MalignantGroup,
    Reliability,
};
use dermo_model::{AbstainReason, Decision, CLASSES, NUM_CLASSES};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One summary line on stderr: `  NAME  estimate  [low, high]`, or `undefined`.
pub fn print_interval(name: &str, interval: &Option<dermo_calibration::Interval>) {
    match interval {
        Some(i) => eprintln!(
            "  {name:<30} {:.4}  [{:.4}, {:.4}]",
            i.estimate, i.low, i.high
        ),
        None => eprintln!("  {name:<30} undefined"),
    }
}

/// The per-image table written beside `NAME.json`: `NAME.predictions.csv`.
pub fn predictions_path(eval_json: &Path) -> PathBuf {
    eval_json.with_extension("predictions.csv")
}

/// Bins of the reliability diagrams.
pub const RELIABILITY_BINS: usize = 10;

/// The body of `eval.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRecord {
    /// What was evaluated: `checkpoint …`, `model file …` or `baseline …`.
    pub model: String,
    /// The manifest evaluated on.
    pub data: PathBuf,
    pub manifest_hash: String,
    pub tta: Tta,
    /// Class codes in logit order.
    pub classes: Vec<String>,
    /// Temperature applied before the softmax (1 when not calibrated).
    pub temperature: f64,
    /// Where the temperature and refer threshold came from (`calibration.json`, the model
    /// file's metadata), or `None` for the defaults.
    pub calibration: Option<String>,
    /// All metrics at the applied temperature, with lesion-grouped bootstrap intervals.
    pub metrics: Evaluation,
    /// The reliability diagram at T = 1, to compare with `metrics.reliability`.
    pub reliability_uncalibrated: Reliability,
    /// What the device would have done with each image under the same calibration
    /// (`dermo_model::decide`: refer threshold, abstain rule); `None` for the baseline, which has
    /// no device decision. `metrics` score every image, answered or not.
    #[serde(default)]
    pub decisions: Option<DecisionCounts>,
    /// Seconds spent scoring the images.
    pub seconds: f64,
    pub created: String,
}

/// The device's outcomes over an evaluated set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DecisionCounts {
    pub images: usize,
    /// Answered (not abstained) and referred.
    pub referred: usize,
    /// Abstained because the OOD score was above its threshold.
    pub out_of_distribution: usize,
    /// Abstained because the top probability was below the minimum confidence.
    pub low_confidence: usize,
    /// Abstained because the logits were not finite.
    pub non_finite: usize,
}

impl DecisionCounts {
    pub fn of(decisions: &[Decision]) -> DecisionCounts {
        let mut c = DecisionCounts {
            images: decisions.len(),
            ..DecisionCounts::default()
        };
        for d in decisions {
            match d.abstain {
                None => c.referred += usize::from(d.refer),
                Some(AbstainReason::OutOfDistribution { .. }) => c.out_of_distribution += 1,
                Some(AbstainReason::LowConfidence { .. }) => c.low_confidence += 1,
                Some(AbstainReason::NonFinite) => c.non_finite += 1,
            }
        }
        c
    }

    pub fn abstained(&self) -> usize {
        self.out_of_distribution + self.low_confidence + self.non_finite
    }
}

/// The code of an abstention in the predictions table (its serde tag), or "".
pub fn abstain_code(reason: Option<&AbstainReason>) -> &'static str {
    match reason {
        None => "",
        Some(AbstainReason::OutOfDistribution { .. }) => "out_of_distribution",
        Some(AbstainReason::LowConfidence { .. }) => "low_confidence",
        Some(AbstainReason::NonFinite) => "non_finite",
    }
}

/// What the predictions table says about each image beyond its probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub refer: bool,
    /// The abstention's code ([`abstain_code`]); "" when the image was answered.
    pub abstain: &'static str,
}

impl Outcome {
    pub fn of(d: &Decision) -> Outcome {
        Outcome {
            refer: d.refer,
            abstain: abstain_code(d.abstain.as_ref()),
        }
    }
}

/// The malignant group of the taxonomy (akiec, bcc, mel).
pub fn malignant_group() -> MalignantGroup {
    let classes: Vec<usize> = CLASSES
        .iter()
        .filter(|c| c.is_malignant())
        .map(|c| c.index())
        .collect();
    MalignantGroup::new(&classes, NUM_CLASSES).expect("the taxonomy's malignant group is valid")
}

pub fn class_codes() -> Vec<String> {
    CLASSES.iter().map(|c| c.code().to_owned()).collect()
}

/// Metrics of calibrated probabilities, plus the reliability of the uncalibrated ones.
pub fn measure(
    calibrated: ArrayView2<f64>,
    uncalibrated: ArrayView2<f64>,
    labels: &[usize],
    lesion_ids: &[String],
    refer_threshold: f64,
    bootstrap: BootstrapConfig,
) -> anyhow::Result<(Evaluation, Reliability)> {
    let options = EvaluationOptions {
        malignant: malignant_group(),
        refer_threshold,
        bootstrap,
        reliability_bins: RELIABILITY_BINS,
    };
    let metrics =
        evaluate(calibrated, labels, lesion_ids, &options).context("computing metrics")?;
    let before =
        reliability(uncalibrated, labels, RELIABILITY_BINS).context("reliability at T = 1")?;
    Ok((metrics, before))
}

/// "0.812 [0.780, 0.845]", or "—".
pub fn with_interval(i: &Option<dermo_calibration::Interval>) -> String {
    match i {
        Some(i) => format!("{:.3} [{:.3}, {:.3}]", i.estimate, i.low, i.high),
        None => "—".into(),
    }
}

/// Writes an `eval.json`, creating its folder.
pub fn write_record(path: &Path, record: &EvalRecord) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(record)?;
    crate::files::write_atomic(path, &json)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads an `eval.json`.
pub fn read_record(path: &Path) -> anyhow::Result<EvalRecord> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an eval.json", path.display()))
}

/// One row per image: ids, truth, prediction, every class probability, the referral and the
/// abstention.
pub fn write_predictions(
    path: &Path,
    image_ids: &[String],
    lesion_ids: &[String],
    labels: &[usize],
    probabilities: ArrayView2<f64>,
    outcomes: &[Outcome],
) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut header = vec!["image_id", "lesion_id", "label", "predicted", "correct"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    header.extend(CLASSES.iter().map(|c| format!("p_{}", c.code())));
    header.extend(["p_malignant".into(), "refer".into(), "abstain".into()]);
    w.write_record(&header)?;
    let group = malignant_group();
    for (i, row) in probabilities.rows().into_iter().enumerate() {
        let predicted = argmax(&row.to_vec());
        let malignant: f64 = group.classes().iter().map(|&c| row[c]).sum();
        let mut fields = vec![
            image_ids[i].clone(),
            lesion_ids[i].clone(),
            CLASSES[labels[i]].code().to_owned(),
            CLASSES[predicted].code().to_owned(),
            u8::from(predicted == labels[i]).to_string(),
        ];
        fields.extend(row.iter().map(|p| format!("{p:.6}")));
        fields.push(format!("{malignant:.6}"));
        fields.push(u8::from(outcomes[i].refer).to_string());
        fields.push(outcomes[i].abstain.to_string());
        w.write_record(&fields)?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The columns of a predictions table that its readers use (the probability columns are left
/// out).
#[derive(Debug, Clone, Deserialize)]
pub struct PredictionRow {
    pub image_id: String,
    pub lesion_id: String,
    /// The true class's code.
    pub label: String,
    /// The predicted class's code.
    pub predicted: String,
}

/// Reads a predictions table written by [`write_predictions`]; errors name the file and row.
pub fn read_predictions(path: &Path) -> anyhow::Result<Vec<PredictionRow>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, row)| {
            row.with_context(|| format!("{}: row {} is malformed", path.display(), i + 1))
        })
        .collect()
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Logits as probabilities at temperature `t`.
pub fn probabilities(logits: ArrayView2<f64>, t: f64) -> Array2<f64> {
    dermo_calibration::softmax(logits, t)
}
