//! The image contract: file or frame → RGB8 → (colour constancy) → S×S → `[1,3,S,S]` f32.
//!
//! Host training, host evaluation and the device all call these functions, so a model sees the
//! same pixels wherever it runs.

mod color;
mod decode;
mod error;
mod mask;
mod resize;
mod tensor;

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

pub use color::shades_of_gray;
pub use decode::{decode_bytes, decode_file, decode_mask_file, MAX_ALLOC, MAX_SIDE};
pub use error::PreprocessError;
pub use mask::apply_mask;
pub use resize::resize_square;
pub use tensor::{normalize_into, to_tensor, to_tensor_with, Normalization, Tensor, MEAN, STD};

/// The Minkowski norm used by [`prepare`] when colour constancy is on.
pub const SHADES_OF_GRAY_P: f32 = 6.0;

/// How a decoded image becomes network input: one type, carried whole by the training recipe,
/// the image caches and the model file's input spec, so the device repeats what training did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct PreprocessConfig {
    /// Side of the square network input, in pixels.
    pub size: u32,
    /// Apply Shades-of-Gray colour constancy (p = 6) before resizing.
    pub color_constancy: bool,
}

impl Default for PreprocessConfig {
    /// The one default: 224 px (EfficientNet-Lite0's native input), no colour constancy.
    fn default() -> Self {
        Self {
            size: 224,
            color_constancy: false,
        }
    }
}

/// Colour constancy (if configured), then the whole-frame resize: the u8 S×S image that the
/// training cache stores.
pub fn prepare(mut img: RgbImage, cfg: &PreprocessConfig) -> RgbImage {
    if cfg.color_constancy {
        shades_of_gray(&mut img, SHADES_OF_GRAY_P);
    }
    resize_square(&img, cfg.size)
}

/// [`prepare`] then [`to_tensor`]: the `[1,3,S,S]` network input for a decoded image.
pub fn preprocess_image(img: RgbImage, cfg: &PreprocessConfig) -> Tensor {
    to_tensor(&prepare(img, cfg))
}

/// Decodes a file and turns it into network input.
pub fn preprocess_file(path: &Path, cfg: &PreprocessConfig) -> Result<Tensor, PreprocessError> {
    Ok(preprocess_image(decode_file(path)?, cfg))
}
