//! The two ways dermo runs a classifier on the host — a run's checkpoint with libtorch, or an
//! exported model file with tract (as the device does) — behind one trait, and the scoring of a
//! whole manifest through it.

use super::tta::Tta;
use crate::data::cache::{build_cache, Cache};
use crate::data::manifest::Manifest;
use crate::signing::SignatureStatus;
use crate::train::net::EfficientNetLite;
use crate::train::predict::TrainedModel;
use crate::train::pretrained;
use anyhow::Context;
use dermo_model::arch::ArchSpec;
use dermo_model::preprocess::normalize_into;
use dermo_model::{
    ClassMaps, ModelFile, OodSpec, PreprocessConfig, Runtime, TrustPolicy, NUM_CLASSES,
};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;

/// Logits and OOD features of a batch of normalized `[B, 3, S, S]` images.
pub trait Network {
    /// What it is, for reports: `checkpoint RUN` or `model file PATH`.
    fn describe(&self) -> String;
    /// The preprocessing it was trained with.
    fn preprocess(&self) -> PreprocessConfig;
    /// Runs a batch given as `batch` images of `3 × S × S` floats each.
    fn run(&mut self, data: &[f32], batch: usize) -> anyhow::Result<Batch>;
    /// What [`Batch::ood`] is.
    fn ood_features(&self) -> OodFeatures;
    /// The class-activation maps of a batch (`dermo_model::maps`); `None` for a model file
    /// exported without them.
    fn class_maps(&mut self, data: &[f32], batch: usize) -> anyhow::Result<Option<ClassMaps>>;
}

/// What the OOD rule reads: the pooled output of `block` (`None`: the last feature map),
/// computed by the classifier's own weights or, with `frozen_backbone`, by a frozen copy of the
/// ImageNet stem and blocks (see `OodSpec::frozen_backbone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OodFeatures {
    pub block: Option<usize>,
    pub frozen_backbone: bool,
}

impl OodFeatures {
    /// What an OOD rule reads (the default, the last feature map, when there is none).
    pub fn of(spec: Option<&OodSpec>) -> Self {
        spec.map_or_else(Self::default, |o| OodFeatures {
            block: o.block,
            frozen_backbone: o.frozen_backbone,
        })
    }

    /// In words, for reports.
    pub fn describe(&self) -> String {
        match (self.block, self.frozen_backbone) {
            (Some(b), true) => {
                format!("the pooled output of block {b} of the frozen ImageNet copy")
            }
            (Some(b), false) => format!("the pooled output of block {b}"),
            (None, _) => "the pooled last feature map".into(),
        }
    }
}

/// Output of [`Network::run`].
pub struct Batch {
    pub logits: Vec<[f32; NUM_CLASSES]>,
    /// What the OOD rule reads per image, pooled features (see `OodSpec::block`); empty when the
    /// network does not expose them.
    pub ood: Vec<Vec<f32>>,
}

/// A run folder's best checkpoint, run with libtorch.
pub struct Checkpoint {
    model: TrainedModel,
    run_dir: PathBuf,
    ood: OodFeatures,
    /// The ImageNet network that computes [`Batch::ood`] when `ood.frozen_backbone`.
    frozen: Option<(VarStore, EfficientNetLite)>,
}

impl Checkpoint {
    pub fn load(run_dir: &Path, device: tch::Device) -> anyhow::Result<Self> {
        Ok(Checkpoint {
            model: TrainedModel::load(run_dir, device)?,
            run_dir: run_dir.to_owned(),
            ood: OodFeatures::default(),
            frozen: None,
        })
    }

