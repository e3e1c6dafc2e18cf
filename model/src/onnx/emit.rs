//! Writing the layer list as ONNX nodes: a float graph (fp32 weights, or int8 weights dequantized
//! in the graph) and a fully quantized graph (QLinearConv / QLinearMatMul).

use super::names::{CLASS_MAPS, FEATURES, INPUT, OOD_FEATURES};
use super::network::{ConvLayer, Layer};
use super::proto::{attr_int, attr_ints, GraphBuilder};
use super::quant::{
    conv_coding, dense_coding, per_channel_int8, symmetric_int8, weight_bound, Affine, WeightCoding,
};
use super::{OnnxError, Precision};
use std::collections::{BTreeMap, HashMap};

const RELU6_MIN: &str = "relu6.min";
const RELU6_MAX: &str = "relu6.max";

fn conv_attrs(c: &ConvLayer) -> Vec<tract_onnx::pb::AttributeProto> {
    let k = c.weight.shape[2];
    vec![
        attr_ints("kernel_shape", &[k, k]),
        attr_ints("strides", &[c.stride, c.stride]),
        attr_ints("pads", &[c.pad; 4]),
        attr_ints("dilations", &[1, 1]),
        attr_int("group", c.group as i64),
    ]
}

/// The float graph (`Fp32` or `Int8`). Weights coded as int8 are stored per-channel and restored
/// by a `DequantizeLinear` (axis 0) in front of the float op. With `ood_input`, that tensor is
/// also pooled into `ood_features`.
pub fn float_graph(
    layers: &[Layer],
    precision: Precision,
    ood_input: Option<&str>,
) -> GraphBuilder {
    let mut g = GraphBuilder::default();
    g.f32(RELU6_MIN, &[], &[0.0]);
    g.f32(RELU6_MAX, &[], &[6.0]);
    let weight =
        |g: &mut GraphBuilder, name: &str, shape: &[usize], data: &[f32], coding| -> String {
            let bound = match coding {
                WeightCoding::Float => return g.f32(&format!("{name}.w"), shape, data),
                WeightCoding::Int8PerChannel { bound } => bound,
                WeightCoding::Int8PerTensor { .. } => {
                    unreachable!("only int8-full codes a tensor with one scale")
                }
            };
            let (q, scales) = per_channel_int8(data, shape[0], bound);
            let q = g.i8(&format!("{name}.wq"), shape, &q);
            let s = g.f32(&format!("{name}.ws"), &[shape[0]], &scales);
            let zp = g.i8(&format!("{name}.wzp"), &[shape[0]], &vec![0; shape[0]]);
            let out = format!("{name}.w");
            g.node(
                "DequantizeLinear",
                &[&q, &s, &zp],
                &[&out],
                vec![attr_int("axis", 0)],
            );
            out
        };
    for layer in layers {
        match layer {
            Layer::Conv(c) => {
                let coding = conv_coding(c, precision);
                let w = weight(&mut g, &c.output, &c.weight.shape, &c.weight.data, coding);
                let b = g.f32(&format!("{}.b", c.output), &[c.bias.len()], &c.bias);
                let conv_out = match c.relu6 {
                    true => format!("{}.conv", c.output),
                    false => c.output.clone(),
                };
                g.node("Conv", &[&c.input, &w, &b], &[&conv_out], conv_attrs(c));
                if c.relu6 {
                    g.node(
                        "Clip",
                        &[&conv_out, RELU6_MIN, RELU6_MAX],
                        &[&c.output],
                        vec![],
                    );
                }
            }
            Layer::Add { a, b, output } => g.node("Add", &[a, b], &[output], vec![]),
            Layer::Pool { input, output } => pool(&mut g, input, output),
            Layer::Dense {
                input,
                output,
                weight: wt,
                bias,
            } => {
                let w = weight(&mut g, output, &wt.shape, &wt.data, dense_coding(precision));
                let b = g.f32(&format!("{output}.b"), &[bias.len()], bias);
                g.node(
                    "Gemm",
                    &[input, &w, &b],
                    &[output],
                    vec![attr_int("transB", 1)],
                );
            }
        }
    }
    if let Some(input) = ood_input {
        pool(&mut g, input, OOD_FEATURES);
    }
    g
}

