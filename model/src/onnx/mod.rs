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
pub use correction::bias_corrected;
pub use names::{
    block_output, feature_map_side, CLASS_MAPS, FEATURES, INPUT, LOGITS, OOD_FEATURES, OOD_PREFIX,
    POOLED,
};
#[cfg(feature = "writer")]
pub use network::{layers, ood_trunk, ConvLayer, Layer};
#[cfg(feature = "writer")]
pub use quant::{Affine, WeightCoding};

use crate::arch::ArchSpec;
#[cfg(feature = "writer")]
use crate::metadata::{Metadata, KEY_OUTPUTS};
#[cfg(feature = "writer")]
use crate::weights::{NamedWeights, WeightsError};
#[cfg(feature = "writer")]
use prost::Message;
#[cfg(feature = "writer")]
use proto::{float_value, Dim};
#[cfg(feature = "writer")]
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
#[cfg(feature = "writer")]
use tract_onnx::pb::{ModelProto, OperatorSetIdProto, StringStringEntryProto};

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

/// How to write the file.
#[cfg(feature = "writer")]
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub precision: Precision,
    /// Side `S` of the square input.
    pub input_size: u32,
    /// Also output the last feature map as `features` and the class-activation maps computed
    /// from it as `class_maps` (see [`CLASS_MAPS`]).
    pub with_features: bool,
    /// `(min, max)` per tensor named by [`activation_range_names`]; required for `Int8Full`.
    pub activation_ranges: Option<BTreeMap<String, (f32, f32)>>,
    /// Also output the pooled output of this block as `ood_features` (what an OOD rule with
    /// `block: Some(i)` reads).
    pub ood_block: Option<usize>,
    /// Weights that compute `ood_features` in a frozen branch of their own (the stem and blocks
    /// up to `ood_block`, e.g. the ImageNet backbone; see [`ood_trunk`]). `None`: the
    /// classifier's own block is pooled.
    pub ood_weights: Option<NamedWeights>,
}

#[cfg(feature = "writer")]
impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            precision: Precision::Int8,
            input_size: crate::PreprocessConfig::default().size,
            with_features: true,
            activation_ranges: None,
            ood_block: None,
            ood_weights: None,
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

/// The `dermo.outputs` metadata value: what each of the graph's outputs holds.
#[cfg(feature = "writer")]
fn describe_outputs(outputs: &[tract_onnx::pb::ValueInfoProto]) -> String {
    let about = |name: &str| {
        match name {
        LOGITS => "class logits [N, classes], in the order of dermo.classes; divide by the calibration temperature before the softmax",
        FEATURES => "last feature map [N, C, h, w] (after the head convolution and ReLU6)",
        CLASS_MAPS => "class-activation maps [N, classes, h, w]: the classifier applied at each cell of `features`; the spatial mean of a class's map is its logit",
        OOD_FEATURES => "pooled output [N, C] of the block the OOD rule reads (dermo.calibration.ood)",
        _ => "",
    }
    };
    let described: BTreeMap<&str, &str> = outputs
        .iter()
        .map(|o| (o.name.as_str(), about(&o.name)))
        .collect();
    serde_json::to_string(&described).expect("a map of strings always serializes")
}

/// Encodes the network and its metadata as an ONNX `ModelProto`.
#[cfg(feature = "writer")]
pub fn write_onnx(
    spec: &ArchSpec,
    w: &NamedWeights,
    opts: &ExportOptions,
    meta: &Metadata,
) -> Result<Vec<u8>, OnnxError> {
    if opts.input_size < 32 {
        return Err(OnnxError::InputSize(opts.input_size));
    }
    if meta.input.preprocess.size != opts.input_size {
        return Err(OnnxError::SizeMismatch {
            meta: meta.input.preprocess.size,
            export: opts.input_size,
        });
    }
    if meta.classes.len() != spec.num_classes {
        return Err(OnnxError::Classes {
            spec: spec.num_classes,
            meta: meta.classes.len(),
        });
    }
    let mut layers = network::layers(spec, w)?;
    let ood_input = match opts.ood_block {
        None => None,
        Some(index) => {
            let missing = || OnnxError::OodBlock {
                index,
                blocks: spec.blocks().len(),
            };
            let output = block_output(spec, index).ok_or_else(missing)?;
            match &opts.ood_weights {
                None => Some(output),
                Some(frozen) => {
                    layers.extend(ood_trunk(spec, frozen, index).ok_or_else(missing)??);
                    Some(format!("{OOD_PREFIX}{output}"))
                }
            }
        }
    };
    let mut graph = match opts.precision {
        Precision::Fp32 | Precision::Int8 => {
            emit::float_graph(&layers, opts.precision, ood_input.as_deref())
        }
        Precision::Int8Full => {
            let ranges = opts.activation_ranges.as_ref().ok_or(OnnxError::NoRanges)?;
            emit::qlinear_graph(&layers, ranges, ood_input.as_deref())?
        }
    };
    if opts.with_features {
        emit::class_maps(&mut graph, &layers, opts.precision);
    }
    let s = opts.input_size as usize;
    let batch = Dim::Symbol("N");
    let inputs = vec![float_value(
        INPUT,
        &[batch, Dim::Fixed(3), Dim::Fixed(s), Dim::Fixed(s)],
    )];
    let mut outputs = vec![float_value(
        LOGITS,
        &[Dim::Symbol("N"), Dim::Fixed(spec.num_classes)],
    )];
    if opts.with_features {
        let h = feature_map_side(spec, s);
        let map = |name, channels| {
            let dims = [
                Dim::Symbol("N"),
                Dim::Fixed(channels),
                Dim::Fixed(h),
                Dim::Fixed(h),
            ];
            float_value(name, &dims)
        };
        outputs.push(map(FEATURES, spec.head_channels));
        outputs.push(map(CLASS_MAPS, spec.num_classes));
    }
    if let Some(index) = opts.ood_block {
        let channels = spec.blocks()[index].out_channels;
        outputs.push(float_value(
            OOD_FEATURES,
            &[Dim::Symbol("N"), Dim::Fixed(channels)],
        ));
    }
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "dermo".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "dermo".into(),
        model_version: 1,
        doc_string: "dermo skin-lesion triage classifier: decision support, not a diagnosis."
            .into(),
        metadata_props: meta
            .to_props()
            .into_iter()
            .chain([(KEY_OUTPUTS.to_string(), describe_outputs(&outputs))])
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
        graph: Some(graph.finish(&spec.name, inputs, outputs)),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}
