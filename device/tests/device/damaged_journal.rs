//! A journal with damaged or forged records, through the real binary: `export` exports every
//! intact capture and reports the rest (`--strict` exports nothing), ids and paths from the index
//! never lead outside the journal or the bundle, and `journal --repair` moves failing records
//! into quarantine without deleting anything.

use crate::common;

use dermo_device::journal::{read_index, IndexEntry, INDEX_FILE, QUARANTINE_DIR};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

fn scope(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = common::dermo_scope();
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.output().unwrap()
}

fn export(data: &Path, out: &Path, strict: bool) -> Output {
    let args: &[&str] = if strict {
        &["export", "--strict"]
    } else {
        &["export"]
    };
    scope(args, &[("--data-dir", data), ("--out", out)])
}

fn journal(data: &Path, repair: bool) -> Output {
    let args: &[&str] = if repair {
        &["journal", "--repair"]
    } else {
        &["journal"]
    };
    scope(args, &[("--data-dir", data)])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The `capture_id` column of a bundle's CSV.
fn bundle_ids(bundle: &Path) -> Vec<String> {
    let mut rdr = csv::Reader::from_path(bundle.join("captures.csv")).unwrap();
    let col = rdr
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "capture_id")
        .unwrap();
    rdr.records().map(|r| r.unwrap()[col].to_string()).collect()
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0xFF;
    fs::write(path, bytes).unwrap();
}

fn append_line(data: &Path, line: &str) {
    let index = data.join(INDEX_FILE);
    let mut text = fs::read_to_string(&index).unwrap();
    text.push_str(line);
    text.push('\n');
    fs::write(index, text).unwrap();
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// (path, SHA-256) of every file under `dir`.
fn hashes(dir: &Path) -> Vec<(PathBuf, String)> {
    common::walk(dir)
        .into_iter()
        .map(|p| {
            let h = sha(&fs::read(&p).unwrap());
            (p, h)
        })
        .collect()
}

#[test]
fn export_skips_a_damaged_frame_and_reports_it_strict_exports_nothing() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let entries = common::journal_of_shared_images(&data, 4);
    let bad = &entries[1];
    flip_byte(&data.join(&bad.frame), 300);

    // Default: the three intact captures are exported, the damaged one is named with its reason.
    let bundle = t.path().join("bundle");
    let out = export(&data, &bundle, false);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&bad.id) && err.contains("does not match its hash"),
        "{err}"
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("exported 3 captures")
            && summary.contains("skipped 1 bad record")
            && summary.contains(&bad.id),
        "{summary}"
    );
    let good: Vec<String> = entries
        .iter()
        .filter(|e| e.id != bad.id)
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(bundle_ids(&bundle), good);
    assert_eq!(common::walk(&bundle.join("images")).len(), 3);

    // --strict: exit 6, the damaged record named, no bundle and no temporary folder left.
    let strict = t.path().join("strict");
    let out = export(&data, &strict, true);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains(&bad.id), "{}", stderr(&out));
    common::assert_no_repeated_cause(&stderr(&out));
    assert!(!strict.exists());
    let left: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter().all(|n| !n.starts_with(".tmp-")),
        "temporary folder left: {left:?}"
    );
    // --strict into folders that did not exist: they are not left behind either.
    let deep = t.path().join("new/deeper/bundle");
    assert_eq!(export(&data, &deep, true).status.code(), Some(6));
    assert!(!t.path().join("new").exists());

    // An existing non-empty --out is refused and left as it was; an empty one is filled.
    let out = export(&data, &bundle, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(bundle_ids(&bundle), good);
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(export(&data, &empty, false).status.success());
    assert_eq!(bundle_ids(&empty), good);
}

/// An index line copied from `from` with other fields, and its record file's new bytes.
fn forged(from: &IndexEntry, data: &Path, id: &str, frame_name: &str) -> (IndexEntry, Vec<u8>) {
    let mut record: Value =
        serde_json::from_slice(&fs::read(data.join(&from.record)).unwrap()).unwrap();
    record["id"] = id.into();
    record["frame"] = frame_name.into();
    let bytes = serde_json::to_vec_pretty(&record).unwrap();
    let mut entry = from.clone();
    entry.id = id.into();
    entry.record_sha256 = sha(&bytes);
    (entry, bytes)
}

