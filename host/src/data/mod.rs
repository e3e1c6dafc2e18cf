//! Dataset tooling: import, screening, lesion-grouped splits and the training cache.
//!
//! Every command reads a manifest (see [`manifest`]) or a source layout and writes only inside
//! its output folder; source images are never modified.

pub mod cache;
pub mod manifest;
mod progress;

pub use cache::{build_cache, cache_key, Cache, CacheError, CacheMeta};
pub use manifest::{Manifest, ManifestError, Record, Variant};

use anyhow::Context;
use clap::{Args, Subcommand};
use dermo_model::PreprocessConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Decode and preprocess every image once into a u8 cache the trainer memory-maps.
    Cache(CacheArgs),
}

#[derive(Args)]
pub struct CacheArgs {
    /// Manifest CSV to cache (masked rows get their lesion mask applied first).
    manifest: PathBuf,
    /// Side of the square images, in pixels.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Apply Shades-of-Gray colour constancy before resizing.
    #[arg(long)]
    color_constancy: bool,
    /// Cache root; the cache goes into OUT/<size>px-<key>, key = manifest hash + preprocessing.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Cache(a) => run_cache(a),
    }
}

fn run_cache(a: CacheArgs) -> anyhow::Result<()> {
    let cfg = PreprocessConfig {
        size: a.size,
        color_constancy: a.color_constancy,
    };
    let started = std::time::Instant::now();
    let dir = build_cache(&a.manifest, &cfg, &a.out)
        .with_context(|| format!("caching {}", a.manifest.display()))?;
    let cache = Cache::open(&dir)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "cache {}: {} images at {}×{} px ({:.1} s, {:.0} images/s)",
        dir.display(),
        cache.len(),
        cache.size(),
        cache.size(),
        secs,
        cache.len() as f64 / secs.max(1e-9)
    );
    Ok(())
}
