//! dermo's depthwise convolution, put into tract's graph in place of its own at load.
//!
//! Why: tract 0.23 walks a depthwise convolution zone by zone. Its vector kernel on x86-64 covers
//! only unit-stride zones, and the padded borders of a small plane (a 6×6 output under a 5×5
//! kernel is almost all border) run a scalar loop. The profile (`dermo-scope bench --profile`,
//! bench/results.md) put depthwise convolutions at 60 % of a frame, 8× ONNX Runtime's time.
//!
//! How: one channel at a time,
//! 1. the input plane is copied, zero-padded, into `stride × stride` *phase planes*: phase
//!    `(py, px)` holds the padded pixels at rows `≡ py` and columns `≡ px` (mod stride), so a
//!    stride-2 convolution reads every phase with unit stride;
//! 2. the output is computed on the phase grid, flattened, a band of rows at a time (about 8 KiB,
//!    so that it stays in the L1 cache): for each kernel row, one pass over the band adds that
//!    row's taps, `acc[i] = acc[i] + w[t] · phase_t[i + offset_t]`. The pass is one long
//!    contiguous loop, which the compiler vectorises (NEON on the device, AVX where the host has
//!    it, SSE2 otherwise). The grid is one phase plane wide, so each output row carries
//!    `(k - 1) / stride` columns that are computed and dropped;
//! 3. the valid columns are copied to the output, through the ReLU6 that followed the
//!    convolution in the graph when there was one ([`substitute`] takes it in).
//!
//! A ReLU6 that fed the convolution and nothing else (the stem's, before the first block's
//! depthwise convolution) is taken in too, applied as the input is copied into the phase planes:
//! tract could not fuse that one into the stem's matrix product and ran it as a pass of its own.
//!
//! The arithmetic is the bias, then one multiply and one add per tap in kernel order, with no
//! fused multiply-add: every lane width gives the same bits, and so do the host and the device.
//! Channels are split over tract's executor (the runtime's thread pool), never a sum: any thread
//! count gives the same bits too.
//!
//! Only what dermo's files hold is taken: 2-D float NCHW (or CHW) convolutions with one input
//! channel per group, square strides of 1 or 2, no dilation, and a constant kernel; anything else
//! keeps tract's op. On aarch64 tract's decluttering moves most depthwise convolutions
//! channel-last before [`substitute`] sees them; there tract's own NEON kernel, which covers every
//! stride and border, keeps them, and this one takes those left channel-first.

use std::cell::RefCell;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// One depthwise convolution. Inputs: the data `[N?, C, H, W]`, the kernel `[C, 1, kh, kw]`
/// (OIHW) and the bias (`[C]`, or one value for every channel).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DepthwiseConv {
    pub geometry: Geometry,
    /// Whether the data has a leading batch axis (NCHW rather than CHW).
    pub has_n: bool,
    /// The activation that followed the convolution in the graph (`Max` then `Min` with
    /// constants: ReLU6), applied as each output row is written.
    pub clamp: Option<Clamp>,
    /// The activation that fed the convolution and nothing else, applied to the input as it is
    /// copied into the phase planes (the zero padding is added after it, as in the graph).
    pub input_clamp: Option<Clamp>,
}

/// `min(max(x, low), high)`, its bounds kept as bits so that the op compares and hashes as tract
/// needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Clamp {
    low: u32,
    high: u32,
}

impl Clamp {
    pub fn new(low: f32, high: f32) -> Clamp {
        Clamp {
            low: low.to_bits(),
            high: high.to_bits(),
        }
    }

    fn bounds(self) -> (f32, f32) {
        (f32::from_bits(self.low), f32::from_bits(self.high))
    }
}

/// The shape of one channel's work: all `usize`, so the op compares and hashes as tract needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub channels: usize,
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: usize,
    /// Zero padding: top, left, bottom, right.
    pub pad: [usize; 4],
    pub output: [usize; 2],
}

impl Geometry {
    fn padded(&self) -> [usize; 2] {
        [
            self.input[0] + self.pad[0] + self.pad[2],
            self.input[1] + self.pad[1] + self.pad[3],
        ]
    }