    /// Makes [`Batch::ood`] what `ood` names, as the exported file's `ood_features` output will
    /// be. A frozen backbone is the ImageNet weights the run started from (`run.json`).
    pub fn set_ood(&mut self, ood: OodFeatures) -> anyhow::Result<()> {
        if let Some(b) = ood.block {
            let blocks = self.model.net.num_blocks();
            anyhow::ensure!(
                b < blocks,
                "--ood-block {b}: the network has blocks 0..{} only",
                blocks - 1
            );
        }
        self.frozen = match ood.frozen_backbone {
            false => None,
            true => {
                anyhow::ensure!(
                    ood.block.is_some(),
                    "the frozen ImageNet copy serves a block's output, not the last feature map: give --ood-block N"
                );
                let path = pretrained::of_run(&self.model.info)?;
                let vs = VarStore::new(self.model.vs.device());
                let net =
                    EfficientNetLite::new(&vs.root(), &ArchSpec::efficientnet_lite0(NUM_CLASSES));
                pretrained::load_imagenet(&vs, &path, pretrained::Head::Fresh)?;
                Some((vs, net))
            }
        };
        self.ood = ood;
        Ok(())
    }

    /// The cache root the run trained with, so evaluation reuses its image caches.
    pub fn cache_root(&self) -> PathBuf {
        self.model.info.cache_root.clone()
    }
}

impl Network for Checkpoint {
    fn describe(&self) -> String {
        format!("checkpoint {}", self.model.weights.display())
    }

    fn preprocess(&self) -> PreprocessConfig {
        self.model.preprocess()
    }

