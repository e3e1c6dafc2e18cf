//! A real EfficientNet-Lite0 model file for tests and benchmarks, built without training: the
//! ImageNet-pretrained backbone (`$DERMO_PRETRAINED`) with a 7-way head taken from the first
//! seven ImageNet classes, written by `dermo_model`'s ONNX writer and signed with a fixed test key.
//! Its predictions mean nothing medically; its computation is the real network's.

use dermo_model::arch::ArchSpec;
use dermo_model::metadata::{CalibrationSpec, InputSpec, Metadata, Provenance};
use dermo_model::onnx::{write_onnx, ExportOptions, Precision};
use dermo_model::signature::{sign_file, signing_key_from_seed, write_key_pair};
use dermo_model::weights::{NamedWeights, WeightTensor};
use std::path::{Path, PathBuf};

pub struct TestModel {
    pub path: PathBuf,
    pub public_key: PathBuf,
}

/// The converted ImageNet weights.
pub fn pretrained_weights() -> PathBuf {
    std::env::var_os("DERMO_PRETRAINED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../.venv/dermo/efficientnet-lite0-imagenet.safetensors")
        })
}

/// The ImageNet backbone with a 7-class head, as named weights.
pub fn seven_class_weights() -> NamedWeights {
    let path = pretrained_weights();
    let mut w = NamedWeights::load_safetensors(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", path.display()));
    let fc = w.get("_fc.weight").unwrap().clone();
    let bias = w.get("_fc.bias").unwrap().clone();
    let cols = fc.shape[1];
    w.insert(
        "_fc.weight",
        WeightTensor::new(vec![7, cols], fc.data[..7 * cols].to_vec()).unwrap(),
    );
    w.insert(
        "_fc.bias",
        WeightTensor::new(vec![7], bias.data[..7].to_vec()).unwrap(),
    );
    w
}

/// The input side of the test models.
const INPUT_SIZE: u32 = 256;

/// Writes `dir/<name>.onnx`, its `.sig` and the test key pair (`dermo-signing.pub`).
pub fn build(
    dir: &Path,
    name: &str,
    weights: &NamedWeights,
    precision: Precision,
    calibration: CalibrationSpec,
) -> TestModel {
    let meta = Metadata::new(
        InputSpec::new(dermo_model::PreprocessConfig {
            size: INPUT_SIZE,
            color_constancy: false,
        }),
        calibration,
        Provenance {
            arch: "efficientnet-lite0".into(),
            precision: precision.as_str().into(),
            created: "2025-01-01T00:00:00Z".into(),
            source_commit: "test-model".into(),
            ..Provenance::default()
        },
    );
    let opts = ExportOptions {
        precision,
        input_size: INPUT_SIZE,
        with_features: true,
        activation_ranges: None,
        ood_block: None,
        ood_weights: None,
    };
    let bytes = write_onnx(&ArchSpec::efficientnet_lite0(7), weights, &opts, &meta)
        .expect("the ONNX writer accepts the pretrained weights");
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, &bytes).unwrap();
    let key = signing_key_from_seed([42; 32]);
    sign_file(&key, &path, &bytes).unwrap();
    let (_, public_key) = write_key_pair(dir, &key).unwrap();
    TestModel { path, public_key }
}
