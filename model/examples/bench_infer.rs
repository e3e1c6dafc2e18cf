//! Times tract on one model file, frame after frame, as `scripts/bench infer` runs it next to ONNX
//! Runtime on the same file and input.
//!
//! usage: bench_infer --input INPUT.f32 [--threads N] [--depthwise dermo|tract] [--runs 30]
//!                    [--gap-ms 0] MODEL.onnx
//!
//! INPUT.f32 is one preprocessed `[1, 3, S, S]` image (`bench_preprocess --dump`). `--gap-ms`
//! sleeps between frames, as the device's capture loop does while it draws and waits: a thread
//! pool's workers fall asleep then. Prints one line:
//! `threads=… depthwise=… tract_ms=… (median) tract_min_ms=… load_ms=…`.

use dermo_model::{DepthwiseKernel, ModelFile, Runtime, RuntimeOptions, Tensor, TrustPolicy};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    input: PathBuf,
    model: PathBuf,
    options: RuntimeOptions,
    runs: usize,
    gap: Duration,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        input: PathBuf::new(),
        model: PathBuf::new(),
        options: RuntimeOptions::default(),
        runs: 30,
        gap: Duration::ZERO,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--input" => a.input = value()?.into(),
            "--threads" => {
                a.options.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--depthwise" => {
                a.options.depthwise = match value()?.as_str() {
                    "dermo" => DepthwiseKernel::Dermo,
                    "tract" => DepthwiseKernel::Tract,
                    other => return Err(format!("--depthwise {other:?}: dermo or tract")),
                }
            }
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--gap-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("--gap-ms: {e}"))?;
                a.gap = Duration::from_millis(ms);
            }
            _ if !flag.starts_with('-') => a.model = flag.into(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.input.as_os_str().is_empty() || a.model.as_os_str().is_empty() {
        return Err("usage: bench_infer --input INPUT.f32 [options] MODEL.onnx".into());
    }
    Ok(a)
}

fn run(a: &Args) -> Result<(), String> {
    let file = ModelFile::open(&a.model, &TrustPolicy::unsigned())
        .map_err(|e| format!("{}: {e}", a.model.display()))?;
    let t0 = Instant::now();
    let runtime = Runtime::with_options(&file, a.options).map_err(|e| e.to_string())?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let size = runtime.input_size();
    let bytes = std::fs::read(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if data.len() != 3 * size * size {
        return Err(format!(
            "{}: {} values, the model takes 3×{size}×{size}",
            a.input.display(),
            data.len()
        ));
    }
    let input = Tensor {
        shape: [1, 3, size, size],
        data,
    };
    let mut ms = Vec::with_capacity(a.runs);
    for i in 0..a.runs + 3 {
        std::thread::sleep(a.gap);
        let t = Instant::now();
        runtime.run(&input).map_err(|e| e.to_string())?;
        if i >= 3 {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "threads={} depthwise={} gap_ms={} tract_ms={:.3} tract_min_ms={:.3} load_ms={load_ms:.0}",
        a.options.threads,
        a.options.depthwise.name(),
        a.gap.as_millis(),
        ms[ms.len() / 2],
        ms[0]
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench_infer: {message}");
            ExitCode::FAILURE
        }
    }
}
