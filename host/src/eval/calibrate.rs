//! `dermo calibrate`: fits what the decision rule needs on the validation split — the
//! temperature (NLL), the refer threshold (target sensitivity for the malignant group) and the
//! out-of-distribution statistics — and stores them with the run as `calibration.json`
//! (a serialized [`CalibrationSpec`] that `dermo export` puts into the model file).

use super::network::{score_manifest, Checkpoint, Network, OodFeatures, Scored};
use super::record::{malignant_group, probabilities, RELIABILITY_BINS};
use super::tta::Tta;
use crate::files::now;
use crate::train::run_folder;
use crate::train::DeviceChoice;
use anyhow::Context;
use clap::Args;
use dermo_calibration::bootstrap::quantile;
use dermo_calibration::{
    fit_temperature, reliability, threshold_for_sensitivity, OperatingPoint, TemperatureFit,
};
use dermo_model::preprocess::normalize_into;
use dermo_model::{CalibrationSpec, OodSpec};
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `dermo calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The run folder; calibration.json and calibration-fit.json are written into it.
    pub run: PathBuf,
    /// Validation manifest (never the test split: the threshold would be tuned on the test).
    #[arg(long)]
    pub data: PathBuf,
    /// Sensitivity for the malignant group (mel, bcc, akiec) that the refer threshold must
    /// reach on the validation split.
    #[arg(long, default_value_t = 0.95)]
    pub target_sensitivity: f64,
    /// Manifest whose pooled features give the in-distribution mean and spread for the OOD
    /// score (e.g. the training split); default: the validation split itself.
    #[arg(long)]
    pub ood_reference: Option<PathBuf>,
    /// Quantile of the validation OOD scores used as the abstain threshold (0.975 makes the
    /// device abstain on about 2.5% of in-distribution images).
    #[arg(long, default_value_t = 0.975)]
    pub ood_quantile: f64,
    /// Which feature map the OOD score pools: a block index (0‥15) or `head` (the last feature
    /// map). Block 10 of the ImageNet backbone tells non-skin frames apart far better than the
    /// fine-tuned head (docs/results.md, "Out-of-distribution").
    #[arg(long, default_value = "10", value_parser = parse_ood_block)]
    pub ood_block: OodBlock,
    /// Whose weights compute that block: `imagenet`, a frozen copy of the ImageNet stem and
    /// blocks that the exported file carries for the rule alone (the rule then reads the same
    /// features however much of the classifier was fine-tuned; it costs the device that much
    /// more compute), or `model`, the classifier's own (free, but fine-tuning moves them).
    #[arg(long, value_enum, default_value_t = OodWeights::Imagenet)]
    pub ood_weights: OodWeights,
    /// Abstain when the top calibrated probability is below this (0 turns the rule off).
    #[arg(long, default_value_t = 0.0)]
    pub abstain_min_confidence: f32,
    /// cpu, cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

/// `--ood-weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OodWeights {
    Imagenet,
    Model,
}

/// `--ood-block`: `None` is the head's feature map.
pub type OodBlock = Option<usize>;

fn parse_ood_block(s: &str) -> Result<OodBlock, String> {
    match s {
        "head" => Ok(None),
        n => n
            .parse()
            .map(Some)
            .map_err(|_| format!("{n:?} is neither a block index nor `head`")),
    }
}

/// The evidence behind a calibration, written to `calibration-fit.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalibrationFit {
    pub data: PathBuf,
    pub images: usize,
    pub temperature: TemperatureFit,
    pub target_sensitivity: f64,
    /// The refer rule on the validation split.
    pub refer: OperatingPoint,
    pub ece_before: f64,
    pub ece_after: f64,
    pub ood: Option<OodFit>,
    pub created: String,
}

/// How the OOD threshold was set and what it does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OodFit {
    pub reference: PathBuf,
    /// The block whose pooled output the score reads (`None`: the head's feature map).
    #[serde(default)]
    pub block: OodBlock,
    /// Whether a frozen ImageNet copy computes that block (see `OodSpec::frozen_backbone`).
    #[serde(default)]
    pub frozen_backbone: bool,
    pub quantile: f64,
    pub threshold: f32,
    /// Fraction of the validation images the rule rejects.
    pub validation_abstain_rate: f64,
    /// Synthetic non-lesion frames (blank, noise, patterns) and whether each is rejected.
    pub synthetic: Vec<SyntheticFrame>,
    pub synthetic_abstain_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyntheticFrame {
    pub name: String,
    pub score: f32,
    pub abstains: bool,
}

