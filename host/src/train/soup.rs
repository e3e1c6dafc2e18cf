//! `dermo soup`: one model from the weight average of several runs ("model soups", Wortsman et
//! al. 2022).
//!
//! Runs fine-tuned from the same ImageNet weights on the same split stay close enough in weight
//! space that their average is itself a good network, often better than any one of them, at the
//! cost of a single model on the device. The greedy soup ranks the runs by validation balanced
//! accuracy and adds each one only when the average does not score lower on validation; the
//! uniform soup averages them all. WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot
//! models") takes one run and moves its weights part of the way back toward the ImageNet weights
//! it started from: `alpha · fine-tuned + (1 − alpha) · ImageNet` for every tensor (BatchNorm
//! statistics included), the task classifier kept, a lever for images unlike the training set's.
//! The result is an ordinary run folder (`best.safetensors`,
//! `config.toml`, `run.json`) that `dermo calibrate`, `eval` and `export` take as they are, plus
//! `soup.json`, the record of what went in and why.

use super::augment;
use super::dataset::{normalized_batch, Examples, ExternalExamples};
use super::device::DeviceChoice;
use super::metrics::Scores;
use super::predict::TrainedModel;
use super::pretrained;
use super::run_folder::{self, RunFolder};
use super::trainer::source_commit;
use crate::files::now;
use crate::files::write_atomic;
use anyhow::Context;
use clap::{Args, ValueEnum};
use dermo_model::arch::ArchSpec;
use dermo_model::NUM_CLASSES;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

pub const SOUP: &str = "soup.json";

/// `dermo soup`: average the best checkpoints of several runs into a new run folder.
#[derive(Args, Debug)]
pub struct SoupArgs {
    /// Run folders to average (their best checkpoints), at least two; one for wise-ft. They must
    /// share the ImageNet weights, the architecture, the input size and colour constancy, and the
    /// train and validation manifests.
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
    /// The validation manifest the runs were trained against (their `run.json` must name the
    /// same content); it ranks the runs and decides what the greedy soup keeps.
    #[arg(long)]
    pub val: PathBuf,
    /// greedy: best run first, each next one kept only if validation balanced accuracy does not
    /// drop; uniform: all runs, equally weighted; wise-ft: one run interpolated toward its
    /// ImageNet weights by --alpha.
    #[arg(long, value_enum, default_value_t = SoupMethod::Greedy)]
    pub method: SoupMethod,
    /// wise-ft only: the fine-tuned run's share, in [0, 1] (1 keeps the run, 0 is the ImageNet
    /// backbone under the run's classifier).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// uniform and wise-ft: then re-estimate every BatchNorm's running mean and variance on this
    /// many batches of 64 images of the run's own training manifest, or of --bn-data (a seeded
    /// draw), instead of averaging the runs' statistics like the weights. 32 batches take about a
    /// minute on 2 cores.
    #[arg(long, value_name = "BATCHES")]
    pub recompute_bn: Option<usize>,
    /// The images --recompute-bn shows the network: augmented as the run trained (its recipe's
    /// [augment]), or plain, as validation sees them.
    #[arg(long, value_enum, default_value_t = BnImages::Augmented)]
    pub bn_images: BnImages,
    /// --recompute-bn on the images of this external set (an `external.csv` of `dermo data
    /// import isic2017` or `binary-csv`; its labels are not read) instead of the run's training
    /// images: statistics from another clinic's own images (AdaBN).
    #[arg(long, value_name = "EXTERNAL_CSV", requires = "recompute_bn")]
    pub bn_data: Option<PathBuf>,
    /// New run folder for the soup.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, cuda or auto, for scoring on validation.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SoupMethod {
    Greedy,
    Uniform,
    WiseFt,
}

/// What `--recompute-bn` estimates the statistics on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BnImages {
    /// The run's training augmentation, as its training-time statistics were gathered.
    Augmented,
    /// The training images as validation sees them (no augmentation).
    Plain,
}

/// How `--recompute-bn` re-estimates the BatchNorm statistics of a uniform or wise-ft soup.
#[derive(Debug, Clone, PartialEq)]
pub struct BnRecompute {
    pub batches: usize,
    pub images: BnImages,
    /// An external set whose images give the statistics, or `None` for the run's training
    /// manifest.
    pub data: Option<PathBuf>,
}

