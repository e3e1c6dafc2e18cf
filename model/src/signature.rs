//! Detached ed25519 signatures over a model file's bytes.
//!
//! Files on disk:
//! - signing key: 64 hex characters (the 32-byte secret seed) and a newline, mode 0600;
//! - public key: 64 hex characters (the 32-byte verifying key) and a newline;
//! - signature `<model>.onnx.sig`: the raw 64-byte signature.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::path::{Path, PathBuf};

pub use ed25519_dalek::{PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH, SIGNATURE_LENGTH};

/// File name of the secret key written by `keygen`.
pub const SIGNING_KEY_FILE: &str = "dermo-signing.key";
/// File name of the public key written by `keygen`.
pub const PUBLIC_KEY_FILE: &str = "dermo-signing.pub";

/// A key or signature file that cannot be used, or a signature that does not verify.
///
/// Each message names the file and its cause once. A cause kept in a field is part of the
/// message and is not also returned by `source()`, so an error chain printed with `{:#}` (anyhow)
/// does not repeat it.
#[derive(Debug)]
pub enum SignatureError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    KeyFormat {
        path: PathBuf,
        expected: usize,
    },
    BadPublicKey {
        path: PathBuf,
    },
    MissingSignature {
        path: PathBuf,
    },
    SignatureFormat {
        path: PathBuf,
        len: usize,
    },
    Untrusted {
        model: PathBuf,
        keys: usize,
    },
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use SignatureError::*;
        match self {
            Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Write { path, source } => write!(f, "cannot write {}: {source}", path.display()),
            KeyFormat { path, expected } => write!(
                f,
                "{} is not a key file: expected {expected} hex characters",
                path.display()
            ),
            BadPublicKey { path } => {
                write!(f, "{} holds an invalid ed25519 public key", path.display())
            }
            MissingSignature { path } => {
                write!(f, "signature file {} is missing", path.display())
            }
            SignatureFormat { path, len } => write!(
                f,
                "signature file {} must be exactly {SIGNATURE_LENGTH} bytes, found {len}",
                path.display()
            ),
            Untrusted { model, keys } => write!(
                f,
                "signature of {} does not verify against any of the {keys} trusted key(s): the file was modified or signed by another key",
                model.display()
            ),
        }
    }
}

impl std::error::Error for SignatureError {}

/// The path of the detached signature of `model`: `<model>.sig`.
pub fn signature_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// A signing key from a 32-byte secret seed (the caller draws it from a cryptographic RNG).
pub fn signing_key_from_seed(seed: [u8; SECRET_KEY_LENGTH]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

/// Writes `dermo-signing.key` (mode 0600) and `dermo-signing.pub` into `dir`; returns their paths.
pub fn write_key_pair(dir: &Path, key: &SigningKey) -> Result<(PathBuf, PathBuf), SignatureError> {
    let secret = dir.join(SIGNING_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    write_private(
        &secret,
        format!("{}\n", hex::encode(key.to_bytes())).as_bytes(),
    )?;
    write(
        &public,
        format!("{}\n", hex::encode(key.verifying_key().to_bytes())).as_bytes(),
    )?;
    Ok((secret, public))
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, SignatureError> {
    Ok(SigningKey::from_bytes(&read_hex::<SECRET_KEY_LENGTH>(
        path,
    )?))
}

pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, SignatureError> {
    VerifyingKey::from_bytes(&read_hex::<PUBLIC_KEY_LENGTH>(path)?).map_err(|_| {
        SignatureError::BadPublicKey {
            path: path.to_path_buf(),
        }
    })
}

/// Signs the bytes of a model file.
pub fn sign(key: &SigningKey, bytes: &[u8]) -> [u8; SIGNATURE_LENGTH] {
    key.sign(bytes).to_bytes()
}

/// Signs `model`'s bytes and writes `<model>.sig`; returns the signature's path.
pub fn sign_file(key: &SigningKey, model: &Path, bytes: &[u8]) -> Result<PathBuf, SignatureError> {
    let path = signature_path(model);
    write(&path, &sign(key, bytes))?;
    Ok(path)
}

/// Reads `<model>.sig`.
pub fn read_signature(model: &Path) -> Result<[u8; SIGNATURE_LENGTH], SignatureError> {
    let path = signature_path(model);
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignatureError::MissingSignature { path })
        }
        r => r.map_err(|source| SignatureError::Read {
            path: path.clone(),
            source,
        })?,
    };
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| SignatureError::SignatureFormat {
            path,
            len: bytes.len(),
        })
}

/// Checks `signature` over `bytes` (the file `model`) against each trusted key; returns the key
/// that verified it.
pub fn verify(
    model: &Path,
    bytes: &[u8],
    signature: &[u8; SIGNATURE_LENGTH],
    trusted: &[VerifyingKey],
) -> Result<VerifyingKey, SignatureError> {
    let sig = Signature::from_bytes(signature);
    trusted
        .iter()
        .find(|k| k.verify(bytes, &sig).is_ok())
        .copied()
        .ok_or_else(|| SignatureError::Untrusted {
            model: model.to_path_buf(),
            keys: trusted.len(),
        })
}

fn read_hex<const N: usize>(path: &Path) -> Result<[u8; N], SignatureError> {
    let text = std::fs::read_to_string(path).map_err(|source| SignatureError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = || SignatureError::KeyFormat {
        path: path.to_path_buf(),
        expected: 2 * N,
    };
    let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), SignatureError> {
    std::fs::write(path, bytes).map_err(|source| SignatureError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SignatureError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let err = |source| SignatureError::Write {
        path: path.to_path_buf(),
        source,
    };
    opts.open(path).map_err(err)?.write_all(bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_signatures_verify_only_unmodified_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let key = signing_key_from_seed([7; 32]);
        let (sk, pk) = write_key_pair(dir.path(), &key).unwrap();
        let key2 = read_signing_key(&sk).unwrap();
        let pubk = read_verifying_key(&pk).unwrap();
        assert_eq!(key2.verifying_key(), pubk);

        let model = dir.path().join("m.onnx");
        let bytes = b"model bytes".to_vec();
        let sig_path = sign_file(&key2, &model, &bytes).unwrap();
        assert_eq!(sig_path, dir.path().join("m.onnx.sig"));
        let sig = read_signature(&model).unwrap();
        assert!(verify(&model, &bytes, &sig, &[pubk]).is_ok());
        let e = verify(&model, b"model bytez", &sig, &[pubk])
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.onnx") && e.contains("does not verify"), "{e}");
        let other = signing_key_from_seed([8; 32]).verifying_key();
        assert!(verify(&model, &bytes, &sig, &[other]).is_err());
    }

    #[test]
    fn malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pub");
        std::fs::write(&p, "zz").unwrap();
        let e = read_verifying_key(&p).unwrap_err().to_string();
        assert!(e.contains("bad.pub"), "{e}");
        let model = dir.path().join("x.onnx");
        let e = read_signature(&model).unwrap_err().to_string();
        assert!(e.contains("x.onnx.sig") && e.contains("missing"), "{e}");
        std::fs::write(signature_path(&model), [0u8; 10]).unwrap();
        let e = read_signature(&model).unwrap_err().to_string();
        assert!(e.contains("64 bytes"), "{e}");
    }
}
