//! The ONNX writer, read back by tract and by ONNX Runtime (with `onnx.checker`), against a
//! plain-Rust reference forward pass, on real HAM10000 images.

mod onnx_support;

use dermo_model::arch::ArchSpec;
use dermo_model::metadata::OodSpec;
use dermo_model::onnx::{
    activation_range_names, bias_corrected, block_output, ood_range_names, write_onnx,
    ExportOptions, OnnxError, Precision,
};
use dermo_model::runtime::ActivationProbe;
use dermo_model::{ModelFile, NamedWeights, Runtime, Tensor};
use onnx_support::*;
use prost::Message;
use std::path::{Path, PathBuf};
use tract_onnx::pb::{tensor_shape_proto::dimension::Value, type_proto, ModelProto};

const S: u32 = 32;

fn write(
    dir: &Path,
    name: &str,
    spec: &ArchSpec,
    w: &NamedWeights,
    opts: &ExportOptions,
) -> (PathBuf, ModelFile) {
    let bytes = write_onnx(
        spec,
        w,
        opts,
        &metadata(opts.input_size, opts.precision.as_str()),
    )
    .unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    let file = ModelFile::from_verified_bytes(&path, bytes).unwrap();
    (path, file)
}

fn opts(precision: Precision) -> ExportOptions {
    ExportOptions {
        precision,
        input_size: S,
        with_features: true,
        activation_ranges: None,
        ood_block: None,
        ood_weights: None,
    }
}

/// Reference logits and pooled features of every image, concatenated.
fn reference(spec: &ArchSpec, w: &NamedWeights, images: &[Tensor]) -> (Vec<f32>, Vec<f32>) {
    let mut logits = Vec::new();
    let mut pooled = Vec::new();
    for im in images {
        let (l, p) = reference_forward(spec, w, im);
        logits.extend(l);
        pooled.extend(p);
    }
    (logits, pooled)
}

#[test]
fn fp32_matches_the_reference_on_tract_and_onnxruntime() {
    let spec = small_spec();
    let w = random_weights(&spec, 1);
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = write(dir.path(), "fp32.onnx", &spec, &w, &opts(Precision::Fp32));
    let images = real_images(3, S);
    let (ref_logits, ref_pooled) = reference(&spec, &w, &images);
    assert!(
        ref_logits.iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.1,
        "logits must not be trivial"
    );

    let out = Runtime::new(&file).unwrap().run(&batch(&images)).unwrap();
    let d = max_abs_diff(&out.logits, &ref_logits);
    assert!(d <= 1e-4, "tract logits differ from the reference by {d}");
    let d = max_abs_diff(out.features.as_ref().unwrap(), &ref_pooled);
    assert!(
        d <= 1e-4,
        "tract pooled features differ from the reference by {d}"
    );

    // A batch of three checks the symbolic batch dimension in an independent reader.
    let ort = onnxruntime(&path, &batch(&images));
    let d = max_abs_diff(&ort.logits, &ref_logits);
    assert!(
        d <= 1e-4,
        "ONNX Runtime logits differ from the reference by {d}"
    );
    let d = max_abs_diff(ort.pooled.as_ref().unwrap(), &ref_pooled);
    assert!(
        d <= 1e-4,
        "ONNX Runtime pooled features differ from the reference by {d}"
    );
}

#[test]
fn int8_weights_stay_close_to_the_reference() {
    let spec = small_spec();
    let w = random_weights(&spec, 2);
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = write(dir.path(), "int8.onnx", &spec, &w, &opts(Precision::Int8));
    let images = real_images(4, S);
    let (ref_logits, _) = reference(&spec, &w, &images);
    let scale = ref_logits.iter().map(|v| v.abs()).fold(0.0, f32::max);

    let tract = Runtime::new(&file).unwrap().run(&batch(&images)).unwrap();
    let ort = onnxruntime(&path, &batch(&images));
    // Same graph, same dequantized weights: the two readers agree as tightly as on fp32.
    let d = max_abs_diff(&tract.logits, &ort.logits);
    assert!(
        d <= 1e-4,
        "tract and ONNX Runtime disagree on the int8 file by {d}"
    );
    let d = max_abs_diff(&tract.logits, &ref_logits);
    assert!(
        d <= 0.03 * scale,
        "int8 logits differ from fp32 reference by {d} (scale {scale})"
    );
}

