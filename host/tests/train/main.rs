//! Host integration tests: the trainer (in process and through `dermo train`), resume after a
//! kill, weight soups, the ImageNet weights, and the training benchmark (ignored; run by
//! `scripts/bench`). One test binary for the area (each binary links libtorch).
//!
//! `train_views` and `export_cli` keep binaries of their own: they draw from libtorch's global
//! generator in process and must not share it with other tests' threads.

#[path = "../train_support/mod.rs"]
mod train_support;

mod train;
mod train_bench;
mod train_imagenet;
mod train_resume;
mod train_soup;
