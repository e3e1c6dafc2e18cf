//! The training cache: every record decoded and preprocessed once, stored as one flat u8 file
//! (`count × S × S × 3`, HWC, record order) that the trainer memory-maps.
//!
//! A cache lives in `CACHE_ROOT/<size>px-<key>`, where the key hashes the manifest hash and the
//! preprocessing parameters; building an existing key does nothing. A build writes into a
//! temporary folder and renames it into place, so a crash never leaves a half cache behind.

use super::manifest::{Manifest, Record, Variant};
use super::progress;
use crate::files::write_atomic;
use anyhow::Context;
use dermo_model::preprocess::{apply_mask, decode_file, decode_mask_file, prepare};
use dermo_model::PreprocessConfig;
use memmap2::{Mmap, MmapMut};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// Bumped whenever the pixel file's layout or the variant handling changes.
const FORMAT: &str = "dermo-cache-v1 masked=apply_mask-then-prepare";
const META_FILE: &str = "meta.json";
const PIXELS_FILE: &str = "pixels.u8";

/// What a cache holds, saved as `meta.json` beside the pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheMeta {
    pub manifest_hash: String,
    pub preprocess: PreprocessConfig,
    pub count: usize,
    pub image_ids: Vec<String>,
    /// Class index ([`dermo_model::Class::index`]) per image.
    pub labels: Vec<u8>,
    pub lesion_ids: Vec<String>,
    pub variants: Vec<Variant>,
}

/// Why a cache cannot be opened; every variant names the folder or file.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read cache file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cache metadata {path} is invalid: {source}")]
    Meta {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cache {path} is inconsistent: {problem}")]
    Inconsistent { path: PathBuf, problem: String },
}

/// An opened cache: metadata plus the memory-mapped pixels.
pub struct Cache {
    pub meta: CacheMeta,
    pixels: Mmap,
    image_bytes: usize,
}

impl Cache {
    /// Opens a cache folder (one `build_cache` returned) and checks its size against its metadata.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let meta_path = dir.join(META_FILE);
        let text = fs::read_to_string(&meta_path).map_err(|source| CacheError::Io {
            path: meta_path.clone(),
            source,
        })?;
        let meta: CacheMeta = serde_json::from_str(&text).map_err(|source| CacheError::Meta {
            path: meta_path.clone(),
            source,
        })?;
        let inconsistent = |problem: String| CacheError::Inconsistent {
            path: dir.to_owned(),
            problem,
        };
        let n = meta.count;
        if [
            meta.image_ids.len(),
            meta.labels.len(),
            meta.lesion_ids.len(),
        ] != [n, n, n]
        {
            return Err(inconsistent(format!(
                "count is {n} but the metadata lists {} ids, {} labels and {} lesion ids",
                meta.image_ids.len(),
                meta.labels.len(),
                meta.lesion_ids.len()
            )));
        }
        if let Some(&bad) = meta
            .labels
            .iter()
            .find(|&&l| usize::from(l) >= dermo_model::NUM_CLASSES)
        {
            return Err(inconsistent(format!("label index {bad} is not a class")));
        }
        let image_bytes = image_bytes(meta.preprocess.size);
        let pixels_path = dir.join(PIXELS_FILE);
        let io = |source| CacheError::Io {
            path: pixels_path.clone(),
            source,
        };
        let file = fs::File::open(&pixels_path).map_err(io)?;
        // SAFETY: a cache folder is written once, renamed into place and never modified, so the
        // mapped file does not change under us (deleting it keeps the mapping valid on Unix).
        let pixels = unsafe { Mmap::map(&file) }.map_err(io)?;
        if pixels.len() != n * image_bytes {
            return Err(inconsistent(format!(
                "{PIXELS_FILE} has {} bytes, expected {n} images × {image_bytes} bytes",
                pixels.len()
            )));
        }
        Ok(Cache {
            meta,
            pixels,
            image_bytes,
        })
    }

    pub fn len(&self) -> usize {
        self.meta.count
    }

    pub fn is_empty(&self) -> bool {
        self.meta.count == 0
    }

    /// Side of the square images, in pixels.
    pub fn size(&self) -> u32 {
        self.meta.preprocess.size
    }

    /// Image `i` as `S × S × 3` u8, rows top to bottom, RGB interleaved. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * self.image_bytes..(i + 1) * self.image_bytes]
    }

    /// Class index of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> usize {
        usize::from(self.meta.labels[i])
    }
}

fn image_bytes(size: u32) -> usize {
    size as usize * size as usize * 3
}

/// The cache folder name for a manifest and preprocessing: `<size>px-<16 hex digits>`.
pub fn cache_key(manifest: &Manifest, cfg: &PreprocessConfig) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update(manifest.hash().as_bytes());
    h.update(serde_json::to_vec(cfg).expect("PreprocessConfig serializes"));
    format!("{}px-{}", cfg.size, &hex::encode(h.finalize())[..16])
}

