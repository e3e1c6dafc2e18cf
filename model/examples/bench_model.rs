//! Writes EfficientNet-Lite0 (ImageNet weights, a seeded random 7-way head) as fp32, int8 and
//! int8-full model files and times tract on each: `scripts/bench model` runs it next to ONNX
//! Runtime on the same files.
//!
//! usage: bench_model --out DIR [--size 256] [--runs 30] [--calib 16] [--time-only]
//! Prints one line per file: `precision=… bytes=… tract_ms=… (median) tract_min_ms=… load_ms=…`.
//! tract's knobs (e.g. TRACT_ENABLE_BLOCKED_CONV=1) are read from the environment.

use dermo_model::arch::ArchSpec;
use dermo_model::metadata::{CalibrationSpec, InputSpec, Metadata, Provenance};
use dermo_model::onnx::{
    activation_range_names, bias_corrected, write_onnx, ExportOptions, Precision,
};
use dermo_model::runtime::ActivationProbe;
use dermo_model::{
    preprocess_file, ModelFile, NamedWeights, PreprocessConfig, Runtime, Tensor, WeightTensor,
};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;

const PRECISIONS: [Precision; 3] = [Precision::Fp32, Precision::Int8, Precision::Int8Full];

struct Args {
    out: PathBuf,
    size: u32,
    runs: usize,
    calib: usize,
    time_only: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::new(),
        size: 256,
        runs: 30,
        calib: 16,
        time_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(value()?),
            "--size" => a.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--calib" => a.calib = value()?.parse().map_err(|e| format!("--calib: {e}"))?,
            "--time-only" => a.time_only = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.out.as_os_str().is_empty() {
        return Err("--out DIR is required".into());
    }
    Ok(a)
}

fn images(n: usize, size: u32) -> Vec<Tensor> {
    let root = std::env::var_os("DERMO_HAM10000")
        .map(PathBuf::from)
        .expect("DERMO_HAM10000 (source scripts/env.sh)");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("images"))
        .expect("HAM10000 images")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    paths.sort();
    let cfg = PreprocessConfig {
        size,
        color_constancy: false,
    };
    paths
        .iter()
        .step_by(97)
        .take(n)
        .map(|p| preprocess_file(p, &cfg).expect("a readable image"))
        .collect()
}

fn path_of(dir: &Path, p: Precision) -> PathBuf {
    dir.join(format!("lite0-{}.onnx", p.as_str()))
}

fn write_models(a: &Args) {
    let pretrained = std::env::var_os("DERMO_PRETRAINED")
        .map(PathBuf::from)
        .expect("DERMO_PRETRAINED (source scripts/env.sh)");
    let mut w = NamedWeights::load_safetensors(&pretrained).expect("ImageNet weights");
    let spec = ArchSpec::efficientnet_lite0(7);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let bound = 4.0 / (spec.head_channels as f32).sqrt();
    let fc = (0..7 * spec.head_channels)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    w.insert(
        "_fc.weight",
        WeightTensor::new(vec![7, spec.head_channels], fc).unwrap(),
    );
    w.insert(
        "_fc.bias",
        WeightTensor::new(vec![7], vec![0.0; 7]).unwrap(),
    );
    let meta = |p: Precision| {
        let input = InputSpec::new(dermo_model::PreprocessConfig {
            size: a.size,
            color_constancy: false,
        });
        let provenance = Provenance {
            arch: spec.name.clone(),
            precision: p.as_str().into(),
            ..Provenance::default()
        };
        Metadata::new(input, CalibrationSpec::default(), provenance)
    };
    let opts = |p, ranges| ExportOptions {
        precision: p,
        input_size: a.size,
        with_features: true,
        activation_ranges: ranges,
        ood_block: None,
        ood_weights: None,
    };
    std::fs::create_dir_all(&a.out).expect("output folder");
    let fp32_path = path_of(&a.out, Precision::Fp32);
    let fp32 = write_onnx(
        &spec,
        &w,
        &opts(Precision::Fp32, None),
        &meta(Precision::Fp32),
    )
    .unwrap();
    std::fs::write(&fp32_path, &fp32).unwrap();
    let file = ModelFile::from_verified_bytes(&fp32_path, fp32).unwrap();
    let probe = ActivationProbe::new(&file, &activation_range_names(&spec)).unwrap();
    let stats = probe.statistics(&images(a.calib, a.size)).unwrap();
    for p in [Precision::Int8, Precision::Int8Full] {
        let corrected = bias_corrected(&spec, &w, p, &stats.channel_means).unwrap();
        let ranges = (p == Precision::Int8Full).then(|| stats.ranges.clone());
        std::fs::write(
            path_of(&a.out, p),
            write_onnx(&spec, &corrected, &opts(p, ranges), &meta(p)).unwrap(),
        )
        .unwrap();
    }
}

fn main() {
    let a = parse().unwrap_or_else(|e| {
        eprintln!("bench_model: {e}");
        std::process::exit(2)
    });
    if !a.time_only {
        write_models(&a);
    }
    let x = images(1, a.size).remove(0);
    std::fs::write(
        a.out.join("input.f32"),
        x.data
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    for p in PRECISIONS {
        let path = path_of(&a.out, p);
        let t0 = Instant::now();
        let file = ModelFile::from_verified_bytes(&path, std::fs::read(&path).expect("model file"))
            .unwrap();
        let rt = Runtime::new(&file).unwrap();
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        for _ in 0..3 {
            rt.run(&x).unwrap();
        }
        let mut ms: Vec<f64> = (0..a.runs)
            .map(|_| {
                let t = Instant::now();
                rt.run(&x).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "precision={} bytes={} tract_ms={:.2} tract_min_ms={:.2} load_ms={:.0}",
            p.as_str(),
            file.bytes.len(),
            ms[ms.len() / 2],
            ms[0],
            load_ms
        );
    }
}