pub fn run_calibrate(a: CalibrateArgs) -> anyhow::Result<()> {
    let mut checkpoint = Checkpoint::load(&a.run, a.device.resolve()?)?;
    checkpoint.set_ood(OodFeatures {
        block: a.ood_block,
        frozen_backbone: a.ood_weights == OodWeights::Imagenet,
    })?;
    let cache_root = checkpoint.cache_root();
    let val = score_manifest(&mut checkpoint, &a.data, Tta::None, &cache_root, true)?;
    let reference = match &a.ood_reference {
        Some(m) => Some(score_manifest(
            &mut checkpoint,
            m,
            Tta::None,
            &cache_root,
            true,
        )?),
        None => None,
    };
    let (spec, fit) = calibrate(
        &mut checkpoint,
        &val,
        reference.as_ref(),
        &CalibrationSettings {
            data: a.data.clone(),
            reference: a.ood_reference.clone().unwrap_or_else(|| a.data.clone()),
            target_sensitivity: a.target_sensitivity,
            ood_quantile: a.ood_quantile,
            abstain_min_confidence: a.abstain_min_confidence,
        },
    )?;
    let written = write_calibration(&a.run, &spec, &fit)?;
    eprintln!(
        "T = {:.4} (NLL {:.4} → {:.4}, ECE {:.4} → {:.4}); refer at p(malignant) ≥ {:.4}: \
         sensitivity {:.3}, specificity {:.3} on {} validation images",
        fit.temperature.temperature,
        fit.temperature.nll_before,
        fit.temperature.nll_after,
        fit.ece_before,
        fit.ece_after,
        fit.refer.threshold,
        fit.refer.sensitivity,
        fit.refer.specificity,
        fit.images
    );
    if let Some(ood) = &fit.ood {
        eprintln!(
            "OOD threshold {:.3} on {}: abstains on {:.1}% of validation images and {:.0}% of {} synthetic frames",
            ood.threshold,
            OodFeatures {
                block: ood.block,
                frozen_backbone: ood.frozen_backbone
            }
            .describe(),
            100.0 * ood.validation_abstain_rate,
            100.0 * ood.synthetic_abstain_rate,
            ood.synthetic.len()
        );
    }
    eprintln!("written {}", written.display());
    Ok(())
}

/// What to fit and on which data.
#[derive(Debug, Clone)]
pub struct CalibrationSettings {
    pub data: PathBuf,
    pub reference: PathBuf,
    pub target_sensitivity: f64,
    pub ood_quantile: f64,
    pub abstain_min_confidence: f32,
}

/// Fits the calibration from scored validation images (and optionally a reference set for the
/// OOD statistics). `network` scores the synthetic frames of the OOD self-check.
pub fn calibrate(
    network: &mut dyn Network,
    val: &Scored,
    reference: Option<&Scored>,
    settings: &CalibrationSettings,
) -> anyhow::Result<(CalibrationSpec, CalibrationFit)> {
    anyhow::ensure!(
        settings.ood_quantile > 0.0 && settings.ood_quantile < 1.0,
        "--ood-quantile {} must be in (0, 1)",
        settings.ood_quantile
    );
    let temperature = fit_temperature(val.logits.view(), &val.labels)
        .with_context(|| format!("fitting the temperature on {}", settings.data.display()))?;
    let calibrated = probabilities(val.logits.view(), temperature.temperature);
    let raw = probabilities(val.logits.view(), 1.0);
    let group = malignant_group();
    let (scores, truth) = group.scores_and_truth(calibrated.view(), &val.labels)?;
    let refer = threshold_for_sensitivity(&scores, &truth, settings.target_sensitivity)
        .with_context(|| {
            format!(
                "choosing the refer threshold on {}",
                settings.data.display()
            )
        })?;
    let ece_before = reliability(raw.view(), &val.labels, RELIABILITY_BINS)?.ece;
    let ece_after = reliability(calibrated.view(), &val.labels, RELIABILITY_BINS)?.ece;

    let (ood_spec, ood_fit) = if val.ood.is_empty() {
        (None, None)
    } else {
        let reference_features = reference.map_or(&val.ood, |r| &r.ood);
        let (spec, fit) = fit_ood(network, reference_features, &val.ood, settings)?;
        (Some(spec), Some(fit))
    };
    let spec = CalibrationSpec {
        temperature: temperature.temperature as f32,
        refer_threshold: refer.threshold as f32,
        target_sensitivity: settings.target_sensitivity as f32,
        abstain_min_confidence: settings.abstain_min_confidence,
        ood: ood_spec,
    };
    let fit = CalibrationFit {
        data: settings.data.clone(),
        images: val.labels.len(),
        temperature,
        target_sensitivity: settings.target_sensitivity,
        refer,
        ece_before,
        ece_after,
        ood: ood_fit,
        created: now(),
    };
    Ok((spec, fit))
}

