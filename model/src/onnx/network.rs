//! The network as a flat list of layers, read from the spec and the state dict, with every
//! BatchNorm folded into the convolution before it.
//!
//! Tensor names here are the names in the written graph, so activation ranges measured on the
//! fp32 file apply 1:1 to the int8-full file.

use super::names::{FEATURES, INPUT, LOGITS, OOD_PREFIX, POOLED};
use crate::arch::{padding, ArchSpec};
use crate::weights::{NamedWeights, WeightTensor, WeightsError};

/// A convolution with its BatchNorm folded in.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    pub input: String,
    /// The layer's output (after ReLU6 when `relu6`).
    pub output: String,
    /// `[out, in / group, k, k]`, BatchNorm scale applied.
    pub weight: WeightTensor,
    /// BatchNorm shift (plus any conv bias), one per output channel.
    pub bias: Vec<f32>,
    pub stride: usize,
    pub pad: usize,
    pub group: usize,
    pub relu6: bool,
    /// State-dict prefix of the BatchNorm folded in (e.g. `_blocks.3._bn1`).
    pub bn: String,
}

/// One step of the network.
#[derive(Debug, Clone)]
pub enum Layer {
    Conv(ConvLayer),
    /// Residual skip: `output = a + b`.
    Add {
        a: String,
        b: String,
        output: String,
    },
    /// Global average pool and flatten: `[N, C, h, w]` → `[N, C]`.
    Pool {
        input: String,
        output: String,
    },
    /// Classifier: `output = input · weightᵀ + bias` with `weight` `[classes, C]`.
    Dense {
        input: String,
        output: String,
        weight: WeightTensor,
        bias: Vec<f32>,
    },
}

impl Layer {
    pub fn output(&self) -> &str {
        match self {
            Layer::Conv(c) => &c.output,
            Layer::Add { output, .. }
            | Layer::Pool { output, .. }
            | Layer::Dense { output, .. } => output,
        }
    }
}

/// Builds the layer list; every weight is checked against the shape the spec implies.
pub fn layers(spec: &ArchSpec, w: &NamedWeights) -> Result<Vec<Layer>, WeightsError> {
    let mut out = trunk(spec, w, spec.blocks().len())?;
    let x = out
        .last()
        .map(|l| l.output().to_string())
        .unwrap_or_default();
    out.push(Layer::Conv(folded_conv(
        w,
        spec.bn_eps as f32,
        &x,
        FEATURES.into(),
        "_conv_head.weight",
        "_bn1",
        [spec.head_channels, spec.last_block_channels(), 1, 1],
        1,
        1,
        true,
    )?));
    out.push(Layer::Pool {
        input: FEATURES.into(),
        output: POOLED.into(),
    });
    out.push(Layer::Dense {
        input: POOLED.into(),
        output: LOGITS.into(),
        weight: w
            .get_shaped("_fc.weight", &[spec.num_classes, spec.head_channels])?
            .clone(),
        bias: w.get_shaped("_fc.bias", &[spec.num_classes])?.data.clone(),
    });
    Ok(out)
}

/// The stem and blocks `0..=block` computed with `w` (e.g. the ImageNet backbone, whatever the
/// classifier's own weights became), every tensor named with [`OOD_PREFIX`]: a branch of the graph
/// beside the classifier, read from the same input, whose last output the OOD rule pools.
/// `None` when the network has no such block.
pub fn ood_trunk(
    spec: &ArchSpec,
    w: &NamedWeights,
    block: usize,
) -> Option<Result<Vec<Layer>, WeightsError>> {
    if block >= spec.blocks().len() {
        return None;
    }
    let rename = |n: &str| match n {
        INPUT => INPUT.to_string(),
        n => format!("{OOD_PREFIX}{n}"),
    };
    Some(trunk(spec, w, block + 1).map(|layers| {
        layers
            .into_iter()
            .map(|layer| match layer {
                Layer::Conv(mut c) => {
                    c.input = rename(&c.input);
                    c.output = rename(&c.output);
                    Layer::Conv(c)
                }
                Layer::Add { a, b, output } => Layer::Add {
                    a: rename(&a),
                    b: rename(&b),
                    output: rename(&output),
                },
                other => other,
            })
            .collect()
    }))
}

