//! Installing and rolling back models: the store swaps current and previous (with their
//! signatures) in one step, and refuses files that fail the trust policy.

use crate::common;

use crate::common::model::{build, seven_class_weights};
use dermo_device::modelstore::ModelStore;
use dermo_model::metadata::CalibrationSpec;
use dermo_model::onnx::Precision;
use dermo_model::signature::{read_verifying_key, signature_path};
use dermo_model::TrustPolicy;
use sha2::{Digest, Sha256};
use std::path::Path;

fn sha(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn install_rollback_and_refusals() {
    let t = tempfile::tempdir().unwrap();
    let w = seven_class_weights();
    let a = build(
        &t.path().join("a"),
        "a",
        &w,
        Precision::Int8,
        CalibrationSpec::default(),
    );
    let b = build(
        &t.path().join("b"),
        "b",
        &w,
        Precision::Int8,
        CalibrationSpec {
            refer_threshold: 0.3,
            ..CalibrationSpec::default()
        },
    );
    let trust = TrustPolicy::signed_by(vec![read_verifying_key(&a.public_key).unwrap()]);
    let store = ModelStore::new(&t.path().join("models"));

    let s = store.install(&a.path, &trust).unwrap();
    assert_eq!(s.current.as_deref(), Some(sha(&a.path).as_str()));
    assert_eq!(s.previous, None);
    let s = store.install(&b.path, &trust).unwrap();
    assert_eq!(s.current.as_deref(), Some(sha(&b.path).as_str()));
    assert_eq!(s.previous.as_deref(), Some(sha(&a.path).as_str()));
    // The installed file opens with its signature under the store's name.
    dermo_model::ModelFile::open(&store.current_path(), &trust).unwrap();

    // Rollback through the binary, as on a device.
    let key = a.public_key.display().to_string();
    let store_path = t.path().join("models").display().to_string();
    let cfg = t.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[model]\nstore = {store_path:?}\ntrusted_keys = [{key:?}]\n"),
    )
    .unwrap();
    let out = common::dermo_scope()
        .arg("--config")
        .arg(&cfg)
        .args(["model", "rollback"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = store.status().unwrap();
    assert_eq!(s.current.as_deref(), Some(sha(&a.path).as_str()));
    assert_eq!(s.previous.as_deref(), Some(sha(&b.path).as_str()));
    dermo_model::ModelFile::open(&store.current_path(), &trust).unwrap();
    dermo_model::ModelFile::open(&store.previous_path(), &trust).unwrap();
    // Only the live generation is kept.
    let gens = std::fs::read_dir(t.path().join("models.d"))
        .unwrap()
        .count();
    assert_eq!(gens, 1);

    // A model whose signature does not verify is not installed.
    let evil = t.path().join("evil.onnx");
    let mut bytes = std::fs::read(&b.path).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 1;
    std::fs::write(&evil, &bytes).unwrap();
    std::fs::copy(signature_path(&b.path), signature_path(&evil)).unwrap();
    assert!(store.install(&evil, &trust).is_err());
    assert_eq!(
        store.status().unwrap(),
        s,
        "a refused install changes nothing"
    );

    // Rolling back onto a previous model that no longer verifies is refused.
    std::fs::remove_file(signature_path(&store.previous_path())).unwrap();
    let e = store.rollback(&trust).unwrap_err().to_string();
    assert!(e.contains("not signed"), "{e}");
    assert_eq!(store.status().unwrap(), s);
}
