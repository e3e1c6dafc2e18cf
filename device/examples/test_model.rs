//! Writes signed fp32 and int8 test models (ImageNet backbone, 7-way head) for benchmarks and
//! manual runs when no trained model exists: `cargo run --release --example
//! test_model -- OUT_DIR`.

#[path = "../tests/device/common/model.rs"]
#[allow(dead_code)]
mod model;

use dermo_model::metadata::CalibrationSpec;
use dermo_model::onnx::Precision;
use std::path::PathBuf;

fn main() {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: test_model OUT_DIR");
        std::process::exit(2);
    };
    let weights = model::seven_class_weights();
    for (name, precision) in [
        ("test-fp32", Precision::Fp32),
        ("test-int8", Precision::Int8),
    ] {
        let m = model::build(&out, name, &weights, precision, CalibrationSpec::default());
        println!("{}", m.path.display());
    }
}
