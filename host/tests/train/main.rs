//! Host integration tests: the trainer (in process and through `dermo train`), resume after a
//! kill, weight soups, the ImageNet weights, and the training benchmark (ignored; run by
//! `scripts/bench`). One test binary for the area (each binary links libtorch).
//!
//! libtorch's random generator is one per process: every test here that builds or trains a
//! network in process holds `train_support::own_torch_generator` for its whole body. `train_views`
//! and `export_cli` keep binaries of their own for the same reason.

#[path = "../train_support/mod.rs"]
mod train_support;

mod train;
mod train_bench;
mod train_imagenet;
mod train_resume;
mod train_soup;
