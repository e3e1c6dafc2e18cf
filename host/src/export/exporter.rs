//! `dermo export`: run folder → one model file, verified before it is written.
//!
//! The fp32 graph is always built first: tract runs it against the trainer's libtorch network
//! (max |Δ logit| ≤ 1e-3), then the chosen variant runs against it (top-1 agreement ≥ 99 % and
//! balanced accuracy within 1 point for int8). Only then is the file written and signed.

use super::activations;
use super::parity;
use super::source::RunSource;
use crate::data::manifest::Manifest;
use crate::eval::network::{score_manifest, Checkpoint, ModelFileNetwork, OodFeatures, Scored};
use crate::eval::tta::Tta;
use crate::train::pretrained;
use anyhow::Context;
use dermo_calibration::RangeMethod;
use dermo_model::onnx::{bias_corrected, write_onnx, ExportOptions, Precision};
use dermo_model::runtime::ActivationStats;
use dermo_model::signature;
use dermo_model::ModelFile;
use dermo_model::NamedWeights;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything `dermo export` needs besides the run folder.
pub struct ExportPlan {
    pub out: PathBuf,
    pub precision: Precision,
    pub with_features: bool,
    pub sign: Option<PathBuf>,
    /// Validation manifest for the parity checks (default: the run's).
    pub val: Option<PathBuf>,
    pub calib_size: usize,
    /// int8 gate: smallest accepted top-1 agreement with the fp32 file.
    pub min_agreement: f64,
    /// int8 gate: largest accepted balanced-accuracy loss against fp32 (fraction).
    pub max_bal_acc_loss: f64,
    pub range_method: RangeMethod,
    pub device: tch::Device,
}

/// What export measured, printed and saved beside the file as `MODEL.onnx.export.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub model: PathBuf,
    pub precision: String,
    pub bytes: usize,
    pub fp32_bytes: usize,
    pub sha256: String,
    pub signature: Option<PathBuf>,
    pub val_manifest: PathBuf,
    pub val_images: usize,
    /// Largest |logit| difference, fp32 file on tract vs libtorch.
    pub fp32_max_abs_delta: f64,
    /// Top-1 agreement of the written file with the fp32 file (1 for fp32).
    pub top1_agreement: f64,
    pub balanced_accuracy_fp32: f64,
    pub balanced_accuracy: f64,
    /// Largest |Δ| of the class-activation maps against libtorch's on the first
    /// `parity::MAP_IMAGES` validation images: the fp32 file, then the written file. `None`
    /// without maps (`--no-features`).
    pub class_maps_max_abs_delta_fp32: Option<f64>,
    pub class_maps_max_abs_delta: Option<f64>,
    pub seconds: f64,
}