#[test]
fn int8_full_runs_on_both_readers_with_measured_ranges() {
    let spec = small_spec();
    let w = random_weights(&spec, 3);
    let dir = tempfile::tempdir().unwrap();
    let (_, fp32) = write(dir.path(), "fp32.onnx", &spec, &w, &opts(Precision::Fp32));
    let calib = real_images(12, S);
    let names = activation_range_names(&spec);
    let probe = ActivationProbe::new(&fp32, &names).unwrap();
    let ranges = probe.statistics(&calib).unwrap().ranges;
    assert_eq!(ranges.len(), names.len());
    assert!(
        ranges["stem"].0 >= 0.0 && ranges["stem"].1 <= 6.0,
        "post-ReLU6 range {:?}",
        ranges["stem"]
    );

    let o = ExportOptions {
        activation_ranges: Some(ranges),
        ..opts(Precision::Int8Full)
    };
    let (path, file) = write(dir.path(), "int8-full.onnx", &spec, &w, &o);
    let images = &calib[..4];
    let (ref_logits, _) = reference(&spec, &w, images);
    let scale = ref_logits.iter().map(|v| v.abs()).fold(0.0, f32::max);
    let tract = Runtime::new(&file).unwrap().run(&batch(images)).unwrap();
    let ort = onnxruntime(&path, &batch(images));
    for (who, logits) in [("tract", &tract.logits), ("ONNX Runtime", &ort.logits)] {
        let d = max_abs_diff(logits, &ref_logits);
        assert!(
            d <= 0.15 * scale,
            "{who}: int8-full logits differ from the reference by {d} (scale {scale})"
        );
    }
    assert!(tract.features.is_some() && ort.pooled.is_some());
}

#[test]
fn graph_is_opset13_ir8_with_folded_batchnorm_and_symbolic_batch() {
    let spec = small_spec();
    let w = random_weights(&spec, 4);
    for precision in [Precision::Fp32, Precision::Int8] {
        let bytes = write_onnx(
            &spec,
            &w,
            &opts(precision),
            &metadata(S, precision.as_str()),
        )
        .unwrap();
        let m = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!((m.ir_version, m.opset_import[0].version), (8, 13));
        let g = m.graph.unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert!(
            !ops.contains(&"BatchNormalization"),
            "BatchNorm must be folded"
        );
        assert_eq!(
            ops.iter().filter(|o| **o == "Clip").count(),
            2 * spec.blocks().len() - 1 + 2
        );
        assert_eq!(
            ops.contains(&"DequantizeLinear"),
            precision == Precision::Int8
        );
        let outputs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(outputs, ["logits", "features", "class_maps"]);
        let Some(type_proto::Value::TensorType(t)) =
            g.input[0].r#type.as_ref().unwrap().value.as_ref()
        else {
            panic!("input must be a tensor")
        };
        let dims: Vec<_> = t
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| d.value.clone().unwrap())
            .collect();
        assert_eq!(dims[0], Value::DimParam("N".into()));
        assert_eq!(
            dims[1..],
            [Value::DimValue(3), Value::DimValue(32), Value::DimValue(32)]
        );
    }
}

