//! Host integration tests: evaluation, calibration, reports, sweeps and the classical baseline,
//! through the real `dermo` binary on small lesion-grouped HAM10000 subsets. One test binary for
//! the area (each binary links libtorch).

mod eval_support;

mod eval_baseline;
mod eval_external;
mod eval_model_file;
mod eval_sweep;
mod report_run;
