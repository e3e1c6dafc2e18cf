//! `dermo eval`: a run's checkpoint or a model file on a split → `eval.json` + predictions.

use super::maps::{map_manifest, pointing_game, write_page, MapsRecord, MAPS_JSON};
use super::network::{score_manifest, Checkpoint, ModelFileNetwork, Network, OodFeatures, Scored};
use super::record::{
    class_codes, measure, predictions_path, probabilities, write_predictions, write_record,
    DecisionCounts, EvalRecord, Outcome,
};
use super::tta::Tta;
use crate::files::now;
use crate::train::run_folder::RunFolder;
use crate::train::DeviceChoice;
use anyhow::Context;
use clap::Args;
use dermo_calibration::BootstrapConfig;
use dermo_model::{decide, CalibrationSpec, Decision};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `dermo eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run folder (its best checkpoint runs with libtorch) or an exported `.onnx` model file
    /// (runs with tract, as on the device).
    pub target: PathBuf,
    /// Manifest CSV of the split to evaluate (usually the test split), or an external set
    /// (`external.csv` from `dermo data import isic2017` / `binary-csv`): then the figures are
    /// melanoma versus the rest — AUC, referral sensitivity and specificity, refer and
    /// abstention rates, with bootstrap intervals.
    #[arg(long)]
    pub data: PathBuf,
    /// Test-time augmentation: none, flips (4 views) or multiscale (centre crops at 100/87.5/75%,
    /// each mirrored: 6 views). Logits are averaged over the views.
    #[arg(long, value_enum, default_value_t = Tta::None)]
    pub tta: Tta,
    /// Where to write the metrics (predictions go beside it as NAME.predictions.csv). Default:
    /// RUN/eval-<split>.json for a run, <model>.eval-<split>.json beside a model file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bootstrap resamples (of lesions) for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Ignore RUN/calibration.json (or the model file's calibration) and use T = 1 and a refer
    /// threshold of 0.5.
    #[arg(long)]
    pub uncalibrated: bool,
    /// cpu, cuda or auto (checkpoints only).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Image cache root for model files (a run uses the one it trained with).
    #[arg(long, default_value = "work/cache")]
    pub cache_root: PathBuf,
    /// A trusted public key (dermo-signing.pub) to check a model file's signature with; repeat
    /// for several. Default: the `*.pub` files beside the model. An unsigned file, or one whose
    /// signature fails, is still evaluated, with a warning that the report repeats.
    #[arg(long = "key", value_name = "PUB")]
    pub keys: Vec<PathBuf>,
    /// Also say where the model looked: class-activation maps of every image, the pointing game
    /// against the lesion masks (when the manifest has them) in DIR/pointing.json, and
    /// DIR/index.html with overlays of the most confident errors and of each class.
    #[arg(long, value_name = "DIR")]
    pub maps: Option<PathBuf>,
    /// Images per group on the --maps page.
    #[arg(long, default_value_t = 12)]
    pub maps_per_group: usize,
}

pub fn run_eval(a: EvalArgs) -> anyhow::Result<()> {
    if crate::data::external::ExternalSet::is_external(&a.data) {
        return run_external_eval(a);
    }
    let stem = a
        .data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let (mut network, cache_root, cal, source, out): (
        Box<dyn Network>,
        PathBuf,
        CalibrationSpec,
        _,
        PathBuf,
    ) = if a.target.is_dir() {
        let mut checkpoint = Checkpoint::load(&a.target, a.device.resolve()?)?;
        let cache_root = checkpoint.cache_root();
        let (cal, source) = match run_calibration_spec(&a.target)? {
            Some((spec, source)) => (spec, Some(source)),
            None => (CalibrationSpec::default(), None),
        };
        if !a.uncalibrated {
            checkpoint.set_ood(OodFeatures::of(cal.ood.as_ref()))?;
        }
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| a.target.join(format!("eval-{stem}.json")));
        (Box::new(checkpoint), cache_root, cal, source, out)
    } else {
        let model = ModelFileNetwork::open(&a.target, &a.keys)?;
        let cal = model.file().metadata.calibration.clone();
        let model_stem = a.target.with_extension("");
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.eval-{stem}.json", model_stem.display())));
        let source = Some(format!("{} metadata", a.target.display()));
        (Box::new(model), a.cache_root.clone(), cal, source, out)
    };
    let (cal, source) = if a.uncalibrated {
        (CalibrationSpec::default(), None)
    } else {
        (cal, source)
    };
    let started = Instant::now();
    let scored = score_manifest(network.as_mut(), &a.data, a.tta, &cache_root, true)?;
    let seconds = started.elapsed().as_secs_f64();
    let bootstrap = BootstrapConfig {
        resamples: a.resamples,
        seed: a.seed,
        level: 0.95,
    };
    let record = evaluate_scored(
        &scored,
        network.describe(),
        &a.data,
        a.tta,
        &cal,
        source,
        bootstrap,
        seconds,
        &out,
    )?;
    print_summary(&record, &out);
    if let Some(dir) = &a.maps {
        write_maps(network.as_mut(), &a, &cache_root, bootstrap, dir)?;
    }
    Ok(())
}

/// `--maps DIR`: the pointing game and the overlay page (see [`super::maps`]).
fn write_maps(
    network: &mut dyn Network,
    a: &EvalArgs,
    cache_root: &Path,
    bootstrap: BootstrapConfig,
    dir: &Path,
) -> anyhow::Result<()> {
    let split = map_manifest(network, &a.data, cache_root)?;
    let game = pointing_game(&split, bootstrap)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let title = format!("Where the model looked: {}", a.data.display());
    let gallery = write_page(dir, &split, a.maps_per_group, &title)?;
    let record = MapsRecord {
        model: network.describe(),
        data: a.data.clone(),
        pointing_game: game.clone(),
        gallery,
        created: now(),
    };
    let json = dir.join(MAPS_JSON);
    crate::files::write_atomic(&json, serde_json::to_string_pretty(&record)?.as_bytes())
        .with_context(|| format!("cannot write {}", json.display()))?;
    let pct = |i: &Option<dermo_calibration::Interval>| match i {
        Some(i) => format!(
            "{:.1}% [{:.1}, {:.1}]",
            i.estimate * 100.0,
            i.low * 100.0,
            i.high * 100.0
        ),
        None => "n/a".into(),
    };
    println!(
        "pointing game on {} masked images ({}×{} maps): peak on the lesion {}; chance (mean lesion area) {}; centre-only {}",
        game.images,
        game.side,
        game.side,
        pct(&game.hit_rate),
        pct(&game.chance),
        pct(&game.centre)
    );
    println!(
        "wrote {} and {}",
        json.display(),
        dir.join("index.html").display()
    );
    Ok(())
}

/// Computes and writes `out` (eval.json) and its predictions table.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_scored(
    scored: &Scored,
    model: String,
    data: &Path,
    tta: Tta,
    cal: &CalibrationSpec,
    calibration: Option<String>,
    bootstrap: BootstrapConfig,
    seconds: f64,
    out: &Path,
) -> anyhow::Result<EvalRecord> {
    let temperature = f64::from(cal.temperature);
    let calibrated = probabilities(scored.logits.view(), temperature);
    // Each image exactly as the device decides it.
    let decisions: Vec<Decision> = scored
        .logits
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let logits: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            decide(&logits, scored.ood.get(i).map(Vec::as_slice), cal)
        })
        .collect();
    let raw = probabilities(scored.logits.view(), 1.0);
    let (metrics, before) = measure(
        calibrated.view(),
        raw.view(),
        &scored.labels,
        &scored.lesion_ids,
        f64::from(cal.refer_threshold),
        bootstrap,
    )?;
    let record = EvalRecord {
        model,
        data: data.to_owned(),
        manifest_hash: scored.manifest_hash.clone(),
        tta,
        classes: class_codes(),
        temperature,
        calibration,
        metrics,
        reliability_uncalibrated: before,
        decisions: Some(DecisionCounts::of(&decisions)),
        seconds,
        created: now(),
    };
    write_record(out, &record)?;
    write_predictions(
        &predictions_path(out),
        &scored.image_ids,
        &scored.lesion_ids,
        &scored.labels,
        calibrated.view(),
        &decisions.iter().map(Outcome::of).collect::<Vec<_>>(),
    )?;
    Ok(record)
}

/// The run's `calibration.json`, when `dermo calibrate` has written one, and its path.
fn run_calibration_spec(run_dir: &Path) -> anyhow::Result<Option<(CalibrationSpec, String)>> {
    Ok(RunFolder::new(run_dir)
        .calibration()?
        .map(|(spec, path)| (spec, path.display().to_string())))
}

/// `dermo eval` on an external set: the decision rule of the run's calibration (or the model
/// file's), melanoma versus the rest.
fn run_external_eval(a: EvalArgs) -> anyhow::Result<()> {
    let stem = a
        .data
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "external".into());
    let bootstrap = BootstrapConfig {
        resamples: a.resamples,
        seed: a.seed,
        level: 0.95,
    };
    let (mut network, spec, source, out): (Box<dyn Network>, _, _, PathBuf) = if a.target.is_dir() {
        let mut checkpoint = Checkpoint::load(&a.target, a.device.resolve()?)?;
        let (spec, source) = match run_calibration_spec(&a.target)? {
            Some((spec, source)) => (spec, Some(source)),
            None => (CalibrationSpec::default(), None),
        };
        checkpoint.set_ood(OodFeatures::of(spec.ood.as_ref()))?;
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| a.target.join(format!("eval-{stem}.json")));
        (Box::new(checkpoint), spec, source, out)
    } else {
        let model = ModelFileNetwork::open(&a.target, &a.keys)?;
        let spec = model.file().metadata.calibration.clone();
        let out = a.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!(
                "{}.eval-{stem}.json",
                a.target.with_extension("").display()
            ))
        });
        let source = Some(format!("{} metadata", a.target.display()));
        (Box::new(model), spec, source, out)
    };
    let (spec, source) = if a.uncalibrated {
        (CalibrationSpec::default(), None)
    } else {
        (spec, source)
    };
    super::external::evaluate_external(
        network.as_mut(),
        &a.data,
        &spec,
        source,
        a.tta,
        bootstrap,
        &out,
    )?;
    Ok(())
}

/// Prints the headline figures with their intervals.
pub fn print_summary(record: &EvalRecord, out: &Path) {
    let m = &record.metrics;
    let show = super::record::print_interval;
    eprintln!(
        "{} on {} ({} images, {} lesions, T = {:.3}):",
        record.model,
        record.data.display(),
        m.images,
        m.groups,
        record.temperature
    );
    show("balanced accuracy", &m.balanced_accuracy);
    show("accuracy", &m.accuracy);
    show("macro AUC", &m.macro_auc);
    show("malignant sensitivity", &m.triage.sensitivity);
    show("malignant specificity", &m.triage.specificity);
    show("ECE", &m.ece);
    if let Some(d) = &record.decisions {
        let pct = |n: usize| 100.0 * n as f64 / d.images.max(1) as f64;
        eprintln!(
            "  as the device decides: {} referred ({:.1}%), {} abstained ({:.1}%: {} out of distribution, {} low confidence, {} non-finite)",
            d.referred,
            pct(d.referred),
            d.abstained(),
            pct(d.abstained()),
            d.out_of_distribution,
            d.low_confidence,
            d.non_finite
        );
    }
    eprintln!(
        "written {} and {}",
        out.display(),
        predictions_path(out).display()
    );
}
