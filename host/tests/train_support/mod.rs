//! Small real subsets of the shared HAM10000 data for the trainer's tests: lesion-disjoint
//! train/val manifests with a few images per class.
#![allow(dead_code)]

use dermo_host::data::manifest::{Manifest, Record, Variant};
use dermo_model::Class;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[path = "../shared_data/mod.rs"]
mod shared_data;
// Not every binary that includes this module uses all of them.
#[allow(unused_imports)]
pub use shared_data::{arg, dermo_output, failed, ham10000, import_isic2017, succeeded};

/// libtorch's random generator is one per process, and the trainer seeds it and draws from it
/// (augmentation, dropout, stochastic depth). The tests of one binary run on parallel threads, so
/// every test that trains in process holds this lock for its whole body: otherwise another test's
/// draws, or its `manual_seed`, land in the middle of its stream, and two runs that should follow
/// each other do not (a flaky loss-curve comparison under load). Tests that run `dermo` as a
/// process have a generator of their own and need no lock.
pub fn own_torch_generator() -> std::sync::MutexGuard<'static, ()> {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding it still leaves the generator usable to the next one.
    GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn pretrained() -> PathBuf {
    dermo_host::train::pretrained::default_path().expect("source scripts/env.sh (DERMO_PRETRAINED)")
}

/// `(train, val)` manifests written into `dir`: `per_class_train` and `per_class_val` images per
/// class, one image per lesion, no lesion on both sides. `skip` drops a class from training.
pub fn write_split(
    dir: &Path,
    per_class_train: usize,
    per_class_val: usize,
    skip: Option<Class>,
) -> (PathBuf, PathBuf) {
    let root = ham10000();
    let meta = std::fs::read_to_string(root.join("HAM10000_metadata.csv"))
        .expect("HAM10000 metadata (set DERMO_HAM10000)");
    let mut seen_lesions = HashSet::new();
    let mut train = Vec::new();
    let mut val = Vec::new();
    let mut counts = [(0usize, 0usize); dermo_model::NUM_CLASSES];
    for line in meta.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (lesion, image, dx) = (f[0], f[1], f[2]);
        let class: Class = serde_json::from_str(&format!("\"{dx}\"")).expect("a known class");
        if !seen_lesions.insert(lesion.to_owned()) {
            continue;
        }
        let c = &mut counts[class.index()];
        let to_train = c.0 < per_class_train && Some(class) != skip;
        let to_val = !to_train && c.1 < per_class_val;
        if !(to_train || to_val) {
            continue;
        }
        let path = root.join("images").join(format!("{image}.jpg"));
        let bytes = std::fs::read(&path).expect("image");
        let (width, height) = image::image_dimensions(&path).expect("dimensions");
        let record = Record {
            image_id: image.to_owned(),
            path,
            label: class,
            lesion_id: lesion.to_owned(),
            patient_id: None,
            mask_path: None,
            source: "ham10000".into(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            width,
            height,
            variant: Variant::Raw,
        };
        if to_train {
            c.0 += 1;
            train.push(record);
        } else {
            c.1 += 1;
            val.push(record);
        }
    }
    let (t, v) = (dir.join("train.csv"), dir.join("val.csv"));
    Manifest::new(train).save(&t).unwrap();
    Manifest::new(val).save(&v).unwrap();
    (t, v)
}

/// `dermo ARGS` to run in `dir`, on two threads.
pub fn dermo<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> std::process::Command {
    let mut c = shared_data::dermo();
    c.args(args).current_dir(dir).env("RAYON_NUM_THREADS", "2");
    c
}

/// Runs `dermo ARGS` in `dir`; the test fails with its output unless it succeeds.
pub fn run_ok<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) {
    shared_data::run(&mut dermo(dir, args));
}

/// `dermo train` on the `t`/`v` manifests into `out`, cached features in `cache/`, with the
/// small partial fine-tune (64 px, 10 frozen blocks, 3 epochs) plus `extra` overrides.
pub fn train_args(t: &Path, v: &Path, out: &str, extra: &[&str]) -> Vec<String> {
    let (t, v) = (t.display().to_string(), v.display().to_string());
    let mut a: Vec<String> = ["train", "--train", &t, "--val", &v, "--out", out]
        .map(String::from)
        .to_vec();
    a.extend(["--device", "cpu", "--cache-root", "cache"].map(String::from));
    let sets = [
        "size=64",
        "batch=16",
        "epochs=3",
        "mode=partial",
        "frozen_blocks=10",
        "patience=0",
    ];
    for set in sets.iter().chain(extra) {
        a.extend(["--set".to_string(), set.to_string()]);
    }
    a
}
