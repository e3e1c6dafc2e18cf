//! Bytes → RGB8 pixels, under decoding limits and with EXIF orientation applied.

use std::io::Cursor;
use std::path::Path;

use image::error::ImageError;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::PreprocessError;

/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 16384;
/// Largest accepted decoder allocation, in bytes.
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

/// Decodes an image file of any supported format and colour type to RGB8.
pub fn decode_file(path: &Path) -> Result<RgbImage, PreprocessError> {
    let bytes = read(path)?;
    decode_bytes(&bytes, &path.display().to_string())
}

/// Decodes in-memory image bytes to RGB8; `origin` names them in errors (a path, a camera, a URL).
///
/// The format is recognised from the content, never from a file name. EXIF orientation is
/// applied. Alpha is dropped (not composited): like Pillow's `convert("RGB")`, so the host
/// tooling and Python readers see the same pixels. 16-bit samples are scaled to 8 bits and grey
/// is replicated to three channels.
pub fn decode_bytes(bytes: &[u8], origin: &str) -> Result<RgbImage, PreprocessError> {
    decode_dynamic(bytes, origin).map(DynamicImage::into_rgb8)
}

/// Decodes a lesion mask file of any supported format to 8-bit grey (non-zero = lesion).
pub fn decode_mask_file(path: &Path) -> Result<GrayImage, PreprocessError> {
    let origin = path.display().to_string();
    let mask = decode_dynamic(&read(path)?, &origin)?.into_luma8();
    if mask.pixels().all(|p| p.0[0] == 0) {
        return Err(PreprocessError::BadMask {
            origin,
            problem: "no lesion pixels (the mask is all zero)".into(),
        });
    }
    Ok(mask)
}

fn read(path: &Path) -> Result<Vec<u8>, PreprocessError> {
    std::fs::read(path).map_err(|source| PreprocessError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn decode_dynamic(bytes: &[u8], origin: &str) -> Result<DynamicImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty {
            origin: origin.into(),
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Decode {
            origin: origin.into(),
            detail: e.to_string(),
        })?;
    let Some(format) = reader.format() else {
        return Err(PreprocessError::UnknownFormat {
            origin: origin.into(),
        });
    };
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        // zune-jpeg in lenient mode fills a cut-off scan with grey instead of failing; a
        // half-grey lesion must not reach training or a clinician's screen.
        return Err(PreprocessError::Decode {
            origin: origin.into(),
            detail: "JPEG ends before its end-of-image marker (truncated file)".into(),
        });
    }
    let limits = limits();
    reader.limits(limits.clone());
    let wrap = |e| classify(e, origin);
    let mut decoder = reader.into_decoder().map_err(wrap)?;
    // `into_decoder` checks the dimensions; this also refuses a buffer beyond the allocation limit
    // before it is allocated.
    limits
        .clone()
        .reserve(decoder.total_bytes())
        .map_err(wrap)?;
    let orientation = decoder.orientation().map_err(wrap)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(wrap)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// A complete JPEG has an end-of-image marker (FF D9) after its last start-of-scan (FF DA).
/// Searching only after the last scan skips an embedded EXIF thumbnail's own end marker, and
/// entropy-coded data never contains FF D9, so trailing bytes some cameras append are fine.
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

fn classify(error: ImageError, origin: &str) -> PreprocessError {
    let origin = origin.to_string();
    match error {
        ImageError::Limits(_) => PreprocessError::TooLarge {
            origin,
            max_side: MAX_SIDE,
            max_alloc_mib: MAX_ALLOC >> 20,
            source: error,
        },
        ImageError::Unsupported(_) => PreprocessError::Unsupported {
            origin,
            source: error,
        },
        other => PreprocessError::Decode {
            origin,
            detail: other.to_string(),
        },
    }
}