#[test]
fn ids_and_paths_from_the_index_never_lead_outside_the_journal_or_the_bundle() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("card/data");
    let entries = common::journal_of_shared_images(&data, 2);
    let first = &entries[0];
    let day = Path::new(&first.record).parent().unwrap().to_path_buf();

    // 1. A capture id `../../pwned` with a record that says so and hashes that match: an export
    // would write `bundle/images/../../pwned.jpg`.
    let (mut pwned, bytes) = forged(first, &data, "../../pwned", "../../pwned.jpg");
    pwned.record = day.join("evil.json").to_string_lossy().into_owned();
    fs::write(data.join(&pwned.record), &bytes).unwrap();
    append_line(&data, &serde_json::to_string(&pwned).unwrap());

    // 2. Paths `../../victim/v.json` and `.jpg`: a complete, well-hashed record outside the journal.
    let victim = t.path().join("victim");
    fs::create_dir(&victim).unwrap();
    let id = "20990101T000000-000Z-000098";
    let (mut outside, bytes) = forged(first, &data, id, &format!("{id}.jpg"));
    fs::write(victim.join("v.json"), &bytes).unwrap();
    fs::copy(data.join(&first.frame), victim.join("v.jpg")).unwrap();
    outside.record = "../../victim/v.json".into();
    outside.frame = "../../victim/v.jpg".into();
    append_line(&data, &serde_json::to_string(&outside).unwrap());

    // 3. Well-formed paths that are symbolic links out of the journal.
    let id = "20990101T000000-000Z-000099";
    let (mut linked, bytes) = forged(first, &data, id, &format!("{id}.jpg"));
    fs::write(victim.join("l.json"), &bytes).unwrap();
    linked.record = day
        .join(format!("{id}.json"))
        .to_string_lossy()
        .into_owned();
    linked.frame = day.join(format!("{id}.jpg")).to_string_lossy().into_owned();
    std::os::unix::fs::symlink(victim.join("l.json"), data.join(&linked.record)).unwrap();
    std::os::unix::fs::symlink(victim.join("v.jpg"), data.join(&linked.frame)).unwrap();
    append_line(&data, &serde_json::to_string(&linked).unwrap());
    let victim_before = hashes(&victim);

    // Export: the two real captures, the three forged lines reported, nothing written outside.
    let bundle = t.path().join("out/bundle");
    let out = export(&data, &bundle, false);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "\"../../pwned\" is not a plain file name",
        "\"../../victim/v.json\" is not captures/<day>/",
        "outside the journal",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert_eq!(
        bundle_ids(&bundle),
        entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
    let written: Vec<PathBuf> = common::walk(t.path())
        .into_iter()
        .filter(|p| !p.starts_with(&data) && !p.starts_with(&victim))
        .collect();
    let expected: Vec<PathBuf> = std::iter::once(bundle.join("captures.csv"))
        .chain(
            entries
                .iter()
                .map(|e| bundle.join(format!("images/{}.jpg", e.id))),
        )
        .collect();
    assert_eq!(written, expected, "export wrote outside its bundle");

    // `journal` verifies the two and reports the three (exit 6), touching nothing.
    let out = journal(&data, false);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["verified"], 2);
    assert_eq!(report["bad"].as_array().unwrap().len(), 3, "{report}");
    common::assert_no_repeated_cause(&stderr(&out));

    // `journal --repair` takes the lines out; the files outside stay as they were.
    let out = journal(&data, true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(hashes(&victim), victim_before);
    let ids: Vec<String> = read_index(&data)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        ids,
        entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
    assert!(journal(&data, false).status.success());
}

#[test]
fn journal_repair_quarantines_failing_records_and_deletes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let entries = common::journal_of_shared_images(&data, 4);
    let bad = &entries[2];
    flip_byte(&data.join(&bad.frame), 300);
    append_line(&data, "{\"id\": \"not a whole entry\"}");
    let files_before: Vec<String> = hashes(&data)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(INDEX_FILE))
        .map(|(_, h)| h)
        .collect();

    // Plain `journal` only reports: exit 6, both bad lines listed, nothing moved.
    let out = journal(&data, false);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["records"], 5);
    assert_eq!(report["verified"], 3);
    let listed: Vec<&Value> = report["bad"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 2, "{report}");
    assert_eq!(listed[0]["id"], bad.id.as_str());
    assert_eq!(listed[1]["line"], 5);
    assert!(stderr(&out).contains(&bad.id) && stderr(&out).contains("--repair"));
    assert!(data.join(&bad.frame).exists());
    assert!(!data.join(QUARANTINE_DIR).exists());

    // `--repair`: moved into quarantine/<stamp>/, listed on stdout, out of the index.
    let out = journal(&data, true);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout_json(&out);
    let q = &report["quarantine"];
    let folder = PathBuf::from(q["folder"].as_str().unwrap());
    assert_eq!(folder.parent().unwrap(), data.join(QUARANTINE_DIR));
    let records = q["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{q}");
    assert_eq!(records[0]["id"], bad.id.as_str());
    let moved: Vec<&str> = records[0]["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(moved, [bad.record.as_str(), bad.frame.as_str()]);
    for rel in &moved {
        assert!(folder.join(rel).is_file(), "{rel} not in quarantine");
        assert!(!data.join(rel).exists(), "{rel} still in the journal");
    }
    let listing = fs::read_to_string(folder.join("quarantined.jsonl")).unwrap();
    assert_eq!(listing.lines().count(), 2);
    assert!(listing.contains("not a whole entry"), "{listing}");

    // Nothing was deleted: every file is still somewhere under the data directory.
    let mut after: Vec<String> = hashes(&data)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(INDEX_FILE) && !p.ends_with("quarantined.jsonl"))
        .map(|(_, h)| h)
        .collect();
    let mut before = files_before;
    before.sort();
    after.sort();
    assert_eq!(before, after);

    // Later checks and exports are clean.
    let out = journal(&data, false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["verified"], 3);
    let bundle = t.path().join("bundle");
    let out = export(&data, &bundle, true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("bad record"), "{}", stderr(&out));
    assert_eq!(bundle_ids(&bundle).len(), 3);
    // A second repair finds nothing to do and makes no new folder.
    let out = journal(&data, true);
    assert!(out.status.success());
    assert_eq!(fs::read_dir(data.join(QUARANTINE_DIR)).unwrap().count(), 1);
}