pub fn export(run: &Path, plan: &ExportPlan) -> anyhow::Result<ExportReport> {
    let started = Instant::now();
    let source = RunSource::load(run)?;
    if source.calibration_file.is_none() {
        eprintln!(
            "warning: {} has no calibration.json (run `dermo calibrate`); using T = 1, refer threshold 0.5, no abstain rule",
            run.display()
        );
    }
    if source.metrics_file.is_none() {
        eprintln!(
            "warning: {} has no eval-test.json; the file will carry no test metrics",
            run.display()
        );
    }
    let val = plan
        .val
        .clone()
        .unwrap_or_else(|| source.info.val_manifest.clone());
    let cache_root = source.info.cache_root.clone();
    let spec = source.spec().clone();
    let ood = OodFeatures::of(source.calibration.ood.as_ref());
    // The OOD rule's frozen ImageNet copy, carried in the file beside the classifier.
    let ood_weights = match ood.frozen_backbone {
        true => Some(NamedWeights::load_safetensors(&pretrained::of_run(
            &source.info,
        )?)?),
        false => None,
    };
    let options = |precision, ranges| ExportOptions {
        precision,
        input_size: source.recipe.preprocess.size,
        with_features: plan.with_features,
        activation_ranges: ranges,
        ood_block: ood.block,
        ood_weights: ood_weights.clone(),
    };
    let build = |precision, weights: &NamedWeights, ranges| -> anyhow::Result<ModelFile> {
        let meta = source.metadata(precision)?;
        let bytes =
            write_onnx(&spec, weights, &options(precision, ranges), &meta).with_context(|| {
                format!(
                    "cannot build the {precision} graph from {}",
                    source.weights_path.display()
                )
            })?;
        Ok(ModelFile::from_verified_bytes(&plan.out, bytes)?)
    };

    eprintln!("reference: libtorch on {}", val.display());
    let mut checkpoint = Checkpoint::load(run, plan.device)?;
    checkpoint.set_ood(ood)?;
    let reference = score_manifest(&mut checkpoint, &val, Tta::None, &cache_root, true)?;
    let reference_maps = match plan.with_features {
        true => parity::first_class_maps(&mut checkpoint, &val, &cache_root)?,
        false => None,
    };
    drop(checkpoint);
    let maps_delta = |file: &ModelFile| -> anyhow::Result<Option<f64>> {
        let Some(reference) = &reference_maps else {
            return Ok(None);
        };
        let mut net = ModelFileNetwork::new("class maps".into(), file.clone())?;
        let maps = parity::first_class_maps(&mut net, &val, &cache_root)?
            .context("the written graph has no class_maps output")?;
        Ok(Some(parity::max_abs_map_delta(reference, &maps)))
    };

    let fp32 = build(Precision::Fp32, &source.weights, None)?;
    eprintln!("fp32 file on tract");
    let fp32_scores = score(&fp32, "fp32 file", &val, &cache_root)?;
    let delta = parity::max_abs_delta(&reference, &fp32_scores);
    anyhow::ensure!(
        delta <= parity::FP32_MAX_DELTA,
        "parity failed: the fp32 file on tract differs from libtorch by {delta:.2e} (limit {:.0e}) on {}",
        parity::FP32_MAX_DELTA,
        val.display()
    );
    if ood.block.is_some() {
        let delta = parity::max_abs_ood_delta(&reference, &fp32_scores);
        anyhow::ensure!(
            delta <= parity::FP32_MAX_DELTA,
            "parity failed: the fp32 file's ood_features differ from libtorch's ({}) by {delta:.2e} (limit {:.0e})",
            ood.describe(),
            parity::FP32_MAX_DELTA
        );
    }
    let maps_delta_fp32 = maps_delta(&fp32)?;
    if let Some(d) = maps_delta_fp32 {
        anyhow::ensure!(
            d <= parity::FP32_MAX_MAP_DELTA,
            "parity failed: the fp32 file's class maps differ from libtorch's by {d:.2e} (limit {:.0e})",
            parity::FP32_MAX_MAP_DELTA
        );
    }
    let bal_fp32 = parity::balanced_accuracy(&fp32_scores)?;

    let (file, scores) = match plan.precision {
        Precision::Fp32 => (fp32.clone(), fp32_scores.clone()),
        precision => {
            let stats = calibration_stats(&source, &fp32, plan)?;
            let weights = bias_corrected(&spec, &source.weights, precision, &stats.channel_means)?;
            let ranges = (precision == Precision::Int8Full).then_some(stats.ranges);
            let file = build(precision, &weights, ranges)?;
            eprintln!("{precision} file on tract");
            let scores = score(&file, &format!("{precision} file"), &val, &cache_root)?;
            (file, scores)
        }
    };
    let agreement = parity::top1_agreement(&fp32_scores, &scores);
    let bal = parity::balanced_accuracy(&scores)?;
    let gate_failed = agreement < plan.min_agreement || bal_fp32 - bal > plan.max_bal_acc_loss;
    let numbers = format!(
        "top-1 agreement with fp32 {:.2} %, balanced accuracy {:.2} % vs {:.2} % for fp32",
        100.0 * agreement,
        100.0 * bal,
        100.0 * bal_fp32
    );
    match plan.precision {
        Precision::Int8 if gate_failed => anyhow::bail!(
            "parity failed for int8: {numbers} (needs ≥ {:.1} % agreement and ≤ {:.1} point loss)",
            100.0 * plan.min_agreement,
            100.0 * plan.max_bal_acc_loss
        ),
        // The full-int8 path is an option shipped with its measured cost, not a gate.
        Precision::Int8Full if gate_failed => {
            eprintln!("warning: int8-full costs accuracy: {numbers}")
        }
        _ => {}
    }

    let maps_delta_file = match plan.precision {
        Precision::Fp32 => maps_delta_fp32,
        _ => maps_delta(&file)?,
    };
    write_atomic(&plan.out, &file.bytes)?;
    let sig_path = signature::signature_path(&plan.out);
    let signature = match &plan.sign {
        Some(key) => {
            let key = crate::signing::signing_key(key)?;
            Some(signature::sign_file(&key, &plan.out, &file.bytes)?)
        }
        None => {
            if sig_path.exists() {
                std::fs::remove_file(&sig_path).with_context(|| {
                    format!("cannot remove the stale signature {}", sig_path.display())
                })?;
                eprintln!(
                    "warning: removed {}, which signed an older file",
                    sig_path.display()
                );
            }
            None
        }
    };
    let report = ExportReport {
        model: plan.out.clone(),
        precision: plan.precision.as_str().into(),
        bytes: file.bytes.len(),
        fp32_bytes: fp32.bytes.len(),
        sha256: file.sha256.clone(),
        signature,
        val_manifest: val,
        val_images: scores.labels.len(),
        fp32_max_abs_delta: delta,
        top1_agreement: agreement,
        balanced_accuracy_fp32: bal_fp32,
        balanced_accuracy: bal,
        class_maps_max_abs_delta_fp32: maps_delta_fp32,
        class_maps_max_abs_delta: maps_delta_file,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report)?;
    write_atomic(&report_path(&plan.out), json.as_bytes())?;
    Ok(report)
}

/// `MODEL.onnx.export.json`.
pub fn report_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".export.json");
    PathBuf::from(s)
}

fn score(file: &ModelFile, name: &str, val: &Path, cache_root: &Path) -> anyhow::Result<Scored> {
    let mut net = ModelFileNetwork::new(format!("{name} on tract"), file.clone())?;
    score_manifest(&mut net, val, Tta::None, cache_root, true)
}

/// Statistics measured on `--calib-size` images spread over the run's training manifest.
fn calibration_stats(
    source: &RunSource,
    fp32: &ModelFile,
    plan: &ExportPlan,
) -> anyhow::Result<ActivationStats> {
    let manifest = Manifest::load(&source.info.train_manifest)?;
    let paths: Vec<PathBuf> = manifest.records.iter().map(|r| r.path.clone()).collect();
    let images = activations::spread(&paths, plan.calib_size);
    eprintln!(
        "activation statistics ({:?} ranges) on {} training images",
        plan.range_method,
        images.len()
    );
    activations::activation_stats(
        fp32,
        source.spec(),
        &images,
        &source.preprocess(),
        plan.range_method,
    )
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::files::write_atomic(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
