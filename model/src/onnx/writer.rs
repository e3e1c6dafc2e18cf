//! The writer's entry point: [`write_onnx`] and its [`ExportOptions`]. Built only with the
//! `writer` feature (the host's); the device build has the rest of [`super`].

use super::names::{
    block_output, feature_map_side, CLASS_MAPS, FEATURES, INPUT, LOGITS, OOD_FEATURES, OOD_PREFIX,
};
use super::network::{self, ood_trunk};
use super::proto::{float_value, Dim};
use super::{emit, OnnxError, Precision, IR_VERSION, OPSET};
use crate::arch::ArchSpec;
use crate::metadata::{Metadata, KEY_OUTPUTS};
use crate::weights::NamedWeights;
use prost::Message;
use std::collections::BTreeMap;
use tract_onnx::pb::{ModelProto, OperatorSetIdProto, StringStringEntryProto};

/// How to write the file.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub precision: Precision,
    /// Side `S` of the square input.
    pub input_size: u32,
    /// Also output the last feature map as `features` and the class-activation maps computed
    /// from it as `class_maps` (see [`CLASS_MAPS`]).
    pub with_features: bool,
    /// `(min, max)` per tensor named by [`activation_range_names`](super::activation_range_names); required for `Int8Full`.
    pub activation_ranges: Option<BTreeMap<String, (f32, f32)>>,
    /// Also output the pooled output of this block as `ood_features` (what an OOD rule with
    /// `block: Some(i)` reads).
    pub ood_block: Option<usize>,
    /// Weights that compute `ood_features` in a frozen branch of their own (the stem and blocks
    /// up to `ood_block`, e.g. the ImageNet backbone; see [`ood_trunk`]). `None`: the
    /// classifier's own block is pooled.
    pub ood_weights: Option<NamedWeights>,
}

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

/// The `dermo.outputs` metadata value: what each of the graph's outputs holds.
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
