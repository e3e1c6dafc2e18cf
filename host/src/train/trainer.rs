//! The training loop: one run of a recipe on a train/val pair, into a run folder.

use super::augment;
use super::dataset::{normalize, Examples, ExternalExamples, TrainData};
use super::device::device_name;
use super::ema::Ema;
use super::features::{file_id, frozen_features, Frozen, View};
use super::interrupt::{self, Stop};
use super::metrics::{EpochRow, MetricsLog, Scores};
use super::net::{in_prefix, EfficientNetLite};
use super::optim::Optimizer;
use super::precision::{self, Precision};
use super::pretrained::{self, Head};
use super::recipe::{Imbalance, Mode, Recipe};
use super::run_folder::{self, RunFolder, RunInfo, Selection, TrainState};
use super::sampler::{class_log_priors, class_weights, epoch_order};
use super::schedule::lr_at;
use crate::files::{absolute, now, read_json};
use anyhow::Context;
use dermo_model::arch::ArchSpec;
use dermo_model::NUM_CLASSES;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Reduction, Tensor};

/// Set to N to make the process abort (like `kill -9`) after N optimizer steps: for resume tests.
pub const ABORT_ENV: &str = "DERMO_TRAIN_ABORT_AFTER_STEPS";
/// Set to N to make a training that has committed N epochs in this process take one more step
/// and then wait there for a stop signal (see [`interrupt`]): a training caught mid-epoch, every
/// time, for requeue tests.
pub const HOLD_ENV: &str = "DERMO_TRAIN_HOLD_AFTER_EPOCHS";

/// Errors a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training manifest {manifest}: no example of class {classes}; every class must be in the training split")]
    MissingClass { manifest: PathBuf, classes: String },
    #[error("{manifest}: the manifest has no examples")]
    Empty { manifest: PathBuf },
    #[error("non-finite training loss at step {step} (epoch {epoch}); stopped. The last good checkpoint is {last_good}")]
    NonFiniteLoss {
        epoch: usize,
        step: usize,
        last_good: String,
    },
    #[error(
        "run folder {0} already holds a run; pass --resume to continue it or choose another --out"
    )]
    RunExists(PathBuf),
    #[error(
        "--resume: the recipe differs from {0}; a resumed run keeps the recipe it started with"
    )]
    RecipeChanged(PathBuf),
    #[error("stopped by {stop} during epoch {}: {} keeps the {epoch} finished epoch(s), which --resume continues", epoch + 1, run_dir.display())]
    Interrupted {
        stop: Stop,
        /// Epochs committed in the run folder.
        epoch: usize,
        run_dir: PathBuf,
    },
}

/// How to run (not what to train: that is the recipe).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub device: Device,
    /// Where the frozen-feature cache lives (next to the image caches).
    pub cache_root: PathBuf,
    /// ImageNet weights (safetensors).
    pub pretrained: PathBuf,
    /// Continue the run in the folder from its last committed epoch.
    pub resume: bool,
    /// Recorded in run.json.
    pub command_line: Vec<String>,
    /// Show progress bars.
    pub progress: bool,
    /// An external validation set (other clinics, melanoma vs the rest): its AUC is logged each
    /// epoch and may take part in choosing the best epoch. Never trained on.
    pub external: Option<std::rc::Rc<ExternalExamples>>,
    /// How the best epoch is chosen; `None` on resume keeps the run's own choice.
    pub select: Option<Selection>,
    /// A run folder whose chosen weights (classifier included) a new run starts from, instead
    /// of ImageNet's with a fresh classifier: a linear probe's run makes the run an LP-FT
    /// (docs/training.md). Ignored on resume, where the checkpoint holds the weights.
    pub init: Option<PathBuf>,
}

/// What a finished (or early-stopped) run reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub epochs: usize,
    pub steps: usize,
    pub best_epoch: usize,
    pub best_val_bal_acc: f64,
    pub stopped_early: bool,
    /// Wall time of this invocation.
    pub seconds: f64,
}

