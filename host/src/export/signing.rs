//! `dermo keygen` and `dermo verify`.

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
