//! Where the shared datasets are, for every host test binary: the area support modules
//! (`data_support`, `eval_support`, `train_support`) include this file with `#[path]` and
//! re-export it. HAM10000 is `$DERMO_HAM10000` (set by `scripts/env.sh`) or
//! `../shared/data/ham10000` beside the checkout; ISIC 2017 is `../shared/data/isic2017`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared HAM10000 folder.
pub fn ham10000() -> PathBuf {
    std::env::var_os("DERMO_HAM10000")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/ham10000"))
}

/// The shared ISIC 2017 folder (`labels.csv`, `images/`).
pub fn isic2017() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/isic2017")
}

/// Imports the ISIC 2017 images that `keep(melanoma)` accepts, taken in `labels.csv` order, as
/// an external set: writes their `image,label` table to `dir/isic.csv`, runs `dermo data import
/// binary-csv` into `dir/isic`, and returns the `external.csv` it wrote.
pub fn import_isic2017(dir: &Path, mut keep: impl FnMut(bool) -> bool) -> PathBuf {
    let labels = isic2017().join("labels.csv");
    let text =
        std::fs::read_to_string(&labels).unwrap_or_else(|e| panic!("{}: {e}", labels.display()));
    let mut table = String::from("image,label\n");
    for line in text.lines().skip(1) {
        // image_id,split,melanoma
        let f: Vec<&str> = line.split(',').collect();
        if keep(f[2] == "1") {
            table.push_str(&format!("{}.jpg,{}\n", f[0], f[2]));
        }
    }
    let csv = dir.join("isic.csv");
    std::fs::write(&csv, table).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dermo"))
        .args(["data", "import", "binary-csv"])
        .arg(&csv)
        .arg("--images")
        .arg(isic2017().join("images"))
        .arg("--out")
        .arg(dir.join("isic"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dermo data import binary-csv {}: {}",
        csv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("isic/external.csv")
}