    fn run(&mut self, data: &[f32], batch: usize) -> anyhow::Result<Batch> {
        let s = self.model.recipe.preprocess.size as i64;
        let device = self.model.vs.device();
        let net = &self.model.net;
        let (logits, ood) = tch::no_grad(|| {
            let x = tch::Tensor::from_slice(data)
                .reshape([batch as i64, 3, s, s])
                .to_device(device);
            let k = self.ood.block.map_or(0, |b| b + 1);
            let h = net.prefix_t(&x, k, false);
            let pooled = EfficientNetLite::pooled(&net.suffix_features_t(&h, k, false));
            let logits = net.classify_t(&pooled, false);
            let ood = match (self.ood.block, &self.frozen) {
                (Some(_), Some((_, frozen))) => {
                    to_rows(&EfficientNetLite::pooled(&frozen.prefix_t(&x, k, false)))
                }
                (Some(_), None) => to_rows(&EfficientNetLite::pooled(&h)),
                (None, _) => to_rows(&pooled),
            };
            (to_rows(&logits), ood)
        });
        let logits = logits
            .into_iter()
            .map(|r| {
                <[f32; NUM_CLASSES]>::try_from(r.as_slice()).with_context(|| {
                    format!(
                        "{}: the network has {} outputs, not {NUM_CLASSES}",
                        self.run_dir.display(),
                        r.len()
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Batch { logits, ood })
    }

    fn ood_features(&self) -> OodFeatures {
        self.ood
    }

    fn class_maps(&mut self, data: &[f32], batch: usize) -> anyhow::Result<Option<ClassMaps>> {
        let s = self.model.recipe.preprocess.size as i64;
        let device = self.model.vs.device();
        let net = &self.model.net;
        let maps = tch::no_grad(|| {
            let x = tch::Tensor::from_slice(data)
                .reshape([batch as i64, 3, s, s])
                .to_device(device);
            net.class_maps_t(&net.features_t(&x, false))
                .to_kind(tch::Kind::Float)
                .to_device(tch::Device::Cpu)
                .contiguous()
        });
        let side = *maps.size().last().unwrap_or(&0) as usize;
        Ok(Some(ClassMaps {
            side,
            values: Vec::<f32>::try_from(maps.flatten(0, -1))?,
        }))
    }
}

fn to_rows(t: &tch::Tensor) -> Vec<Vec<f32>> {
    let t = t
        .to_kind(tch::Kind::Float)
        .to_device(tch::Device::Cpu)
        .contiguous();
    Vec::<Vec<f32>>::try_from(t).unwrap_or_default()
}

/// A model file (on disk, or built in memory by export), run with tract.
pub struct ModelFileNetwork {
    label: String,
    file: ModelFile,
    runtime: Runtime,
}

impl ModelFileNetwork {
    /// Opens a model file. Unsigned files, and files whose signature fails, still run (host tools
    /// check their own exports), but a warning is printed and the signature's status is part of
    /// the label that reports carry. `keys`: trusted public keys (none: the `*.pub` beside it).
    pub fn open(path: &Path, keys: &[PathBuf]) -> anyhow::Result<Self> {
        let file = ModelFile::open(path, &TrustPolicy::unsigned())?;
        let status = SignatureStatus::check(path, &file.bytes, keys);
        if status.is_warning() {
            eprintln!("warning: {}: {status}", path.display());
        }
        let label = format!(
            "model file {} (sha256 {}, {status})",
            file.path.display(),
            &file.sha256[..16]
        );
        Self::new(label, file)
    }

    /// Runs `file`; `label` names it in reports and errors.
    pub fn new(label: String, file: ModelFile) -> anyhow::Result<Self> {
        let runtime = Runtime::new(&file)?;
        Ok(ModelFileNetwork {
            label,
            file,
            runtime,
        })
    }

    pub fn file(&self) -> &ModelFile {
        &self.file
    }
}

impl Network for ModelFileNetwork {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn preprocess(&self) -> PreprocessConfig {
        let input = &self.file.metadata.input;
        input.preprocess
    }

    fn run(&mut self, data: &[f32], batch: usize) -> anyhow::Result<Batch> {
        let s = self.runtime.input_size();
        let input = dermo_model::Tensor {
            shape: [batch, 3, s, s],
            data: data.to_vec(),
        };
        let out = self.runtime.run(&input)?;
        let logits = (0..batch)
            .map(|i| {
                let mut a = [0f32; NUM_CLASSES];
                a.copy_from_slice(out.logits_of(i));
                a
            })
            .collect();
        let ood = (0..batch)
            .filter_map(|i| out.ood_features_of(i).map(<[f32]>::to_vec))
            .collect();
        Ok(Batch { logits, ood })
    }

    fn ood_features(&self) -> OodFeatures {
        OodFeatures::of(self.file.metadata.calibration.ood.as_ref())
    }

    fn class_maps(&mut self, data: &[f32], batch: usize) -> anyhow::Result<Option<ClassMaps>> {
        let s = self.runtime.input_size();
        let input = dermo_model::Tensor {
            shape: [batch, 3, s, s],
            data: data.to_vec(),
        };
        Ok(self.runtime.run(&input)?.class_maps)
    }
}

/// Everything a network said about one manifest, in manifest order.
#[derive(Debug, Clone)]
pub struct Scored {
    /// `[images, classes]` logits (averaged over the TTA views).
    pub logits: Array2<f64>,
    /// What the OOD rule reads per image (averaged over the views); empty when not exposed.
    pub ood: Vec<Vec<f32>>,
    pub labels: Vec<usize>,
    pub image_ids: Vec<String>,
    pub lesion_ids: Vec<String>,
    pub manifest_hash: String,
}

/// Runs `network` over every image of `manifest` (read through the image cache under
/// `cache_root`), averaging logits and OOD features over the TTA views.
pub fn score_manifest(
    network: &mut dyn Network,
    manifest: &Path,
    tta: Tta,
    cache_root: &Path,
    progress: bool,
) -> anyhow::Result<Scored> {
    let (cache, manifest_hash) = open_cache(manifest, &network.preprocess(), cache_root)?;
    let images = (0..cache.len()).map(|i| cached_image(&cache, i));
    let (logits, ood) = score_images(network, images, cache.len(), tta, progress)?;
    let n = cache.len();
    Ok(Scored {
        logits,
        ood,
        labels: (0..n).map(|i| cache.label(i)).collect(),
        image_ids: cache.meta.image_ids.clone(),
        lesion_ids: cache.meta.lesion_ids.clone(),
        manifest_hash,
    })
}

/// The image cache of `manifest` for the preprocessing `cfg` (built when missing) and the
/// manifest's hash; an error when it is empty or belongs to another manifest.
pub fn open_cache(
    manifest: &Path,
    cfg: &PreprocessConfig,
    cache_root: &Path,
) -> anyhow::Result<(Cache, String)> {
    let dir = build_cache(manifest, cfg, cache_root)
        .with_context(|| format!("cannot cache manifest {}", manifest.display()))?;
    let cache = Cache::open(&dir)?;
    let manifest_hash = Manifest::load(manifest)?.hash();
    anyhow::ensure!(
        cache.meta.manifest_hash == manifest_hash,
        "cache {} does not belong to {}",
        dir.display(),
        manifest.display()
    );
    anyhow::ensure!(
        !cache.is_empty(),
        "{}: the manifest has no images",
        manifest.display()
    );
    Ok((cache, manifest_hash))
}

/// Image `i` of a cache, prepared (resized, colour-corrected) as the network reads it.
pub fn cached_image(cache: &Cache, i: usize) -> anyhow::Result<RgbImage> {
    let side = cache.size();
    RgbImage::from_raw(side, side, cache.image(i).to_vec())
        .with_context(|| format!("image cache: image {i} has the wrong size"))
}

/// Images `range` of a cache as one normalized `[n, 3, S, S]` batch, written into `batch`.
pub fn normalized_batch(
    cache: &Cache,
    range: std::ops::Range<usize>,
    batch: &mut Vec<f32>,
) -> anyhow::Result<()> {
    let side = cache.size() as usize;
    let plane = 3 * side * side;
    batch.resize(range.len() * plane, 0f32);
    for (slot, i) in batch.chunks_exact_mut(plane).zip(range) {
        normalize_into(&cached_image(cache, i)?, slot);
    }
    Ok(())
}

/// Runs `network` over `n` prepared images (already at the network's size), averaging logits
/// and OOD features over the TTA views: `[n, classes]` logits and the OOD rows (empty when the
/// network exposes none).
pub fn score_images(
    network: &mut dyn Network,
    images: impl Iterator<Item = anyhow::Result<RgbImage>>,
    n: usize,
    tta: Tta,
    progress: bool,
) -> anyhow::Result<(Array2<f64>, Vec<Vec<f32>>)> {
    const BATCH: usize = 32;
    let views = tta.views();
    let bar = progress_bar(n as u64, progress);
    let mut logits = Array2::<f64>::zeros((n, NUM_CLASSES));
    let mut ood: Vec<Vec<f32>> = Vec::with_capacity(n);
    let mut images = images.peekable();
    let mut start = 0;
    let mut buffer = Vec::new();
    while images.peek().is_some() {
        let chunk: Vec<RgbImage> = images.by_ref().take(BATCH).collect::<anyhow::Result<_>>()?;
        let plane = 3 * (chunk[0].width() * chunk[0].height()) as usize;
        buffer.resize(chunk.len() * plane, 0f32);
        let mut sums: Vec<Vec<f32>> = vec![Vec::new(); chunk.len()];
        for view in &views {
            for (slot, img) in buffer.chunks_exact_mut(plane).zip(&chunk) {
                normalize_into(&view.apply(img), slot);
            }
            let out = network.run(&buffer, chunk.len())?;
            anyhow::ensure!(
                out.logits.len() == chunk.len(),
                "{} returned {} results for {} images",
                network.describe(),
                out.logits.len(),
                chunk.len()
            );
            for (k, row) in out.logits.iter().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    logits[[start + k, c]] += f64::from(v) / views.len() as f64;
                }
            }
            for (sum, f) in sums.iter_mut().zip(&out.ood) {
                if sum.is_empty() {
                    sum.resize(f.len(), 0.0);
                }
                for (s, v) in sum.iter_mut().zip(f) {
                    *s += v / views.len() as f32;
                }
            }
        }
        ood.extend(sums.into_iter().filter(|s| !s.is_empty()));
        start += chunk.len();
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    anyhow::ensure!(start == n, "scored {start} images, expected {n}");
    if ood.len() != n {
        ood.clear();
    }
    Ok((logits, ood))
}

/// A progress bar on stderr, hidden when `visible` is false.
pub fn progress_bar(len: u64, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("the template is valid"),
    );
    bar.set_message("scoring");
    bar
}
