//! Training EfficientNet-Lite0 with tch: `dermo train`.
//!
//! Layers, bottom up: [`net`] (the network from the arch spec) and [`pretrained`] (ImageNet
//! weights); [`recipe`] (what to train, as data); [`dataset`], [`features`], [`augment`],
//! [`sampler`], [`schedule`], [`optim`], [`ema`] (the pieces of a step); [`run_folder`] (every
//! file of a run, used by every command that reads one), [`checkpoint`] (its commit protocol) and
//! [`metrics`]; [`trainer`] (the loop) and [`interrupt`] (stopping it at a step boundary on
//! a signal); [`predict`] (inference for eval and export); [`soup`] (one model from the weight
//! average of several runs).

pub mod augment;
pub mod checkpoint;
pub mod dataset;
pub mod device;
pub mod ema;
pub mod features;
pub mod interrupt;
pub mod metrics;
pub mod net;
pub mod optim;
pub mod precision;
pub mod predict;
pub mod pretrained;
pub mod recipe;
pub mod run_folder;
pub mod sampler;
pub mod schedule;
pub mod soup;
pub mod trainer;

pub use dataset::{Examples, TrainData};
pub use device::DeviceChoice;
pub use net::EfficientNetLite;
pub use predict::{predict_logits, Predictions, TrainedModel};
pub use recipe::Recipe;
pub use soup::SoupArgs;
pub use trainer::{train, RunSummary, TrainError, TrainOptions};

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// `dermo train`: train the classifier into a run folder.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training manifest (a split's train.csv from `dermo data split`). With --resume, defaults
    /// to the one the run recorded.
    #[arg(long, required_unless_present = "resume")]
    pub train: Option<PathBuf>,
    /// Validation manifest (the split's val.csv): picks the best epoch and drives early stopping.
    /// With --resume, defaults to the one the run recorded.
    #[arg(long, required_unless_present = "resume")]
    pub val: Option<PathBuf>,
    /// Recipe TOML (see recipes/); without it the built-in defaults apply.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Override one recipe key, e.g. --set lr=3e-4 --set augment.hflip=false (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run folder to create (config.toml, run.json, metrics.csv, checkpoints).
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, cuda (an error when no GPU is usable) or auto (CUDA when available).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Continue the run in --out from its last finished epoch, with the recipe saved there; the
    /// manifests, external set and ImageNet weights default to the ones the run recorded.
    #[arg(long)]
    pub resume: bool,
    /// Where image caches and frozen-feature caches live.
    #[arg(long, default_value = "work/cache")]
    pub cache_root: PathBuf,
    /// ImageNet weights (safetensors); defaults to $DERMO_PRETRAINED.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// An external validation set (external.csv from `dermo data import isic2017`): its
    /// melanoma-vs-rest AUC goes into metrics.csv every epoch. Never trained on.
    #[arg(long)]
    pub external: Option<PathBuf>,
    /// How the best epoch is chosen: bal-acc (validation balanced accuracy) or
    /// bal-acc-external-auc (their mean with the external AUC; needs --external). Default:
    /// bal-acc for a new run, the run's own choice on --resume.
    #[arg(long, value_enum)]
    pub select: Option<run_folder::Selection>,
    /// Start from another run's chosen weights, its classifier included, instead of ImageNet's
    /// with a fresh classifier. With a linear probe's run (recipes/cpu-probe.toml, the same size
    /// and colour constancy) this is LP-FT: the fine-tune begins with a fitted classifier, so
    /// its first steps do not push random-head gradients into the pretrained features.
    #[arg(long, value_name = "RUN", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// CPU threads for libtorch (default: every core). Fewer leaves room for other work while a
    /// long run trains in the background.
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let recipe = if a.resume && a.recipe.is_none() && a.set.is_empty() {
        let saved = a.out.join(run_folder::CONFIG);
        if saved.is_file() {
            Recipe::load(&saved)?
        } else {
            Recipe::default()
        }
    } else {
        let mut r = match &a.recipe {
            Some(p) => Recipe::load(p)?,
            None => Recipe::default(),
        };
        for s in &a.set {
            r.set(s)?;
        }
        r
    };
    let device = a.device.resolve()?;
    if let Some(n) = a.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        tch::set_num_threads(n as i32);
    }
    // What a resumed run recorded fills in what the command line leaves out.
    let recorded = if a.resume && a.out.join(run_folder::RUN).is_file() {
        Some(run_folder::RunFolder::new(&a.out).info()?)
    } else {
        None
    };
    let pretrained = match (a.pretrained, &recorded) {
        (Some(p), _) => p,
        (None, Some(info)) => pretrained::of_run(info)?,
        (None, None) => pretrained::default_path()?,
    };
    let from_run = |given: Option<PathBuf>, pick: fn(&run_folder::RunInfo) -> Option<PathBuf>| {
        given
            .or_else(|| recorded.as_ref().and_then(pick))
            .with_context(|| {
                format!(
                    "{} has no run to resume; give --train and --val",
                    a.out.display()
                )
            })
    };
    let train_manifest = from_run(a.train, |i| Some(i.train_manifest.clone()))?;
    let val_manifest = from_run(a.val, |i| Some(i.val_manifest.clone()))?;
    let external_set = a.external.clone().or_else(|| {
        recorded
            .as_ref()
            .and_then(|i| i.external.as_ref().map(|(p, _)| p.clone()))
    });
    let cfg = recipe.preprocess;
    let data = TrainData::load(&train_manifest, &val_manifest, &cfg, &a.cache_root)?;
    let external = match &external_set {
        Some(path) => Some(std::rc::Rc::new(dataset::ExternalExamples::load(
            path, &cfg,
        )?)),
        None => None,
    };
    let opts = TrainOptions {
        device,
        cache_root: a.cache_root,
        pretrained,
        resume: a.resume,
        command_line: std::env::args().collect(),
        progress: true,
        external,
        select: a.select,
        init: a.init,
    };
    let summary = train(&recipe, &data, &a.out, &opts)
        .with_context(|| format!("training into {} failed", a.out.display()))?;
    eprintln!(
        "done: {} epochs, {} steps, best selection score {:.4} at epoch {}{} in {:.0}s → {}",
        summary.epochs,
        summary.steps,
        summary.best_val_bal_acc,
        summary.best_epoch,
        if summary.stopped_early {
            " (early stop)"
        } else {
            ""
        },
        summary.seconds,
        summary.run_dir.join(run_folder::BEST).display()
    );
    Ok(())
}
