//! Where the shared datasets are, and how a test runs the `dermo` binary, for every host test
//! binary: the area support modules (`data_support`, `eval_support`, `train_support`) include
//! this file with `#[path]` and re-export it. The shared folder is `$DERMO_SHARED` (set by
//! `scripts/env.sh`) or `../shared` beside the checkout; HAM10000 is `$DERMO_HAM10000` or
//! `data/ham10000` in it, ISIC 2017 `data/isic2017` in it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared folder beside the checkout.
pub fn shared() -> PathBuf {
    std::env::var_os("DERMO_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// The shared HAM10000 folder.
pub fn ham10000() -> PathBuf {
    std::env::var_os("DERMO_HAM10000")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared().join("data/ham10000"))
}

/// The shared ISIC 2017 folder (`labels.csv`, `images/`).
pub fn isic2017() -> PathBuf {
    shared().join("data/isic2017")
}

/// The `dermo` binary built for these tests.
pub fn dermo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dermo"))
}

/// Runs `cmd` and fails the test with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    succeeded(&out);
    out
}

/// Runs `dermo ARGS` and returns how it exited and what it printed, success or not.
pub fn dermo_output(args: &[&str]) -> Output {
    dermo().args(args).output().expect("the dermo binary runs")
}

/// The standard output of a run that must have succeeded; fails the test with both streams
/// otherwise.
pub fn succeeded(out: &Output) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "dermo failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout.into_owned()
}

/// The error output of a run that must have failed; fails the test with its standard output
/// otherwise.
pub fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "dermo should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as one argument of [`dermo_output`]'s list (test paths are UTF-8).
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
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
    run(dermo()
        .args(["data", "import", "binary-csv"])
        .arg(&csv)
        .arg("--images")
        .arg(isic2017().join("images"))
        .arg("--out")
        .arg(dir.join("isic")));
    dir.join("isic/external.csv")
}
