//! Frozen-prefix outputs, computed once per (manifest, preprocessing, K, weights) and kept on
//! disk, so that `partial` and `probe` training never run the frozen layers again.
//!
//! Stored as f16 safetensors in `CACHE_ROOT/features/<key>.safetensors` (tensor `features`).
//! Half precision halves memory; its ~3 significant digits are far below what changes a
//! prediction.

use super::augment;
use super::dataset::{normalized_batch, standardize, Examples};
use super::net::EfficientNetLite;
use super::recipe::Augment;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Which frozen output to cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frozen {
    /// Output of the stem and the first K blocks: `[N, C, h, w]`.
    Blocks(usize),
    /// Pooled head features of the whole network: `[N, 1280]`.
    Pooled,
}

/// Which version of the images the frozen layers see.
#[derive(Debug, Clone, Copy)]
pub enum View<'a> {
    /// The images as they are.
    Plain,
    /// Augmented copy number `index` (1, 2, …): a random resized crop and colour jitter of every
    /// image, drawn from a generator seeded by (`seed`, `index`), so the same recipe caches the
    /// same pixels.
    Augmented {
        index: usize,
        seed: u64,
        augment: &'a Augment,
    },
}

const BATCH: i64 = 64;

/// Cached frozen outputs of `examples`, computing and saving them on first use. `weights_id`
/// identifies the frozen weights (the pretrained file's hash).
pub fn frozen_features(
    net: &EfficientNetLite,
    examples: &Examples,
    frozen: Frozen,
    view: View,
    weights_id: &str,
    device: Device,
    cache_root: &Path,
) -> anyhow::Result<Tensor> {
    let path = cache_path(examples, frozen, view, weights_id, cache_root);
    if let Ok(t) = Tensor::read_safetensors(&path) {
        if let Some((_, t)) = t.into_iter().find(|(n, _)| n == "features") {
            if t.size().first() == Some(&(examples.len() as i64)) {
                return Ok(t);
            }
        }
    }
    eprintln!(
        "computing frozen features {frozen:?} of {} images ({}) of {} (once; cached in {})",
        examples.len(),
        match view {
            View::Plain => "as they are".to_string(),
            View::Augmented { index, .. } => format!("augmented copy {index}"),
        },
        examples.manifest.display(),
        path.display()
    );
    let features = compute(net, examples, frozen, view, device)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}.safetensors", crate::files::temp_suffix()));
    Tensor::write_safetensors(&[("features", &features)], &tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(features)
}

fn cache_path(
    examples: &Examples,
    frozen: Frozen,
    view: View,
    weights_id: &str,
    root: &Path,
) -> PathBuf {
    let mut h = Sha256::new();
    h.update(b"dermo-features-v1\n");
    h.update(examples.manifest_hash.as_bytes());
    h.update(serde_json::to_vec(&examples.preprocess).unwrap_or_default());
    h.update(format!("{frozen:?}").as_bytes());
    h.update(weights_id.as_bytes());
    let mut tag = match frozen {
        Frozen::Blocks(k) => format!("k{k}"),
        Frozen::Pooled => "pooled".into(),
    };
    if let View::Augmented {
        index,
        seed,
        augment,
    } = view
    {
        // Only what changes the cached pixels: the crop and the colour jitter.
        let a = augment;
        h.update(
            format!(
                "view {index} seed {seed} crop {} {} jitter {} {} {}",
                a.crop_min_scale, a.crop_max_aspect, a.brightness, a.contrast, a.saturation
            )
            .as_bytes(),
        );
        tag.push_str(&format!("-v{index}"));
    }
    root.join("features").join(format!(
        "{}px-{tag}-{}.safetensors",
        examples.preprocess.size,
        &hex::encode(h.finalize())[..16]
    ))
}

fn compute(
    net: &EfficientNetLite,
    examples: &Examples,
    frozen: Frozen,
    view: View,
    device: Device,
) -> anyhow::Result<Tensor> {
    if let View::Augmented { index, seed, .. } = view {
        tch::manual_seed(
            (seed as i64)
                .wrapping_mul(1_000_003)
                .wrapping_add(index as i64),
        );
    }
    let n = examples.len() as i64;
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("the template is valid"),
    );
    bar.set_message("features");
    let mut parts = Vec::new();
    tch::no_grad(|| {
        for start in (0..n).step_by(BATCH as usize) {
            let index =
                Tensor::arange_start(start, (start + BATCH).min(n), (Kind::Int64, Device::Cpu));
            let x = match view {
                View::Plain => normalized_batch(&examples.images, &index, device),
                View::Augmented { augment, .. } => {
                    let raw = examples.images.index_select(0, &index).to(device);
                    let x = raw.permute([0, 3, 1, 2]).to_kind(Kind::Float);
                    let x =
                        augment::color_jitter(&augment::random_resized_crop(&x, augment), augment);
                    standardize(&x)
                }
            };
            let f = match frozen {
                Frozen::Blocks(k) => net.prefix_t(&x, k, false),
                Frozen::Pooled => EfficientNetLite::pooled(&net.features_t(&x, false)),
            };
            parts.push(f.to_kind(Kind::Half).to(Device::Cpu));
            bar.inc(index.size()[0] as u64);
        }
    });
    bar.finish_and_clear();
    anyhow::ensure!(
        !parts.is_empty(),
        "{}: no examples",
        examples.manifest.display()
    );
    Ok(Tensor::cat(&parts, 0).contiguous())
}

/// A short identity of a weights file: the hex sha256 of its bytes.
pub fn file_id(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
