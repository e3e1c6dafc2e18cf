//! What the data tests share: where the HAM10000 data is, and its full import.

use dermo_host::data::import::{ham10000, Ham10000Source};
use dermo_host::data::labels::LabelTable;
use dermo_host::data::manifest::Manifest;

#[path = "../shared_data/mod.rs"]
mod shared_data;
/// The shared HAM10000 folder (`dermo_host::data::import::ham10000` is the importer).
pub use shared_data::ham10000 as ham_dir;
pub use shared_data::{arg, dermo, dermo_output, failed, succeeded};

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
