//! dermo-calibration: metrics, intervals, temperature scaling and thresholds in pure Rust.
