//! Shared by the ONNX writer and model-file tests: a small random network from a reduced spec, a
//! plain-Rust reference forward pass (BatchNorm unfolded), real HAM10000 inputs, and ONNX Runtime
//! via the venv's Python as an independent reader.
#![allow(dead_code)]

use dermo_model::arch::{padding, ArchSpec, Stage};
use dermo_model::metadata::{CalibrationSpec, InputSpec, Metadata, Provenance};
use dermo_model::{preprocess_file, NamedWeights, PreprocessConfig, Tensor, WeightTensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Two-plus stages, small widths: expansion and no expansion, 3×3 and 5×5, stride 1 and 2, a skip.
pub fn small_spec() -> ArchSpec {
    let s = |e, k, st, i, o, r| Stage {
        expand_ratio: e,
        kernel: k,
        stride: st,
        in_channels: i,
        out_channels: o,
        repeats: r,
    };
    ArchSpec {
        name: "tiny-lite".into(),
        stem_channels: 8,
        head_channels: 24,
        stages: vec![
            s(1, 3, 1, 8, 8, 1),
            s(4, 5, 2, 8, 12, 2),
            s(3, 3, 2, 12, 16, 1),
        ],
        num_classes: 7,
        bn_eps: 1e-3,
        bn_momentum: 0.01,
    }
}

fn conv_weight(rng: &mut ChaCha8Rng, shape: [usize; 4]) -> WeightTensor {
    let fan_in = (shape[1] * shape[2] * shape[3]) as f32;
    let bound = (6.0 / fan_in).sqrt();
    let n = shape.iter().product();
    WeightTensor::new(
        shape.to_vec(),
        (0..n).map(|_| rng.random_range(-bound..bound)).collect(),
    )
    .unwrap()
}

fn bn(w: &mut NamedWeights, rng: &mut ChaCha8Rng, prefix: &str, c: usize) {
    let mut v = |lo: f32, hi: f32| {
        WeightTensor::new(vec![c], (0..c).map(|_| rng.random_range(lo..hi)).collect()).unwrap()
    };
    let (g, b, m, var) = (v(0.5, 1.5), v(-0.3, 0.3), v(-0.3, 0.3), v(0.3, 2.0));
    w.insert(format!("{prefix}.weight"), g);
    w.insert(format!("{prefix}.bias"), b);
    w.insert(format!("{prefix}.running_mean"), m);
    w.insert(format!("{prefix}.running_var"), var);
}

/// Random weights and BatchNorm statistics in state-dict naming for `spec`.
pub fn random_weights(spec: &ArchSpec, seed: u64) -> NamedWeights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = NamedWeights::default();
    w.insert(
        "_conv_stem.weight",
        conv_weight(&mut rng, [spec.stem_channels, 3, 3, 3]),
    );
    bn(&mut w, &mut rng, "_bn0", spec.stem_channels);
    for b in spec.blocks() {
        let p = b.prefix();
        let h = b.hidden_channels();
        if b.has_expand() {
            w.insert(
                format!("{p}_expand_conv.weight"),
                conv_weight(&mut rng, [h, b.in_channels, 1, 1]),
            );
            bn(&mut w, &mut rng, &format!("{p}_bn0"), h);
        }
        w.insert(
            format!("{p}_depthwise_conv.weight"),
            conv_weight(&mut rng, [h, 1, b.kernel, b.kernel]),
        );
        bn(&mut w, &mut rng, &format!("{p}_bn1"), h);
        w.insert(
            format!("{p}_project_conv.weight"),
            conv_weight(&mut rng, [b.out_channels, h, 1, 1]),
        );
        bn(&mut w, &mut rng, &format!("{p}_bn2"), b.out_channels);
    }
    let last = spec.last_block_channels();
    w.insert(
        "_conv_head.weight",
        conv_weight(&mut rng, [spec.head_channels, last, 1, 1]),
    );
    bn(&mut w, &mut rng, "_bn1", spec.head_channels);
    add_random_head(&mut w, spec, &mut rng);
    w
}

/// Replaces `_fc.*` with a random `num_classes`-way head.
pub fn add_random_head(w: &mut NamedWeights, spec: &ArchSpec, rng: &mut ChaCha8Rng) {
    let (k, c) = (spec.num_classes, spec.head_channels);
    let bound = (1.0 / c as f32).sqrt() * 4.0;
    w.insert(
        "_fc.weight",
        WeightTensor::new(
            vec![k, c],
            (0..k * c)
                .map(|_| rng.random_range(-bound..bound))
                .collect(),
        )
        .unwrap(),
    );
    w.insert(
        "_fc.bias",
        WeightTensor::new(
            vec![k],
            (0..k).map(|_| rng.random_range(-0.1..0.1)).collect(),
        )
        .unwrap(),
    );
}