/// Trains `recipe` on `data` into `run_dir`.
pub fn train(
    recipe: &Recipe,
    data: &TrainData,
    run_dir: &Path,
    opts: &TrainOptions,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    recipe.validate()?;
    check_data(recipe, data)?;
    let folder = RunFolder::new(run_dir);
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("cannot create run folder {}", run_dir.display()))?;
    let committed = folder.state()?;
    let spec = ArchSpec::efficientnet_lite0(NUM_CLASSES);
    let weights_id = file_id(&opts.pretrained)?;
    let (select, init) = match (&committed, opts.resume) {
        (Some(_), false) => return Err(TrainError::RunExists(run_dir.to_owned()).into()),
        (Some(_), true) => {
            let saved = Recipe::load(&folder.path(run_folder::CONFIG))?;
            if saved != *recipe {
                return Err(TrainError::RecipeChanged(folder.path(run_folder::CONFIG)).into());
            }
            let mut info: RunInfo = read_json(&folder.path(run_folder::RUN))?;
            anyhow::ensure!(
                opts.select.is_none_or(|s| s == info.select),
                "--resume: the run chooses its best epoch by {:?}; a resumed run keeps it",
                info.select
            );
            info.resumed_at.push(now());
            info.external = external_id(opts).or(info.external);
            folder.write(run_folder::RUN, &serde_json::to_vec_pretty(&info)?)?;
            (info.select, None)
        }
        (None, _) => {
            let init = match &opts.init {
                Some(dir) => {
                    let path = RunFolder::new(dir).init_weights(recipe)?;
                    let id = file_id(&path)?;
                    Some((absolute(&path), id))
                }
                None => None,
            };
            folder.write(run_folder::CONFIG, recipe.to_toml().as_bytes())?;
            let mut info = run_info(recipe, data, opts, &spec, &weights_id);
            info.init = init.clone();
            folder.write(run_folder::RUN, &serde_json::to_vec_pretty(&info)?)?;
            (info.select, init.map(|(path, _)| path))
        }
    };
    if select == Selection::BalAccExternalAuc && opts.external.is_none() {
        anyhow::bail!("--select bal-acc-external-auc needs --external (an external.csv)");
    }

    let device = opts.device;
    tch::manual_seed(recipe.seed as i64);
    let mut vs = VarStore::new(device);
    let mut net = EfficientNetLite::new(&vs.root(), &spec);
    net.dropout = recipe.dropout;
    net.set_drop_connect(recipe.drop_connect);
    pretrained::load_imagenet(&vs, &opts.pretrained, Head::Fresh)?;
    if let Some(path) = &init {
        vs.load(path)
            .with_context(|| format!("--init: cannot load {}", path.display()))?;
    }
    if recipe.channels_last {
        precision::vars_to_channels_last(&vs);
    }
    let precision = Precision::choose(recipe.amp, device);

    let inputs = Inputs::new(recipe, &net, data, &weights_id, opts)?;
    let params = trainable(&vs, recipe);
    let mut optimizer = Optimizer::new(
        recipe.optimizer,
        params,
        recipe.weight_decay,
        recipe.momentum,
    );
    let ckpt_error = |e: String| anyhow::anyhow!("{}: {e}", run_dir.join("ckpt").display());
    let (mut state, mut ema) = match &committed {
        Some(s) if opts.resume => {
            let optim_state = folder.restore(&mut vs, s)?;
            optimizer
                .load_state(&optim_state, s.step as i64)
                .map_err(ckpt_error)?;
            // The checkpoint holds the average; the trained weights come from the state file.
            let mut ema = Ema::new(&vs, recipe.ema_decay, |name| trains(name, recipe));
            if let Some(ema) = &mut ema {
                ema.resume(&optim_state).map_err(ckpt_error)?;
            }
            folder.publish(s)?;
            (s.clone(), ema)
        }
        _ => (
            TrainState {
                epoch: 0,
                step: 0,
                best_epoch: 0,
                best_val_bal_acc: -1.0,
                epochs_since_best: 0,
                loss_scale: if precision.scales_loss() {
                    65536.0
                } else {
                    1.0
                },
                stopped_early: false,
            },
            Ema::new(&vs, recipe.ema_decay, |name| trains(name, recipe)),
        ),
    };
    let metrics = MetricsLog::open(&folder.path(run_folder::METRICS), state.epoch)?;

    let loss_terms = LossTerms::new(recipe, &data.train.labels, device);
    let train_labels = data.train.label_tensor(device);
    let steps_per_epoch = steps_per_epoch(recipe, &data.train.labels);
    let abort_after: Option<usize> = std::env::var(ABORT_ENV).ok().and_then(|v| v.parse().ok());
    let hold_after: Option<usize> = std::env::var(HOLD_ENV).ok().and_then(|v| v.parse().ok());
    let (mut steps_here, mut epochs_here) = (0usize, 0usize);

    while state.epoch < recipe.epochs && !state.stopped_early {
        let epoch = state.epoch + 1;
        tch::manual_seed(
            (recipe.seed as i64)
                .wrapping_mul(7919)
                .wrapping_add(epoch as i64),
        );
        let order = epoch_order(&data.train.labels, recipe, epoch);
        let bar = epoch_bar(opts.progress, steps_per_epoch, epoch, recipe.epochs);
        let t0 = Instant::now();
        let (mut loss_sum, mut seen, mut lr) = (0.0, 0usize, 0.0);
        for b in 0..steps_per_epoch {
            let idx: Vec<i64> = batch_indices(&order, b, recipe.batch);
            let index = Tensor::from_slice(&idx).to(device);
            let target = train_labels.index_select(0, &index);
            lr = lr_at(recipe, state.step, steps_per_epoch);
            let value = train_step(
                &net,
                &mut optimizer,
                &inputs,
                &index,
                &target,
                &loss_terms,
                recipe,
                lr,
                precision,
                precision.scales_loss().then_some(&mut state.loss_scale),
            );
            if !value.is_finite() {
                let last_good = if state.epoch > 0 {
                    folder.path(run_folder::LAST).display().to_string()
                } else {
                    "none (it happened in the first epoch)".into()
                };
                return Err(TrainError::NonFiniteLoss {
                    epoch,
                    step: state.step + 1,
                    last_good,
                }
                .into());
            }
            state.step += 1;
            steps_here += 1;
            if let Some(ema) = &mut ema {
                ema.update(state.step);
            }
            loss_sum += value * idx.len() as f64;
            seen += idx.len();
            if abort_after == Some(steps_here) {
                std::process::abort();
            }
            if hold_after == Some(epochs_here) {
                interrupt::wait();
            }
            if let Some(stop) = interrupt::requested() {
                bar.finish_and_clear();
                return Err(TrainError::Interrupted {
                    stop,
                    epoch: state.epoch,
                    run_dir: run_dir.to_owned(),
                }
                .into());
            }
            bar.set_message(format!(
                "loss {:.4} lr {lr:.2e} {:.1} img/s",
                loss_sum / seen as f64,
                seen as f64 / t0.elapsed().as_secs_f64()
            ));
            bar.inc(1);
        }
        let images_per_s = seen as f64 / t0.elapsed().as_secs_f64();
        bar.finish_and_clear();

        // With a weight average, the average is validated and checkpointed.
        let mut saved_state = optimizer.state();
        if let Some(ema) = &mut ema {
            ema.swap();
            saved_state.extend(ema.trained_state());
        }
        let (val_loss, val) = inputs.evaluate(&net, &data.val, device);
        let external_auc = opts.external.as_ref().map(|e| e.auc(&net, device));
        let score = select.score(
            val.balanced_accuracy,
            external_auc.filter(|a| a.is_finite()),
        )?;
        if score > state.best_val_bal_acc {
            state.best_val_bal_acc = score;
            state.best_epoch = epoch;
            state.epochs_since_best = 0;
        } else {
            state.epochs_since_best += 1;
        }
        state.epoch = epoch;
        state.stopped_early = recipe.patience > 0 && state.epochs_since_best >= recipe.patience;
        let row = EpochRow {
            epoch,
            step: state.step,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss,
            val,
            lr,
            images_per_s,
            external_auc,
        };
        folder.commit(&vs, &saved_state, &state, || metrics.append(&row))?;
        epochs_here += 1;
        if let Some(ema) = &mut ema {
            ema.swap();
        }
        if opts.progress {
            let external = external_auc
                .map(|a| format!(", external AUC {a:.4}"))
                .unwrap_or_default();
            eprintln!(
                "epoch {epoch}/{}: train loss {:.4}, val loss {:.4}, val acc {:.4}, val bal acc {:.4}{external} (best {:?} {:.4} @ {}), {:.1} img/s, {:.0}s",
                recipe.epochs,
                row.train_loss,
                row.val_loss,
                row.val.accuracy,
                row.val.balanced_accuracy,
                select,
                state.best_val_bal_acc,
                state.best_epoch,
                images_per_s,
                t0.elapsed().as_secs_f64()
            );
            if state.stopped_early {
                eprintln!(
                    "early stop: no better val balanced accuracy for {} epochs",
                    recipe.patience
                );
            }
        }
    }
    Ok(RunSummary {
        run_dir: run_dir.to_owned(),
        epochs: state.epoch,
        steps: state.step,
        best_epoch: state.best_epoch,
        best_val_bal_acc: state.best_val_bal_acc,
        stopped_early: state.stopped_early,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the training loss adds to plain cross-entropy against the class imbalance.
#[derive(Default)]
struct LossTerms {
    /// Per-class weights (`weighted-loss`).
    weights: Option<Tensor>,
    /// Added to the logits before the loss: τ·ln(class prior) (`logit-adjusted`), or
    /// q·ln(class prior), the log of the prior a `balanced-sampler` of exponent q > 0 leaves.
    logit_offsets: Option<Tensor>,
}

impl LossTerms {
    fn new(recipe: &Recipe, labels: &[usize], device: Device) -> LossTerms {
        let to_tensor = |v: [f64; NUM_CLASSES]| Tensor::from_slice(&v.map(|x| x as f32)).to(device);
        let prior_offsets = |strength: f64| LossTerms {
            weights: None,
            logit_offsets: Some(to_tensor(class_log_priors(labels).map(|p| strength * p))),
        };
        match recipe.imbalance {
            Imbalance::WeightedLoss => LossTerms {
                weights: Some(to_tensor(class_weights(labels, recipe.class_weight_power))),
                logit_offsets: None,
            },
            Imbalance::LogitAdjusted => prior_offsets(recipe.logit_adjust_tau),
            Imbalance::BalancedSampler if recipe.sampler_exponent > 0.0 => {
                prior_offsets(recipe.sampler_exponent)
            }
            Imbalance::None | Imbalance::BalancedSampler | Imbalance::BalancedSubset => {
                LossTerms::default()
            }
        }
    }
}

/// One optimizer update on a batch; returns the loss (not finite: nothing was updated).
/// The forward pass runs under `precision`'s autocast. With `loss_scale` (fp16 on CUDA) the loss
/// is scaled before backward, the gradients unscaled, and a step with overflowing gradients is
/// skipped with the scale halved.
#[allow(clippy::too_many_arguments)]
fn train_step(
    net: &EfficientNetLite,
    optimizer: &mut Optimizer,
    inputs: &Inputs,
    index: &Tensor,
    target: &Tensor,
    loss_terms: &LossTerms,
    recipe: &Recipe,
    lr: f64,
    precision: Precision,
    loss_scale: Option<&mut f64>,
) -> f64 {
    optimizer.zero_grad();
    let mixup = (recipe.mixup_alpha > 0.0)
        .then(|| augment::Mixup::draw(recipe.mixup_alpha, index.size()[0], index.device()));
    let logits = precision.autocast(|| inputs.train_logits(net, index, recipe, mixup.as_ref()));
    let logits = logits.to_kind(Kind::Float);
    let logits = match &loss_terms.logit_offsets {
        Some(offsets) => logits + offsets,
        None => logits,
    };
    let cross_entropy = |target: &Tensor| {
        logits.cross_entropy_loss(
            target,
            loss_terms.weights.as_ref(),
            Reduction::Mean,
            -100,
            recipe.label_smoothing,
        )
    };
    let loss = match &mixup {
        Some(m) => m.loss(target, cross_entropy),
        None => cross_entropy(target),
    };
    let value = f64::try_from(&loss).unwrap_or(f64::NAN);
    if !value.is_finite() {
        return value;
    }
    match loss_scale {
        Some(scale) => {
            (&loss * *scale).backward();
            if optimizer.unscale_grads(1.0 / *scale) {
                optimizer.step(lr);
                if optimizer.updates % 2000 == 0 {
                    *scale *= 2.0;
                }
            } else {
                *scale /= 2.0;
            }
        }
        None => {
            loss.backward();
            optimizer.step(lr);
        }
    }
    value
}

/// Training throughput (images/s) of full fine-tune steps of `recipe` (its size, batch,
/// optimizer, `amp` and `channels_last`) on random images: what `scripts/bench` compares with PyTorch eager.
pub fn bench_full_steps(
    recipe: &Recipe,
    device: Device,
    pretrained: &Path,
    warmup: usize,
    steps: usize,
) -> anyhow::Result<f64> {
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let net = EfficientNetLite::new(&vs.root(), &ArchSpec::efficientnet_lite0(NUM_CLASSES));
    pretrained::load_imagenet(&vs, pretrained, Head::Fresh)?;
    if recipe.channels_last {
        precision::vars_to_channels_last(&vs);
    }
    let precision = Precision::choose(recipe.amp, device);
    // Same work as the PyTorch reference: no augmentation, dropout or label smoothing.
    let bench = Recipe {
        mode: Mode::Full,
        dropout: 0.0,
        label_smoothing: 0.0,
        augment: super::recipe::Augment {
            hflip: false,
            vflip: false,
            rot90: false,
            crop_min_scale: 1.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            ..Default::default()
        },
        ..recipe.clone()
    };
    let mut optimizer = Optimizer::new(
        bench.optimizer,
        trainable(&vs, &bench),
        bench.weight_decay,
        bench.momentum,
    );
    let (b, s) = (bench.batch as i64, i64::from(bench.preprocess.size));
    let images = Tensor::randint(256, [b, s, s, 3], (Kind::Uint8, device));
    let inputs = Inputs::Images {
        train: images.shallow_clone(),
        val: images,
    };
    let index = Tensor::arange(b, (Kind::Int64, device));
    let target = Tensor::randint(NUM_CLASSES as i64, [b], (Kind::Int64, device));
    let mut scale = 65536.0;
    let mut run = |n: usize| {
        for _ in 0..n {
            let scale = precision.scales_loss().then_some(&mut scale);
            train_step(
                &net,
                &mut optimizer,
                &inputs,
                &index,
                &target,
                &LossTerms::default(),
                &bench,
                1e-4,
                precision,
                scale,
            );
        }
        if device.is_cuda() {
            tch::Cuda::synchronize(0);
        }
    };
    run(warmup);
    let t0 = Instant::now();
    run(steps);
    Ok((steps as i64 * b) as f64 / t0.elapsed().as_secs_f64())
}

fn check_data(recipe: &Recipe, data: &TrainData) -> anyhow::Result<()> {
    for ex in [&data.train, &data.val] {
        if ex.is_empty() {
            return Err(TrainError::Empty {
                manifest: ex.manifest.clone(),
            }
            .into());
        }
        anyhow::ensure!(
            ex.preprocess == recipe.preprocess,
            "{}: the examples were prepared as {:?}, the recipe asks for {:?}",
            ex.manifest.display(),
            ex.preprocess,
            recipe.preprocess
        );
    }
    let missing = data.train.missing_classes();
    if !missing.is_empty() {
        let classes = missing
            .iter()
            .map(|c| c.code())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(TrainError::MissingClass {
            manifest: data.train.manifest.clone(),
            classes,
        }
        .into());
    }
    Ok(())
}

/// Updates per epoch: full batches only (BatchNorm needs more than one example), at least one.
fn steps_per_epoch(recipe: &Recipe, labels: &[usize]) -> usize {
    let n = epoch_order(labels, recipe, 1).len();
    (n / recipe.batch).max(1)
}

fn batch_indices(order: &[usize], b: usize, batch: usize) -> Vec<i64> {
    let end = ((b + 1) * batch).min(order.len());
    order[(b * batch).min(end)..end]
        .iter()
        .map(|&i| i as i64)
        .collect()
}

/// The trainable variables of a mode; everything else stops tracking gradients.
fn trainable(vs: &VarStore, recipe: &Recipe) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (name, t) in vars {
        if !t.requires_grad() {
            continue; // BatchNorm running statistics
        }
        if trains(&name, recipe) {
            out.push((name, t));
        } else {
            let _ = t.set_requires_grad(false);
        }
    }
    out
}

/// Whether the variable `name` (weight or BatchNorm statistic) changes in training, per mode.
fn trains(name: &str, recipe: &Recipe) -> bool {
    match recipe.mode {
        Mode::Full => true,
        Mode::Partial => !in_prefix(name, recipe.frozen_blocks),
        Mode::Probe => name.starts_with("_fc."),
    }
}

/// What the trainable part of the network reads, per mode.
enum Inputs {
    /// u8 NHWC images (on the training device when it is a GPU: the whole set stays resident).
    Images { train: Tensor, val: Tensor },
    /// Cached outputs of the frozen prefix (f16), and its length K.
    Blocks {
        train: CachedViews,
        val: Tensor,
        k: usize,
    },
    /// Cached pooled features (f16).
    Pooled { train: CachedViews, val: Tensor },
}

/// The cached frozen outputs of the training set: `views` versions of each of `n` examples,
/// stacked view after view.
struct CachedViews {
    rows: Tensor,
    n: i64,
    views: i64,
}

impl CachedViews {
    /// The cached rows of the examples `index` (f32), each from a randomly drawn version.
    fn batch(&self, index: &Tensor) -> Tensor {
        let rows = if self.views > 1 {
            let view = Tensor::randint(self.views, index.size(), (Kind::Int64, index.device()));
            view * self.n + index
        } else {
            index.shallow_clone()
        };
        self.rows.index_select(0, &rows).to_kind(Kind::Float)
    }
}

const EVAL_BATCH: i64 = 128;

impl Inputs {
    fn new(
        recipe: &Recipe,
        net: &EfficientNetLite,
        data: &TrainData,
        weights_id: &str,
        opts: &TrainOptions,
    ) -> anyhow::Result<Inputs> {
        let device = opts.device;
        let cached = |ex: &Examples, frozen, view| -> anyhow::Result<Tensor> {
            let f = frozen_features(net, ex, frozen, view, weights_id, device, &opts.cache_root)?;
            Ok(f.to(device))
        };
        let views = |frozen| -> anyhow::Result<CachedViews> {
            let mut parts = vec![cached(&data.train, frozen, View::Plain)?];
            for index in 1..recipe.cached_views {
                let view = View::Augmented {
                    index,
                    seed: recipe.seed,
                    augment: &recipe.augment,
                };
                parts.push(cached(&data.train, frozen, view)?);
            }
            Ok(CachedViews {
                rows: Tensor::cat(&parts, 0),
                n: data.train.len() as i64,
                views: parts.len() as i64,
            })
        };
        Ok(match recipe.mode {
            Mode::Full => Inputs::Images {
                train: data.train.images.to(device),
                val: data.val.images.to(device),
            },
            Mode::Partial => {
                let k = recipe.frozen_blocks;
                Inputs::Blocks {
                    train: views(Frozen::Blocks(k))?,
                    val: cached(&data.val, Frozen::Blocks(k), View::Plain)?,
                    k,
                }
            }
            Mode::Probe => Inputs::Pooled {
                train: views(Frozen::Pooled)?,
                val: cached(&data.val, Frozen::Pooled, View::Plain)?,
            },
        })
    }

    /// Training-mode logits of the examples `index`: augmented, then blended by `mixup`.
    fn train_logits(
        &self,
        net: &EfficientNetLite,
        index: &Tensor,
        recipe: &Recipe,
        mixup: Option<&augment::Mixup>,
    ) -> Tensor {
        let aug = &recipe.augment;
        let mix = |x: Tensor| match mixup {
            Some(m) => m.inputs(&x),
            None => x,
        };
        match self {
            Inputs::Images { train, .. } => {
                let x = mix(augment::standardized(&train.index_select(0, index), aug));
                let x = if recipe.channels_last {
                    precision::channels_last(&x)
                } else {
                    x
                };
                net.forward_t(&x, true)
            }
            Inputs::Blocks { train, k, .. } => {
                let h = mix(augment::dihedral(&train.batch(index), aug));
                let f = net.suffix_features_t(&h, *k, true);
                net.classify_t(&EfficientNetLite::pooled(&f), true)
            }
            Inputs::Pooled { train, .. } => net.classify_t(&mix(train.batch(index)), true),
        }
    }

    fn eval_logits(&self, net: &EfficientNetLite, index: &Tensor) -> Tensor {
        match self {
            Inputs::Images { val, .. } => {
                net.forward_t(&normalize(&val.index_select(0, index)), false)
            }
            Inputs::Blocks { val, k, .. } => {
                let f = net.suffix_features_t(
                    &val.index_select(0, index).to_kind(Kind::Float),
                    *k,
                    false,
                );
                net.classify_t(&EfficientNetLite::pooled(&f), false)
            }
            Inputs::Pooled { val, .. } => {
                net.classify_t(&val.index_select(0, index).to_kind(Kind::Float), false)
            }
        }
    }

    /// Validation loss (plain cross-entropy) and scores.
    fn evaluate(&self, net: &EfficientNetLite, val: &Examples, device: Device) -> (f64, Scores) {
        let n = val.len() as i64;
        let labels = val.label_tensor(device);
        let mut loss_sum = 0.0;
        let mut predicted = Vec::with_capacity(val.len());
        tch::no_grad(|| {
            for start in (0..n).step_by(EVAL_BATCH as usize) {
                let index =
                    Tensor::arange_start(start, (start + EVAL_BATCH).min(n), (Kind::Int64, device));
                let logits = self.eval_logits(net, &index).to_kind(Kind::Float);
                let target = labels.index_select(0, &index);
                let loss =
                    logits.cross_entropy_loss::<Tensor>(&target, None, Reduction::Sum, -100, 0.0);
                loss_sum += f64::try_from(loss).unwrap_or(f64::NAN);
                let p = Vec::<i64>::try_from(logits.argmax(1, false).to(Device::Cpu))
                    .unwrap_or_default();
                predicted.extend(p.into_iter().map(|p| p as usize));
            }
        });
        (
            loss_sum / n.max(1) as f64,
            Scores::new(&predicted, &val.labels),
        )
    }
}

fn epoch_bar(show: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "epoch {epoch}/{epochs} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {{msg}} (eta {{eta}})"
        ))
        .expect("the template is valid"),
    );
    bar
}

