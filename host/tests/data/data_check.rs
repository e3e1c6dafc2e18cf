//! `dermo data check` on a real subset of the shared set, with a corrupted copy, a relabelled
//! exact copy and broken masks mixed in.

use crate::data_support::{arg, dermo, ham10000_with_masks, succeeded};
use dermo_host::data::manifest::{Manifest, Record};
use dermo_model::Class;
use image::GrayImage;
use std::collections::HashMap;
use std::path::Path;

/// Lesions photographed several times, some nearly identically; HAM_0000910 and HAM_0007075
/// hold the same picture under two labels (mel and nv), HAM_0002300 the same file twice.
const LESIONS: [&str; 8] = [
    "HAM_0000113",
    "HAM_0001444",
    "HAM_0003400",
    "HAM_0001872",
    "HAM_0000070",
    "HAM_0000910",
    "HAM_0007075",
    "HAM_0002300",
];

/// Near-identical images of one lesion that the check must pair.
const SAME_LESION_PAIRS: [(&str, &str); 5] = [
    ("ISIC_0029548", "ISIC_0027989"),
    ("ISIC_0026352", "ISIC_0024688"),
    ("ISIC_0028984", "ISIC_0032197"),
    ("ISIC_0027933", "ISIC_0028513"),
    ("ISIC_0031290", "ISIC_0029188"),
];

fn subset(tmp: &Path) -> Manifest {
    let all = ham10000_with_masks();
    let mut records: Vec<Record> = all
        .records
        .iter()
        .enumerate()
        .filter(|(i, r)| *i < 80 || LESIONS.contains(&r.lesion_id.as_str()))
        .map(|(_, r)| r.clone())
        .collect();

    // A truncated copy of a real JPEG.
    let bytes = std::fs::read(&records[3].path).unwrap();
    let corrupt = tmp.join("corrupt.jpg");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    records.push(Record {
        image_id: "corrupt_copy".into(),
        path: corrupt,
        lesion_id: "corrupt".into(),
        ..records[3].clone()
    });
    // An exact copy under another label.
    let copy = tmp.join("copy.jpg");
    std::fs::copy(&records[2].path, &copy).unwrap();
    records.push(Record {
        image_id: "relabelled_copy".into(),
        path: copy,
        lesion_id: "copy".into(),
        label: if records[2].label == Class::Mel {
            Class::Nv
        } else {
            Class::Mel
        },
        ..records[2].clone()
    });
    // An empty mask and a mask of the wrong size.
    let empty = tmp.join("empty.png");
    GrayImage::new(200, 150).save(&empty).unwrap();
    records[0].mask_path = Some(empty);
    let small = tmp.join("small.png");
    GrayImage::from_pixel(100, 75, image::Luma([255]))
        .save(&small)
        .unwrap();
    records[1].mask_path = Some(small);
    Manifest::new(records)
}

#[test]
fn check_finds_duplicates_and_reports_broken_files() {
    let tmp = tempfile::tempdir().unwrap();
    let m = subset(tmp.path());
    let manifest = tmp.path().join("subset.csv");
    m.save(&manifest).unwrap();
    let out = tmp.path().join("check");
    let o = dermo()
        .args(["data", "check", arg(&manifest), "--exclude", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    succeeded(&o);

    // Per-image rows by image id.
    let mut rows: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut reader = csv::Reader::from_path(out.join("check.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    for row in reader.records() {
        let row = row.unwrap();
        let fields: HashMap<String, String> = header
            .iter()
            .map(String::from)
            .zip(row.iter().map(String::from))
            .collect();
        rows.insert(fields["image_id"].clone(), fields);
    }
    assert_eq!(rows.len(), m.len());
    let issues = |id: &str| {
        rows[id]["issues"]
            .split(';')
            .map(String::from)
            .collect::<Vec<_>>()
    };

    let pairs = std::fs::read_to_string(out.join("near_duplicates.csv")).unwrap();
    for (a, b) in SAME_LESION_PAIRS {
        let found = pairs.lines().any(|l| {
            (l.starts_with(&format!("{a},{b},")) || l.starts_with(&format!("{b},{a},")))
                && l.contains("same_lesion")
        });
        assert!(found, "{a}/{b} not paired:\n{pairs}");
    }
    // The same picture under mel and nv: a label conflict on both.
    assert!(pairs.lines().any(|l| l.contains("ISIC_0027797")
        && l.contains("ISIC_0032195")
        && l.contains("other_class")));
    assert!(issues("ISIC_0027797").contains(&"label_conflict".into()));
    assert!(issues("ISIC_0032195").contains(&"label_conflict".into()));
    // The file HAM10000 ships twice.
    assert_eq!(rows["ISIC_0024366"]["duplicate_of"], "ISIC_0029861");

    let corrupt = &rows["corrupt_copy"];
    assert_eq!(corrupt["readable"], "false");
    assert_eq!(issues("corrupt_copy"), ["unreadable"]);
    assert!(
        corrupt["error"].contains("corrupt.jpg"),
        "{}",
        corrupt["error"]
    );

    let copy_of = &m.records[2].image_id;
    assert_eq!(&rows["relabelled_copy"]["duplicate_of"], copy_of);
    assert!(issues("relabelled_copy").contains(&"label_conflict".into()));
    assert!(issues(copy_of).contains(&"label_conflict".into()));
    assert!(issues(&m.records[0].image_id).contains(&"mask_empty".into()));
    assert!(issues(&m.records[1].image_id).contains(&"mask_wrong_size".into()));

    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(
        summary.contains("unreadable") && summary.contains("same_lesion"),
        "{summary}"
    );

    // The cleaned manifest drops the broken and conflicting images, keeps same-lesion pairs.
    let cleaned = Manifest::load(&out.join("manifest.csv")).unwrap();
    let kept: Vec<&str> = cleaned
        .records
        .iter()
        .map(|r| r.image_id.as_str())
        .collect();
    for gone in [
        "corrupt_copy",
        "relabelled_copy",
        "ISIC_0024366",
        "ISIC_0027797",
        copy_of,
    ] {
        assert!(!kept.contains(&gone), "{gone} kept");
    }
    for (a, b) in &SAME_LESION_PAIRS[..2] {
        assert!(kept.contains(a) && kept.contains(b), "{a}/{b} dropped");
    }
    // The source images are untouched.
    assert_eq!(
        std::fs::read(&m.records[2].path).unwrap(),
        std::fs::read(tmp.path().join("copy.jpg")).unwrap()
    );
}
