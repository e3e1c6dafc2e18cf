//! One captured frame, as the source delivered it.

use chrono::{DateTime, Utc};
use image::RgbImage;

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

/// A frame whose bytes do not decode to an image.
#[derive(Debug, thiserror::Error)]
#[error("frame {origin}: {reason}")]
pub struct DecodeError {
    pub origin: String,
    pub reason: String,
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
                .map_err(|e| DecodeError {
                    origin: self.origin.clone(),
                    reason: e.to_string(),
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
