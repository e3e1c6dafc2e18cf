//! Export to a model file, inspection, signing keys and verification.
//!
//! Layers: [`source`] (what a run folder holds) → [`activations`] (statistics for the int8 variants) →
//! [`parity`] (the written file checked against libtorch and fp32) → [`exporter`] (the command);
//! [`inspect`] and `crate::signing` serve `dermo inspect`, `keygen` and `verify`. The ONNX writer
//! itself lives in `dermo_model::onnx` and needs no libtorch.

pub mod activations;
pub mod exporter;
pub mod inspect;
pub mod parity;
pub mod source;

use crate::signing;
use crate::train::DeviceChoice;
use anyhow::Context;
use clap::{Args, ValueEnum};
use dermo_calibration::RangeMethod;
use dermo_model::onnx::Precision;
use dermo_model::{ModelFile, TrustPolicy};
use std::path::PathBuf;

/// Numeric format of the written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// int8 per-channel weights dequantized in the graph: 3–4× smaller, float speed and accuracy.
    Int8,
    /// Float weights: the largest file, the exact network.
    Fp32,
    /// int8 weights and uint8 activations (QLinearConv/QLinearMatMul); costs accuracy and, on
    /// tract, speed — measure it before shipping.
    #[value(name = "int8-full")]
    Int8Full,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Int8 => Precision::Int8,
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Int8Full => Precision::Int8Full,
        }
    }
}

/// How int8-full picks each activation range from its histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RangeArg {
    /// Smallest and largest value seen.
    Minmax,
    /// Clip |x| at --percentile.
    Percentile,
    /// Minimize the KL divergence to the quantized distribution (TensorRT's entropy method).
    Entropy,
}

/// `dermo export RUN --out MODEL.onnx`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run folder (best.safetensors, config.toml, run.json; calibration.json and
    /// eval-test.json when present).
    pub run: PathBuf,
    /// The model file to write; its signature goes to MODEL.onnx.sig and the export figures to
    /// MODEL.onnx.export.json.
    #[arg(long)]
    pub out: PathBuf,
    /// int8 (default), fp32 or int8-full.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Int8)]
    pub precision: PrecisionArg,
    /// Sign the file with this ed25519 signing key (from `dermo keygen`).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// int8 and int8-full: number of training images the activation statistics (channel means
    /// for bias correction, ranges for int8-full) are measured on.
    #[arg(long, default_value_t = 128)]
    pub calib_size: usize,
    /// int8-full: how each activation range is chosen. minmax measured best on Lite0; entropy
    /// clips ReLU6 outputs far too tightly there (the spike of zeros dominates its search).
    #[arg(long, value_enum, default_value_t = RangeArg::Minmax)]
    pub range_method: RangeArg,
    /// int8-full with --range-method percentile: the percentile of |x| to clip at.
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// int8: the smallest top-1 agreement with the fp32 file that export accepts.
    #[arg(long, default_value_t = 0.99, value_parser = fraction)]
    pub min_agreement: f64,
    /// int8: the largest balanced-accuracy loss against the fp32 file that export accepts, in
    /// points. On a small validation set one flipped image of a rare class moves it by more.
    #[arg(long, default_value_t = 1.0)]
    pub max_bal_acc_loss: f64,
    /// Validation manifest for the parity checks (default: the one in RUN/run.json).
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Leave out the `features` output (last feature map, used for class-activation maps and
    /// the out-of-distribution rule).
    #[arg(long)]
    pub no_features: bool,
    /// Where libtorch computes the reference logits: cpu (default; exact parity), cuda or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
}

/// `dermo inspect MODEL.onnx`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The model file.
    pub model: PathBuf,
    /// Print the raw `dermo.*` metadata as one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// `dermo keygen --out DIR`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Folder for dermo-signing.key (secret, mode 0600, 64 hex characters) and
    /// dermo-signing.pub (public, 64 hex characters; copy it to devices).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing key pair.
    #[arg(long)]
    pub force: bool,
}

