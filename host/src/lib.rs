//! dermo-host: the workbench's library. Each module is one capability of the `dermo` binary.

pub mod data;
pub mod doctor;
pub mod eval;
pub mod export;
pub mod files;
pub mod signing;
pub mod train;
