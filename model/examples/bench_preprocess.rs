//! Preprocessing throughput: decode + resize to S×S + normalize to NCHW f32, one thread.
//!
//! ```text
//! cargo run --release -p dermo-model --example bench_preprocess -- \
//!     [--count N] [--size S] [--repeat R] [--dump FILE] IMAGE_DIR
//! ```
//!
//! Takes the first N `.jpg` files of IMAGE_DIR in name order (the same list
//! `bench/pillow_preprocess.py` takes), runs one untimed pass so both sides read from the page
//! cache, then R timed passes, and prints the best pass as `images_per_s=<x> images=<n>`.
//! `--dump FILE` writes the first image's tensor as raw little-endian f32, for comparing pixels
//! with Pillow's.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use dermo_model::preprocess::{preprocess_file, PreprocessConfig};

struct Options {
    count: usize,
    size: u32,
    repeat: usize,
    dump: Option<PathBuf>,
    dir: PathBuf,
}

const USAGE: &str =
    "usage: bench_preprocess [--count N] [--size S] [--repeat R] [--dump FILE] IMAGE_DIR";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        count: 2000,
        size: 256,
        repeat: 3,
        dump: None,
        dir: PathBuf::new(),
    };
    let mut dir = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--count" => options.count = number(&value("--count")?)?,
            "--size" => options.size = number(&value("--size")?)?,
            "--repeat" => options.repeat = number(&value("--repeat")?)?,
            "--dump" => options.dump = Some(value("--dump")?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            other if other.starts_with('-') => return Err(format!("unknown flag {other}")),
            other => dir = Some(PathBuf::from(other)),
        }
    }
    options.dir = dir.ok_or("IMAGE_DIR is missing")?;
    if options.count == 0 || options.size == 0 || options.repeat == 0 {
        return Err("--count, --size and --repeat must be positive".into());
    }
    Ok(options)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn images(dir: &Path, count: usize) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    paths.truncate(count);
    if paths.is_empty() {
        return Err(format!("no .jpg images in {}", dir.display()));
    }
    Ok(paths)
}

/// One pass over all images; returns a checksum so the work cannot be optimised away.
fn pass(paths: &[PathBuf], cfg: &PreprocessConfig) -> Result<f64, String> {
    let mut checksum = 0.0;
    for path in paths {
        let tensor = preprocess_file(path, cfg).map_err(|e| e.to_string())?;
        checksum += f64::from(tensor.data[tensor.data.len() / 2]);
    }
    Ok(checksum)
}

fn run(options: &Options) -> Result<(), String> {
    let paths = images(&options.dir, options.count)?;
    let cfg = PreprocessConfig {
        size: options.size,
        color_constancy: false,
    };
    if let Some(dump) = &options.dump {
        let tensor = preprocess_file(&paths[0], &cfg).map_err(|e| e.to_string())?;
        let bytes: Vec<u8> = tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dump, bytes).map_err(|e| format!("cannot write {}: {e}", dump.display()))?;
    }
    pass(&paths, &cfg)?; // warm the page cache and the allocator
    let mut best = f64::INFINITY;
    for _ in 0..options.repeat {
        let start = Instant::now();
        std::hint::black_box(pass(&paths, &cfg)?);
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "images_per_s={:.1} images={}",
        paths.len() as f64 / best,
        paths.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(|options| run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench_preprocess: {message}");
            ExitCode::FAILURE
        }
    }
}