/// Adds the `class_maps` output: the dense layer's weights and bias as a 1×1 convolution over the
/// float `features` map (both graphs have it). Average pooling and the dense layer commute, so the
/// spatial mean of class `k`'s map is logit `k`: a class-activation map that needs no gradients.
/// The float graphs reuse the dense layer's own (dequantized) weights, reshaped, so the mean is
/// the logit exactly; the fully quantized graph gets float copies (7 × 1,280 values).
pub fn class_maps(g: &mut GraphBuilder, layers: &[Layer], precision: Precision) {
    let Some((output, weight, bias)) = layers.iter().find_map(|l| match l {
        Layer::Dense {
            output,
            weight,
            bias,
            ..
        } => Some((output, weight, bias)),
        _ => None,
    }) else {
        return;
    };
    let [classes, c] = [weight.shape[0], weight.shape[1]];
    let (w, b) = match precision {
        Precision::Fp32 | Precision::Int8 => {
            let shape = g.i64(
                &format!("{CLASS_MAPS}.shape"),
                &[4],
                &[classes as i64, c as i64, 1, 1],
            );
            let w = format!("{CLASS_MAPS}.w");
            g.node("Reshape", &[&format!("{output}.w"), &shape], &[&w], vec![]);
            (w, format!("{output}.b"))
        }
        Precision::Int8Full => (
            g.f32(
                &format!("{CLASS_MAPS}.w"),
                &[classes, c, 1, 1],
                &weight.data,
            ),
            g.f32(&format!("{CLASS_MAPS}.b"), &[classes], bias),
        ),
    };
    let attrs = vec![
        attr_ints("kernel_shape", &[1, 1]),
        attr_ints("strides", &[1, 1]),
        attr_ints("pads", &[0; 4]),
    ];
    g.node("Conv", &[FEATURES, &w, &b], &[CLASS_MAPS], attrs);
}

fn pool(g: &mut GraphBuilder, input: &str, output: &str) {
    let gap = format!("{output}.gap");
    g.node("GlobalAveragePool", &[input], &[&gap], vec![]);
    g.node("Flatten", &[&gap], &[output], vec![attr_int("axis", 1)]);
}

/// Quantized values in the graph: the uint8 tensor's name and its mapping to reals.
struct QTensor {
    name: String,
    affine: Affine,
}

