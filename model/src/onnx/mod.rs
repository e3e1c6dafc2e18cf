//! The ONNX writer: the network graph built from [`ArchSpec`] and `NamedWeights`, with no Python
//! and no torch. The writer itself (and the weights it reads) builds only with the `writer`
//! feature, which the host turns on; the device build has the tensor names ([`names`]) and
//! [`Precision`] only.
//!
//! BatchNorm is folded into the convolutions, ReLU6 is `Clip(0, 6)`, opset 13, IR 8. The graph has
//! input `input [N,3,S,S]` (N symbolic), output `logits [N,classes]` and optionally `features`, the
//! last feature map `[N,C,h,w]` for class-activation maps and the out-of-distribution score.

#[cfg(feature = "writer")]
mod correction;
#[cfg(feature = "writer")]
mod emit;
pub mod names;
#[cfg(feature = "writer")]
mod network;
#[cfg(feature = "writer")]
mod proto;
#[cfg(feature = "writer")]
mod quant;
#[cfg(feature = "writer")]
mod writer;

#[cfg(feature = "writer")]
pub use correction::bias_corrected;
pub use names::{
    block_output, feature_map_side, CLASS_MAPS, FEATURES, INPUT, LOGITS, OOD_FEATURES, OOD_PREFIX,
    POOLED,
};
#[cfg(feature = "writer")]
pub use network::{layers, ood_trunk, ConvLayer, Layer};
#[cfg(feature = "writer")]
pub use quant::{Affine, WeightCoding};
#[cfg(feature = "writer")]
pub use writer::{write_onnx, ExportOptions};

use crate::arch::ArchSpec;
#[cfg(feature = "writer")]
use crate::weights::WeightsError;
use std::fmt;
use std::str::FromStr;

pub const OPSET: i64 = 13;
pub const IR_VERSION: i64 = 8;

/// Numeric format of the exported network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Float weights and activations.
    Fp32,
    /// Per-channel int8 weights dequantized in the graph, float compute: 3–4× smaller, same speed.
    #[default]
    Int8,
    /// int8 weights and uint8 activations (QLinearConv / QLinearMatMul).
    Int8Full,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
            Precision::Int8Full => "int8-full",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = OnnxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "int8" => Ok(Precision::Int8),
            "int8-full" => Ok(Precision::Int8Full),
            other => Err(OnnxError::Precision(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[cfg(feature = "writer")]
    #[error("the weights do not fit the architecture: {0}")]
    Weights(#[from] WeightsError),
    #[error("unknown precision {0:?}; expected fp32, int8 or int8-full")]
    Precision(String),
    #[error("int8-full export needs activation ranges; none were given")]
    NoRanges,
    #[error("int8-full export: no activation range for tensor {0:?}")]
    MissingRange(String),
    #[error("bias correction: no channel means for tensor {0:?}")]
    MissingMean(String),
    #[error("bias correction: tensor {name:?} has {found} channel means, expected {expected}")]
    MeanLength {
        name: String,
        found: usize,
        expected: usize,
    },
    #[error("input size {0} is too small (at least 32)")]
    InputSize(u32),
    #[error("metadata input size {meta} differs from the export input size {export}")]
    SizeMismatch { meta: u32, export: u32 },
    #[error("the architecture has {spec} classes but the metadata lists {meta}")]
    Classes { spec: usize, meta: usize },
    #[error("the network has no block {index} for the ood_features output (it has {blocks})")]
    OodBlock { index: usize, blocks: usize },
    #[error("graph construction failed: {0}")]
    Graph(String),
}

/// The tensors of the fp32 graph whose value ranges an int8-full export needs, in graph order:
/// the input, every layer output, the pooled features and the logits. Run the fp32 file with
/// these as outputs (see `runtime::ActivationProbe`) on calibration images to measure them.
pub fn activation_range_names(spec: &ArchSpec) -> Vec<String> {
    // The names depend on the spec only; dummy weights would do, but walking the spec is cheaper.
    let mut names = vec![INPUT.to_string()];
    names.push("stem".into());
    for b in spec.blocks() {
        let n = format!("blocks.{}", b.index);
        if b.has_expand() {
            names.push(format!("{n}.expand"));
        }
        names.push(format!("{n}.dw"));
        names.push(format!("{n}.project"));
        if b.has_skip() {
            names.push(format!("{n}.add"));
        }
    }
    names.extend([FEATURES, POOLED, LOGITS].map(String::from));
    names
}

/// The tensors of a frozen OOD branch up to `block` (see [`ExportOptions::ood_weights`]) whose
/// ranges an int8-full export needs besides [`activation_range_names`].
pub fn ood_range_names(spec: &ArchSpec, block: usize) -> Vec<String> {
    let last = match block_output(spec, block) {
        Some(name) => name,
        None => return Vec::new(),
    };
    let mut names = Vec::new();
    for name in activation_range_names(spec).into_iter().skip(1) {
        let done = name == last;
        names.push(format!("{OOD_PREFIX}{name}"));
        if done {
            break;
        }
    }
    names
}
