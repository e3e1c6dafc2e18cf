use dermo_calibration::RangeMethod;
use dermo_host::export::activations::activation_stats;
use dermo_model::{ModelFile, TrustPolicy, PreprocessConfig};
use dermo_model::arch::ArchSpec;
#[test]
fn dbg() {
    let f = ModelFile::open(std::path::Path::new("/tmp/h2/k11-fp32.onnx"), &TrustPolicy::unsigned()).unwrap();
    let imgs: Vec<_> = std::fs::read_to_string("/tmp/h2/val80.csv").unwrap().lines().skip(1).take(8).map(|l| std::path::PathBuf::from(l.split(',').nth(1).unwrap())).collect();
    let cfg = PreprocessConfig { size: 224, color_constancy: false };
    let spec = ArchSpec::efficientnet_lite0(7);
    let a = activation_stats(&f, &spec, &imgs, &cfg, RangeMethod::MinMax).unwrap();
    let b = activation_stats(&f, &spec, &imgs, &cfg, RangeMethod::Entropy { quantized_bins: 128 }).unwrap();
    let c = activation_stats(&f, &spec, &imgs, &cfg, RangeMethod::Percentile(99.99)).unwrap();
    for (k, v) in &a.ranges { println!("{k:24} minmax {:?} entropy {:?} pct {:?}", v, b.ranges[k], c.ranges[k]); }
}
