//! One captured frame, as the source delivered it, and reading an image file under a size cap.

use chrono::{DateTime, Utc};
use image::RgbImage;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The pixels of a frame: either encoded bytes (an MJPG camera buffer, a replayed file) that
/// still need decoding, or pixels a source has already converted (YUYV, synthetic).
#[derive(Debug, Clone)]
pub enum FrameData {
    Encoded(Vec<u8>),
    Rgb(RgbImage),
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub data: FrameData,
    /// Where the frame came from (a file path, `/dev/video0#42`, `synthetic#3`); names it in errors.
    pub origin: String,
    pub captured_at: DateTime<Utc>,
}

/// A frame whose bytes do not decode to an image; `reason` does not repeat the origin.
#[derive(Debug, thiserror::Error)]
#[error("frame {origin}: {reason}")]
pub struct DecodeError {
    pub origin: String,
    pub reason: String,
}

/// Why an image file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read image {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("image {path} {}", too_large(*.size, *.cap))]
    TooLarge {
        path: PathBuf,
        /// Its length, when the file system reports one (not for a device or a pipe).
        size: Option<u64>,
        /// The cap, in bytes.
        cap: u64,
    },
}

impl InputError {
    /// The problem without the file's name, for reports that name it already.
    pub fn problem(&self) -> String {
        match self {
            InputError::Read { cause, .. } => cause.to_string(),
            InputError::TooLarge { size, cap, .. } => too_large(*size, *cap),
        }
    }
}

fn too_large(size: Option<u64>, cap: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let size = size.map_or(String::new(), |s| format!(" ({:.1} MiB)", s as f64 / MIB));
    format!(
        "is larger than the input cap of {} MiB{size}; not read ([source] max_input_mb)",
        cap as f64 / MIB
    )
}

/// Reads a whole image file of at most `cap` bytes. A file whose length is over the cap is
/// refused before it is opened; anything without a length (a device such as `/dev/zero`, a
/// pipe) is read through a `cap + 1` byte limit and refused when it reaches it — never more
/// than `cap + 1` bytes are read.
pub fn read_image_file(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    let read_err = |cause| InputError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let too_large = |size| InputError::TooLarge {
        path: path.to_path_buf(),
        size,
        cap,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > cap {
        return Err(too_large(Some(len)));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(cap.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(None));
    }
    Ok(bytes)
}

impl Frame {
    pub fn new(data: FrameData, origin: impl Into<String>) -> Frame {
        Frame {
            data,
            origin: origin.into(),
            captured_at: Utc::now(),
        }
    }

    /// Decodes through the shared contract (`dermo_model::preprocess::decode_bytes`), so a frame
    /// is read exactly as the host reads the same file: limits, EXIF orientation, RGB8.
    pub fn decode(&self) -> Result<RgbImage, DecodeError> {
        match &self.data {
            FrameData::Rgb(img) => Ok(img.clone()),
            FrameData::Encoded(bytes) => dermo_model::preprocess::decode_bytes(bytes, &self.origin)
                .map_err(|e| {
                    // The shared decoder's messages start with the origin; it is named once.
                    let message = e.to_string();
                    let reason = message
                        .strip_prefix(&format!("{}: ", self.origin))
                        .unwrap_or(&message)
                        .to_string();
                    DecodeError {
                        origin: self.origin.clone(),
                        reason,
                    }
                }),
        }
    }

    /// The frame as JPEG bytes for the journal: the camera's or file's own bytes when they are
    /// already a JPEG (so the host later reads exactly what the device classified), otherwise
    /// `decoded` encoded at high quality.
    pub fn jpeg_bytes(&self, decoded: &RgbImage) -> Result<Vec<u8>, image::ImageError> {
        if let FrameData::Encoded(bytes) = &self.data {
            if bytes.starts_with(&[0xFF, 0xD8]) {
                return Ok(bytes.clone());
            }
        }
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95).encode_image(decoded)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_files_over_the_cap_are_refused_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.jpg");
        std::fs::write(&p, vec![0u8; 3000]).unwrap();
        assert_eq!(read_image_file(&p, 3000).unwrap().len(), 3000);
        let e = read_image_file(&p, 2999).unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    size: Some(3000),
                    ..
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("big.jpg") && msg.contains("max_input_mb"),
            "{msg}"
        );
        // A device has no length: the read stops one byte past the cap.
        let e = read_image_file(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { size: None, .. }), "{e}");
    }
}
