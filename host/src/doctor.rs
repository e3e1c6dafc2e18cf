//! `dermo doctor`: what this machine offers for training and where the pretrained weights are.
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct DoctorArgs {
    /// Exit non-zero when CUDA is not available (for GPU machines' setup checks).
    #[arg(long)]
    pub require_cuda: bool,
}

/// Where the ImageNet EfficientNet-Lite0 weights are: `$DERMO_PRETRAINED`, as recorded by
/// `scripts/setup` in `.dermo-env`, or the venv default next to the current directory.
pub fn pretrained_weights_path() -> PathBuf {
    std::env::var_os("DERMO_PRETRAINED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".venv/dermo/efficientnet-lite0-imagenet.safetensors"))
}

pub fn run(a: DoctorArgs) -> anyhow::Result<()> {
    let cuda = tch::Cuda::is_available();
    println!("dermo {}", env!("CARGO_PKG_VERSION"));
    println!(
        "libtorch:      {} ({})",
        option_env!("DERMO_LIBTORCH_VERSION").unwrap_or("unknown"),
        option_env!("DERMO_LIBTORCH_LIB").unwrap_or("?")
    );
    println!(
        "CUDA:          {}",
        if cuda { "available" } else { "not available" }
    );
    println!(
        "cuDNN:         {}",
        if tch::Cuda::cudnn_is_available() {
            "available"
        } else {
            "not available"
        }
    );
    println!("CUDA devices:  {}", tch::Cuda::device_count());
    println!("CPU threads:   {}", tch::get_num_threads());
    println!(
        "tract:         {}",
        option_env!("DERMO_TRACT_VERSION").unwrap_or("unknown")
    );
    let w = pretrained_weights_path();
    println!(
        "pretrained:    {} ({})",
        w.display(),
        if w.is_file() {
            "present"
        } else {
            "MISSING: run scripts/setup"
        }
    );
    if a.require_cuda && !cuda {
        anyhow::bail!("CUDA was required but libtorch reports it unavailable");
    }
    Ok(())
}