#[test]
fn writer_errors_name_the_problem() {
    let spec = small_spec();
    let mut w = random_weights(&spec, 5);
    let e = write_onnx(
        &spec,
        &w,
        &opts(Precision::Int8Full),
        &metadata(S, "int8-full"),
    )
    .unwrap_err();
    assert!(matches!(e, OnnxError::NoRanges), "{e}");
    let e = write_onnx(&spec, &w, &opts(Precision::Fp32), &metadata(64, "fp32")).unwrap_err();
    assert!(e.to_string().contains("64"), "{e}");
    w.0.remove("_blocks.2._bn1.running_var");
    let e = write_onnx(&spec, &w, &opts(Precision::Fp32), &metadata(S, "fp32"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("_blocks.2._bn1.running_var"), "{e}");
    let mut w = random_weights(&spec, 5);
    w.0.get_mut("_fc.weight").unwrap().shape = vec![5, 24];
    let e = write_onnx(&spec, &w, &opts(Precision::Fp32), &metadata(S, "fp32"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("_fc.weight") && e.contains("[5, 24]"), "{e}");
}

/// The real EfficientNet-Lite0 with ImageNet weights and a random 7-way head.
#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "the writer and its quantization run on the host (90 s emulated); the device only \
              reads int8 files, which int8_full_runs_on_both_readers_with_measured_ranges covers"
)]
fn lite0_int8_is_three_to_four_times_smaller_and_bias_correction_keeps_it_close() {
    let pretrained = std::env::var_os("DERMO_PRETRAINED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../.venv/dermo/efficientnet-lite0-imagenet.safetensors")
        });
    let mut w = NamedWeights::load_safetensors(&pretrained)
        .unwrap_or_else(|e| panic!("{e} (run scripts/setup to fetch the ImageNet weights)"));
    let spec = ArchSpec::efficientnet_lite0(7);
    add_random_head(&mut w, &spec, &mut rand::SeedableRng::seed_from_u64(6));
    let dir = tempfile::tempdir().unwrap();
    let o = |p| ExportOptions {
        input_size: 256,
        ..opts(p)
    };
    let (fp32_path, fp32) = write(dir.path(), "fp32.onnx", &spec, &w, &o(Precision::Fp32));
    let (int8_path, int8) = write(dir.path(), "int8.onnx", &spec, &w, &o(Precision::Int8));
    let (a, b) = (
        std::fs::metadata(&fp32_path).unwrap().len(),
        std::fs::metadata(&int8_path).unwrap().len(),
    );
    let ratio = a as f64 / b as f64;
    eprintln!("lite0 fp32 {a} B, int8 {b} B: {ratio:.2}× smaller");
    assert!(
        (3.0..=4.0).contains(&ratio),
        "fp32 {a} B / int8 {b} B = {ratio:.2}"
    );

    // Channel means from calibration images, the error measured on other images.
    let images = real_images(9, 256);
    let (calib, test) = images.split_at(6);
    let probe = ActivationProbe::new(&fp32, &activation_range_names(&spec)).unwrap();
    let means = probe.statistics(calib).unwrap().channel_means;
    let corrected = bias_corrected(&spec, &w, Precision::Int8, &means).unwrap();
    let (_, int8c) = write(
        dir.path(),
        "int8c.onnx",
        &spec,
        &corrected,
        &o(Precision::Int8),
    );

    let x = batch(test);
    let pooled = |f: &ModelFile| Runtime::new(f).unwrap().run(&x).unwrap().features.unwrap();
    let reference = pooled(&fp32);
    let plain = relative_l2(&reference, &pooled(&int8));
    let fixed = relative_l2(&reference, &pooled(&int8c));
    eprintln!(
        "int8 pooled-feature error (relative L2): {plain:.4} plain, {fixed:.4} bias-corrected"
    );
    assert!(
        fixed <= 0.6 * plain,
        "bias correction: {plain:.4} → {fixed:.4}"
    );
    assert!(
        fixed <= 0.05,
        "corrected int8 pooled features differ from fp32 by {fixed:.4}"
    );
}

fn relative_l2(a: &[f32], b: &[f32]) -> f32 {
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f32 = a.iter().map(|x| x * x).sum();
    (num / den).sqrt()
}