    /// Rows and columns of one phase plane. One more row than the output grid reads keeps the
    /// last row's overhang of `(kw - 1) / stride` columns inside the buffer.
    fn phase(&self) -> [usize; 2] {
        let [ph, pw] = self.padded();
        [ph.div_ceil(self.stride) + 1, pw.div_ceil(self.stride)]
    }

    /// Output rows computed per pass: about 8 KiB of grid.
    fn band(&self) -> usize {
        (2048 / self.phase()[1]).clamp(1, self.output[0].max(1))
    }

    /// Scratch floats for one channel: the phase planes, then one band of the output grid.
    fn scratch_len(&self) -> usize {
        let [qh, qw] = self.phase();
        self.stride * self.stride * qh * qw + self.band() * qw
    }
}

impl Op for DepthwiseConv {
    fn name(&self) -> StaticName {
        "DermoDepthwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geometry;
        Ok(vec![format!(
            "{}×{} stride {}, pad {:?}, {} channels, {:?} → {:?}, input clamp {:?}, clamp {:?}",
            g.kernel[0],
            g.kernel[1],
            g.stride,
            g.pad,
            g.channels,
            g.input,
            g.output,
            self.input_clamp.map(Clamp::bounds),
            self.clamp.map(Clamp::bounds)
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (data, kernel, bias) = args_3!(inputs);
        let g = self.geometry;
        let data = data.try_as_plain_ram()?.as_slice::<f32>()?;
        let kernel = kernel.try_as_plain_ram()?.as_slice::<f32>()?;
        let bias = bias.try_as_plain_ram()?.as_slice::<f32>()?;
        let taps = g.kernel[0] * g.kernel[1];
        let (in_plane, out_plane) = (g.input[0] * g.input[1], g.output[0] * g.output[1]);
        ensure!(
            kernel.len() == g.channels * taps,
            "depthwise kernel has {} values",
            kernel.len()
        );
        ensure!(
            bias.len() == g.channels || bias.len() == 1,
            "depthwise bias has {} values",
            bias.len()
        );
        ensure!(
            data.len() % (g.channels * in_plane) == 0,
            "depthwise input has {} values",
            data.len()
        );
        let n = data.len() / (g.channels * in_plane);
        let mut shape: TVec<usize> = tvec![g.channels, g.output[0], g.output[1]];
        if self.has_n {
            shape.insert(0, n);
        }
        let mut output = Tensor::zero::<f32>(&shape)?;
        let mut view = output.try_as_plain_ram_mut()?;
        let out = view.as_slice_mut::<f32>()?;
        let rows = n * g.channels;
        let clamps = Clamps {
            input: self.input_clamp.map(Clamp::bounds),
            output: self.clamp.map(Clamp::bounds),
        };
        tract_linalg::multithread::par_chunks_mut(
            out,
            out_plane,
            rows * (in_plane + out_plane) * taps,
            |first, chunk| {
                SCRATCH.with_borrow_mut(|scratch| {
                    scratch.resize(g.scratch_len(), 0.0);
                    for (i, plane) in chunk.chunks_exact_mut(out_plane).enumerate() {
                        let row = first + i;
                        let c = row % g.channels;
                        let input = &data[row * in_plane..(row + 1) * in_plane];
                        let kernel = &kernel[c * taps..(c + 1) * taps];
                        let b = if bias.len() == 1 { bias[0] } else { bias[c] };
                        channel(&g, input, kernel, b, clamps, scratch, plane);
                    }
                });
                Ok(())
            },
        )?;
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for DepthwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = &self.geometry;
        let mut shape: TVec<TDim> =
            tvec![g.channels.into(), g.output[0].into(), g.output[1].into()];
        if self.has_n {
            shape.insert(0, inputs[0].shape[0].clone());
        }
        Ok(tvec!(f32::fact(shape)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geometry;
        let n: TDim = if self.has_n {
            inputs[0].shape[0].clone()
        } else {
            1.into()
        };
        let macs = g.channels * g.output[0] * g.output[1] * g.kernel[0] * g.kernel[1];
        Ok(tvec!((Cost::FMA(f32::datum_type()), n * macs)))
    }

    as_op!();
}

thread_local! {
    /// Each thread's phase planes and output grid, kept between frames: no allocation per frame.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `min(max(x, low), high)` on the input and on the output of one channel, where the graph had
/// them.
#[derive(Debug, Clone, Copy, Default)]
struct Clamps {
    input: Option<(f32, f32)>,
    output: Option<(f32, f32)>,
}

/// One channel: `input` (`H × W`), clamped when `clamps.input` says so, convolved with `kernel`
/// (`kh × kw`) plus `bias` into `out` (`Ho × Wo`), clamped when `clamps.output` says so, through
/// `scratch` ([`Geometry::scratch_len`] floats).
fn channel(
    g: &Geometry,
    input: &[f32],
    kernel: &[f32],
    bias: f32,
    clamps: Clamps,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, checked just above.
        return unsafe { channel_avx(g, input, kernel, bias, clamps, scratch, out) };
    }
    channel_body(g, input, kernel, bias, clamps, scratch, out)
}

/// [`channel_body`] compiled for AVX: the same arithmetic, eight lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn channel_avx(
    g: &Geometry,
    input: &[f32],
    kernel: &[f32],
    bias: f32,
    clamps: Clamps,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    channel_body(g, input, kernel, bias, clamps, scratch, out)
}

#[inline(always)]
fn channel_body(
    g: &Geometry,
    input: &[f32],
    kernel: &[f32],
    bias: f32,
    clamps: Clamps,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let s = g.stride;
    let [qh, qw] = g.phase();
    let (phases, grid) = scratch.split_at_mut(s * s * qh * qw);
    // 1. Zero-padded phase planes, of the clamped input when the graph clamped it.
    phases.fill(0.0);
    let [h, w] = g.input;
    let plane = qh * qw;
    let clamped = |v: f32| match clamps.input {
        Some(bounds) => clamp(bounds, v),
        None => v,
    };
    for (y, row) in input.chunks_exact(w).take(h).enumerate() {
        let py = y + g.pad[0];
        let base = (py % s) * s * plane + (py / s) * qw;
        let px = g.pad[1];
        if s == 1 {
            let dst = &mut phases[base + px..base + px + w];
            match clamps.input {
                Some(_) => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = clamped(v)),
                None => dst.copy_from_slice(row),
            }
            continue;
        }
        // Stride 2: even padded columns to phase (py % 2, 0), odd ones to (py % 2, 1).
        let (even, odd) = phases[base..].split_at_mut(plane);
        let (first, rest) = if px.is_multiple_of(2) {
            (0, row)
        } else {
            // The first pixel lands on an odd column: its pair starts one pixel later.
            odd[px / 2] = clamped(row[0]);
            (1, &row[1..])
        };
        let c0 = (px + first) / 2;
        let pairs = rest.chunks_exact(2);
        if let [last] = pairs.remainder() {
            even[c0 + rest.len() / 2] = clamped(*last);
        }
        for ((e, o), pair) in even[c0..].iter_mut().zip(&mut odd[c0..]).zip(pairs) {
            *e = clamped(pair[0]);
            *o = clamped(pair[1]);
        }
    }
    // 2. The output grid, `band` rows of `qw` at a time (so that it stays in the L1 cache), one
    //    pass per kernel row; 3. its valid columns to `out`.
    let [ho, wo] = g.output;
    let [kh, kw] = g.kernel;
    let band = g.band();
    for y0 in (0..ho).step_by(band) {
        let rows = band.min(ho - y0);
        let len = rows * qw;
        let grid = &mut grid[..len];
        grid.fill(bias);
        for ky in 0..kh {
            let weights = &kernel[ky * kw..(ky + 1) * kw];
            let source = |kx: usize| {
                let phase = (ky % s) * s + kx % s;
                let start = phase * qh * qw + (y0 + ky / s) * qw + kx / s;
                &phases[start..start + len]
            };
            match kw {
                3 => taps_row::<3>(grid, [source(0), source(1), source(2)], weights),
                5 => taps_row::<5>(
                    grid,
                    [source(0), source(1), source(2), source(3), source(4)],
                    weights,
                ),
                _ => {
                    for (kx, &wt) in weights.iter().enumerate() {
                        taps_row::<1>(grid, [source(kx)], &[wt]);
                    }
                }
            }
        }
        let out = &mut out[y0 * wo..(y0 + rows) * wo];
        for (dst, src) in out.chunks_exact_mut(wo).zip(grid.chunks_exact(qw)) {
            match clamps.output {
                Some(bounds) => {
                    for (d, &v) in dst.iter_mut().zip(&src[..wo]) {
                        *d = clamp(bounds, v);
                    }
                }
                None => dst.copy_from_slice(&src[..wo]),
            }
        }
    }
}

/// `min(max(v, low), high)`: the graph's ReLU6, `Max` then `Min`.
#[inline(always)]
fn clamp((low, high): (f32, f32), v: f32) -> f32 {
    v.max(low).min(high)
}

/// `acc[i] = acc[i] + w[0]·x[0][i] + … + w[K-1]·x[K-1][i]`, added left to right.
#[inline(always)]
fn taps_row<const K: usize>(acc: &mut [f32], x: [&[f32]; K], w: &[f32]) {
    let n = acc.len();
    let x: [&[f32]; K] = std::array::from_fn(|t| &x[t][..n]);
    let w: [f32; K] = std::array::from_fn(|t| w[t]);
    for i in 0..n {
        let mut a = acc[i];
        for t in 0..K {
            a += w[t] * x[t][i];
        }
        acc[i] = a;
    }
}

/// Whether `node` is a depthwise convolution: one group per input channel, one output channel
/// per group (the kind [`DepthwiseConv`] computes, before its layout and geometry checks).
pub fn is_depthwise(node: &TypedNode) -> bool {
    node.op_as::<Conv>().is_some_and(depthwise_op)
}

fn depthwise_op(op: &Conv) -> bool {
    op.group == op.input_channels() && op.output_channels() == op.group
}

/// Replaces every depthwise convolution of a decluttered `model` that [`DepthwiseConv`] covers;
/// returns how many it replaced.
pub fn substitute(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        let Some(op) = node.op_as::<Conv>() else {
            continue;
        };
        let Some(new_op) = covered(model, node, op)? else {
            continue;
        };
        let (new_op, last) = match activation(model, node)? {
            Some((clamp, last)) => (
                DepthwiseConv {
                    clamp: Some(clamp),
                    ..new_op
                },
                last,
            ),
            None => (new_op, node.id),
        };
        let mut inputs = node.inputs.clone();
        let new_op = match input_activation(model, node)? {
            Some((clamp, data)) => {
                inputs[0] = data;
                DepthwiseConv {
                    input_clamp: Some(clamp),
                    ..new_op
                }
            }
            None => new_op,
        };
        let mut patch = TypedModelPatch::default();
        let inputs = patch.taps(model, &inputs)?;
        let out = patch.wire_node(&node.name, new_op, &inputs)?;
        patch.shunt_outside(model, OutletId::new(last, 0), out[0])?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// The ReLU6 that follows `conv` when nothing else reads the convolution's output: `Max` with a
/// constant then `Min` with a constant, as tract reads an ONNX `Clip`. Its bounds, and the node
/// whose output becomes the fused op's.
fn activation(model: &TypedModel, conv: &TypedNode) -> TractResult<Option<(Clamp, usize)>> {
    // The single node reading `node`'s output, when it is the binary op `name` with a constant
    // as its other input: that node and the constant.
    let next = |node: &TypedNode, name: &str| -> TractResult<Option<(usize, f32)>> {
        let [succ] = node.outputs[0].successors.as_slice() else {
            return Ok(None);
        };
        let next = &model.nodes[succ.node];
        if !is_binary(next, name) || model.outputs.contains(&OutletId::new(node.id, 0)) {
            return Ok(None);
        }
        let value = scalar_constant(model, next.inputs[1 - succ.slot])?;
        Ok(value.map(|v| (next.id, v)))
    };
    let Some((max, low)) = next(conv, "Max")? else {
        return Ok(None);
    };
    let Some((min, high)) = next(&model.nodes[max], "Min")? else {
        return Ok(None);
    };
    Ok((low <= high).then_some((Clamp::new(low, high), min)))
}

/// The ReLU6 that computed `conv`'s data input when nothing else reads it: `Max` with a constant
/// then `Min` with a constant, each read by the next node only. Its bounds, and the outlet the
/// `Max` read, which the fused op reads instead.
fn input_activation(
    model: &TypedModel,
    conv: &TypedNode,
) -> TractResult<Option<(Clamp, OutletId)>> {
    // The node behind `outlet` when it is the binary op `name` with a constant as one input and
    // `outlet` is read once and is no model output: its other input and the constant.
    let previous = |outlet: OutletId, name: &str| -> TractResult<Option<(OutletId, f32)>> {
        let node = &model.nodes[outlet.node];
        if !is_binary(node, name)
            || node.outputs[outlet.slot].successors.len() != 1
            || model.outputs.contains(&outlet)
        {
            return Ok(None);
        }
        for slot in 0..2 {
            if let Some(value) = scalar_constant(model, node.inputs[slot])? {
                return Ok(Some((node.inputs[1 - slot], value)));
            }
        }
        Ok(None)
    };
    let Some((max, high)) = previous(conv.inputs[0], "Min")? else {
        return Ok(None);
    };
    let Some((data, low)) = previous(max, "Max")? else {
        return Ok(None);
    };
    Ok((low <= high).then_some((Clamp::new(low, high), data)))
}

/// Whether `node` is tract's binary op `name` (`Max`, `Min`, …) on two inputs.
fn is_binary(node: &TypedNode, name: &str) -> bool {
    node.inputs.len() == 2
        && node
            .op_as::<TypedBinOp>()
            .is_some_and(|op| op.0.name() == name)
}

/// The value behind `outlet` when it is a constant holding one f32.
fn scalar_constant(model: &TypedModel, outlet: OutletId) -> TractResult<Option<f32>> {
    model
        .outlet_fact(outlet)?
        .konst
        .as_ref()
        .filter(|k| k.datum_type() == f32::datum_type() && k.len() == 1)
        .map(|k| k.cast_to_scalar::<f32>())
        .transpose()
}

/// The op for `node` when it is a convolution this kernel covers.
fn covered(model: &TypedModel, node: &TypedNode, op: &Conv) -> TractResult<Option<DepthwiseConv>> {
    let spec = &op.pool_spec;
    let has_n = match spec.data_format {
        DataFormat::NCHW => true,
        DataFormat::CHW => false,
        _ => return Ok(None),
    };
    let input = model.outlet_fact(node.inputs[0])?;
    let kernel = model.outlet_fact(node.inputs[1])?;
    let bias = model.outlet_fact(node.inputs[2])?;
    let channels = op.input_channels();
    let stride = spec
        .strides
        .as_ref()
        .map(|s| s.to_vec())
        .unwrap_or_else(|| vec![1, 1]);
    let dilated = spec
        .dilations
        .as_ref()
        .is_some_and(|d| d.iter().any(|&d| d != 1));
    let floats = [input, kernel, bias]
        .iter()
        .all(|f| f.datum_type == f32::datum_type());
    if op.q_params.is_some()
        || !floats
        || dilated
        || !depthwise_op(op)
        || op.kernel_fmt != KernelFormat::OIHW
        || spec.kernel_shape.len() != 2
        || stride.len() != 2
        || stride[0] != stride[1]
        || !(1..=2).contains(&stride[0])
        || kernel.konst.is_none()
        || bias.konst.is_none()
    {
        return Ok(None);
    }
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    let shape = spec.data_format.shape(shape.to_vec())?;
    if *shape.c() != channels || shape.hw_dims().len() != 2 {
        return Ok(None);
    }
    let input_hw = [shape.hw_dims()[0], shape.hw_dims()[1]];
    let kernel_hw = [spec.kernel_shape[0], spec.kernel_shape[1]];
    let padded = spec
        .padding
        .compute(&input_hw, &kernel_hw, &[1, 1], &stride);
    let geometry = Geometry {
        channels,
        input: input_hw,
        kernel: kernel_hw,
        stride: stride[0],
        pad: [
            padded[0].pad_before,
            padded[1].pad_before,
            padded[0].pad_after,
            padded[1].pad_after,
        ],
        output: [padded[0].convoluted, padded[1].convoluted],
    };
    // The phase grid must cover every output point: a padding spec that leaves input pixels
    // unread on the far side is fine, one that asks for more than the padded plane is not.
    let [ph, pw] = geometry.padded();
    let reach = |o: usize, k: usize| (o - 1) * geometry.stride + k;
    if geometry.output.contains(&0)
        || reach(geometry.output[0], kernel_hw[0]) > ph
        || reach(geometry.output[1], kernel_hw[1]) > pw
    {
        return Ok(None);
    }
    Ok(Some(DepthwiseConv {
        geometry,
        has_n,
        clamp: None,
        input_clamp: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution by its definition, in the same order of additions.
    fn reference(g: &Geometry, input: &[f32], kernel: &[f32], bias: f32) -> Vec<f32> {
        let [h, w] = g.input;
        let [kh, kw] = g.kernel;
        let mut out = Vec::new();
        for oy in 0..g.output[0] {
            for ox in 0..g.output[1] {
                let mut a = bias;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let y = (oy * g.stride + ky) as isize - g.pad[0] as isize;
                        let x = (ox * g.stride + kx) as isize - g.pad[1] as isize;
                        let v = if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                            input[y as usize * w + x as usize]
                        } else {
                            0.0
                        };
                        a += kernel[ky * kw + kx] * v;
                    }
                }
                out.push(a);
            }
        }
        out
    }

    fn check(input: [usize; 2], k: usize, stride: usize, pad: [usize; 4]) {
        let output = [
            (input[0] + pad[0] + pad[2] - k) / stride + 1,
            (input[1] + pad[1] + pad[3] - k) / stride + 1,
        ];
        let g = Geometry {
            channels: 1,
            input,
            kernel: [k, k],
            stride,
            pad,
            output,
        };
        let data: Vec<f32> = (0..input[0] * input[1])
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let kernel: Vec<f32> = (0..k * k)
            .map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0)
            .collect();
        let mut scratch = vec![f32::NAN; g.scratch_len()];
        let mut out = vec![f32::NAN; output[0] * output[1]];
        let relu6 = Some((0.0, 6.0));
        let clamped = |v: &[f32]| -> Vec<f32> { v.iter().map(|v| v.clamp(0.0, 6.0)).collect() };
        // Same additions in the same order: the same bits. The data spans [-7.2, 7.2], so both
        // bounds of each clamp are reached.
        for (clamps, expected) in [
            (Clamps::default(), reference(&g, &data, &kernel, 0.25)),
            (
                Clamps {
                    output: relu6,
                    ..Clamps::default()
                },
                clamped(&reference(&g, &data, &kernel, 0.25)),
            ),
            (
                Clamps {
                    input: relu6,
                    ..Clamps::default()
                },
                reference(&g, &clamped(&data), &kernel, 0.25),
            ),
            (
                Clamps {
                    input: relu6,
                    output: relu6,
                },
                clamped(&reference(&g, &clamped(&data), &kernel, 0.25)),
            ),
        ] {
            channel(&g, &data, &kernel, 0.25, clamps, &mut scratch, &mut out);
            assert_eq!(
                out, expected,
                "{input:?} k{k} s{stride} pad {pad:?}, {clamps:?}"
            );
        }
    }

    #[test]
    fn matches_the_definition_bit_for_bit() {
        for (input, k, stride, pad) in [
            ([6, 6], 5, 1, [2, 2, 2, 2]),
            ([12, 12], 5, 1, [2, 2, 2, 2]),
            ([96, 96], 3, 1, [1, 1, 1, 1]),
            ([96, 96], 3, 2, [0, 0, 1, 1]),
            ([96, 96], 3, 2, [1, 1, 1, 1]),
            ([48, 48], 5, 2, [1, 1, 2, 2]),
            ([24, 24], 5, 2, [2, 2, 2, 2]),
            ([7, 9], 3, 2, [1, 1, 1, 1]),
            ([7, 9], 7, 1, [3, 3, 3, 3]),
            ([5, 5], 4, 1, [0, 0, 0, 0]),
        ] {
            check(input, k, stride, pad);
        }
    }
}