/// Per-dimension mean and spread of the reference features; the threshold is a quantile of the
/// validation scores.
fn fit_ood(
    network: &mut dyn Network,
    reference: &[Vec<f32>],
    val: &[Vec<f32>],
    settings: &CalibrationSettings,
) -> anyhow::Result<(OodSpec, OodFit)> {
    anyhow::ensure!(
        reference.len() >= 2,
        "the OOD reference needs at least two images"
    );
    let dims = reference[0].len();
    let n = reference.len() as f64;
    let mut mean = vec![0f64; dims];
    for f in reference {
        for (m, &v) in mean.iter_mut().zip(f) {
            *m += f64::from(v) / n;
        }
    }
    let mut var = vec![0f64; dims];
    for f in reference {
        for ((s, &v), m) in var.iter_mut().zip(f).zip(&mean) {
            *s += (f64::from(v) - m).powi(2) / (n - 1.0);
        }
    }
    // Dimensions that never vary (dead ReLU6 channels) would turn any change into a huge z;
    // floor their spread at a small fraction of the typical one.
    let mut sorted: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
    sorted.sort_by(f64::total_cmp);
    let floor = (quantile(&sorted, 0.5) * 0.05).max(1e-4);
    let reads = network.ood_features();
    let mut spec = OodSpec {
        block: reads.block,
        frozen_backbone: reads.frozen_backbone,
        feature_mean: mean.iter().map(|&m| m as f32).collect(),
        feature_std: var.iter().map(|v| v.sqrt().max(floor) as f32).collect(),
        threshold: f32::INFINITY,
    };
    let mut val_scores: Vec<f64> = val
        .iter()
        .map(|f| spec.score(f).map_or(f64::INFINITY, f64::from))
        .collect();
    val_scores.sort_by(f64::total_cmp);
    spec.threshold = quantile(&val_scores, settings.ood_quantile) as f32;
    let rejected = val_scores
        .iter()
        .filter(|&&s| s > f64::from(spec.threshold))
        .count();
    let synthetic = synthetic_frames(network, &spec)?;
    let synthetic_abstain_rate =
        synthetic.iter().filter(|f| f.abstains).count() as f64 / synthetic.len() as f64;
    let fit = OodFit {
        reference: settings.reference.clone(),
        block: spec.block,
        frozen_backbone: spec.frozen_backbone,
        quantile: settings.ood_quantile,
        threshold: spec.threshold,
        validation_abstain_rate: rejected as f64 / val_scores.len() as f64,
        synthetic,
        synthetic_abstain_rate,
    };
    Ok((spec, fit))
}

/// Frames a camera can deliver that are not lesions: blank, saturated, noise and patterns.
pub fn synthetic_images(side: u32) -> Vec<(String, RgbImage)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut frames: Vec<(String, RgbImage)> = [
        ("black", [0, 0, 0]),
        ("white", [255, 255, 255]),
        ("grey", [128, 128, 128]),
        ("red", [220, 30, 30]),
        ("green", [30, 200, 60]),
        ("blue", [30, 60, 220]),
    ]
    .into_iter()
    .map(|(name, c)| {
        (
            format!("blank {name}"),
            RgbImage::from_pixel(side, side, Rgb(c)),
        )
    })
    .collect();
    for k in 0..4 {
        let img = RgbImage::from_fn(side, side, |_, _| {
            Rgb([rng.random(), rng.random(), rng.random()])
        });
        frames.push((format!("uniform noise {k}"), img));
    }
    for k in 0..2 {
        let base: [u8; 3] = [rng.random(), rng.random(), rng.random()];
        let img = RgbImage::from_fn(side, side, |_, _| {
            Rgb(base.map(|b| (i16::from(b) + rng.random_range(-24..=24)).clamp(0, 255) as u8))
        });
        frames.push((format!("tinted noise {k}"), img));
    }
    frames.push((
        "gradient".into(),
        RgbImage::from_fn(side, side, |x, y| {
            Rgb([(255 * x / side) as u8, (255 * y / side) as u8, 128])
        }),
    ));
    frames.push((
        "checkerboard".into(),
        RgbImage::from_fn(side, side, |x, y| {
            if (x / 16 + y / 16) % 2 == 0 {
                Rgb([240, 240, 240])
            } else {
                Rgb([20, 20, 20])
            }
        }),
    ));
    frames.push((
        "stripes".into(),
        RgbImage::from_fn(side, side, |x, _| {
            if (x / 8) % 2 == 0 {
                Rgb([250, 200, 40])
            } else {
                Rgb([40, 40, 160])
            }
        }),
    ));
    frames
}

fn synthetic_frames(
    network: &mut dyn Network,
    spec: &OodSpec,
) -> anyhow::Result<Vec<SyntheticFrame>> {
    let side = network.preprocess().size;
    let plane = 3 * (side * side) as usize;
    let mut out = Vec::new();
    for (name, img) in synthetic_images(side) {
        let mut data = vec![0f32; plane];
        normalize_into(&img, &mut data);
        let batch = network.run(&data, 1)?;
        let score = batch
            .ood
            .first()
            .and_then(|f| spec.score(f))
            .unwrap_or(f32::INFINITY);
        out.push(SyntheticFrame {
            name,
            score,
            abstains: score > spec.threshold || !score.is_finite(),
        });
    }
    Ok(out)
}

/// Writes `calibration.json` and `calibration-fit.json` into the run folder.
pub fn write_calibration(
    run: &Path,
    spec: &CalibrationSpec,
    fit: &CalibrationFit,
) -> anyhow::Result<PathBuf> {
    let path = run.join(run_folder::CALIBRATION);
    crate::files::write_atomic(&path, &serde_json::to_vec_pretty(spec)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let fit_path = run.join(run_folder::CALIBRATION_FIT);
    crate::files::write_atomic(&fit_path, &serde_json::to_vec_pretty(fit)?)
        .with_context(|| format!("cannot write {}", fit_path.display()))?;
    Ok(path)
}