/// The fully quantized graph: uint8 activations with ranges measured on the fp32 graph (keyed by
/// the same tensor names), int8 weights, int32 biases. ReLU6 is the saturation of an output range
/// clamped to `[0, 6]`; residual adds and the pooling run in float between Dequantize/Quantize.
/// With `ood_input`, that tensor is also dequantized and pooled into `ood_features`.
pub fn qlinear_graph(
    layers: &[Layer],
    ranges: &BTreeMap<String, (f32, f32)>,
    ood_input: Option<&str>,
) -> Result<GraphBuilder, OnnxError> {
    let range = |name: &str| {
        ranges
            .get(name)
            .copied()
            .ok_or_else(|| OnnxError::MissingRange(name.to_string()))
    };
    let bound = weight_bound(Precision::Int8Full);
    let mut g = GraphBuilder::default();
    let mut q: HashMap<String, QTensor> = HashMap::new();
    let (lo, hi) = range(INPUT)?;
    let input = quantize(&mut g, INPUT, Affine::from_range(lo, hi));
    q.insert(INPUT.into(), input);
    let get = |q: &HashMap<String, QTensor>, name: &str| -> Result<(String, Affine), OnnxError> {
        q.get(name)
            .map(|t| (t.name.clone(), t.affine))
            .ok_or_else(|| OnnxError::Graph(format!("{name} used before it was quantized")))
    };
    for layer in layers {
        match layer {
            Layer::Conv(c) => {
                let (x, xa) = get(&q, &c.input)?;
                let (mut lo, mut hi) = range(&c.output)?;
                if c.relu6 {
                    (lo, hi) = (0.0, hi.clamp(0.0, 6.0));
                }
                let ya = Affine::from_range(lo, hi);
                let out = c.output.as_str();
                let o = c.weight.shape[0];
                let (wq, ws) = per_channel_int8(&c.weight.data, o, bound);
                let bq: Vec<i32> = c
                    .bias
                    .iter()
                    .zip(&ws)
                    .map(|(b, s)| (b / (xa.scale * s)).round() as i32)
                    .collect();
                let xs = g.f32(&format!("{out}.xs"), &[], &[xa.scale]);
                let xz = g.u8(&format!("{out}.xzp"), &[], &[xa.zero_point]);
                let w = g.i8(&format!("{out}.wq"), &c.weight.shape, &wq);
                let s = g.f32(&format!("{out}.ws"), &[o], &ws);
                let wz = g.i8(&format!("{out}.wzp"), &[o], &vec![0; o]);
                let ys = g.f32(&format!("{out}.ys"), &[], &[ya.scale]);
                let yz = g.u8(&format!("{out}.yzp"), &[], &[ya.zero_point]);
                let b = g.i32(&format!("{out}.bq"), &[o], &bq);
                let y = format!("{out}.q");
                g.node(
                    "QLinearConv",
                    &[&x, &xs, &xz, &w, &s, &wz, &ys, &yz, &b],
                    &[&y],
                    conv_attrs(c),
                );
                q.insert(
                    out.into(),
                    QTensor {
                        name: y,
                        affine: ya,
                    },
                );
            }
            Layer::Add { a, b, output } => {
                let a = dequantize(&mut g, &get(&q, a)?);
                let b = dequantize(&mut g, &get(&q, b)?);
                g.node("Add", &[&a, &b], &[output], vec![]);
                let (lo, hi) = range(output)?;
                let t = quantize(&mut g, output, Affine::from_range(lo, hi));
                q.insert(output.clone(), t);
            }
            Layer::Pool { input, output } => {
                // The float feature map doubles as the `features` output.
                let (x, xa) = get(&q, input)?;
                dequantize_to(&mut g, &x, xa, input);
                pool(&mut g, input, output);
                let (lo, hi) = range(output)?;
                let t = quantize(&mut g, output, Affine::from_range(lo, hi));
                q.insert(output.clone(), t);
            }
            Layer::Dense {
                input,
                output,
                weight,
                bias,
            } => {
                let (x, xa) = get(&q, input)?;
                // QLinearMatMul has no bias: its output range is the logits' range less the bias.
                let (lo, hi) = range(output)?;
                let bmin = bias.iter().copied().fold(f32::INFINITY, f32::min);
                let bmax = bias.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let ya = Affine::from_range(lo - bmax, hi - bmin);
                let [classes, c] = [weight.shape[0], weight.shape[1]];
                let mut wt = vec![0.0; weight.data.len()];
                for (k, row) in weight.data.chunks(c).enumerate() {
                    for (j, v) in row.iter().enumerate() {
                        wt[j * classes + k] = *v;
                    }
                }
                let (wq, ws) = symmetric_int8(&wt, bound);
                let xs = g.f32(&format!("{output}.xs"), &[], &[xa.scale]);
                let xz = g.u8(&format!("{output}.xzp"), &[], &[xa.zero_point]);
                let w = g.i8(&format!("{output}.wq"), &[c, classes], &wq);
                let s = g.f32(&format!("{output}.ws"), &[], &[ws]);
                let wz = g.i8(&format!("{output}.wzp"), &[], &[0]);
                let ys = g.f32(&format!("{output}.ys"), &[], &[ya.scale]);
                let yz = g.u8(&format!("{output}.yzp"), &[], &[ya.zero_point]);
                let y = format!("{output}.q");
                g.node(
                    "QLinearMatMul",
                    &[&x, &xs, &xz, &w, &s, &wz, &ys, &yz],
                    &[&y],
                    vec![],
                );
                let nobias = format!("{output}.nobias");
                dequantize_to(&mut g, &y, ya, &nobias);
                let b = g.f32(&format!("{output}.b"), &[bias.len()], bias);
                g.node("Add", &[&nobias, &b], &[output], vec![]);
            }
        }
    }
    if let Some(input) = ood_input {
        let x = dequantize(&mut g, &get(&q, input)?);
        pool(&mut g, &x, OOD_FEATURES);
    }
    Ok(g)
}

fn quantize(g: &mut GraphBuilder, name: &str, a: Affine) -> QTensor {
    let s = g.f32(&format!("{name}.qs"), &[], &[a.scale]);
    let z = g.u8(&format!("{name}.qzp"), &[], &[a.zero_point]);
    let out = format!("{name}.q");
    g.node("QuantizeLinear", &[name, &s, &z], &[&out], vec![]);
    QTensor {
        name: out,
        affine: a,
    }
}

fn dequantize(g: &mut GraphBuilder, (name, a): &(String, Affine)) -> String {
    let out = format!("{name}.dq");
    dequantize_to(g, name, *a, &out);
    out
}

fn dequantize_to(g: &mut GraphBuilder, name: &str, a: Affine, out: &str) {
    let s = g.f32(&format!("{out}.dqs"), &[], &[a.scale]);
    let z = g.u8(&format!("{out}.dqzp"), &[], &[a.zero_point]);
    g.node("DequantizeLinear", &[name, &s, &z], &[out], vec![]);
}
