//! Training EfficientNet-Lite0 with tch.
use clap::Args;

#[derive(Args)]
pub struct TrainArgs {}

pub fn run(_a: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("training is under construction")
}
