//! Number format and memory layout of a training step.
//!
//! - **Mixed precision** (`amp` in the recipe): on CUDA, fp16 autocast with loss scaling; on a CPU
//!   with bf16 instructions (AVX512_BF16 or AMX), bf16 autocast. Weights, optimizer state and the
//!   loss stay fp32 (the "master weights"); only the convolutions and matrix products run in
//!   bf16, and bf16 has fp32's exponent range, so no loss scaling is needed. On a CPU without
//!   bf16 instructions `amp` does nothing: emulated bf16 is slower than fp32.
//! - **channels_last** (`channels_last` in the recipe): weights and input batches are laid out
//!   NHWC in memory while keeping their NCHW shape, which oneDNN's convolutions run fastest on.
//!   Shapes, names and checkpoints are unchanged (a checkpoint stores plain contiguous tensors).

use tch::nn::VarStore;
use tch::{Device, Tensor};

extern "C" {
    fn dermo_cpu_autocast_enter() -> bool;
    fn dermo_cpu_autocast_exit(previous: bool);
    fn dermo_cpu_autocast_is_enabled() -> bool;
}

/// How the forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    /// CUDA fp16 autocast with dynamic loss scaling.
    CudaF16,
    /// CPU bf16 autocast (fp32 master weights, no loss scaling).
    CpuBf16,
}

impl Precision {
    /// What `amp` means on `device`.
    pub fn choose(amp: bool, device: Device) -> Precision {
        match (amp, device) {
            (false, _) => Precision::Fp32,
            (true, Device::Cpu) if cpu_has_bf16() => Precision::CpuBf16,
            (true, Device::Cpu) => Precision::Fp32,
            (true, _) => Precision::CudaF16,
        }
    }

    /// Whether the loss is scaled (fp16's range needs it; bf16's does not).
    pub fn scales_loss(self) -> bool {
        self == Precision::CudaF16
    }

    /// Runs `f` (a forward pass) under this precision's autocast.
    pub fn autocast<T>(self, f: impl FnOnce() -> T) -> T {
        match self {
            Precision::Fp32 => f(),
            Precision::CudaF16 => tch::autocast(true, f),
            Precision::CpuBf16 => {
                // SAFETY: the shim only calls libtorch's thread-local autocast switches.
                let previous = unsafe { dermo_cpu_autocast_enter() };
                let out = f();
                unsafe { dermo_cpu_autocast_exit(previous) };
                out
            }
        }
    }

    /// A short name for run.json and the bench table.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::CudaF16 => "fp16 autocast",
            Precision::CpuBf16 => "bf16 autocast",
        }
    }
}

/// Whether CPU autocast is on in this thread (tests check that a region switches it back off).
pub fn cpu_autocast_is_enabled() -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { dermo_cpu_autocast_is_enabled() }
}

/// Whether this CPU computes bf16 natively (x86-64 AVX512_BF16 or AMX-BF16).
pub fn cpu_has_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .filter(|l| l.starts_with("flags"))
            .take(1)
            .any(|l| {
                l.split_whitespace()
                    .any(|f| f == "avx512_bf16" || f == "amx_bf16")
            })
    })
}

/// `x` (4-D) laid out channels-last in memory, same shape. Other ranks come back unchanged.
pub fn channels_last(x: &Tensor) -> Tensor {
    if x.dim() != 4 {
        return x.shallow_clone();
    }
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-D tensor's memory is laid out channels-last.
pub fn is_channels_last(x: &Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    size.len() == 4 && stride[1] == 1 && stride[3] == size[1] && stride[2] == size[1] * size[3]
}

/// Re-lays every 4-D variable of `vs` (the convolution kernels) channels-last, in place: the
/// variables keep their identity, so modules and optimizers that hold them see the new layout.
pub fn vars_to_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let cl = channels_last(&v.detach());
                v.set_data(&cl);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn channels_last_keeps_shape_and_values_and_changes_strides() {
        let x = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).reshape([2, 3, 4, 5]);
        assert!(!is_channels_last(&x));
        let y = channels_last(&x);
        assert_eq!(y.size(), x.size());
        assert!(is_channels_last(&y));
        assert!(y.equal(&x));
    }

    #[test]
    fn variables_keep_identity_when_relaid() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().randn("w", &[4, 3, 3, 3], 0.0, 1.0);
        let before = w.copy();
        vars_to_channels_last(&vs);
        assert!(
            is_channels_last(&w),
            "the module's handle sees the new layout"
        );
        assert!(w.equal(&before));
        assert!(w.requires_grad());
    }

    #[test]
    fn cpu_autocast_runs_convolutions_in_bf16_and_switches_back() {
        let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        let conv = || x.conv2d::<Tensor>(&w, None, [1, 1], [1, 1], [1, 1], 1);
        let y = Precision::CpuBf16.autocast(|| {
            assert!(cpu_autocast_is_enabled());
            conv()
        });
        assert!(!cpu_autocast_is_enabled());
        assert_eq!(y.kind(), Kind::BFloat16);
        assert_eq!(Precision::Fp32.autocast(conv).kind(), Kind::Float);
        let diff = f64::try_from((y.to_kind(Kind::Float) - conv()).abs().max()).unwrap();
        assert!(diff < 0.2, "bf16 conv differs from fp32 by {diff}");
    }
}