/// Builds (or finds) the cache of `manifest` under `cache_root` and returns its folder.
///
/// Masked records get their lesion mask applied before [`prepare`], so the black background is
/// resized exactly as the device would see a masked frame.
pub fn build_cache(
    manifest: &Path,
    cfg: &PreprocessConfig,
    cache_root: &Path,
) -> anyhow::Result<PathBuf> {
    ensure_cache(manifest, cfg, cache_root).map(|b| b.dir)
}

/// The outcome of [`ensure_cache`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheBuild {
    pub dir: PathBuf,
    /// False when the cache already existed and nothing was done.
    pub built: bool,
}

/// [`build_cache`], also saying whether any work was done.
pub fn ensure_cache(
    manifest: &Path,
    cfg: &PreprocessConfig,
    cache_root: &Path,
) -> anyhow::Result<CacheBuild> {
    let m = Manifest::load(manifest)?;
    anyhow::ensure!(cfg.size > 0, "cache image size must be at least 1 pixel");
    let dir = cache_root.join(cache_key(&m, cfg));
    if dir.join(META_FILE).is_file() {
        return Ok(CacheBuild { dir, built: false });
    }
    fs::create_dir_all(cache_root)
        .with_context(|| format!("cannot create cache root {}", cache_root.display()))?;
    let tmp = cache_root.join(format!(
        ".tmp-{}-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        crate::files::temp_suffix()
    ));
    let result = write_cache(&m, cfg, &tmp).and_then(|()| publish(&tmp, &dir));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| CacheBuild { dir, built: true })
}

fn write_cache(m: &Manifest, cfg: &PreprocessConfig, tmp: &Path) -> anyhow::Result<()> {
    if tmp.exists() {
        fs::remove_dir_all(tmp).with_context(|| format!("cannot clear stale {}", tmp.display()))?;
    }
    fs::create_dir_all(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let pixels_path = tmp.join(PIXELS_FILE);
    let n_bytes = image_bytes(cfg.size);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&pixels_path)
        .with_context(|| format!("cannot create {}", pixels_path.display()))?;
    let total = (m.len() * n_bytes) as u64;
    file.set_len(total)
        .with_context(|| format!("cannot size {} to {total} bytes", pixels_path.display()))?;
    if total > 0 {
        // SAFETY: the file was just created by this process inside a private temporary folder.
        let mut map = unsafe { MmapMut::map_mut(&file) }
            .with_context(|| format!("cannot map {}", pixels_path.display()))?;
        let bar = progress::bar(m.len() as u64, "caching");
        map.par_chunks_mut(n_bytes)
            .zip(m.records.par_iter())
            .try_for_each(|(out, record)| {
                let img = prepared_pixels(record, cfg)?;
                out.copy_from_slice(img.as_raw());
                bar.inc(1);
                anyhow::Ok(())
            })?;
        bar.finish();
        map.flush()
            .with_context(|| format!("cannot flush {}", pixels_path.display()))?;
    }
    file.sync_all()
        .with_context(|| format!("cannot sync {}", pixels_path.display()))?;
    let meta = CacheMeta {
        manifest_hash: m.hash(),
        preprocess: *cfg,
        count: m.len(),
        image_ids: m.records.iter().map(|r| r.image_id.clone()).collect(),
        labels: m.records.iter().map(|r| r.label.index() as u8).collect(),
        lesion_ids: m.records.iter().map(|r| r.lesion_id.clone()).collect(),
        variants: m.records.iter().map(|r| r.variant).collect(),
    };
    let meta_path = tmp.join(META_FILE);
    write_atomic(&meta_path, &serde_json::to_vec_pretty(&meta)?)
        .with_context(|| format!("cannot write {}", meta_path.display()))?;
    Ok(())
}

/// The exact u8 pixels a record contributes: decode, mask if masked, [`prepare`].
pub fn prepared_pixels(record: &Record, cfg: &PreprocessConfig) -> anyhow::Result<image::RgbImage> {
    let mut img = decode_file(&record.path)?;
    if record.variant == Variant::Masked {
        let mask_path = record.mask_path.as_deref().with_context(|| {
            format!("record {} is masked but has no mask path", record.image_id)
        })?;
        let mask = decode_mask_file(mask_path)?;
        apply_mask(&mut img, &mask);
    }
    Ok(prepare(img, cfg))
}

/// Moves a finished temporary cache into place. Another process may have finished the same key
/// first; its cache is as good as ours.
fn publish(tmp: &Path, dir: &Path) -> anyhow::Result<()> {
    match fs::rename(tmp, dir) {
        Ok(()) => Ok(()),
        Err(_) if dir.join(META_FILE).is_file() => {
            let _ = fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot move {} to {}", tmp.display(), dir.display()))
        }
    }
}
