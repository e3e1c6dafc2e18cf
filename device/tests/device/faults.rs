//! Fault tests of the real binary: the replay source disappears mid-run, the model file is
//! swapped for garbage or carries metadata it cannot run with, the disk fills, and the process is
//! killed with SIGKILL while it writes its journal. In each case nothing that was acknowledged is
//! lost and no half record remains; a storage-full or source-lost stop still ends its output
//! with the `finished` event.

use crate::common;

use crate::common::model::{build, seven_class_weights, TestModel};
use dermo_model::metadata::CalibrationSpec;
use dermo_model::onnx::Precision;
use dermo_model::signature::{sign_file, signing_key_from_seed};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    model: TestModel,
    config: PathBuf,
}

fn setup(images: usize) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let model = build(
        &root.join("model"),
        "scope",
        &seven_class_weights(),
        Precision::Int8,
        CalibrationSpec::default(),
    );
    common::copy_into(
        &root.join("replay"),
        &common::shared_images(images, 10015 / images),
    );
    let config = common::write_config(&root, &model.public_key, "");
    Setup {
        _tmp: tmp,
        root,
        model,
        config,
    }
}

impl Setup {
    fn run(&self, data: &Path, screens: &Path, extra: &[&str]) -> Command {
        let mut c = common::dermo_scope();
        c.args(["run", "--continuous"])
            .arg("--config")
            .arg(&self.config)
            .arg("--model")
            .arg(&self.model.path)
            .arg("--source")
            .arg(format!("dir:{}", self.root.join("replay").display()))
            .arg("--display")
            .arg(format!("png:{}", screens.display()))
            .arg("--data-dir")
            .arg(data)
            .args(extra);
        c
    }
}

/// Streams a child's stdout as JSON events.
fn event_stream(child: &mut Child) -> Receiver<Value> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Ok(v) = serde_json::from_str(&line) {
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

fn wait_for(rx: &Receiver<Value>, kind: &str, seen: &mut Vec<Value>) -> Value {
    loop {
        let v = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {kind:?} event; saw {seen:#?}"));
        seen.push(v.clone());
        if v["event"] == kind {
            return v;
        }
    }
}

/// The last event is `finished`, saying how the run stopped and counting its captures.
fn assert_finished(events: &[Value], stopped: &str, captures: usize) {
    let last = events.last().expect("no events");
    assert_eq!(last["event"], "finished", "{events:#?}");
    assert_eq!(last["stopped"], stopped, "{last}");
    assert_eq!(last["captures"], captures, "{last}");
}

fn acked_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "capture")
        .map(|e| e["journal_id"].as_str().unwrap().to_string())
        .collect()
}