/// A CHW feature map of one image.
struct Fm {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

fn conv(x: &Fm, k: &WeightTensor, stride: usize, group: usize) -> Fm {
    let (o, ipg, kh) = (k.shape[0], k.shape[1], k.shape[2]);
    let pad = padding(kh) as isize;
    let oh = (x.h + 2 * pad as usize - kh) / stride + 1;
    let ow = (x.w + 2 * pad as usize - kh) / stride + 1;
    let opg = o / group;
    let mut out = vec![0.0f32; o * oh * ow];
    for oc in 0..o {
        let g = oc / opg;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0.0f64;
                for ic in 0..ipg {
                    let xc = g * ipg + ic;
                    for ky in 0..kh {
                        let iy = (oy * stride) as isize + ky as isize - pad;
                        if iy < 0 || iy >= x.h as isize {
                            continue;
                        }
                        for kx in 0..kh {
                            let ix = (ox * stride) as isize + kx as isize - pad;
                            if ix < 0 || ix >= x.w as isize {
                                continue;
                            }
                            let xv = x.data[(xc * x.h + iy as usize) * x.w + ix as usize];
                            let kv = k.data[((oc * ipg + ic) * kh + ky) * kh + kx];
                            acc += (xv * kv) as f64;
                        }
                    }
                }
                out[(oc * oh + oy) * ow + ox] = acc as f32;
            }
        }
    }
    Fm {
        c: o,
        h: oh,
        w: ow,
        data: out,
    }
}

fn batch_norm(x: &mut Fm, w: &NamedWeights, prefix: &str, eps: f32) {
    let p = |n: &str| &w.get(&format!("{prefix}.{n}")).unwrap().data;
    let (g, b, m, v) = (p("weight"), p("bias"), p("running_mean"), p("running_var"));
    let plane = x.h * x.w;
    for c in 0..x.c {
        for val in &mut x.data[c * plane..(c + 1) * plane] {
            *val = (*val - m[c]) / (v[c] + eps).sqrt() * g[c] + b[c];
        }
    }
}

fn relu6(x: &mut Fm) {
    for v in &mut x.data {
        *v = v.clamp(0.0, 6.0);
    }
}

/// The reference forward pass of one `[1,3,S,S]` image: `(logits, pooled features)`.
pub fn reference_forward(
    spec: &ArchSpec,
    w: &NamedWeights,
    image: &Tensor,
) -> (Vec<f32>, Vec<f32>) {
    let x = reference_feature_map(spec, w, image);
    let plane = x.h * x.w;
    let pooled: Vec<f32> = x
        .data
        .chunks(plane)
        .map(|p| p.iter().sum::<f32>() / plane as f32)
        .collect();
    let logits = dense(spec, w, &pooled);
    (logits, pooled)
}

/// The classifier's dense layer on one feature vector.
fn dense(spec: &ArchSpec, w: &NamedWeights, features: &[f32]) -> Vec<f32> {
    let fc = w.get("_fc.weight").unwrap();
    let fb = w.get("_fc.bias").unwrap();
    let c = features.len();
    (0..spec.num_classes)
        .map(|k| {
            fb.data[k]
                + features
                    .iter()
                    .zip(&fc.data[k * c..(k + 1) * c])
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
        })
        .collect()
}

/// The class-activation maps of one image, computed the textbook way: the dense layer applied to
/// the feature vector of every cell. `[classes, h, w]` flattened, and the side `h`.
pub fn reference_class_maps(
    spec: &ArchSpec,
    w: &NamedWeights,
    image: &Tensor,
) -> (Vec<f32>, usize) {
    let x = reference_feature_map(spec, w, image);
    let plane = x.h * x.w;
    let mut maps = vec![0f32; spec.num_classes * plane];
    for cell in 0..plane {
        let f: Vec<f32> = (0..x.c).map(|ch| x.data[ch * plane + cell]).collect();
        for (k, v) in dense(spec, w, &f).into_iter().enumerate() {
            maps[k * plane + cell] = v;
        }
    }
    (maps, x.h)
}

