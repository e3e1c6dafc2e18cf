use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

/// Blacks out every pixel outside the lesion (mask value 0). A mask of another size is first
/// scaled to the image with nearest-neighbour, so it stays binary.
pub fn apply_mask(img: &mut RgbImage, mask: &GrayImage) {
    let scaled;
    let mask = if mask.dimensions() == img.dimensions() {
        mask
    } else {
        scaled = imageops::resize(mask, img.width(), img.height(), FilterType::Nearest);
        &scaled
    };
    for (pixel, m) in img.pixels_mut().zip(mask.pixels()) {
        if m.0[0] == 0 {
            pixel.0 = [0, 0, 0];
        }
    }
}
