//! Evaluation, calibration, reports, sweeps and the classical baseline: the commands that turn
//! trained models into numbers with intervals.
//!
//! Layers: [`tta`] (views of an image) and [`network`] (a checkpoint or a model file behind one
//! trait, scoring a manifest); [`record`] (eval.json and the predictions table); the commands
//! [`eval`], [`calibrate`], [`report`] (with [`plots`]), [`sweep`] and [`baseline`] (on the
//! hand-crafted features of [`abcd`]).

pub mod abcd;
pub mod baseline;
pub mod calibrate;
pub mod eval;
pub mod network;
pub mod plots;
pub mod record;
pub mod tta;

pub use baseline::{run_baseline, BaselineArgs};
pub use calibrate::{run_calibrate, CalibrateArgs};
pub use eval::{run_eval, EvalArgs};

use clap::Args;

#[derive(Args)]
pub struct ReportArgs {}
#[derive(Args)]
pub struct SweepArgs {}

pub fn run_report(_a: ReportArgs) -> anyhow::Result<()> {
    anyhow::bail!("report is under construction")
}
pub fn run_sweep(_a: SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("sweep is under construction")
}
