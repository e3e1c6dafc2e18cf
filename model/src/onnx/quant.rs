//! Quantization parameters: symmetric per-channel int8 for weights, affine uint8 for activations,
//! and which weights each precision quantizes.

use super::names::INPUT;
use super::network::ConvLayer;
use super::Precision;

/// How one layer's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightCoding {
    Float,
    /// Symmetric int8 in `[-bound, bound]`, one scale per output channel (axis 0).
    Int8PerChannel {
        bound: i8,
    },
    /// Symmetric int8 in `[-bound, bound]`, one scale for the tensor.
    Int8PerTensor {
        bound: i8,
    },
}

/// The largest magnitude an int8 weight of `precision` is stored as.
///
/// `Int8` dequantizes its weights in front of float ops and uses the whole symmetric range.
/// `Int8Full` stores 7-bit weights, `[-63, 63]`: x86 CPUs without VNNI (AVX2, and AVX-512 before
/// VNNI) multiply uint8 activations by int8 weights with `vpmaddubsw`, which adds two products
/// into an int16 that saturates above 32,767. With 8-bit weights a pair reaches
/// 2 × 255 × 127 = 64,770, and ONNX Runtime's QLinearConv answered wrongly there (logits off by
/// 27 % of their range on an AVX2-only AMD EPYC; within the test's 15 % on one with AVX-512 VNNI).
/// At 63 a pair stays within 2 × 255 × 63 = 32,130 on every CPU. ONNX Runtime's own quantizer
/// calls this `reduce_range`.
pub fn weight_bound(precision: Precision) -> i8 {
    match precision {
        Precision::Int8Full => 63,
        Precision::Fp32 | Precision::Int8 => 127,
    }
}

/// The coding of a convolution's weights.
///
/// `Int8` keeps the stem and the depthwise kernels in float: they hold ~5 % of the weights, but
/// each channel has only 9–27 weights behind the largest BatchNorm gains of the network, and
/// their rounding error dominates what int8 does to the output. `Int8Full` has to quantize all.
pub fn conv_coding(c: &ConvLayer, precision: Precision) -> WeightCoding {
    match precision {
        Precision::Fp32 => WeightCoding::Float,
        Precision::Int8 if c.group > 1 || c.input == INPUT => WeightCoding::Float,
        Precision::Int8 | Precision::Int8Full => WeightCoding::Int8PerChannel {
            bound: weight_bound(precision),
        },
    }
}

/// The coding of the classifier's weights (QLinearMatMul takes one scale for the matrix).
pub fn dense_coding(precision: Precision) -> WeightCoding {
    match precision {
        Precision::Fp32 => WeightCoding::Float,
        Precision::Int8 => WeightCoding::Int8PerChannel {
            bound: weight_bound(precision),
        },
        Precision::Int8Full => WeightCoding::Int8PerTensor {
            bound: weight_bound(precision),
        },
    }
}

/// The weights as the file will restore them (`None` when stored as float), for bias correction.
pub fn dequantized(data: &[f32], rows: usize, coding: WeightCoding) -> Option<Vec<f32>> {
    match coding {
        WeightCoding::Float => None,
        WeightCoding::Int8PerChannel { bound } => {
            let (q, scales) = per_channel_int8(data, rows, bound);
            let per = data.len() / rows.max(1);
            Some(
                q.iter()
                    .enumerate()
                    .map(|(i, &v)| v as f32 * scales[i / per.max(1)])
                    .collect(),
            )
        }
        WeightCoding::Int8PerTensor { bound } => {
            let (q, scale) = symmetric_int8(data, bound);
            Some(q.iter().map(|&v| v as f32 * scale).collect())
        }
    }
}

/// Symmetric int8 over the whole tensor (zero point 0); values in `[-bound, bound]`.
pub fn symmetric_int8(data: &[f32], bound: i8) -> (Vec<i8>, f32) {
    let bound = f32::from(bound);
    let scale = symmetric_scale(data, bound);
    (
        data.iter()
            .map(|v| (v / scale).round().clamp(-bound, bound) as i8)
            .collect(),
        scale,
    )
}

/// Symmetric int8 per output channel (axis 0 of a tensor with `channels` rows).
pub fn per_channel_int8(data: &[f32], channels: usize, bound: i8) -> (Vec<i8>, Vec<f32>) {
    let per = data.len() / channels.max(1);
    let mut q = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(channels);
    for row in data.chunks(per.max(1)) {
        let (rq, s) = symmetric_int8(row, bound);
        q.extend(rq);
        scales.push(s);
    }
    (q, scales)
}

fn symmetric_scale(data: &[f32], bound: f32) -> f32 {
    let max = data.iter().fold(0f32, |m, v| m.max(v.abs()));
    // An all-zero channel still needs a positive scale.
    if max > 0.0 && max.is_finite() {
        max / bound
    } else {
        1.0
    }
}

/// `real = (q − zero_point) × scale` for uint8 activations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub scale: f32,
    pub zero_point: u8,
}

impl Affine {
    /// The uint8 mapping covering `[lo, hi]`, widened to contain 0 so that zero (padding, ReLU)
    /// is exact.
    pub fn from_range(lo: f32, hi: f32) -> Affine {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let span = hi - lo;
        let scale = if span > 0.0 && span.is_finite() {
            span / 255.0
        } else {
            1.0
        };
        let zero_point = (-lo / scale).round().clamp(0.0, 255.0) as u8;
        Affine { scale, zero_point }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_scales_follow_each_row() {
        let (q, s) = per_channel_int8(&[1.0, -0.5, 0.0, 0.0, 10.0, -20.0], 3, 127);
        assert_eq!(s[0], 1.0 / 127.0);
        assert_eq!(s[1], 1.0, "an all-zero row keeps a usable scale");
        assert_eq!(q, [127, -64, 0, 0, 64, -127]);
    }

    #[test]
    fn fully_quantized_weights_keep_vpmaddubsw_pairs_within_int16() {
        // Two uint8 × int8 products summed into an int16, the largest activation on both.
        let pair = |bound: i8| 2 * 255 * i32::from(bound);
        assert!(pair(weight_bound(Precision::Int8Full)) <= i32::from(i16::MAX));
        assert!(pair(weight_bound(Precision::Int8)) > i32::from(i16::MAX));
        let (q, s) = per_channel_int8(&[1.0, -0.25, 5.0, -20.0], 2, 63);
        assert_eq!((s[0], s[1]), (1.0 / 63.0, 20.0 / 63.0));
        assert_eq!(q, [63, -16, 16, -63]);
        let coding = dense_coding(Precision::Int8Full);
        assert_eq!(coding, WeightCoding::Int8PerTensor { bound: 63 });
        let restored = dequantized(&[1.0, -0.25, 0.1], 1, coding).unwrap();
        for (r, want) in restored.iter().zip([1.0, -16.0 / 63.0, 6.0 / 63.0]) {
            assert!((r - want).abs() < 1e-6, "{restored:?}");
        }
    }

    #[test]
    fn affine_range_contains_zero_exactly() {
        let a = Affine::from_range(0.0, 6.0);
        assert_eq!(a.zero_point, 0);
        assert!((a.scale - 6.0 / 255.0).abs() < 1e-9);
        let b = Affine::from_range(-1.0, 3.0);
        let lo = (0.0 - b.zero_point as f32) * b.scale;
        let hi = (255.0 - b.zero_point as f32) * b.scale;
        assert!(
            (lo + 1.0).abs() <= b.scale && (hi - 3.0).abs() <= b.scale,
            "{lo} {hi}"
        );
        assert_eq!(Affine::from_range(2.0, 2.0).zero_point, 0);
    }
}
