//! Evaluation, calibration, reports, sweeps and the classical baseline.
use clap::Args;

#[derive(Args)]
pub struct EvalArgs {}
#[derive(Args)]
pub struct CalibrateArgs {}
#[derive(Args)]
pub struct ReportArgs {}
#[derive(Args)]
pub struct SweepArgs {}
#[derive(Args)]
pub struct BaselineArgs {}

pub fn run_eval(_a: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("eval is under construction")
}
pub fn run_calibrate(_a: CalibrateArgs) -> anyhow::Result<()> {
    anyhow::bail!("calibrate is under construction")
}
pub fn run_report(_a: ReportArgs) -> anyhow::Result<()> {
    anyhow::bail!("report is under construction")
}
pub fn run_sweep(_a: SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("sweep is under construction")
}
pub fn run_baseline(_a: BaselineArgs) -> anyhow::Result<()> {
    anyhow::bail!("baseline is under construction")
}
