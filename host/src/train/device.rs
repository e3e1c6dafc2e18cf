//! Choosing the training device: `cpu`, `cuda` or `auto`.

use serde::{Deserialize, Serialize};
use tch::{Cuda, Device};

/// The `--device` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, otherwise CPU.
    #[default]
    Auto,
    /// CPU with all cores.
    Cpu,
    /// The first CUDA GPU; an error when there is none.
    Cuda,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "--device cuda: CUDA is not available to libtorch here (no GPU, no driver, or a CPU-only \
         libtorch); use --device cpu or auto, and see `dermo doctor`"
    )]
    CudaAbsent,
}

impl DeviceChoice {
    /// Resolves the choice to a tch device. On CPU, libtorch is told to use every core; on CUDA,
    /// cuDNN picks the fastest kernels for the (fixed) input shapes.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        let device = match self {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda if Cuda::is_available() => Device::Cuda(0),
            DeviceChoice::Cuda => return Err(DeviceError::CudaAbsent),
            DeviceChoice::Auto => Device::cuda_if_available(),
        };
        match device {
            Device::Cpu => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                tch::set_num_threads(cores as i32);
            }
            _ => Cuda::cudnn_set_benchmark(true),
        }
        Ok(device)
    }
}

/// A short name for run.json and the progress bar.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}
