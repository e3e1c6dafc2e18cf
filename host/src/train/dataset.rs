//! The examples a run trains and validates on: the preprocessed u8 pixels of a manifest (from
//! the training cache of [`crate::data::cache`]) as one tensor, with labels and ids.

use crate::data::cache::{build_cache, Cache};
use crate::data::manifest::Manifest;
use anyhow::Context;
use dermo_model::preprocess::{MEAN, STD};
use dermo_model::{Class, PreprocessConfig, NUM_CLASSES};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// One split in memory.
pub struct Examples {
    /// `[N, S, S, 3]` u8, as the cache stores them (HWC).
    pub images: Tensor,
    pub labels: Vec<usize>,
    pub image_ids: Vec<String>,
    pub lesion_ids: Vec<String>,
    pub manifest: PathBuf,
    pub manifest_hash: String,
    pub preprocess: PreprocessConfig,
}

/// The training and validation splits of one run.
pub struct TrainData {
    pub train: Examples,
    pub val: Examples,
}

impl TrainData {
    /// Loads both manifests through the cache at `cache_root` (built on first use).
    pub fn load(
        train: &Path,
        val: &Path,
        cfg: &PreprocessConfig,
        cache_root: &Path,
    ) -> anyhow::Result<TrainData> {
        Ok(TrainData {
            train: Examples::load(train, cfg, cache_root)?,
            val: Examples::load(val, cfg, cache_root)?,
        })
    }
}

impl Examples {
    /// Builds (or reuses) the cache of `manifest` for `cfg` and reads it into memory.
    pub fn load(
        manifest: &Path,
        cfg: &PreprocessConfig,
        cache_root: &Path,
    ) -> anyhow::Result<Examples> {
        let dir = build_cache(manifest, cfg, cache_root)
            .with_context(|| format!("cannot cache manifest {}", manifest.display()))?;
        let cache = Cache::open(&dir)?;
        let expected = Manifest::load(manifest)?.hash();
        anyhow::ensure!(
            cache.meta.manifest_hash == expected,
            "cache {} was built from manifest {} but {} hashes to {}",
            dir.display(),
            cache.meta.manifest_hash,
            manifest.display(),
            expected
        );
        anyhow::ensure!(
            cache.meta.preprocess == *cfg,
            "cache {} holds {:?}, not the requested {:?}",
            dir.display(),
            cache.meta.preprocess,
            cfg
        );
        Ok(Examples::from_cache(&cache, manifest))
    }

    /// Copies an opened cache into memory.
    pub fn from_cache(cache: &Cache, manifest: &Path) -> Examples {
        let s = cache.size() as i64;
        let n = cache.len();
        let mut pixels = Vec::with_capacity(n * (s * s * 3) as usize);
        for i in 0..n {
            pixels.extend_from_slice(cache.image(i));
        }
        Examples {
            images: Tensor::from_slice(&pixels).reshape([n as i64, s, s, 3]),
            labels: (0..n).map(|i| cache.label(i)).collect(),
            image_ids: cache.meta.image_ids.clone(),
            lesion_ids: cache.meta.lesion_ids.clone(),
            manifest: manifest.to_owned(),
            manifest_hash: cache.meta.manifest_hash.clone(),
            preprocess: cache.meta.preprocess,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Examples per class, in logit order.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut c = [0; NUM_CLASSES];
        for &l in &self.labels {
            c[l] += 1;
        }
        c
    }

    /// Classes with no example.
    pub fn missing_classes(&self) -> Vec<Class> {
        let counts = self.class_counts();
        dermo_model::CLASSES
            .iter()
            .copied()
            .filter(|c| counts[c.index()] == 0)
            .collect()
    }

    /// Labels as an i64 tensor on `device`.
    pub fn label_tensor(&self, device: Device) -> Tensor {
        let l: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        Tensor::from_slice(&l).to(device)
    }
}

/// Selected images as normalized `[B, 3, S, S]` f32 on `device`: `(x − 127) / 128`, the
/// contract's normalization.
pub fn normalized_batch(images: &Tensor, index: &Tensor, device: Device) -> Tensor {
    let raw = images.index_select(0, &index.to(images.device()));
    normalize(&raw.to(device))
}

/// u8 NHWC → normalized f32 NCHW.
pub fn normalize(raw: &Tensor) -> Tensor {
    standardize(&raw.permute([0, 3, 1, 2]).to_kind(Kind::Float))
}

/// f32 NCHW in 0‥255 (after augmentation) → the network's input scale.
pub fn standardize(x: &Tensor) -> Tensor {
    (x - f64::from(MEAN)) / f64::from(STD)
}

/// An external validation set (see `data::external`) prepared at the run's size, in memory:
/// scored every epoch, never trained on.
#[derive(Debug)]
pub struct ExternalExamples {
    pub path: std::path::PathBuf,
    pub hash: String,
    /// u8 NHWC images.
    pub images: Tensor,
    pub melanoma: Vec<bool>,
}

impl ExternalExamples {
    pub fn load(path: &Path, cfg: &PreprocessConfig) -> anyhow::Result<ExternalExamples> {
        let set = crate::data::external::ExternalSet::load(path)?;
        let pixels = set.pixels(cfg)?;
        let s = i64::from(cfg.size);
        let flat: Vec<u8> = pixels
            .iter()
            .flat_map(|p| p.as_raw().iter().copied())
            .collect();
        Ok(ExternalExamples {
            path: path.to_owned(),
            hash: set.hash(),
            images: Tensor::from_slice(&flat).reshape([pixels.len() as i64, s, s, 3]),
            melanoma: set.records.iter().map(|r| r.melanoma).collect(),
        })
    }

    /// Melanoma-vs-rest ROC AUC of `net`'s melanoma probability (T = 1; NaN when one label is
    /// absent).
    pub fn auc(&self, net: &super::EfficientNetLite, device: Device) -> f64 {
        const BATCH: i64 = 64;
        let n = self.images.size()[0];
        let mel = dermo_model::Class::Mel.index() as i64;
        let mut scores = Vec::with_capacity(n as usize);
        tch::no_grad(|| {
            for start in (0..n).step_by(BATCH as usize) {
                let len = BATCH.min(n - start);
                let x = normalize(&self.images.narrow(0, start, len).to(device));
                let p = net
                    .forward_t(&x, false)
                    .softmax(1, Kind::Float)
                    .select(1, mel);
                let p = Vec::<f32>::try_from(p.to(Device::Cpu)).unwrap_or_default();
                scores.extend(p.into_iter().map(f64::from));
            }
        });
        dermo_calibration::roc_auc(&scores, &self.melanoma).unwrap_or(f64::NAN)
    }
}
