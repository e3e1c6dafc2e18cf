use image::RgbImage;

/// Subtracted from every 8-bit sample before dividing by [`STD`].
pub const MEAN: f32 = 127.0;
/// Divisor of the normalization `(x − MEAN) / STD`, mapping 0..=255 to about −1..=1.
pub const STD: f32 = 128.0;

/// The per-channel normalization `(x − mean) / std` on 0–255 RGB samples. The contract's is
/// [`MEAN`] and [`STD`] on every channel ([`Normalization::default`]); a model file carries its own
/// (`dermo.input`), which the device applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization {
            mean: [MEAN; 3],
            std: [STD; 3],
        }
    }
}

/// A dense f32 tensor in NCHW order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

/// Writes one image, normalized with the contract's [`MEAN`] and [`STD`], as CHW planes into
/// `out` (for filling one slot of a batch).
///
/// # Panics
/// If `out.len()` is not `3 × width × height` — a caller's bug, not bad input.
pub fn normalize_into(img: &RgbImage, out: &mut [f32]) {
    normalize_with(img, out, &Normalization::default())
}

fn normalize_with(img: &RgbImage, out: &mut [f32], norm: &Normalization) {
    let plane = img.width() as usize * img.height() as usize;
    assert_eq!(
        out.len(),
        3 * plane,
        "normalize_into: a {}×{} image needs a slice of {} floats",
        img.width(),
        img.height(),
        3 * plane
    );
    let table = |c: usize| -> [f32; 256] {
        std::array::from_fn(|v| (v as f32 - norm.mean[c]) / norm.std[c])
    };
    let (tr, tg, tb) = (table(0), table(1), table(2));
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, pixel) in img.as_raw().chunks_exact(3).enumerate() {
        r[i] = tr[usize::from(pixel[0])];
        g[i] = tg[usize::from(pixel[1])];
        b[i] = tb[usize::from(pixel[2])];
    }
}

/// The image normalized with the contract's [`MEAN`] and [`STD`], as a `[1, 3, H, W]` tensor.
pub fn to_tensor(img: &RgbImage) -> Tensor {
    to_tensor_with(img, &Normalization::default())
}

/// The image normalized with `norm`, as a `[1, 3, H, W]` tensor.
pub fn to_tensor_with(img: &RgbImage, norm: &Normalization) -> Tensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0.0; 3 * w * h];
    normalize_with(img, &mut data, norm);
    Tensor {
        shape: [1, 3, h, w],
        data,
    }
}
