//! Device integration tests: the real `dermo-scope` binary and the runtime on real images from the
//! shared data and on real model files. One test binary for the crate, so the release build links
//! tract once, not once per file (and once more per file for the aarch64 run under qemu).

mod common;

mod damaged_journal;
mod end_to_end;
mod faults;
mod inference;
mod inputs;
mod journal_recovery;
mod model_store;
mod ood;
mod pixel_formats;
mod profile;
mod quality_gate;
mod screens;
