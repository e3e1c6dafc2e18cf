//! `dermo data split` on the full shared HAM10000 manifest: lesion-grouped, stratified,
//! deterministic, and the study's variants (k-fold, balanced, masked, both).

use crate::data_support::{arg, dermo, failed, ham10000_with_masks, ham_dir, succeeded};
use dermo_host::data::import::{ham10000, Ham10000Source};
use dermo_host::data::labels::LabelTable;
use dermo_host::data::manifest::{Manifest, Variant};
use dermo_model::NUM_CLASSES;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The full shared set imported into `dir/manifest.csv`.
fn full_manifest(dir: &Path) -> (PathBuf, Manifest) {
    let m = ham10000_with_masks();
    let path = dir.join("manifest.csv");
    m.save(&path).unwrap();
    (path, m)
}

fn split(manifest: &Path, out: &Path, extra: &[&str]) -> String {
    let o = dermo()
        .args(["data", "split", arg(manifest), "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    succeeded(&o)
}

fn load(dir: &Path, name: &str) -> Manifest {
    Manifest::load(&dir.join(format!("{name}.csv"))).unwrap()
}

fn lesions(m: &Manifest) -> HashSet<&str> {
    m.records.iter().map(|r| r.lesion_id.as_str()).collect()
}

fn proportions(m: &Manifest) -> [f64; NUM_CLASSES] {
    m.class_counts().map(|n| n as f64 / m.len() as f64)
}

#[test]
fn seed_0_split_keeps_lesions_whole_and_classes_in_proportion() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, all) = full_manifest(tmp.path());
    let out = tmp.path().join("split");
    let printed = split(&path, &out, &["--seed", "0"]);
    assert!(
        printed.contains("train") && printed.contains("akiec"),
        "{printed}"
    );

    let parts = ["train", "val", "test"].map(|n| load(&out, n));
    // No lesion on two sides.
    for a in 0..3 {
        for b in a + 1..3 {
            let shared: Vec<_> = lesions(&parts[a])
                .intersection(&lesions(&parts[b]))
                .copied()
                .collect();
            assert!(shared.is_empty(), "lesions in two splits: {shared:?}");
        }
    }
    // Together they are the whole set, each image once.
    let ids: HashSet<&str> = parts
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.image_id.as_str()))
        .collect();
    assert_eq!(ids.len(), all.len());
    assert_eq!(parts.iter().map(Manifest::len).sum::<usize>(), all.len());
    // Sizes near 70/15/15 and class proportions within 1 point of the whole set's.
    for (part, fraction) in parts.iter().zip([0.7, 0.15, 0.15]) {
        let share = part.len() as f64 / all.len() as f64;
        assert!(
            (share - fraction).abs() < 0.01,
            "share {share} vs {fraction}"
        );
        for (p, q) in proportions(part).iter().zip(proportions(&all)) {
            assert!((p - q).abs() <= 0.01, "class share {p} vs {q}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    assert_eq!(json["seed"], 0);
    assert_eq!(json["manifest_hash"], all.hash());
    assert_eq!(json["all"]["lesions"], 7470);
    assert_eq!(json["parts"]["train"]["images"], parts[0].len());

    // Same seed, same files; another seed, another split.
    let again = tmp.path().join("again");
    split(&path, &again, &["--seed", "0"]);
    for n in ["train", "val", "test"] {
        assert_eq!(
            std::fs::read(out.join(format!("{n}.csv"))).unwrap(),
            std::fs::read(again.join(format!("{n}.csv"))).unwrap()
        );
    }
    let other = tmp.path().join("other");
    split(&path, &other, &["--seed", "1"]);
    assert_ne!(load(&other, "test").records, parts[2].records);
}

#[test]
fn k_fold_balance_and_mask_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, all) = full_manifest(tmp.path());

    let out = tmp.path().join("folds");
    split(&path, &out, &["--k-fold", "5", "--balance"]);
    let mut seen_in_val: HashMap<String, usize> = HashMap::new();
    for k in 0..5 {
        let train = load(&out, &format!("fold-{k}/train"));
        let val = load(&out, &format!("fold-{k}/val"));
        assert!(lesions(&train).is_disjoint(&lesions(&val)));
        // Balanced: every class cut to the smallest (df).
        let counts = train.class_counts();
        assert!(counts.iter().all(|&n| n == counts[3]), "{counts:?}");
        assert!(counts[3] >= 85, "{counts:?}");
        for r in &val.records {
            *seen_in_val.entry(r.image_id.clone()).or_default() += 1;
        }
    }
    // The validation folds partition the set.
    assert_eq!(seen_in_val.len(), all.len());
    assert!(seen_in_val.values().all(|&n| n == 1));

    let masked = tmp.path().join("masked");
    split(&path, &masked, &["--mask-mode", "masked"]);
    let test = load(&masked, "test");
    assert!(test.records.iter().all(|r| r.variant == Variant::Masked));

    let both = tmp.path().join("both");
    split(&path, &both, &["--mask-mode", "both"]);
    let test_both = load(&both, "test");
    assert_eq!(test_both.len(), 2 * test.len());
    assert_eq!(test_both.records[0].image_id, test_both.records[1].image_id);
    assert_eq!(
        (test_both.records[0].variant, test_both.records[1].variant),
        (Variant::Raw, Variant::Masked)
    );
}

#[test]
fn bad_fractions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = full_manifest(tmp.path());
    let o = dermo()
        .args([
            "data",
            "split",
            arg(&path),
            "--fractions",
            "0.8,0.3,0.1",
            "--out",
        ])
        .arg(tmp.path().join("bad"))
        .output()
        .unwrap();
    assert!(failed(&o).contains("sum to 1"));
}

#[test]
fn a_manifest_with_a_repeated_image_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ham = ham_dir();
    let meta = tmp.path().join("meta.csv");
    std::fs::write(
        &meta,
        "lesion_id,image_id,dx\nHAM_1,ISIC_0024306,nv\nHAM_2,ISIC_0024307,nv\nHAM_3,ISIC_0025964,mel\n",
    )
    .unwrap();
    let src = Ham10000Source {
        metadata: &meta,
        images: &ham.join("images"),
        masks: None,
    };
    let mut m = ham10000(&src, &LabelTable::builtin(), false)
        .unwrap()
        .manifest;
    // The same image again, under another lesion: it could land in train and in test.
    let mut again = m.records[0].clone();
    again.lesion_id = "HAM_4".into();
    m.records.push(again);
    let path = tmp.path().join("manifest.csv");
    m.save(&path).unwrap();
    let out = tmp.path().join("split");
    let o = dermo()
        .args(["data", "split", arg(&path), "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = failed(&o);
    assert!(err.contains("\"ISIC_0024306\" appears twice"), "{err}");
    assert!(!out.exists());
}