fn run_info(
    recipe: &Recipe,
    data: &TrainData,
    opts: &TrainOptions,
    spec: &ArchSpec,
    weights_id: &str,
) -> RunInfo {
    RunInfo {
        dermo_version: env!("CARGO_PKG_VERSION").into(),
        started_at: now(),
        command_line: opts.command_line.clone(),
        source_commit: source_commit(),
        device: device_name(opts.device),
        train_manifest: absolute(&data.train.manifest),
        train_manifest_hash: data.train.manifest_hash.clone(),
        val_manifest: absolute(&data.val.manifest),
        val_manifest_hash: data.val.manifest_hash.clone(),
        split_seed: split_seed(&data.train.manifest),
        seed: recipe.seed,
        mode: recipe.mode,
        cache_root: absolute(&opts.cache_root),
        pretrained: absolute(&opts.pretrained),
        pretrained_sha256: weights_id.to_owned(),
        arch: spec.clone(),
        resumed_at: Vec::new(),
        select: opts.select.unwrap_or_default(),
        external: external_id(opts),
        init: None,
    }
}

fn external_id(opts: &TrainOptions) -> Option<(PathBuf, String)> {
    opts.external
        .as_ref()
        .map(|e| (absolute(&e.path), e.hash.clone()))
}

/// `git rev-parse HEAD`, when the program runs inside a git checkout.
pub(crate) fn source_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The `seed` of `split.json` next to the training manifest, when there is one.
fn split_seed(train_manifest: &Path) -> Option<u64> {
    let path = train_manifest.parent()?.join("split.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v.get("seed")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_imbalance_strategy_builds_its_own_loss_terms() {
        // Three of class 5, one of class 0: priors 0.75 and 0.25.
        let labels = [5, 5, 5, 0];
        let recipe = |imbalance, tau| Recipe {
            imbalance,
            logit_adjust_tau: tau,
            class_weight_power: 1.0,
            ..Recipe::default()
        };
        let adjusted = LossTerms::new(&recipe(Imbalance::LogitAdjusted, 0.5), &labels, Device::Cpu);
        assert!(adjusted.weights.is_none());
        let offsets = Vec::<f32>::try_from(adjusted.logit_offsets.unwrap()).unwrap();
        assert!((offsets[5] - 0.5 * 0.75f32.ln()).abs() < 1e-6);
        assert!((offsets[0] - 0.5 * 0.25f32.ln()).abs() < 1e-6);
        let weighted = LossTerms::new(&recipe(Imbalance::WeightedLoss, 1.0), &labels, Device::Cpu);
        assert!(weighted.logit_offsets.is_none());
        let weights = Vec::<f32>::try_from(weighted.weights.unwrap()).unwrap();
        assert!((weights[0] - 3.0 * weights[5]).abs() < 1e-5);
        let sampled = LossTerms::new(
            &recipe(Imbalance::BalancedSampler, 1.0),
            &labels,
            Device::Cpu,
        );
        assert!(sampled.weights.is_none() && sampled.logit_offsets.is_none());
        // Square-root sampling leaves a prior ∝ √count: its log goes into the loss.
        let sqrt = LossTerms::new(
            &Recipe {
                sampler_exponent: 0.5,
                ..recipe(Imbalance::BalancedSampler, 1.0)
            },
            &labels,
            Device::Cpu,
        );
        let offsets = Vec::<f32>::try_from(sqrt.logit_offsets.unwrap()).unwrap();
        assert!((offsets[5] - offsets[0] - 0.5 * 3f32.ln()).abs() < 1e-6);
    }
}
