use std::path::PathBuf;

/// Why an image or mask could not be turned into pixels. Every variant names where the bytes
/// came from (a file path, or the origin string given to [`super::decode_bytes`]).
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: the file is empty")]
    Empty { origin: String },
    #[error("{origin}: not a recognised image (expected JPEG, PNG, BMP, TIFF or WebP)")]
    UnknownFormat { origin: String },
    #[error("{origin}: unsupported image variant: {source}")]
    Unsupported {
        origin: String,
        source: image::ImageError,
    },
    #[error("{origin}: corrupt or truncated image: {detail}")]
    Decode { origin: String, detail: String },
    #[error(
        "{origin}: image exceeds the decoding limits ({max_side}×{max_side} pixels, {max_alloc_mib} MiB): {source}"
    )]
    TooLarge {
        origin: String,
        max_side: u32,
        max_alloc_mib: u64,
        source: image::ImageError,
    },
    #[error("{origin}: unusable lesion mask: {problem}")]
    BadMask { origin: String, problem: String },
}
