//! Shared helpers of the integration tests: the shared data, a real model file, the binary.
#![allow(dead_code)]

pub mod model;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared HAM10000 directory.
pub fn ham10000() -> PathBuf {
    std::env::var_os("DERMO_HAM10000")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/ham10000"))
}

/// `n` shared images, spread over the set (every `step`-th file by name).
pub fn shared_images(n: usize, step: usize) -> Vec<PathBuf> {
    let dir = ham10000().join("images");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    all.sort();
    all.into_iter().step_by(step.max(1)).take(n).collect()
}

/// Copies images into `dir` (created), keeping their names.
pub fn copy_into(dir: &Path, files: &[PathBuf]) {
    std::fs::create_dir_all(dir).unwrap();
    for f in files {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
}

/// The binary under test. When the tests themselves run under an emulator (the aarch64 build
/// under qemu-user, which has no binfmt here), `DERMO_TEST_RUNNER` names the emulator command
/// line that the child binary must be started with too.
pub fn dermo_scope() -> Command {
    let bin = env!("CARGO_BIN_EXE_dermo-scope");
    match std::env::var("DERMO_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut parts = runner.split_whitespace();
            let mut cmd = Command::new(parts.next().unwrap());
            cmd.args(parts).arg(bin);
            cmd
        }
        _ => Command::new(bin),
    }
}

/// A config file trusting `key`, with the storage floor off (tests share one disk).
pub fn write_config(dir: &Path, key: &Path, extra: &str) -> PathBuf {
    let path = dir.join("dermo-scope.toml");
    std::fs::write(
        &path,
        format!(
            "[model]\ntrusted_keys = [{key:?}]\n\n[journal]\nmin_free_mb = 0\n\n[controls]\nresult_hold_ms = 0\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// The JSON event lines a run printed on stdout.
pub fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

pub fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// Files in `dir` whose name contains `part`, sorted.
pub fn files_containing(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.file_name().unwrap().to_string_lossy().contains(part));
    v.sort();
    v
}

/// A journal at `dir` holding `n` captures of shared images (results without a model: quality
/// only), written through the journal itself; returns their index entries.
pub fn journal_of_shared_images(dir: &Path, n: usize) -> Vec<dermo_device::journal::IndexEntry> {
    use dermo_device::journal::{Journal, StoragePolicy};
    let policy = StoragePolicy {
        min_free_mb: 0,
        max_journal_mb: 0.0,
    };
    let (mut journal, _) = Journal::open(dir, policy).unwrap();
    shared_images(n, 10015 / n.max(1))
        .iter()
        .map(|f| {
            let jpeg = std::fs::read(f).unwrap();
            let img = dermo_model::preprocess::decode_bytes(&jpeg, "t").unwrap();
            let result = dermo_device::CaptureResult::new(
                &f.display().to_string(),
                chrono::Utc::now(),
                dermo_device::QualityGate::default().check(&img),
                &"ab".repeat(32),
                "model test",
                None,
            );
            journal.record(&jpeg, &result).unwrap()
        })
        .collect()
}

/// Every file under `dir`, recursively, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .map(walkdir::DirEntry::into_path)
        .collect();
    out.sort();
    out
}

/// Asserts that no line of an error message repeats a part (split at ": "), as in "X: X" or
/// "cannot read f: No such file: No such file".
pub fn assert_no_repeated_cause(message: &str) {
    for line in message.lines() {
        let parts: Vec<&str> = line
            .split(": ")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "{p:?} is repeated in {line:?}");
        }
    }
}
