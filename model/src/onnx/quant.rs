//! Quantization parameters: symmetric per-channel int8 for weights, affine uint8 for activations,
//! and which weights each precision quantizes.

use super::names::INPUT;
use super::network::ConvLayer;
use super::Precision;

/// How one layer's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightCoding {
    Float,
    /// Symmetric int8, one scale per output channel (axis 0).
    Int8PerChannel,
    /// Symmetric int8, one scale for the tensor.
    Int8PerTensor,
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
        Precision::Int8 | Precision::Int8Full => WeightCoding::Int8PerChannel,
    }
}

/// The coding of the classifier's weights (QLinearMatMul takes one scale for the matrix).
pub fn dense_coding(precision: Precision) -> WeightCoding {
    match precision {
        Precision::Fp32 => WeightCoding::Float,
        Precision::Int8 => WeightCoding::Int8PerChannel,
        Precision::Int8Full => WeightCoding::Int8PerTensor,
    }
}

/// The weights as the file will restore them (`None` when stored as float), for bias correction.
pub fn dequantized(data: &[f32], rows: usize, coding: WeightCoding) -> Option<Vec<f32>> {
    match coding {
        WeightCoding::Float => None,
        WeightCoding::Int8PerChannel => {
            let (q, scales) = per_channel_int8(data, rows);
            let per = data.len() / rows.max(1);
            Some(
                q.iter()
                    .enumerate()
                    .map(|(i, &v)| v as f32 * scales[i / per.max(1)])
                    .collect(),
            )
        }
        WeightCoding::Int8PerTensor => {
            let (q, scale) = symmetric_int8(data);
            Some(q.iter().map(|&v| v as f32 * scale).collect())
        }
    }
}

/// Symmetric int8 over the whole tensor (zero point 0); values in `[-127, 127]`.
pub fn symmetric_int8(data: &[f32]) -> (Vec<i8>, f32) {
    let scale = symmetric_scale(data);
    (data.iter().map(|v| quantize_i8(*v, scale)).collect(), scale)
}

/// Symmetric int8 per output channel (axis 0 of a tensor with `channels` rows).
pub fn per_channel_int8(data: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = data.len() / channels.max(1);
    let mut q = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(channels);
    for row in data.chunks(per.max(1)) {
        let (rq, s) = symmetric_int8(row);
        q.extend(rq);
        scales.push(s);
    }
    (q, scales)
}

fn symmetric_scale(data: &[f32]) -> f32 {
    let max = data.iter().fold(0f32, |m, v| m.max(v.abs()));
    // An all-zero channel still needs a positive scale.
    if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    }
}

fn quantize_i8(v: f32, scale: f32) -> i8 {
    (v / scale).round().clamp(-127.0, 127.0) as i8
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
        let (q, s) = per_channel_int8(&[1.0, -0.5, 0.0, 0.0, 10.0, -20.0], 3);
        assert_eq!(s[0], 1.0 / 127.0);
        assert_eq!(s[1], 1.0, "an all-zero row keeps a usable scale");
        assert_eq!(q, [127, -64, 0, 0, 64, -127]);
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
