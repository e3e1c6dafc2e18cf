//! What the data tests share: where the HAM10000 data is, and its full import.

use dermo_host::data::import::{ham10000, Ham10000Source};
use dermo_host::data::labels::LabelTable;
use dermo_host::data::manifest::Manifest;
use std::path::{Path, PathBuf};

/// The shared HAM10000 folder (`DERMO_HAM10000`, or `../shared/data/ham10000`).
pub fn ham_dir() -> PathBuf {
    std::env::var_os("DERMO_HAM10000")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/ham10000"))
}

/// All 10,015 images with their masks, imported as `dermo data import ham10000` does.
pub fn ham10000_with_masks() -> Manifest {
    let ham = ham_dir();
    let src = Ham10000Source {
        metadata: &ham.join("HAM10000_metadata.csv"),
        images: &ham.join("images"),
        masks: Some(&ham.join("masks")),
    };
    ham10000(&src, &LabelTable::builtin(), false)
        .unwrap()
        .manifest
}
