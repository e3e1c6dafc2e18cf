//! Opening model files: signatures, tampering, garbage and files without dermo metadata are each
//! refused with a message naming the file and the problem.

mod onnx_support;

use dermo_model::metadata::Metadata;
use dermo_model::onnx::{write_onnx, ExportOptions, Precision};
use dermo_model::signature::{self, signature_path};
use dermo_model::{ModelFile, Runtime, TrustPolicy};
use onnx_support::*;
use prost::Message;
use std::path::{Path, PathBuf};
use tract_onnx::pb::ModelProto;

/// A signed small model in `dir`; returns its path and the trusted public key.
fn signed_model(dir: &Path) -> (PathBuf, ed25519_dalek::VerifyingKey, Metadata) {
    let spec = small_spec();
    let meta = metadata(32, "int8");
    let opts = ExportOptions {
        precision: Precision::Int8,
        input_size: 32,
        with_features: false,
        activation_ranges: None,
        ood_block: None,
    };
    let bytes = write_onnx(&spec, &random_weights(&spec, 9), &opts, &meta).unwrap();
    let path = dir.join("model.onnx");
    std::fs::write(&path, &bytes).unwrap();
    let key = signature::signing_key_from_seed([42; 32]);
    signature::write_key_pair(dir, &key).unwrap();
    signature::sign_file(&key, &path, &bytes).unwrap();
    (path, key.verifying_key(), meta)
}

fn refused(path: &Path, trust: &TrustPolicy) -> String {
    let e = ModelFile::open(path, trust)
        .expect_err("the file must be refused")
        .to_string();
    assert!(
        e.contains(&path.display().to_string()),
        "message must name the file: {e}"
    );
    e
}

#[test]
fn a_signed_file_opens_with_its_metadata_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key, meta) = signed_model(dir.path());
    let pubkey =
        signature::read_verifying_key(&dir.path().join(signature::PUBLIC_KEY_FILE)).unwrap();
    assert_eq!(pubkey, key);
    let file = ModelFile::open(&path, &TrustPolicy::signed_by(vec![pubkey])).unwrap();
    assert_eq!(file.metadata, meta);
    assert_eq!(file.sha256.len(), 64);
    let out = Runtime::new(&file)
        .unwrap()
        .run(&real_images(1, 32)[0])
        .unwrap();
    assert_eq!(out.logits.len(), 7);
    assert!(out.features.is_none());
}

#[test]
fn a_tampered_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key, _) = signed_model(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let e = refused(&path, &TrustPolicy::signed_by(vec![key]));
    assert!(e.contains("does not verify"), "{e}");
}

#[test]
fn a_tampered_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key, _) = signed_model(dir.path());
    let sig = signature_path(&path);
    let mut s = std::fs::read(&sig).unwrap();
    s[0] ^= 0x80;
    std::fs::write(&sig, &s).unwrap();
    let e = refused(&path, &TrustPolicy::signed_by(vec![key]));
    assert!(e.contains("does not verify"), "{e}");
    std::fs::write(&sig, &s[..63]).unwrap();
    let e = refused(&path, &TrustPolicy::signed_by(vec![key]));
    assert!(e.contains("64 bytes"), "{e}");
}

#[test]
fn another_key_or_no_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = signed_model(dir.path());
    let stranger = signature::signing_key_from_seed([1; 32]).verifying_key();
    let e = refused(&path, &TrustPolicy::signed_by(vec![stranger]));
    assert!(e.contains("does not verify"), "{e}");
    std::fs::remove_file(signature_path(&path)).unwrap();
    let e = refused(&path, &TrustPolicy::signed_by(vec![stranger]));
    assert!(e.contains("not signed") && e.contains(".sig"), "{e}");
    // Host tools may open their own unsigned exports.
    assert!(ModelFile::open(&path, &TrustPolicy::unsigned()).is_ok());
}

#[test]
fn garbage_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.onnx");
    std::fs::write(&path, b"\xff\xfe this is not protobuf \x00\x01").unwrap();
    let e = refused(&path, &TrustPolicy::unsigned());
    assert!(e.contains("not an ONNX model"), "{e}");
    let e = refused(&dir.path().join("absent.onnx"), &TrustPolicy::unsigned());
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn a_file_without_dermo_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = signed_model(dir.path());
    let mut proto = ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    proto
        .metadata_props
        .retain(|p| !p.key.starts_with("dermo."));
    let bare = dir.path().join("bare.onnx");
    std::fs::write(&bare, proto.encode_to_vec()).unwrap();
    // The network itself is fine: tract loads it without complaint.
    assert!(tract_onnx::prelude::Framework::model_for_path(&tract_onnx::onnx(), &bare).is_ok());
    let e = refused(&bare, &TrustPolicy::unsigned());
    assert!(
        e.contains("no usable dermo metadata") && e.contains("dermo.format"),
        "{e}"
    );
}
