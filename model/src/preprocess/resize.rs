use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// Resizes the whole frame to `size`×`size`; the aspect ratio is not kept, because the public
/// datasets were squashed the same way.
///
/// Filter: bilinear as a convolution (the kernel widens when shrinking, so downscaling averages
/// every source pixel instead of sampling a few). This is what Pillow's `BILINEAR` does, so
/// Python tooling can reproduce the pixels; sharper kernels (Lanczos) ring around hair and
/// lesion borders and cost twice as much. fast_image_resize runs it with SIMD (AVX2/SSE4.1 on
/// x86, NEON on the Pi).
pub fn resize_square(img: &RgbImage, size: u32) -> RgbImage {
    let mut out = RgbImage::new(size, size);
    if size == 0 || img.width() == 0 || img.height() == 0 {
        return out; // nothing to sample: an empty or black frame, never a panic
    }
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(img, &mut out, &options)
        .expect("RGB8 into RGB8 of non-zero size is always supported");
    out
}
