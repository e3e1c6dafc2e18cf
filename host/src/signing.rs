//! Model-file signatures on the host: `dermo keygen`, `dermo verify`, the key `dermo export
//! --sign` reads, and what `dermo eval` reports about a file's signature ([`SignatureStatus`]).
//! Below both `export` and `eval`; the format itself is `dermo_model::signature`.

use anyhow::Context;
use dermo_model::signature::{self, SIGNING_KEY_FILE};
use dermo_model::{ModelFile, TrustPolicy};
use std::path::{Path, PathBuf};

/// Writes a fresh key pair into `dir`; refuses to replace an existing key unless `force`.
pub fn keygen(dir: &Path, force: bool) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let secret = dir.join(SIGNING_KEY_FILE);
    anyhow::ensure!(
        force || !secret.exists(),
        "{} already exists; pass --force to replace it (models signed with it will no longer verify against the new key)",
        secret.display()
    );
    // ThreadRng is a CSPRNG (ChaCha12) seeded from the operating system.
    let key = signature::signing_key_from_seed(rand::random());
    Ok(signature::write_key_pair(dir, &key)?)
}

/// Checks `model`'s signature against `keys` and its metadata, as the device does.
pub fn verify(model: &Path, keys: &[PathBuf]) -> anyhow::Result<ModelFile> {
    anyhow::ensure!(
        !keys.is_empty(),
        "give at least one trusted public key with --key"
    );
    let trusted = keys
        .iter()
        .map(|k| signature::read_verifying_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ModelFile::open(model, &TrustPolicy::signed_by(trusted))?)
}

/// The hex public key in a key file, for messages.
pub fn public_key_hex(path: &Path) -> anyhow::Result<String> {
    Ok(hex::encode(signature::read_verifying_key(path)?.to_bytes()))
}

/// Reads the signing key given to `dermo export --sign`.
pub fn signing_key(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    Ok(signature::read_signing_key(path)?)
}

pub use signature::signature_path;

/// What `dermo eval` found about a model file's signature; it goes into the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// The signature verifies against this key file.
    Verified(PathBuf),
    /// No `<file>.sig` beside the file.
    Unsigned,
    /// A signature is present, but no public key was given or found beside the file.
    Unchecked,
    /// The signature is unreadable or does not verify: the message says why.
    Fails(String),
}

impl SignatureStatus {
    /// Checks `model`'s signature against `keys`, or, when none are given, against the public
    /// key files (`*.pub`) beside it. A key beside the file shows that the file is intact, not who
    /// made it; give `--key` for that.
    pub fn check(model: &Path, bytes: &[u8], keys: &[PathBuf]) -> Self {
        let sig = match signature::read_signature(model) {
            Ok(sig) => sig,
            Err(signature::SignatureError::MissingSignature { .. }) => return Self::Unsigned,
            Err(e) => return Self::Fails(e.to_string()),
        };
        let keys = if keys.is_empty() {
            keys_beside(model)
        } else {
            keys.to_vec()
        };
        if keys.is_empty() {
            return Self::Unchecked;
        }
        let mut trusted = Vec::new();
        for k in &keys {
            match signature::read_verifying_key(k) {
                Ok(key) => trusted.push((k, key)),
                Err(e) => return Self::Fails(e.to_string()),
            }
        }
        let list: Vec<_> = trusted.iter().map(|(_, key)| *key).collect();
        match signature::verify(model, bytes, &sig, &list) {
            Ok(key) => Self::Verified(
                trusted
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map(|(p, _)| p.to_path_buf())
                    .unwrap_or_default(),
            ),
            Err(e) => Self::Fails(e.to_string()),
        }
    }

    /// Whether a user should be warned before trusting the figures.
    pub fn is_warning(&self) -> bool {
        !matches!(self, Self::Verified(_))
    }
}

impl std::fmt::Display for SignatureStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Verified(key) => write!(f, "signature verified by {}", key.display()),
            Self::Unsigned => write!(f, "UNSIGNED (no .sig file)"),
            Self::Unchecked => write!(f, "signature NOT CHECKED (no public key; give --key)"),
            Self::Fails(why) => write!(f, "signature FAILS: {why}"),
        }
    }
}

/// The `*.pub` files in `model`'s folder, sorted.
fn keys_beside(model: &Path) -> Vec<PathBuf> {
    let dir = match model.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut keys: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pub") && p.is_file())
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_model(dir: &Path) -> (PathBuf, Vec<u8>) {
        let key = signature::signing_key_from_seed([7; 32]);
        signature::write_key_pair(dir, &key).unwrap();
        let model = dir.join("m.onnx");
        let bytes = b"not really onnx, but signed bytes".to_vec();
        std::fs::write(&model, &bytes).unwrap();
        signature::sign_file(&key, &model, &bytes).unwrap();
        (model, bytes)
    }

    #[test]
    fn a_signature_is_verified_by_the_key_beside_the_file_or_a_given_one() {
        let dir = tempfile::tempdir().unwrap();
        let (model, bytes) = signed_model(dir.path());
        let public = dir.path().join(signature::PUBLIC_KEY_FILE);
        assert_eq!(
            SignatureStatus::check(&model, &bytes, &[]),
            SignatureStatus::Verified(public.clone())
        );
        assert_eq!(
            SignatureStatus::check(&model, &bytes, std::slice::from_ref(&public)),
            SignatureStatus::Verified(public)
        );
    }

    #[test]
    fn changed_bytes_another_key_or_no_signature_are_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let (model, mut bytes) = signed_model(dir.path());
        bytes[0] ^= 1;
        let changed = SignatureStatus::check(&model, &bytes, &[]);
        assert!(matches!(&changed, SignatureStatus::Fails(m) if m.contains("does not verify")));
        assert!(changed.is_warning());

        let other = tempfile::tempdir().unwrap();
        signature::write_key_pair(other.path(), &signature::signing_key_from_seed([9; 32]))
            .unwrap();
        let other_key = other.path().join(signature::PUBLIC_KEY_FILE);
        bytes[0] ^= 1;
        assert!(matches!(
            SignatureStatus::check(&model, &bytes, &[other_key]),
            SignatureStatus::Fails(_)
        ));

        std::fs::remove_file(dir.path().join(signature::PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(
            SignatureStatus::check(&model, &bytes, &[]),
            SignatureStatus::Unchecked
        );
        std::fs::remove_file(signature::signature_path(&model)).unwrap();
        let unsigned = SignatureStatus::check(&model, &bytes, &[]);
        assert_eq!(unsigned, SignatureStatus::Unsigned);
        assert!(unsigned.to_string().contains("UNSIGNED"));
    }
}