/// The last feature map of one `[1,3,S,S]` image (after the head conv, BatchNorm and ReLU6).
fn reference_feature_map(spec: &ArchSpec, w: &NamedWeights, image: &Tensor) -> Fm {
    let eps = spec.bn_eps as f32;
    let [_, c, h, wd] = image.shape;
    let mut x = Fm {
        c,
        h,
        w: wd,
        data: image.data.clone(),
    };
    let cbr = |x: &Fm, weight: &str, bn: &str, stride, group, act: bool| {
        let mut y = conv(x, w.get(weight).unwrap(), stride, group);
        batch_norm(&mut y, w, bn, eps);
        if act {
            relu6(&mut y);
        }
        y
    };
    x = cbr(&x, "_conv_stem.weight", "_bn0", 2, 1, true);
    for b in spec.blocks() {
        let p = b.prefix();
        let skip = b.has_skip().then(|| x.data.clone());
        if b.has_expand() {
            x = cbr(
                &x,
                &format!("{p}_expand_conv.weight"),
                &format!("{p}_bn0"),
                1,
                1,
                true,
            );
        }
        let hidden = b.hidden_channels();
        x = cbr(
            &x,
            &format!("{p}_depthwise_conv.weight"),
            &format!("{p}_bn1"),
            b.stride,
            hidden,
            true,
        );
        x = cbr(
            &x,
            &format!("{p}_project_conv.weight"),
            &format!("{p}_bn2"),
            1,
            1,
            false,
        );
        if let Some(s) = skip {
            for (v, s) in x.data.iter_mut().zip(s) {
                *v += s;
            }
        }
    }
    cbr(&x, "_conv_head.weight", "_bn1", 1, 1, true)
}

pub fn metadata(size: u32, precision: &str) -> Metadata {
    let mut m = Metadata::new(
        InputSpec::new(dermo_model::PreprocessConfig {
            size,
            color_constancy: false,
        }),
        CalibrationSpec {
            temperature: 1.3,
            refer_threshold: 0.25,
            target_sensitivity: 0.95,
            ..CalibrationSpec::default()
        },
        Provenance {
            manifest_hash: "sha256:test".into(),
            split_seed: 42,
            source_commit: "test".into(),
            arch: "tiny-lite".into(),
            recipe: serde_json::json!({ "epochs": 1 }),
            created: "2025-01-01T00:00:00Z".into(),
            precision: precision.into(),
        },
    );
    m.metrics = serde_json::json!({ "balanced_accuracy": 0.5 });
    m
}

pub fn ham10000() -> PathBuf {
    std::env::var_os("DERMO_HAM10000")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/ham10000"))
}

/// The first `n` HAM10000 images, by name, preprocessed to `size`.
pub fn real_images(n: usize, size: u32) -> Vec<Tensor> {
    let dir = ham10000().join("images");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("HAM10000 images at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    paths.sort();
    let cfg = PreprocessConfig {
        size,
        color_constancy: false,
    };
    paths
        .iter()
        .take(n)
        .map(|p| preprocess_file(p, &cfg).unwrap())
        .collect()
}

/// Stacks `[1,3,S,S]` images into one `[N,3,S,S]` batch.
pub fn batch(images: &[Tensor]) -> Tensor {
    let [_, c, h, w] = images[0].shape;
    Tensor {
        shape: [images.len(), c, h, w],
        data: images.iter().flat_map(|t| t.data.clone()).collect(),
    }
}

/// What the venv's ONNX Runtime makes of a model file, after `onnx.checker.check_model`.
pub struct OrtResult {
    pub logits: Vec<f32>,
    pub pooled: Option<Vec<f32>>,
    pub class_maps: Option<Vec<f32>>,
}

pub fn onnxruntime(model: &Path, input: &Tensor) -> OrtResult {
    let python = std::env::var("DERMO_PYTHON").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.venv/bin/python")
            .display()
            .to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("input.f32");
    std::fs::write(
        &raw,
        input
            .data
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let shape: Vec<String> = input.shape.iter().map(|d| d.to_string()).collect();
    let out = Command::new(&python)
        .arg(&script)
        .arg(model)
        .arg(&raw)
        .args(&shape)
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        out.status.success(),
        "onnx_check.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let floats = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect::<Vec<_>>()
    };
    OrtResult {
        logits: floats(&v["logits"]),
        pooled: v.get("pooled").filter(|p| !p.is_null()).map(floats),
        class_maps: v.get("class_maps").filter(|p| !p.is_null()).map(floats),
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}
