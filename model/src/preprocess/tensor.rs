use image::RgbImage;

/// Subtracted from every 8-bit sample before dividing by [`STD`].
pub const MEAN: f32 = 127.0;
/// Divisor of the normalization `(x − MEAN) / STD`, mapping 0..=255 to about −1..=1.
pub const STD: f32 = 128.0;

/// A dense f32 tensor in NCHW order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

/// Writes one image, normalized, as CHW planes into `out` (for filling one slot of a batch).
///
/// # Panics
/// If `out.len()` is not `3 × width × height` — a caller's bug, not bad input.
pub fn normalize_into(img: &RgbImage, out: &mut [f32]) {
    let plane = img.width() as usize * img.height() as usize;
    assert_eq!(
        out.len(),
        3 * plane,
        "normalize_into: a {}×{} image needs a slice of {} floats",
        img.width(),
        img.height(),
        3 * plane
    );
    let table: [f32; 256] = std::array::from_fn(|v| (v as f32 - MEAN) / STD);
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, pixel) in img.as_raw().chunks_exact(3).enumerate() {
        r[i] = table[usize::from(pixel[0])];
        g[i] = table[usize::from(pixel[1])];
        b[i] = table[usize::from(pixel[2])];
    }
}

/// The normalized image as a `[1, 3, H, W]` tensor.
pub fn to_tensor(img: &RgbImage) -> Tensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0.0; 3 * w * h];
    normalize_into(img, &mut data);
    Tensor {
        shape: [1, 3, h, w],
        data,
    }
}