/// The stem and the first `blocks` blocks.
fn trunk(spec: &ArchSpec, w: &NamedWeights, blocks: usize) -> Result<Vec<Layer>, WeightsError> {
    let eps = spec.bn_eps as f32;
    let mut out = Vec::new();
    let conv = |input: &str,
                output: String,
                weight: &str,
                bn: &str,
                shape: [usize; 4],
                stride,
                group,
                relu6| {
        folded_conv(
            w, eps, input, output, weight, bn, shape, stride, group, relu6,
        )
    };
    out.push(Layer::Conv(conv(
        INPUT,
        "stem".into(),
        "_conv_stem.weight",
        "_bn0",
        [spec.stem_channels, 3, 3, 3],
        2,
        1,
        true,
    )?));
    let mut x = "stem".to_string();
    for b in spec.blocks().into_iter().take(blocks) {
        let p = b.prefix();
        let name = format!("blocks.{}", b.index);
        let block_in = x.clone();
        let hidden = b.hidden_channels();
        if b.has_expand() {
            let o = format!("{name}.expand");
            out.push(Layer::Conv(conv(
                &x,
                o.clone(),
                &format!("{p}_expand_conv.weight"),
                &format!("{p}_bn0"),
                [hidden, b.in_channels, 1, 1],
                1,
                1,
                true,
            )?));
            x = o;
        }
        let o = format!("{name}.dw");
        out.push(Layer::Conv(conv(
            &x,
            o.clone(),
            &format!("{p}_depthwise_conv.weight"),
            &format!("{p}_bn1"),
            [hidden, 1, b.kernel, b.kernel],
            b.stride,
            hidden,
            true,
        )?));
        x = o;
        let o = format!("{name}.project");
        out.push(Layer::Conv(conv(
            &x,
            o.clone(),
            &format!("{p}_project_conv.weight"),
            &format!("{p}_bn2"),
            [b.out_channels, hidden, 1, 1],
            1,
            1,
            false,
        )?));
        x = o;
        if b.has_skip() {
            let o = format!("{name}.add");
            out.push(Layer::Add {
                a: x,
                b: block_in,
                output: o.clone(),
            });
            x = o;
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn folded_conv(
    w: &NamedWeights,
    eps: f32,
    input: &str,
    output: String,
    weight: &str,
    bn: &str,
    shape: [usize; 4],
    stride: usize,
    group: usize,
    relu6: bool,
) -> Result<ConvLayer, WeightsError> {
    let kernel = w.get_shaped(weight, &shape)?;
    let o = shape[0];
    let bn_param = |n: &str| w.get_shaped(&format!("{bn}.{n}"), &[o]).map(|t| &t.data);
    let (gamma, beta) = (bn_param("weight")?, bn_param("bias")?);
    let (mean, var) = (bn_param("running_mean")?, bn_param("running_var")?);
    // A conv bias is optional in the state dict (the reference network has none).
    let bias_name = format!("{}.bias", weight.trim_end_matches(".weight"));
    let conv_bias = match w.0.contains_key(&bias_name) {
        true => Some(&w.get_shaped(&bias_name, &[o])?.data),
        false => None,
    };
    let per_out = kernel.data.len() / o;
    let mut data = kernel.data.clone();
    let mut bias = Vec::with_capacity(o);
    for c in 0..o {
        let scale = gamma[c] / (var[c] + eps).sqrt();
        for v in &mut data[c * per_out..(c + 1) * per_out] {
            *v *= scale;
        }
        let b0 = conv_bias.map_or(0.0, |b| b[c]);
        bias.push(beta[c] + (b0 - mean[c]) * scale);
    }
    Ok(ConvLayer {
        input: input.to_string(),
        output,
        weight: WeightTensor {
            shape: shape.to_vec(),
            data,
        },
        bias,
        stride,
        pad: padding(shape[2]),
        group,
        relu6,
        bn: bn.to_string(),
    })
}
