//! Evaluation, calibration, reports, sweeps and the classical baseline: the commands that turn
//! trained models into numbers with intervals.
//!
//! Layers: [`tta`] (views of an image) and [`network`] (a checkpoint or a model file behind one
//! trait, scoring a manifest); [`maps`] (where the model looked); [`record`] (eval.json and the predictions table); the commands
//! [`evaluation`], [`calibrate`], [`sweep`] (grid → runs → [`sweep_results`]), [`report`] (with
//! [`plots`]; it draws a run or a sweep's results) and [`baseline`] (on the
//! hand-crafted features of [`abcd`]).

pub mod abcd;
pub mod baseline;
pub mod calibrate;
mod document;
pub mod evaluation;
pub mod external;
pub mod maps;
pub mod network;
pub mod plots;
pub mod record;
pub mod report;
pub mod sweep;
pub mod sweep_results;
pub mod tta;

pub use baseline::{run_baseline, BaselineArgs};
pub use calibrate::{run_calibrate, CalibrateArgs};
pub use evaluation::{run_eval, EvalArgs};
pub use report::{run_report, ReportArgs};
pub use sweep::{run_sweep, SweepArgs};
