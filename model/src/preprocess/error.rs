use std::fmt;
use std::path::PathBuf;

/// Why an image or mask could not be turned into pixels. Every variant names where the bytes
/// came from (a file path, or the origin string given to [`super::decode_bytes`]).
///
/// Each message names the file and its cause once. A cause kept in a field is part of the
/// message and is not also returned by `source()`, so an error chain printed with `{:#}` (anyhow)
/// does not repeat it.
#[derive(Debug)]
pub enum PreprocessError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Empty {
        origin: String,
    },
    UnknownFormat {
        origin: String,
    },
    Unsupported {
        origin: String,
        source: image::ImageError,
    },
    Decode {
        origin: String,
        detail: String,
    },
    TooLarge {
        origin: String,
        max_side: u32,
        max_alloc_mib: u64,
        source: image::ImageError,
    },
    BadMask {
        origin: String,
        problem: String,
    },
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreprocessError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            PreprocessError::Empty { origin } => write!(f, "{origin}: the file is empty"),
            PreprocessError::UnknownFormat { origin } => write!(
                f,
                "{origin}: not a recognised image (expected JPEG, PNG, BMP, TIFF or WebP)"
            ),
            PreprocessError::Unsupported { origin, source } => {
                write!(f, "{origin}: unsupported image variant: {source}")
            }
            PreprocessError::Decode { origin, detail } => {
                write!(f, "{origin}: corrupt or truncated image: {detail}")
            }
            PreprocessError::TooLarge {
                origin,
                max_side,
                max_alloc_mib,
                source,
            } => write!(
                f,
                "{origin}: image exceeds the decoding limits ({max_side}×{max_side} pixels, {max_alloc_mib} MiB): {source}"
            ),
            PreprocessError::BadMask { origin, problem } => {
                write!(f, "{origin}: unusable lesion mask: {problem}")
            }
        }
    }
}

impl std::error::Error for PreprocessError {}
