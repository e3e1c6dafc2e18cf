//! The training cache on a real subset: built by the binary, a no-op when re-run, and holding
//! exactly the pixels `dermo_model::preprocess::prepare` gives (masked rows masked first).

use crate::data_support::{arg, dermo, failed, ham10000_with_masks, succeeded};
use dermo_host::data::cache::{ensure_cache, Cache};
use dermo_host::data::manifest::{Manifest, Record, Variant};
use dermo_model::preprocess::{apply_mask, decode_file, decode_mask_file, prepare};
use dermo_model::PreprocessConfig;
use std::path::{Path, PathBuf};

/// 24 shared images, the first 12 also as masked rows.
fn subset(dir: &Path) -> PathBuf {
    let all = ham10000_with_masks();
    let mut records: Vec<Record> = all.records.iter().step_by(400).take(24).cloned().collect();
    let masked: Vec<Record> = records[..12]
        .iter()
        .map(|r| Record {
            variant: Variant::Masked,
            ..r.clone()
        })
        .collect();
    records.extend(masked);
    let path = dir.join("subset.csv");
    Manifest::new(records).save(&path).unwrap();
    path
}

fn expected_pixels(r: &Record, cfg: &PreprocessConfig) -> Vec<u8> {
    let mut img = decode_file(&r.path).unwrap();
    if r.variant == Variant::Masked {
        apply_mask(
            &mut img,
            &decode_mask_file(r.mask_path.as_ref().unwrap()).unwrap(),
        );
    }
    prepare(img, cfg).into_raw()
}

fn cache_cmd(manifest: &Path, root: &Path, extra: &[&str]) -> String {
    let o = dermo()
        .args(["data", "cache", arg(manifest), "--out", arg(root)])
        .args(extra)
        .output()
        .unwrap();
    succeeded(&o)
}

#[test]
fn cache_holds_prepared_pixels_and_rebuilding_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = subset(tmp.path());
    let root = tmp.path().join("cache");
    let first = cache_cmd(&manifest, &root, &["--size", "256"]);
    assert!(first.contains("images/s"), "{first}");

    let cfg = PreprocessConfig {
        size: 256,
        color_constancy: false,
    };
    let build = ensure_cache(&manifest, &cfg, &root).unwrap();
    assert!(!build.built, "the second build did work");
    let pixels = build.dir.join("pixels.u8");
    let written = std::fs::metadata(&pixels).unwrap().modified().unwrap();
    let again = cache_cmd(&manifest, &root, &["--size", "256"]);
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(
        std::fs::metadata(&pixels).unwrap().modified().unwrap(),
        written
    );
    // Only the finished cache is there: no temporary folder left behind.
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);

    let m = Manifest::load(&manifest).unwrap();
    let cache = Cache::open(&build.dir).unwrap();
    assert_eq!((cache.len(), cache.size()), (m.len(), 256));
    assert_eq!(cache.meta.manifest_hash, m.hash());
    for (i, r) in m.records.iter().enumerate() {
        assert_eq!(cache.label(i), r.label.index());
        assert_eq!(cache.meta.image_ids[i], r.image_id);
        assert!(
            cache.image(i) == expected_pixels(r, &cfg).as_slice(),
            "record {i} differs"
        );
    }
    // A masked row differs from its raw row: its background is black.
    assert_ne!(cache.image(0), cache.image(24));
}

#[test]
fn other_parameters_get_their_own_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = subset(tmp.path());
    let root = tmp.path().join("cache");
    let cfg = PreprocessConfig {
        size: 96,
        color_constancy: true,
    };
    let a = ensure_cache(&manifest, &cfg, &root).unwrap();
    let b = ensure_cache(&manifest, &PreprocessConfig { size: 128, ..cfg }, &root).unwrap();
    assert!(a.built && b.built && a.dir != b.dir);
    let cache = Cache::open(&a.dir).unwrap();
    let m = Manifest::load(&manifest).unwrap();
    assert!(cache.image(5) == expected_pixels(&m.records[5], &cfg).as_slice());
}

#[test]
fn a_corrupt_image_fails_the_build_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = subset(tmp.path());
    let mut m = Manifest::load(&manifest).unwrap();
    let bytes = std::fs::read(&m.records[7].path).unwrap();
    let corrupt = tmp.path().join("corrupt.jpg");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();
    m.records[7].path = corrupt;
    let bad = tmp.path().join("bad.csv");
    m.save(&bad).unwrap();
    let root = tmp.path().join("cache");
    let o = dermo()
        .args(["data", "cache", arg(&bad), "--out", arg(&root)])
        .output()
        .unwrap();
    assert!(failed(&o).contains("corrupt.jpg"));
    assert_eq!(std::fs::read_dir(&root).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn a_damaged_cache_is_refused_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = subset(tmp.path());
    let cfg = PreprocessConfig {
        size: 32,
        color_constancy: false,
    };
    let dir = ensure_cache(&manifest, &cfg, &tmp.path().join("cache"))
        .unwrap()
        .dir;
    let pixels = dir.join("pixels.u8");
    let len = std::fs::metadata(&pixels).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pixels)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let err = Cache::open(&dir)
        .err()
        .expect("a short pixel file is refused")
        .to_string();
    assert!(
        err.contains(arg(&dir)) && err.contains("pixels.u8"),
        "{err}"
    );
}