/// `ood_block: Some(i)` adds `ood_features`: block `i`'s output pooled, in every precision; a
/// file whose OOD rule reads a block it does not output is refused at load.
#[test]
fn ood_features_is_the_pooled_output_of_the_chosen_block() {
    let spec = small_spec();
    let w = random_weights(&spec, 3);
    let dir = tempfile::tempdir().unwrap();
    let images = real_images(4, S);
    let (_, fp32) = write(dir.path(), "plain.onnx", &spec, &w, &opts(Precision::Fp32));
    let ranges = ActivationProbe::new(&fp32, &activation_range_names(&spec))
        .unwrap()
        .statistics(&images)
        .unwrap()
        .ranges;
    let last = spec.blocks().len() - 1;
    for block in [1, last] {
        let name = block_output(&spec, block).unwrap();
        let probe = ActivationProbe::new(&fp32, std::slice::from_ref(&name)).unwrap();
        let expected: Vec<f32> = images
            .iter()
            .flat_map(|im| {
                let a = probe.run(im).unwrap().remove(0);
                let plane: usize = a.shape[2..].iter().product();
                a.data
                    .chunks(plane)
                    .map(|c| c.iter().sum::<f32>() / plane as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            expected.len(),
            images.len() * spec.blocks()[block].out_channels
        );
        for (precision, tolerance) in [
            (Precision::Fp32, 1e-5),
            (Precision::Int8, 0.1),
            (Precision::Int8Full, 0.1),
        ] {
            let o = ExportOptions {
                ood_block: Some(block),
                activation_ranges: Some(ranges.clone()),
                ..opts(precision)
            };
            let (_, file) = write(dir.path(), "ood.onnx", &spec, &w, &o);
            let out = Runtime::new(&file).unwrap().run(&batch(&images)).unwrap();
            let got = out.ood_features.as_ref().expect("an ood_features output");
            let scale = expected.iter().map(|v| v.abs()).fold(0.0, f32::max);
            let d = max_abs_diff(got, &expected);
            assert!(
                d <= tolerance * scale.max(1e-3),
                "{precision:?} block {block}: ood_features differ from the pooled {name} by {d} (scale {scale})"
            );
            assert_eq!(
                out.ood_features_of(1).unwrap(),
                &got[got.len() / 4..got.len() / 2]
            );
        }
    }

    let too_far = ExportOptions {
        ood_block: Some(spec.blocks().len()),
        ..opts(Precision::Fp32)
    };
    let err = write_onnx(&spec, &w, &too_far, &metadata(S, "fp32")).unwrap_err();
    assert!(matches!(err, OnnxError::OodBlock { .. }), "{err}");

    let mut meta = metadata(S, "fp32");
    meta.calibration.ood = Some(OodSpec {
        block: Some(1),
        frozen_backbone: false,
        feature_mean: vec![0.0; spec.blocks()[1].out_channels],
        feature_std: vec![1.0; spec.blocks()[1].out_channels],
        threshold: 1.0,
    });
    let bytes = write_onnx(&spec, &w, &opts(Precision::Fp32), &meta).unwrap();
    let file = ModelFile::from_verified_bytes(&dir.path().join("no-ood.onnx"), bytes).unwrap();
    let err = Runtime::new(&file).unwrap_err().to_string();
    assert!(
        err.contains("ood_features") && err.contains("block 1"),
        "{err}"
    );
}

/// With `ood_weights`, `ood_features` comes from a frozen branch of its own: equal to what a file
/// of those weights alone outputs for the block, in every precision, while the logits stay the
/// classifier's.
#[test]
fn a_frozen_ood_branch_reads_its_own_weights_and_leaves_the_logits_alone() {
    let spec = small_spec();
    let classifier = random_weights(&spec, 3);
    let frozen = random_weights(&spec, 4);
    let dir = tempfile::tempdir().unwrap();
    let images = real_images(4, S);
    let input = batch(&images);
    let block = 1;
    let run = |name: &str, w: &NamedWeights, o: &ExportOptions| {
        let (_, file) = write(dir.path(), name, &spec, w, o);
        Runtime::new(&file).unwrap().run(&input).unwrap()
    };
    let with_block = |precision| ExportOptions {
        ood_block: Some(block),
        ..opts(precision)
    };
    let fp32_frozen = ExportOptions {
        ood_weights: Some(frozen.clone()),
        ..with_block(Precision::Fp32)
    };
    let (_, probe_file) = write(dir.path(), "probe.onnx", &spec, &classifier, &fp32_frozen);
    let mut names = activation_range_names(&spec);
    names.extend(ood_range_names(&spec, block));
    assert_eq!(
        ood_range_names(&spec, block).last().unwrap(),
        &format!("ood.{}", block_output(&spec, block).unwrap())
    );
    let ranges = ActivationProbe::new(&probe_file, &names)
        .unwrap()
        .statistics(&images)
        .unwrap()
        .ranges;
    // What the frozen weights alone give for the block, in fp32.
    let alone = run("frozen-alone.onnx", &frozen, &with_block(Precision::Fp32));
    let expected = alone.ood_features.unwrap();
    let scale = expected.iter().map(|v| v.abs()).fold(0.0, f32::max);
    for (precision, tolerance) in [
        (Precision::Fp32, 1e-5),
        (Precision::Int8, 0.1),
        (Precision::Int8Full, 0.1),
    ] {
        let plain = ExportOptions {
            activation_ranges: Some(ranges.clone()),
            ..with_block(precision)
        };
        let branch = ExportOptions {
            ood_weights: Some(frozen.clone()),
            ..plain.clone()
        };
        let own = run("own.onnx", &classifier, &plain);
        let both = run("branch.onnx", &classifier, &branch);
        let got = both.ood_features.as_ref().unwrap();
        let d = max_abs_diff(got, &expected);
        assert!(
            d <= tolerance * scale.max(1e-3),
            "{precision:?}: the branch's ood_features differ from the frozen weights' by {d}"
        );
        let from_own = max_abs_diff(got, own.ood_features.as_ref().unwrap());
        assert!(
            from_own > 0.3 * scale,
            "{precision:?}: the branch reads the classifier's own block (gap {from_own}, scale {scale})"
        );
        let logit_gap = max_abs_diff(&both.logits, &own.logits);
        assert!(
            logit_gap <= 1e-5,
            "{precision:?}: the logits moved by {logit_gap}"
        );
    }
}

#[test]
fn class_maps_are_the_classifier_at_every_cell_and_average_to_the_logits() {
    let spec = small_spec();
    let w = random_weights(&spec, 5);
    let dir = tempfile::tempdir().unwrap();
    let images = real_images(2, S);
    let mut reference = Vec::new();
    let mut side = 0;
    for im in &images {
        let (m, s) = reference_class_maps(&spec, &w, im);
        reference.extend(m);
        side = s;
    }
    for precision in [Precision::Fp32, Precision::Int8] {
        let name = format!("{}.onnx", precision.as_str());
        let (path, file) = write(dir.path(), &name, &spec, &w, &opts(precision));
        let out = Runtime::new(&file).unwrap().run(&batch(&images)).unwrap();
        let maps = out.class_maps.as_ref().expect("the file has class maps");
        assert_eq!(maps.side, side);
        assert_eq!(
            maps.values.len(),
            images.len() * spec.num_classes * side * side
        );
        let limit = match precision {
            Precision::Fp32 => 1e-4,
            _ => 0.05 * reference.iter().map(|v| v.abs()).fold(0.0, f32::max),
        };
        let d = max_abs_diff(&maps.values, &reference);
        assert!(
            d <= limit,
            "{precision}: tract class maps differ from the reference by {d}"
        );
        // The mean of each map is the logit tract computed.
        for i in 0..images.len() {
            for k in 0..spec.num_classes {
                let m = maps.of(i, k).unwrap();
                let mean = m.iter().sum::<f32>() / m.len() as f32;
                let logit = out.logits_of(i)[k];
                assert!(
                    (mean - logit).abs() <= 1e-3,
                    "{precision}: image {i} class {k}: mean {mean} vs logit {logit}"
                );
            }
        }
        let ort = onnxruntime(&path, &batch(&images));
        let d = max_abs_diff(ort.class_maps.as_ref().unwrap(), &maps.values);
        assert!(
            d <= 1e-4,
            "{precision}: ONNX Runtime's class maps differ from tract's by {d}"
        );
    }
    // A file written without features has neither output, and still runs.
    let (_, file) = write(
        dir.path(),
        "plain.onnx",
        &spec,
        &w,
        &ExportOptions {
            with_features: false,
            ..opts(Precision::Fp32)
        },
    );
    let out = Runtime::new(&file).unwrap().run(&batch(&images)).unwrap();
    assert!(out.class_maps.is_none() && out.features.is_none());
}