/// The external set `--bn-data` named, as `soup.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BnData {
    pub path: PathBuf,
    pub set_hash: String,
}

/// `soup.json`: what went into the soup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoupRecord {
    pub method: SoupMethod,
    pub val_manifest: PathBuf,
    pub val_manifest_hash: String,
    /// Every run offered, best validation balanced accuracy first.
    pub ingredients: Vec<Ingredient>,
    /// The greedy decisions in order (empty for a uniform soup).
    pub steps: Vec<GreedyStep>,
    /// Validation balanced accuracy of the soup that was written.
    pub val_bal_acc: f64,
    /// wise-ft: the fine-tuned run's share of every weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// BatchNorm statistics re-estimated on this many training batches (`--recompute-bn`), of
    /// these images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recompute_bn: Option<(usize, BnImages)>,
    /// The external set those images came from (`--bn-data`); absent: the run's training images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn_data: Option<BnData>,
    pub created_at: String,
    pub command_line: Vec<String>,
    pub source_commit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ingredient {
    pub run: PathBuf,
    pub weights_sha256: String,
    pub val_bal_acc: f64,
    pub in_soup: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GreedyStep {
    pub added: PathBuf,
    /// Validation balanced accuracy of the average with this run added.
    pub val_bal_acc: f64,
    pub kept: bool,
}

pub fn run(a: SoupArgs) -> anyhow::Result<()> {
    let device = a.device.resolve()?;
    let record = soup(
        &a.runs,
        &a.val,
        Method::new(a.method, a.alpha)?,
        a.recompute_bn.map(|batches| BnRecompute {
            batches,
            images: a.bn_images,
            data: a.bn_data.clone(),
        }),
        &a.out,
        device,
        std::env::args().collect(),
    )?;
    for i in &record.ingredients {
        eprintln!(
            "{} {}: val balanced accuracy {:.4}",
            if i.in_soup { "+" } else { " " },
            i.run.display(),
            i.val_bal_acc
        );
    }
    if let Some(alpha) = record.alpha {
        eprint!("wise-ft at alpha {alpha}: ");
    }
    eprintln!(
        "soup of {} of {} runs: val balanced accuracy {:.4} → {}",
        record.ingredients.iter().filter(|i| i.in_soup).count(),
        record.ingredients.len(),
        record.val_bal_acc,
        a.out.join(run_folder::BEST).display()
    );
    Ok(())
}

/// A soup method with what it needs: wise-ft's alpha.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Greedy,
    Uniform,
    WiseFt { alpha: f64 },
}

impl Method {
    /// The method `--method` and `--alpha` name; alpha goes with wise-ft and nothing else.
    pub fn new(method: SoupMethod, alpha: Option<f64>) -> anyhow::Result<Method> {
        match (method, alpha) {
            (SoupMethod::WiseFt, Some(alpha)) if (0.0..=1.0).contains(&alpha) => {
                Ok(Method::WiseFt { alpha })
            }
            (SoupMethod::WiseFt, Some(alpha)) => {
                anyhow::bail!("--alpha must be in [0, 1] (the fine-tuned run's share), got {alpha}")
            }
            (SoupMethod::WiseFt, None) => {
                anyhow::bail!(
                    "--method wise-ft needs --alpha (the fine-tuned run's share, e.g. 0.7)"
                )
            }
            (_, Some(_)) => anyhow::bail!("--alpha goes with --method wise-ft only"),
            (SoupMethod::Greedy, None) => Ok(Method::Greedy),
            (SoupMethod::Uniform, None) => Ok(Method::Uniform),
        }
    }

    fn kind(self) -> SoupMethod {
        match self {
            Method::Greedy => SoupMethod::Greedy,
            Method::Uniform => SoupMethod::Uniform,
            Method::WiseFt { .. } => SoupMethod::WiseFt,
        }
    }
}