/// Repairs and verifies the journal with the binary; returns the indexed ids.
fn check_journal(data: &Path) -> Vec<String> {
    let out = common::dermo_scope()
        .args(["journal", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "journal check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = dermo_device::journal::read_index(data).unwrap();
    for e in &entries {
        dermo_device::journal::read_record(data, e).unwrap();
    }
    let debris = common::walk(data)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect::<Vec<_>>();
    assert!(debris.is_empty(), "temporary files left: {debris:?}");
    entries.into_iter().map(|e| e.id).collect()
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "journal, storage and source handling are the same code on every target, and each run \
              takes minutes under qemu (the model runs emulated); x86-64 runs these, and \
              scripts/check-cross-predictions runs the aarch64 binary"
)]
fn replay_source_disappears_mid_run_and_comes_back() {
    let s = setup(24);
    let (data, screens) = (s.root.join("data"), s.root.join("screens"));
    let mut child = s
        .run(&data, &screens, &["--reconnect-timeout", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = event_stream(&mut child);
    let mut seen = Vec::new();
    for _ in 0..3 {
        wait_for(&rx, "capture", &mut seen);
    }
    let replay = s.root.join("replay");
    let away = s.root.join("replay-unplugged");
    std::fs::rename(&replay, &away).unwrap();
    wait_for(&rx, "source_lost", &mut seen);
    assert_eq!(common::files_containing(&screens, "camera-lost").len(), 1);
    std::fs::rename(&away, &replay).unwrap();
    wait_for(&rx, "source_back", &mut seen);
    wait_for(&rx, "finished", &mut seen);
    assert!(child.wait().unwrap().success());
    // Every image captured exactly once, across the outage.
    let mut origins: Vec<String> = seen
        .iter()
        .filter(|e| e["event"] == "capture")
        .map(|e| e["result"]["origin"].as_str().unwrap().to_string())
        .collect();
    origins.sort();
    origins.dedup();
    assert_eq!(origins.len(), 24);
    assert_eq!(check_journal(&data), acked_ids(&seen));
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "journal, storage and source handling are the same code on every target, and each run \
              takes minutes under qemu (the model runs emulated); x86-64 runs these, and \
              scripts/check-cross-predictions runs the aarch64 binary"
)]
fn replay_source_that_stays_away_ends_the_run_with_nothing_lost() {
    let s = setup(16);
    let (data, screens) = (s.root.join("data"), s.root.join("screens"));
    let mut child = s
        .run(&data, &screens, &["--reconnect-timeout", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = event_stream(&mut child);
    let mut seen = Vec::new();
    wait_for(&rx, "capture", &mut seen);
    std::fs::remove_dir_all(s.root.join("replay")).unwrap();
    wait_for(&rx, "source_lost", &mut seen);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5), "exit status for a lost source");
    // The reader thread may still be handing over the last lines.
    while let Ok(v) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.push(v);
    }
    let acked = acked_ids(&seen);
    assert_finished(&seen, "source_lost", acked.len());
    let indexed = check_journal(&data);
    assert!(
        acked.iter().all(|id| indexed.contains(id)),
        "{acked:?} vs {indexed:?}"
    );
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "journal, storage and source handling are the same code on every target, and each run \
              takes minutes under qemu (the model runs emulated); x86-64 runs these, and \
              scripts/check-cross-predictions runs the aarch64 binary"
)]
fn model_swapped_for_garbage_is_refused_and_the_journal_kept() {
    let s = setup(3);
    let (data, screens) = (s.root.join("data"), s.root.join("screens"));
    let ok = s.run(&data, &screens, &[]).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let before = check_journal(&data);
    assert_eq!(before.len(), 3);

    let good = std::fs::read(&s.model.path).unwrap();
    // 1. Garbage bytes (the signature no longer matches, and it is not ONNX).
    std::fs::write(&s.model.path, b"\x00garbage, not a model").unwrap();
    let out = s.run(&data, &screens, &[]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scope.onnx"), "{err}");
    assert_eq!(common::files_containing(&screens, "model-invalid").len(), 1);
    // 2. A valid ONNX file changed by one byte: refused on its signature.
    let mut tampered = good.clone();
    let n = tampered.len();
    tampered[n - 10] ^= 1;
    std::fs::write(&s.model.path, &tampered).unwrap();
    let out = s.run(&data, &screens, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature"));
    // 3. Unsigned: refused, unless --allow-unsigned.
    std::fs::write(&s.model.path, &good).unwrap();
    std::fs::remove_file(dermo_model::signature::signature_path(&s.model.path)).unwrap();
    let out = s.run(&data, &screens, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed"));
    let out = s
        .run(&data, &screens, &["--allow-unsigned"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = check_journal(&data);
    assert_eq!(&after[..3], &before[..], "earlier records untouched");
    assert_eq!(after.len(), 6);
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "journal, storage and source handling are the same code on every target, and each run \
              takes minutes under qemu (the model runs emulated); x86-64 runs these, and \
              scripts/check-cross-predictions runs the aarch64 binary"
)]
fn unusable_metadata_or_a_missing_key_is_refused_with_status_3() {
    let s = setup(1);
    let image = common::files_containing(&s.root.join("replay"), ".jpg").remove(0);
    let once = |config: &Path| {
        common::dermo_scope()
            .arg("--config")
            .arg(config)
            .arg("--model")
            .arg(&s.model.path)
            .arg("--once")
            .arg(&image)
            .output()
            .unwrap()
    };
    let refused = |out: &std::process::Output, names: &[&str]| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(names.iter().all(|n| err.contains(n)), "{err}");
    };

    // 1. A configured trusted key that is not there: no model can be trusted.
    let missing_key = s.root.join("absent.pub");
    let config = common::write_config(&s.root.join("model"), &missing_key, "");
    refused(&once(&config), &["model invalid", "absent.pub"]);

    // 2. `dermo.input` size 0 (it panicked at the first frame), correctly signed: only the JSON
    // changes, to the same length, so the protobuf stays well formed.
    let good = std::fs::read(&s.model.path).unwrap();
    let (from, to) = (br#""size":256,"#, br#""size":  0,"#);
    let at: Vec<usize> = (0..good.len())
        .filter(|&i| good[i..].starts_with(from))
        .collect();
    assert_eq!(at.len(), 1, "one dermo.input size in the file");
    let mut bad = good;
    bad[at[0]..at[0] + to.len()].copy_from_slice(to);
    std::fs::write(&s.model.path, &bad).unwrap();
    sign_file(&signing_key_from_seed([42; 32]), &s.model.path, &bad).unwrap();
    refused(&once(&s.config), &["scope.onnx", "dermo.input", "size 0"]);
    let (data, screens) = (s.root.join("data"), s.root.join("screens"));
    refused(
        &s.run(&data, &screens, &[]).output().unwrap(),
        &["scope.onnx", "size 0"],
    );
    assert_eq!(common::files_containing(&screens, "model-invalid").len(), 1);

    // 3. `model install` refuses it the same way, and the store stays empty.
    let store = s.root.join("store");
    let config = s.root.join("install.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nstore = {store:?}\ntrusted_keys = [{:?}]\n",
            s.model.public_key
        ),
    )
    .unwrap();
    let out = common::dermo_scope()
        .arg("--config")
        .arg(&config)
        .args(["model", "install"])
        .arg(&s.model.path)
        .output()
        .unwrap();
    refused(&out, &["refusing to install", "size 0"]);
    assert!(!store.exists());
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "journal, storage and source handling are the same code on every target, and each run \
              takes minutes under qemu (the model runs emulated); x86-64 runs these, and \
              scripts/check-cross-predictions runs the aarch64 binary"
)]
fn journal_size_cap_stops_capture_with_the_storage_full_screen() {
    let s = setup(100);
    let (data, screens) = (s.root.join("data"), s.root.join("screens"));
    let out = s
        .run(&data, &screens, &["--max-journal-mb", "0.25"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::files_containing(&screens, "storage-full").len(), 1);
    let events = common::events(&out);
    let acked = acked_ids(&events);
    assert!(
        acked.len() > 10 && acked.len() < 100,
        "{} captures",
        acked.len()
    );
    assert_finished(&events, "storage_full", acked.len());
    assert_eq!(check_journal(&data), acked);
    let size: u64 = common::walk(&data)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(size <= 256 * 1024, "journal grew to {size} bytes");
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "journal, storage and source handling are the same code on every target, and each run \
              takes minutes under qemu (the model runs emulated); x86-64 runs these, and \
              scripts/check-cross-predictions runs the aarch64 binary"
)]
fn free_space_floor_refuses_to_start_capturing() {
    let s = setup(2);
    let (data, screens) = (s.root.join("data"), s.root.join("screens"));
    // A floor no disk can meet.
    let out = s
        .run(&data, &screens, &["--min-free-mb", "1000000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(common::files_containing(&screens, "storage-full").len(), 1);
    assert_finished(&common::events(&out), "storage_full", 0);
    assert!(check_journal(&data).is_empty());
}

/// A real small file system (tmpfs), when this machine lets the test mount one: the floor
/// stops capture before the disk is full, and with no floor a full disk (ENOSPC) stops it
/// cleanly.
#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "journal, storage and source handling are the same code on every target, and each run \
              takes minutes under qemu (the model runs emulated); x86-64 runs these, and \
              scripts/check-cross-predictions runs the aarch64 binary"
)]
fn small_tmpfs_fills_without_half_records() {
    let s = setup(100);
    let screens = s.root.join("screens");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    for (size, floor, name) in [("1536k", "1", "floor"), ("256k", "0", "enospc")] {
        let mnt = s.root.join(name);
        std::fs::create_dir(&mnt).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|st| st.success());
        if !mounted {
            eprintln!(
                "NOTE: cannot mount a tmpfs here; the size-cap test covers the full-disk path"
            );
            return;
        }
        let _guard = Unmount(mnt.clone());
        let data = mnt.join("data");
        let out = s
            .run(&data, &screens, &["--min-free-mb", floor])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(4),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = common::events(&out);
        let acked = acked_ids(&events);
        assert!(!acked.is_empty(), "{name}: nothing captured");
        // On the full tmpfs stdout is a pipe, so there is room for the last event.
        assert_finished(&events, "storage_full", acked.len());
        assert_eq!(check_journal(&data), acked, "{name}");
        if floor == "1" {
            let free = dermo_device::journal::free_bytes(&data).unwrap();
            assert!(free >= 1024 * 1024, "floor not kept: {free} bytes free");
        }
    }
}

#[test]
#[cfg_attr(
    target_arch = "aarch64",
    ignore = "journal, storage and source handling are the same code on every target, and each run \
              takes minutes under qemu (the model runs emulated); x86-64 runs these, and \
              scripts/check-cross-predictions runs the aarch64 binary"
)]
fn kill_9_during_journal_writes_loses_nothing_acknowledged() {
    let s = setup(40);
    let (data, screens) = (s.root.join("data"), s.root.join("screens"));
    let mut acked_all = Vec::new();
    for (round, after) in [2usize, 3, 5, 4].into_iter().enumerate() {
        let mut child = s
            .run(&data, &screens, &[])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = event_stream(&mut child);
        let mut seen = Vec::new();
        for _ in 0..after {
            wait_for(&rx, "capture", &mut seen);
        }
        // Land the kill at varying points of the next capture (inference, frame, record, index).
        std::thread::sleep(Duration::from_millis(7 * round as u64 + 3));
        child.kill().unwrap();
        child.wait().unwrap();
        seen.extend(rx.try_iter());
        acked_all.extend(acked_ids(&seen));
        let indexed = check_journal(&data);
        for id in &acked_all {
            assert!(
                indexed.contains(id),
                "round {round}: acknowledged {id} lost"
            );
        }
    }
}
