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
        ood_weights: None,
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

/// Writes `dir/<name>.onnx`, the signed small model changed by `edit`, re-signed with the
/// trusted key: only the contents are wrong, never the signature.
fn edited_model(dir: &Path, name: &str, edit: impl FnOnce(&mut ModelProto)) -> PathBuf {
    let (path, _, _) = signed_model(dir);
    let mut proto = ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    edit(&mut proto);
    let bytes = proto.encode_to_vec();
    let out = dir.join(format!("{name}.onnx"));
    std::fs::write(&out, &bytes).unwrap();
    let key = signature::signing_key_from_seed([42; 32]);
    signature::sign_file(&key, &out, &bytes).unwrap();
    out
}

/// Replaces the JSON of one `dermo.*` key, editing it as a JSON value.
fn set_prop(proto: &mut ModelProto, key: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let prop = proto
        .metadata_props
        .iter_mut()
        .find(|p| p.key == key)
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&prop.value).unwrap();
    edit(&mut v);
    prop.value = v.to_string();
}

#[test]
fn metadata_the_runtime_cannot_use_is_refused_at_open_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let key = signature::signing_key_from_seed([42; 32]).verifying_key();
    let trust = TrustPolicy::signed_by(vec![key]);
    let cases: [(&str, &str, &str, serde_json::Value, &str); 8] = [
        // Size 0 panicked in `Runtime::run`; 60000 asked tract for a 10.8 GB buffer.
        ("size0", "dermo.input", "size", 0.into(), "size 0"),
        (
            "size60000",
            "dermo.input",
            "size",
            60000.into(),
            "size 60000",
        ),
        // The graph's input is 32×32: a plausible size that is not the graph's is refused too.
        (
            "size64",
            "dermo.input",
            "size",
            64.into(),
            "\"input\" has 32",
        ),
        (
            "t0",
            "dermo.calibration",
            "temperature",
            0.0.into(),
            "temperature",
        ),
        (
            "tneg",
            "dermo.calibration",
            "temperature",
            (-1.0).into(),
            "temperature",
        ),
        (
            "tbig",
            "dermo.calibration",
            "temperature",
            1e39.into(),
            "temperature",
        ),
        (
            "refer",
            "dermo.calibration",
            "refer_threshold",
            1.5.into(),
            "refer_threshold",
        ),
        (
            "abstain",
            "dermo.calibration",
            "abstain_min_confidence",
            (-0.2).into(),
            "abstain_min_confidence",
        ),
    ];
    for (name, key, field, value, expect) in cases {
        let path = edited_model(dir.path(), name, |p| {
            set_prop(p, key, |v| v[field] = value);
        });
        let e = refused(&path, &trust);
        assert!(e.contains(key) && e.contains(expect), "{name}: {e}");
        // Host tools reading their own exports refuse them the same way.
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            ModelFile::from_verified_bytes(&path, bytes).is_err(),
            "{name}"
        );
    }
}

#[test]
fn logits_narrower_than_the_class_list_are_refused() {
    use tract_onnx::pb::{tensor_shape_proto::dimension::Value, type_proto};
    let dir = tempfile::tempdir().unwrap();
    let path = edited_model(dir.path(), "five", |p| {
        let outputs = &mut p.graph.as_mut().unwrap().output;
        let logits = outputs.iter_mut().find(|o| o.name == "logits").unwrap();
        let Some(type_proto::Value::TensorType(t)) = logits.r#type.as_mut().unwrap().value.as_mut()
        else {
            panic!("logits must be a tensor")
        };
        t.shape.as_mut().unwrap().dim[1].value = Some(Value::DimValue(5));
    });
    let e = refused(&path, &TrustPolicy::unsigned());
    assert!(
        e.contains("dermo.classes") && e.contains("classes 7") && e.contains("\"logits\" has 5"),
        "{e}"
    );
}
