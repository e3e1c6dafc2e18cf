//! Shades-of-Gray colour constancy (Finlayson & Trezzi 2004), the usual step for dermoscopy
//! images taken under different lights and cameras.

use image::RgbImage;

/// Estimates the illuminant as the Minkowski p-norm mean of each channel and rescales the
/// channels so that this illuminant becomes neutral grey (p = 1: grey world, p = ∞: max-RGB,
/// p = 6: the value usually used for skin-lesion images). `p` below 1 or NaN is taken as 1.
///
/// Computed from a per-channel histogram and lookup tables, so the cost is one pass to count
/// and one to map, whatever `p` is.
pub fn shades_of_gray(img: &mut RgbImage, p: f32) {
    let p = if p.is_nan() || p < 1.0 {
        1.0
    } else {
        f64::from(p)
    };
    let mut histogram = [[0u64; 256]; 3];
    for pixel in img.pixels() {
        for (c, &v) in pixel.0.iter().enumerate() {
            histogram[c][usize::from(v)] += 1;
        }
    }
    let pixels = u64::from(img.width()) * u64::from(img.height());
    if pixels == 0 {
        return;
    }
    let illuminant = histogram.map(|counts| minkowski_mean(&counts, pixels, p));
    let norm = illuminant.iter().map(|e| e * e).sum::<f64>().sqrt();
    if norm == 0.0 {
        return; // all black: no light to correct
    }
    let gains = illuminant.map(|e| {
        if e == 0.0 {
            1.0 // the channel is all zero; any gain leaves it so
        } else {
            norm / (e * 3f64.sqrt())
        }
    });
    let tables = gains.map(|gain| {
        let mut table = [0u8; 256];
        for (v, out) in table.iter_mut().enumerate() {
            *out = (v as f64 * gain).round().clamp(0.0, 255.0) as u8;
        }
        table
    });
    for pixel in img.pixels_mut() {
        for (c, v) in pixel.0.iter_mut().enumerate() {
            *v = tables[c][usize::from(*v)];
        }
    }
}

/// (mean of v^p)^(1/p) over a histogram of 8-bit values, in f64 (255^6 overflows nothing there);
/// p = ∞ is the maximum value present.
fn minkowski_mean(counts: &[u64; 256], pixels: u64, p: f64) -> f64 {
    if p.is_infinite() {
        return counts.iter().rposition(|&n| n > 0).unwrap_or(0) as f64;
    }
    let sum: f64 = counts
        .iter()
        .enumerate()
        .map(|(v, &n)| n as f64 * (v as f64).powf(p))
        .sum();
    (sum / pixels as f64).powf(1.0 / p)
}