/// `dermo verify MODEL.onnx --key PUB`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The model file; its signature is read from MODEL.onnx.sig.
    pub model: PathBuf,
    /// A trusted public key file (dermo-signing.pub); repeat for several.
    #[arg(long = "key", value_name = "PUB", required = true)]
    pub keys: Vec<PathBuf>,
}

pub fn run_export(a: ExportArgs) -> anyhow::Result<()> {
    let range_method = match a.range_method {
        RangeArg::Minmax => RangeMethod::MinMax,
        RangeArg::Percentile => RangeMethod::Percentile(a.percentile),
        RangeArg::Entropy => RangeMethod::Entropy {
            quantized_bins: 128,
        },
    };
    let plan = exporter::ExportPlan {
        out: a.out,
        precision: a.precision.into(),
        with_features: !a.no_features,
        sign: a.sign,
        val: a.val,
        calib_size: a.calib_size,
        min_agreement: a.min_agreement,
        max_bal_acc_loss: a.max_bal_acc_loss / 100.0,
        range_method,
        device: a.device.resolve()?,
    };
    let r = exporter::export(&a.run, &plan)?;
    println!(
        "wrote {} ({}, {} bytes, {:.2} MiB; fp32 would be {:.2} MiB, {:.2}×)",
        r.model.display(),
        r.precision,
        r.bytes,
        r.bytes as f64 / 1048576.0,
        r.fp32_bytes as f64 / 1048576.0,
        r.fp32_bytes as f64 / r.bytes as f64
    );
    println!("sha256 {}", r.sha256);
    match &r.signature {
        Some(s) => println!("signature {}", s.display()),
        None => println!("unsigned (pass --sign KEY to sign)"),
    }
    println!(
        "parity on {} validation images of {}: fp32 tract vs libtorch max |Δ logit| {:.2e}",
        r.val_images,
        r.val_manifest.display(),
        r.fp32_max_abs_delta
    );
    println!(
        "{} vs fp32: top-1 agreement {:.2} %, balanced accuracy {:.2} % (fp32 {:.2} %)",
        r.precision,
        100.0 * r.top1_agreement,
        100.0 * r.balanced_accuracy,
        100.0 * r.balanced_accuracy_fp32
    );
    if let (Some(fp32), Some(file)) = (r.class_maps_max_abs_delta_fp32, r.class_maps_max_abs_delta)
    {
        println!(
            "class maps vs libtorch on the first {} validation images: max |Δ| {fp32:.2e} fp32, {file:.2e} {}",
            parity::MAP_IMAGES,
            r.precision
        );
    }
    println!(
        "export took {:.0} s; figures in {}",
        r.seconds,
        exporter::report_path(&r.model).display()
    );
    Ok(())
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

pub fn run_inspect(a: InspectArgs) -> anyhow::Result<()> {
    let file = ModelFile::open(&a.model, &TrustPolicy::unsigned())?;
    if a.json {
        let props: serde_json::Map<String, serde_json::Value> = file
            .metadata
            .to_props()
            .into_iter()
            .map(|(k, v)| {
                let v = serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v));
                (k, v)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&props)?);
        return Ok(());
    }
    let graph = file.graph_info()?;
    print!("{}", inspect::report(&file, &graph));
    Ok(())
}

pub fn run_keygen(a: KeygenArgs) -> anyhow::Result<()> {
    let (secret, public) = signing::keygen(&a.out, a.force)?;
    println!("signing key {} (keep it secret)", secret.display());
    println!(
        "public key  {} ({})",
        public.display(),
        signing::public_key_hex(&public)?
    );
    Ok(())
}

pub fn run_verify(a: VerifyArgs) -> anyhow::Result<()> {
    let file = signing::verify(&a.model, &a.keys)
        .with_context(|| format!("verification of {} failed", a.model.display()))?;
    println!(
        "OK: {} is signed by a trusted key ({}), sha256 {}, {} {}",
        file.path.display(),
        signing::signature_path(&file.path).display(),
        file.sha256,
        file.metadata.provenance.arch,
        file.metadata.provenance.precision
    );
    Ok(())
}