/// Makes the soup of `runs` in `out` and returns its record (also written to `out/soup.json`).
pub fn soup(
    runs: &[PathBuf],
    val: &Path,
    method: Method,
    recompute_bn: Option<BnRecompute>,
    out: &Path,
    device: tch::Device,
    command_line: Vec<String>,
) -> anyhow::Result<SoupRecord> {
    match &recompute_bn {
        Some(r) if r.batches == 0 => anyhow::bail!("--recompute-bn needs at least one batch"),
        Some(_) if method == Method::Greedy => anyhow::bail!(
            "--recompute-bn goes with --method uniform or wise-ft: the greedy soup scores a new \
             average at every step"
        ),
        _ => {}
    }
    match method {
        Method::WiseFt { .. } => anyhow::ensure!(
            runs.len() == 1,
            "wise-ft interpolates one run toward its ImageNet weights; {} runs were given",
            runs.len()
        ),
        _ => anyhow::ensure!(runs.len() >= 2, "a soup needs at least two runs"),
    }
    if out.exists() && out.read_dir().map_or(true, |mut d| d.next().is_some()) {
        anyhow::bail!(
            "{} already exists and is not empty; choose another --out",
            out.display()
        );
    }
    let models = runs
        .iter()
        .map(|r| TrainedModel::load(r, device))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = &models[0];
    let examples = Examples::load(val, &first.preprocess(), &first.info.cache_root)?;
    for (run, m) in runs.iter().zip(&models) {
        check_compatible(run, m, &runs[0], first, &examples)?;
    }

    let bar = ProgressBar::new(match method {
        Method::Greedy => 2 * runs.len() as u64 - 1,
        Method::Uniform | Method::WiseFt { .. } => runs.len() as u64 + 1,
    })
    .with_style(
        ProgressStyle::with_template("soup [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .expect("the template is valid"),
    );
    let score = |m: &TrainedModel| {
        let p = m.predict(&examples);
        let predicted: Vec<usize> = p.logits.iter().map(|l| argmax(l)).collect();
        bar.inc(1);
        Scores::new(&predicted, &p.labels).balanced_accuracy
    };
    // Uniform and wise-ft: the statistics re-estimated if asked, then the validation score.
    let mut bn_data = None;
    let mut finish = |m: &TrainedModel| -> anyhow::Result<f64> {
        if let Some(r) = &recompute_bn {
            bar.set_message("re-estimating BatchNorm statistics");
            bn_data = recompute_batch_norm(m, r)?;
        }
        Ok(score(m))
    };
    let mut ranked: Vec<(usize, f64)> = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            bar.set_message(format!("scoring {}", runs[i].display()));
            (i, score(m))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));

    // The soup lives in a copy of the best run's network; its weights are replaced by averages.
    let best = ranked[0].0;
    let mut soup_model = TrainedModel::load(&runs[best], device)?;
    let (members, steps, val_bal_acc) = match method {
        Method::Greedy => {
            let (mut members, mut current, mut steps) = (vec![best], ranked[0].1, Vec::new());
            for &(i, _) in &ranked[1..] {
                bar.set_message(format!("trying {}", runs[i].display()));
                let mut trial = members.clone();
                trial.push(i);
                average_into(&soup_model, &models, &trial);
                let s = score(&soup_model);
                let kept = s >= current;
                if kept {
                    members = trial;
                    current = s;
                }
                steps.push(GreedyStep {
                    added: runs[i].clone(),
                    val_bal_acc: s,
                    kept,
                });
            }
            average_into(&soup_model, &models, &members);
            (members, steps, current)
        }
        Method::Uniform => {
            let all: Vec<usize> = (0..models.len()).collect();
            average_into(&soup_model, &models, &all);
            (all, Vec::new(), finish(&soup_model)?)
        }
        Method::WiseFt { alpha } => {
            bar.set_message("interpolating toward ImageNet");
            toward_imagenet(&soup_model, &runs[best], alpha, device)?;
            (vec![best], Vec::new(), finish(&soup_model)?)
        }
    };
    bar.finish_and_clear();

    let ingredients = ranked
        .iter()
        .map(|&(i, s)| {
            Ok(Ingredient {
                run: runs[i].clone(),
                weights_sha256: file_sha256(&models[i].weights)?,
                val_bal_acc: s,
                in_soup: members.contains(&i),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let record = SoupRecord {
        method: method.kind(),
        val_manifest: std::path::absolute(val).unwrap_or_else(|_| val.to_owned()),
        val_manifest_hash: examples.manifest_hash.clone(),
        ingredients,
        steps,
        val_bal_acc,
        alpha: match method {
            Method::WiseFt { alpha } => Some(alpha),
            _ => None,
        },
        recompute_bn: recompute_bn.map(|r| (r.batches, r.images)),
        bn_data,
        created_at: now(),
        command_line: command_line.clone(),
        source_commit: source_commit(),
    };
    write_run(out, &mut soup_model, &runs[best], &record, command_line)?;
    Ok(record)
}

/// The soup must be one network with one preprocessing, scored on data none of its runs
/// trained on: the same weights origin, architecture, input and split for every run.
fn check_compatible(
    run: &Path,
    m: &TrainedModel,
    first_run: &Path,
    first: &TrainedModel,
    val: &Examples,
) -> anyhow::Result<()> {
    let differs = |what: &str| {
        anyhow::anyhow!(
            "{} and {} differ in {what}; a soup averages runs of one network, input and split",
            run.display(),
            first_run.display()
        )
    };
    if m.info.pretrained_sha256 != first.info.pretrained_sha256 {
        return Err(differs("their ImageNet weights (pretrained_sha256)"));
    }
    if m.info.arch != first.info.arch {
        return Err(differs("architecture"));
    }
    if m.preprocess() != first.preprocess() {
        return Err(differs("input size or colour constancy"));
    }
    if m.info.train_manifest_hash != first.info.train_manifest_hash {
        return Err(differs("training manifest"));
    }
    anyhow::ensure!(
        m.info.val_manifest_hash == val.manifest_hash,
        "{} was validated on another manifest than {} (run.json: {}); the soup is chosen on the \
         runs' own validation split",
        run.display(),
        val.manifest.display(),
        m.info.val_manifest.display()
    );
    Ok(())
}

/// Sets every variable of `soup` to the mean of that variable over `models[members]`.
fn average_into(soup: &TrainedModel, models: &[TrainedModel], members: &[usize]) {
    let vars: Vec<_> = members.iter().map(|&i| models[i].vs.variables()).collect();
    tch::no_grad(|| {
        for (name, mut target) in soup.vs.variables() {
            let sum = vars
                .iter()
                .map(|v| v[&name].to_kind(tch::Kind::Double))
                .reduce(|a, b| a + b)
                .expect("at least one member");
            target.copy_(&(sum / members.len() as f64).to_kind(target.kind()));
        }
    });
}

/// Sets every variable of `model` (loaded from `run`) to `alpha · itself + (1 − alpha) · ImageNet`,
/// with the ImageNet weights the run started from; the task classifier (`_fc.*`), which ImageNet
/// does not have, stays the run's.
fn toward_imagenet(
    model: &TrainedModel,
    run: &Path,
    alpha: f64,
    device: tch::Device,
) -> anyhow::Result<()> {
    let imagenet = TrainedModel::load(run, device)?;
    let path = pretrained::of_run(&imagenet.info)?;
    pretrained::load_imagenet(&imagenet.vs, &path, pretrained::Head::Fresh)?;
    let start = imagenet.vs.variables();
    tch::no_grad(|| {
        for (name, mut target) in model.vs.variables() {
            let mixed = target.to_kind(tch::Kind::Double) * alpha
                + start[&name].to_kind(tch::Kind::Double) * (1.0 - alpha);
            target.copy_(&mixed.to_kind(target.kind()));
        }
    });
    Ok(())
}

/// Replaces every BatchNorm's running mean and variance in `model` with the mean over `batches`
/// batches of 64 images (a draw seeded by 0, wrapping around; augmented by the run's recipe with
/// libtorch's generator seeded by 0, or plain) of each batch's own statistics ("precise
/// BatchNorm", Wu & Johnson 2021). The images are the run's training manifest's, or those of the
/// external set `r.data` names (returned, for `soup.json`). A forward pass in training mode
/// moves a running statistic r to (1 − m)·r + m·b, with b the batch's statistic and m the
/// network's momentum; with r set to 0 before each batch, b is read back as r_after / m. In
/// training mode BatchNorm normalizes with the batch's own statistics, so the result does not
/// depend on the statistics the model held before. The loaded network has no stochastic depth,
/// and the pooled classifier (with its dropout) is not run.
fn recompute_batch_norm(model: &TrainedModel, r: &BnRecompute) -> anyhow::Result<Option<BnData>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    const BATCH: usize = 64;
    let m = ArchSpec::efficientnet_lite0(NUM_CLASSES).bn_momentum;
    let (pool, bn_data) = match &r.data {
        Some(path) => {
            let set = ExternalExamples::load(path, &model.preprocess())?;
            let data = BnData {
                path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
                set_hash: set.hash,
            };
            (set.images, Some(data))
        }
        None => {
            let manifest = &model.info.train_manifest;
            let train = Examples::load(manifest, &model.preprocess(), &model.info.cache_root)?;
            anyhow::ensure!(
                train.manifest_hash == model.info.train_manifest_hash,
                "{} is not the manifest the run trained on (run.json records sha256 {})",
                manifest.display(),
                model.info.train_manifest_hash
            );
            (train.images, None)
        }
    };
    let mut order: Vec<i64> = (0..pool.size()[0]).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let stats: Vec<Tensor> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(name, _)| name.ends_with(".running_mean") || name.ends_with(".running_var"))
        .map(|(_, t)| t)
        .collect();
    anyhow::ensure!(!stats.is_empty(), "the network has no BatchNorm statistics");
    let device = model.vs.device();
    tch::manual_seed(0);
    tch::no_grad(|| {
        let mut sums: Vec<Tensor> = stats
            .iter()
            .map(|t| t.zeros_like().to_kind(Kind::Double))
            .collect();
        for b in 0..r.batches {
            let index: Vec<i64> = (0..BATCH)
                .map(|i| order[(b * BATCH + i) % order.len()])
                .collect();
            for stat in &stats {
                let _ = stat.shallow_clone().zero_();
            }
            let index = Tensor::from_slice(&index);
            let x = match r.images {
                BnImages::Plain => normalized_batch(&pool, &index, device),
                BnImages::Augmented => {
                    let raw = pool.index_select(0, &index).to(device);
                    augment::standardized(&raw, &model.recipe.augment)
                }
            };
            let _ = model.net.features_t(&x, true);
            for (sum, after) in sums.iter_mut().zip(&stats) {
                *sum += after.to_kind(Kind::Double) / m;
            }
        }
        for (sum, mut stat) in sums.iter().zip(stats) {
            stat.copy_(&(sum / r.batches as f64).to_kind(stat.kind()));
        }
    });
    Ok(bn_data)
}

/// Writes the soup's run folder: weights, the best run's recipe and provenance, `soup.json`.
fn write_run(
    out: &Path,
    soup: &mut TrainedModel,
    best_run: &Path,
    record: &SoupRecord,
    command_line: Vec<String>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let folder = RunFolder::new(out);
    let weights = folder.path(run_folder::BEST);
    // tch picks the file format from the extension, so the temporary name keeps it.
    let partial = out.join(format!("partial-{}", run_folder::BEST));
    soup.vs
        .save(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &weights)
        .with_context(|| format!("cannot write {}", weights.display()))?;
    let recipe = std::fs::read(RunFolder::new(best_run).path(run_folder::CONFIG))?;
    folder.write(run_folder::CONFIG, &recipe)?;
    let mut info = soup.info.clone();
    info.started_at = record.created_at.clone();
    info.command_line = command_line;
    info.source_commit = record.source_commit.clone();
    info.resumed_at.clear();
    folder.write(run_folder::RUN, &serde_json::to_vec_pretty(&info)?)?;
    write_atomic(&out.join(SOUP), &serde_json::to_vec_pretty(record)?)
        .with_context(|| format!("cannot write {}", out.join(SOUP).display()))
}

fn argmax(l: &[f32]) -> usize {
    (0..l.len())
        .max_by(|&a, &b| l[a].total_cmp(&l[b]))
        .unwrap_or(0)
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
