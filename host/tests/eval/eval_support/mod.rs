//! Small lesion-grouped subsets of the shared HAM10000 data, with masks, for the evaluation,
//! report and baseline tests.
#![allow(dead_code)]

use dermo_host::data::manifest::{Manifest, Record, Variant};
use dermo_model::{Class, NUM_CLASSES};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[path = "../../shared_data/mod.rs"]
mod shared_data;
pub use shared_data::{dermo, ham10000, import_isic2017, run};

/// Which side of a lesion-grouped split a lesion falls on: a hash of its id, so no lesion is
/// ever on two sides and the choice does not depend on the row order.
pub fn side_of(lesion_id: &str, sides: u64) -> u64 {
    let digest = Sha256::digest(lesion_id.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap()) % sides
}

/// A manifest of up to `lesions_per_class` lesions per class from side `side` of `sides`,
/// with every image of each chosen lesion and its mask, written to `path`.
pub fn write_subset(path: &Path, side: u64, sides: u64, lesions_per_class: usize) -> PathBuf {
    let root = ham10000();
    let meta = std::fs::read_to_string(root.join("HAM10000_metadata.csv"))
        .expect("HAM10000 metadata (set DERMO_HAM10000)");
    let mut chosen: HashMap<String, bool> = HashMap::new();
    let mut lesions = [0usize; NUM_CLASSES];
    let mut records = Vec::new();
    for line in meta.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (lesion, image, dx) = (f[0], f[1], f[2]);
        if side_of(lesion, sides) != side {
            continue;
        }
        let class: Class = dx.parse().expect("a known class");
        let take = *chosen.entry(lesion.to_owned()).or_insert_with(|| {
            let free = lesions[class.index()] < lesions_per_class;
            lesions[class.index()] += usize::from(free);
            free
        });
        if !take {
            continue;
        }
        let image_path = root.join("images").join(format!("{image}.jpg"));
        let bytes = std::fs::read(&image_path).expect("image");
        let (width, height) = image::image_dimensions(&image_path).expect("dimensions");
        records.push(Record {
            image_id: image.to_owned(),
            path: image_path,
            label: class,
            lesion_id: lesion.to_owned(),
            patient_id: None,
            mask_path: Some(root.join("masks").join(format!("{image}_segmentation.png"))),
            source: "ham10000".into(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            width,
            height,
            variant: Variant::Raw,
        });
    }
    Manifest::new(records).save(path).unwrap();
    path.to_owned()
}

/// Trains a 64 px linear probe on CPU into `run_dir` (image caches in `cache`), with no warm-up
/// and no early stop, and `sets` as further `--set` overrides.
pub fn train_probe(train: &Path, val: &Path, run_dir: &Path, cache: &Path, sets: &[&str]) {
    let mut cmd = dermo();
    cmd.args(["train", "--device", "cpu", "--train"])
        .arg(train)
        .arg("--val")
        .arg(val)
        .arg("--out")
        .arg(run_dir)
        .arg("--cache-root")
        .arg(cache);
    for set in ["mode=probe", "size=64", "warmup_epochs=0", "patience=0"]
        .iter()
        .chain(sets)
    {
        cmd.args(["--set", set]);
    }
    run(&mut cmd);
}
