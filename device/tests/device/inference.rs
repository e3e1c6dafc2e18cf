//! The runtime's own kernels and threads on the bundled model and real images: dermo's depthwise
//! convolution (`dermo_model::runtime::depthwise`) takes every channel-first depthwise
//! convolution of the plan and the ReLU6s around it, and gives tract's answers; two threads give one
//! thread's; f16 arithmetic stays within f16's rounding of f32's answers. Speed is measured in
//! `scripts/bench infer`, not here.

use dermo_model::{
    preprocess_file, Arithmetic, DepthwiseKernel, ModelFile, Output, Profiler, Runtime,
    RuntimeOptions, TrustPolicy,
};
use std::path::{Path, PathBuf};

fn bundled() -> ModelFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/dermo-default.onnx");
    ModelFile::open(&path, &TrustPolicy::unsigned()).unwrap()
}

/// Two HAM10000 images of the shared set, a thousand apart in name order (each run of the
/// bundled model takes seconds under qemu).
fn images(file: &ModelFile) -> Vec<dermo_model::Tensor> {
    let dir = PathBuf::from(std::env::var("DERMO_HAM10000").expect("DERMO_HAM10000"));
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    names.sort();
    let cfg = file.metadata.input.preprocess;
    names
        .iter()
        .step_by(997)
        .take(2)
        .map(|p| preprocess_file(p, &cfg).unwrap())
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn run(file: &ModelFile, options: RuntimeOptions, images: &[dermo_model::Tensor]) -> Vec<Output> {
    let rt = Runtime::with_options(file, options).unwrap();
    images.iter().map(|x| rt.run(x).unwrap()).collect()
}

#[test]
fn dermo_depthwise_kernel_gives_tracts_answers_on_one_and_two_threads() {
    let file = bundled();
    let images = images(&file);
    let options = |threads, depthwise| RuntimeOptions {
        threads,
        depthwise,
        ..RuntimeOptions::default()
    };
    let tract = run(&file, options(1, DepthwiseKernel::Tract), &images);
    let dermo = run(&file, options(1, DepthwiseKernel::Dermo), &images);
    let dermo2 = run(&file, options(2, DepthwiseKernel::Dermo), &images);
    for ((t, d), d2) in tract.iter().zip(&dermo).zip(&dermo2) {
        // tract's zones add the taps of a border in another order: rounding, no more.
        let logits = max_diff(&t.logits, &d.logits);
        assert!(logits < 1e-3, "max |Δ logit| {logits}");
        let ood = max_diff(
            t.ood_features.as_deref().unwrap(),
            d.ood_features.as_deref().unwrap(),
        );
        assert!(ood < 1e-3, "max |Δ ood feature| {ood}");
        assert_eq!(t.logits.len(), 7);
        // Threads split channels and rows, never a sum: the same bits.
        assert_eq!(d, d2);
    }
    // The images differ, so the comparison above compared something.
    assert!(max_diff(&dermo[0].logits, &dermo[1].logits) > 0.1);
}

#[test]
fn every_depthwise_convolution_left_channel_first_runs_dermos_kernel_with_its_relu6() {
    let file = bundled();
    let ops = |depthwise| {
        let p = Profiler::new(
            &file,
            RuntimeOptions {
                threads: 1,
                depthwise,
                ..RuntimeOptions::default()
            },
        )
        .unwrap();
        p.nodes().iter().map(|n| n.op.clone()).collect::<Vec<_>>()
    };
    let count = |ops: &[String], name: &str| ops.iter().filter(|o| o.as_str() == name).count();
    let (dermo, tract) = (ops(DepthwiseKernel::Dermo), ops(DepthwiseKernel::Tract));
    let convs = count(&tract, "DepthWiseConv");
    // Sixteen blocks, and the OOD rule's frozen copy of the first eleven.
    assert_eq!(convs, 27, "{tract:?}");
    let ours = count(&dermo, "DermoDepthwiseConv");
    assert_eq!(ours + count(&dermo, "DepthWiseConv"), convs, "{dermo:?}");
    // On x86-64 every one is dermo's. On aarch64 tract moves most of them channel-last first,
    // where its own NEON kernel covers every stride and border, and keeps them.
    if cfg!(target_arch = "x86_64") {
        assert_eq!(ours, convs, "{dermo:?}");
    } else {
        assert!(ours >= 1, "{dermo:?}");
    }
    // Each of ours took its ReLU6 in: the plan lost one activation node per convolution. On
    // x86-64 the stem's ReLU6, which feeds the first block's depthwise convolution and nothing
    // else, went into that convolution's input too, in the classifier and in the OOD rule's
    // copy: no activation node is left at all.
    let activations = |ops: &[String]| ops.iter().filter(|o| o.contains("Max")).count();
    let lost = activations(&tract) - activations(&dermo);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(lost, ours + 2, "{dermo:?}");
        assert_eq!(activations(&dermo), 0, "{dermo:?}");
    } else {
        assert!(lost >= ours, "{dermo:?}");
    }
}

#[test]
fn f16_arithmetic_gives_f32s_answers_to_f16_rounding() {
    let file = bundled();
    let images = images(&file);
    let f32s = run(&file, RuntimeOptions::default(), &images);
    let f16 = RuntimeOptions {
        arithmetic: Arithmetic::F16,
        ..RuntimeOptions::default()
    };
    let f16s = run(&file, f16, &images);
    let top = |l: &[f32]| (0..l.len()).max_by(|&i, &j| l[i].total_cmp(&l[j])).unwrap();
    for (a, b) in f32s.iter().zip(&f16s) {
        let logits = max_diff(&a.logits, &b.logits);
        eprintln!("f16: max |Δ logit| {logits}");
        // It did compute in f16 (f32's bits differ), and no further off than f16's rounding
        // through sixteen blocks.
        assert!(logits > 0.0 && logits < 0.15, "max |Δ logit| {logits}");
        assert_eq!(top(&a.logits), top(&b.logits));
        let (fa, fb) = (
            a.ood_features.as_deref().unwrap(),
            b.ood_features.as_deref().unwrap(),
        );
        let scale = fa.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let ood = max_diff(fa, fb);
        assert!(ood < 0.02 * scale, "max |Δ ood feature| {ood} of {scale}");
    }
}
