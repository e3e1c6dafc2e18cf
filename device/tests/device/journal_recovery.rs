//! The journal after the states a crash can leave: each is repaired on open so that every
//! acknowledged record survives and no half record remains.

use crate::common;

use dermo_device::journal::{read_index, read_record, Journal, StoragePolicy, INDEX_FILE};
use dermo_device::{CaptureResult, QualityGate};
use std::fs;
use std::path::{Path, PathBuf};

const NO_FLOOR: StoragePolicy = StoragePolicy {
    min_free_mb: 0,
    max_journal_mb: 0.0,
};

/// A journal with three records of real frames; returns the frames' paths.
fn journal_with_three(dir: &Path) -> Vec<PathBuf> {
    let (mut j, rec) = Journal::open(dir, NO_FLOOR).unwrap();
    assert!(rec.is_clean());
    let files = common::shared_images(3, 500);
    for f in &files {
        let jpeg = fs::read(f).unwrap();
        let img = dermo_model::preprocess::decode_bytes(&jpeg, "t").unwrap();
        let r = CaptureResult::new(
            &f.display().to_string(),
            chrono::Utc::now(),
            QualityGate::default().check(&img),
            &"ab".repeat(32),
            "model test",
            None,
        );
        j.record(&jpeg, &r).unwrap();
    }
    files
}

fn day_dir(root: &Path) -> PathBuf {
    let e = &read_index(root).unwrap()[0];
    root.join(&e.frame).parent().unwrap().to_path_buf()
}

#[test]
fn torn_index_line_is_cut_and_the_rest_kept() {
    let t = tempfile::tempdir().unwrap();
    journal_with_three(t.path());
    let index = t.path().join(INDEX_FILE);
    let mut bytes = fs::read(&index).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(br#"{"id":"20250101T000000-000Z-000004","captured"#);
    fs::write(&index, &bytes).unwrap();
    let (j, rec) = Journal::open(t.path(), NO_FLOOR).unwrap();
    assert_eq!(rec.torn_index_bytes as usize, bytes.len() - whole);
    assert_eq!(j.len(), 3);
    assert_eq!(fs::read(&index).unwrap().len(), whole);
}

#[test]
fn debris_and_half_records_are_removed_complete_ones_indexed() {
    let t = tempfile::tempdir().unwrap();
    journal_with_three(t.path());
    let root = t.path();
    let day = day_dir(root);
    let first = &read_index(root).unwrap()[0];
    let record = fs::read_to_string(root.join(&first.record)).unwrap();
    let frame = fs::read(root.join(&first.frame)).unwrap();

    // A temp file from an interrupted atomic write.
    fs::write(day.join(".tmp-123-x.jpg"), b"half").unwrap();
    // A frame whose record was never written.
    fs::write(day.join("20250101T000000-000Z-000010.jpg"), &frame).unwrap();
    // A complete record whose index line was lost.
    let id = "20250101T000000-000Z-000011";
    fs::write(day.join(format!("{id}.jpg")), &frame).unwrap();
    let moved = record
        .replace(&first.id, id)
        .replace(&format!("{}.jpg", first.id), &format!("{id}.jpg"));
    fs::write(day.join(format!("{id}.json")), moved).unwrap();
    // A record whose frame is damaged.
    let bad = "20250101T000000-000Z-000012";
    fs::write(day.join(format!("{bad}.jpg")), &frame[..100]).unwrap();
    fs::write(
        day.join(format!("{bad}.json")),
        record
            .replace(&first.id, bad)
            .replace(&format!("{}.jpg", first.id), &format!("{bad}.jpg")),
    )
    .unwrap();

    let (j, rec) = Journal::open(root, NO_FLOOR).unwrap();
    assert_eq!(rec.temp_files_removed, 1);
    assert_eq!(rec.reindexed, 1);
    assert_eq!(rec.incomplete_removed, 3, "{rec:?}");
    assert_eq!(j.len(), 4);
    let entries = read_index(root).unwrap();
    for e in &entries {
        read_record(root, e).unwrap();
    }
    assert!(entries.iter().any(|e| e.id == id));
    let left: Vec<String> = fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 8, "4 records × (frame + result): {left:?}");
    // Opening again finds nothing more to do.
    assert!(Journal::open(root, NO_FLOOR).unwrap().1.is_clean());
}

#[test]
fn tampered_records_fail_verification() {
    let t = tempfile::tempdir().unwrap();
    journal_with_three(t.path());
    let e = &read_index(t.path()).unwrap()[1];
    let frame = t.path().join(&e.frame);
    let mut bytes = fs::read(&frame).unwrap();
    bytes[200] ^= 0xFF;
    fs::write(&frame, bytes).unwrap();
    let err = read_record(t.path(), e).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
}
