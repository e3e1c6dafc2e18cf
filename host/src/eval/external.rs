//! `dermo eval` on an external set (see `data::external`): melanoma versus the rest, decided
//! exactly as the device decides (`dermo_model::decide`: temperature, refer threshold, abstain
//! rule), scored by `dermo_calibration::evaluate_melanoma`.

use super::network::{score_images, Network};
use super::tta::Tta;
use crate::data::external::ExternalSet;
use crate::files::now;
use anyhow::Context;
use dermo_calibration::{evaluate_melanoma, BootstrapConfig, MelanomaCase, MelanomaEvaluation};
use dermo_model::{decide, CalibrationSpec, Class, Decision, CLASSES};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The body of an external evaluation's JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalEvalRecord {
    pub model: String,
    /// The external set evaluated on, and its content hash.
    pub data: PathBuf,
    pub set_hash: String,
    pub tta: Tta,
    /// The decision settings applied (temperature, refer threshold, abstain rule).
    pub calibration: CalibrationSpec,
    /// Where they came from (calibration.json, the model file), or `None` for the defaults.
    pub calibration_source: Option<String>,
    pub metrics: MelanomaEvaluation,
    pub seconds: f64,
    pub created: String,
}

/// Each image of `set` through `network` and the decision rule `cal`: the case the melanoma
/// figures score, and the device's whole decision (every class probability, the referral score).
pub fn score_external(
    network: &mut dyn Network,
    set: &ExternalSet,
    cal: &CalibrationSpec,
    tta: Tta,
    progress: bool,
) -> anyhow::Result<Vec<(MelanomaCase, Decision)>> {
    let images = set.pixels(&network.preprocess())?;
    let n = images.len();
    let (logits, ood) = score_images(network, images.into_iter().map(Ok), n, tta, progress)?;
    Ok(set
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let row: Vec<f32> = logits.row(i).iter().map(|&v| v as f32).collect();
            let d = decide(&row, ood.get(i).map(Vec::as_slice), cal);
            let case = MelanomaCase {
                melanoma_prob: f64::from(d.probs[Class::Mel.index()]),
                referred: d.refer,
                abstained: d.abstain.is_some(),
                melanoma: r.melanoma,
            };
            (case, d)
        })
        .collect())
}

/// Scores, writes `out` and `out`'s predictions table, prints the summary.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_external(
    network: &mut dyn Network,
    data: &Path,
    cal: &CalibrationSpec,
    calibration_source: Option<String>,
    tta: Tta,
    bootstrap: BootstrapConfig,
    out: &Path,
) -> anyhow::Result<ExternalEvalRecord> {
    let set = ExternalSet::load(data)?;
    let started = std::time::Instant::now();
    let (cases, decisions): (Vec<_>, Vec<_>) = score_external(network, &set, cal, tta, true)?
        .into_iter()
        .unzip();
    let seconds = started.elapsed().as_secs_f64();
    let record = ExternalEvalRecord {
        model: network.describe(),
        data: data.to_owned(),
        set_hash: set.hash(),
        tta,
        calibration: cal.clone(),
        calibration_source,
        metrics: evaluate_melanoma(&cases, bootstrap)?,
        seconds,
        created: now(),
    };
    let json = serde_json::to_vec_pretty(&record)?;
    crate::files::write_atomic(out, &json)
        .with_context(|| format!("cannot write {}", out.display()))?;
    write_cases(
        &super::record::predictions_path(out),
        &set,
        &cases,
        &decisions,
    )?;
    print_summary(&record, out);
    Ok(record)
}

/// An external evaluation's predictions table: per image `image_id`, the truth `melanoma`,
/// `melanoma_prob` (the score the AUC ranks), every calibrated class probability `p_<class>`,
/// `p_malignant` (the referral score the refer threshold applies to), `refer` and `abstain`.
fn write_cases(
    path: &Path,
    set: &ExternalSet,
    cases: &[MelanomaCase],
    decisions: &[Decision],
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["image_id", "melanoma", "melanoma_prob"]
        .map(String::from)
        .into();
    header.extend(CLASSES.iter().map(|c| format!("p_{}", c.code())));
    header.extend(["p_malignant", "refer", "abstain"].map(String::from));
    w.write_record(&header)?;
    for ((r, c), d) in set.records.iter().zip(cases).zip(decisions) {
        let mut fields = vec![
            r.image_id.clone(),
            u8::from(c.melanoma).to_string(),
            c.melanoma_prob.to_string(),
        ];
        fields.extend(d.probs.iter().map(|p| format!("{p:.6}")));
        fields.push(format!("{:.6}", d.malignant_prob));
        fields.push(u8::from(c.referred).to_string());
        fields.push(u8::from(c.abstained).to_string());
        w.write_record(&fields)?;
    }
    let bytes = w.into_inner().context("cannot encode predictions")?;
    crate::files::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print_summary(record: &ExternalEvalRecord, out: &Path) {
    let m = &record.metrics;
    let show = super::record::print_interval;
    eprintln!(
        "{} on external set {} ({} images, {} melanoma; T = {:.3}, refer at {:.3}):",
        record.model,
        record.data.display(),
        m.images,
        m.melanomas,
        record.calibration.temperature,
        record.calibration.refer_threshold
    );
    show("melanoma-vs-rest AUC", &m.auc);
    show("referral sensitivity (mel)", &m.sensitivity);
    show("referral specificity (mel)", &m.specificity);
    show("refer rate", &m.refer_rate);
    show("abstention rate", &m.abstention_rate);
    eprintln!("written {}", out.display());
}
