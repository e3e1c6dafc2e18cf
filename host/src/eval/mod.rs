//! Evaluation, calibration, reports, sweeps and the classical baseline: the commands that turn
//! trained models into numbers with intervals.
//!
//! Layers: [`tta`] (views of an image) and [`network`] (a checkpoint or a model file behind one
//! trait, scoring a manifest); [`record`] (eval.json and the predictions table); the commands
//! [`eval`], [`calibrate`], [`report`] (with [`plots`]), [`sweep`] and [`baseline`] (on the
//! hand-crafted features of [`abcd`]).

pub mod calibrate;
pub mod eval;
pub mod network;
pub mod record;
pub mod tta;

pub use calibrate::{run_calibrate, CalibrateArgs};
pub use eval::{run_eval, EvalArgs};

use clap::Args;

#[derive(Args)]
pub struct ReportArgs {}
#[derive(Args)]
pub struct SweepArgs {}
#[derive(Args)]
pub struct BaselineArgs {}

pub fn run_report(_a: ReportArgs) -> anyhow::Result<()> {
    anyhow::bail!("report is under construction")
}
pub fn run_sweep(_a: SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("sweep is under construction")
}
pub fn run_baseline(_a: BaselineArgs) -> anyhow::Result<()> {
    anyhow::bail!("baseline is under construction")
}
