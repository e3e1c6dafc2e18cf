//! `dermo doctor`: what this machine offers for training and where the pretrained weights are.
use clap::Args;

#[derive(Args)]
pub struct DoctorArgs {}

pub fn run(_a: DoctorArgs) -> anyhow::Result<()> {
    println!("libtorch: {}", tch::utils::version_cudnn());
    Ok(())
}
