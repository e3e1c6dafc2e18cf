//! Hand-crafted lesion features in the spirit of the dermatologists' ABCD rule: Asymmetry and
//! Border irregularity from the lesion mask, Colour statistics and variegation, and a texture
//! descriptor (uniform local binary patterns), computed on the image as captured.

use anyhow::Context;
use dermo_model::preprocess::{decode_file, decode_mask_file};
use image::{imageops, GrayImage, Luma, RgbImage};
use std::path::Path;

/// Names of the features, in the order of [`lesion_features`].
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "area_fraction",
    "asymmetry_major",
    "asymmetry_minor",
    "compactness",
    "radial_irregularity",
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "contrast_r",
    "contrast_g",
    "contrast_b",
    "colour_count",
    "colour_entropy",
    "lbp_0",
    "lbp_1",
    "lbp_2",
    "lbp_3",
    "lbp_4",
    "lbp_5",
    "lbp_6",
    "lbp_7",
    "lbp_8",
    "lbp_nonuniform",
];
pub const FEATURES: usize = 26;

/// Reference dermoscopic colours of the ABCD rule (white, red, light brown, dark brown,
/// blue-grey, black) in RGB.
const ABCD_COLOURS: [[f64; 3]; 6] = [
    [235.0, 235.0, 235.0],
    [200.0, 60.0, 60.0],
    [190.0, 130.0, 90.0],
    [110.0, 60.0, 40.0],
    [100.0, 120.0, 150.0],
    [30.0, 25.0, 25.0],
];

/// The features of one image; `mask` is its lesion segmentation (≥ 128 = lesion) or `None`,
/// in which case the darker Otsu class is taken as the lesion.
pub fn lesion_features(image: &Path, mask: Option<&Path>) -> anyhow::Result<[f64; FEATURES]> {
    let img =
        decode_file(image).with_context(|| format!("cannot read image {}", image.display()))?;
    let lesion = match mask {
        Some(m) => {
            let mask =
                decode_mask_file(m).with_context(|| format!("cannot read mask {}", m.display()))?;
            if mask.dimensions() == img.dimensions() {
                mask
            } else {
                imageops::resize(
                    &mask,
                    img.width(),
                    img.height(),
                    imageops::FilterType::Nearest,
                )
            }
        }
        None => otsu_lesion(&img),
    };
    Ok(features_of(&img, &lesion))
}

/// [`lesion_features`] on decoded pixels.
pub fn features_of(img: &RgbImage, mask: &GrayImage) -> [f64; FEATURES] {
    let (w, h) = img.dimensions();
    let inside = |x: u32, y: u32| mask.get_pixel(x, y)[0] >= 128;
    let mut lesion: Vec<(u32, u32)> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| inside(x, y))
        .collect();
    // A missing or empty segmentation: fall back to the whole frame rather than fail.
    let whole_frame = lesion.len() < 16;
    if whole_frame {
        lesion = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).collect();
    }
    let is_lesion = |x: i64, y: i64| -> bool {
        if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
            return false;
        }
        whole_frame || mask.get_pixel(x as u32, y as u32)[0] >= 128
    };
    let mut f = [0.0; FEATURES];
    let area = lesion.len() as f64;
    f[0] = area / f64::from(w * h);

    // Asymmetry: reflect the lesion about its principal axes through the centroid.
    let (cx, cy) = mean_point(&lesion);
    let (mut mu20, mut mu02, mut mu11) = (0.0, 0.0, 0.0);
    for &(x, y) in &lesion {
        let (dx, dy) = (f64::from(x) - cx, f64::from(y) - cy);
        mu20 += dx * dx;
        mu02 += dy * dy;
        mu11 += dx * dy;
    }
    let theta = 0.5 * (2.0 * mu11).atan2(mu20 - mu02);
    for (k, angle) in [theta, theta + std::f64::consts::FRAC_PI_2]
        .into_iter()
        .enumerate()
    {
        let (ux, uy) = (angle.cos(), angle.sin());
        let unmatched = lesion
            .iter()
            .filter(|&&(x, y)| {
                let (dx, dy) = (f64::from(x) - cx, f64::from(y) - cy);
                let along = dx * ux + dy * uy;
                let (rx, ry) = (2.0 * along * ux - dx, 2.0 * along * uy - dy);
                !is_lesion((cx + rx).round() as i64, (cy + ry).round() as i64)
            })
            .count();
        f[1 + k] = unmatched as f64 / area;
    }

    // Border: compactness P²/(4πA) and the spread of the boundary's distance to the centroid.
    let boundary: Vec<(u32, u32)> = lesion
        .iter()
        .copied()
        .filter(|&(x, y)| {
            let (x, y) = (i64::from(x), i64::from(y));
            !(is_lesion(x - 1, y)
                && is_lesion(x + 1, y)
                && is_lesion(x, y - 1)
                && is_lesion(x, y + 1))
        })
        .collect();
    let perimeter = boundary.len().max(1) as f64;
    f[3] = perimeter * perimeter / (4.0 * std::f64::consts::PI * area);
    let radii: Vec<f64> = boundary
        .iter()
        .map(|&(x, y)| (f64::from(x) - cx).hypot(f64::from(y) - cy))
        .collect();
    let (r_mean, r_std) = mean_std(&radii);
    f[4] = if r_mean > 0.0 { r_std / r_mean } else { 0.0 };

    // Colour: statistics inside, contrast to the surrounding skin, variegation.
    let pixel = |(x, y): (u32, u32)| img.get_pixel(x, y).0.map(f64::from);
    for c in 0..3 {
        let values: Vec<f64> = lesion.iter().map(|&p| pixel(p)[c] / 255.0).collect();
        let (m, s) = mean_std(&values);
        f[5 + c] = m;
        f[8 + c] = s;
    }
    if !whole_frame {
        let skin: Vec<[f64; 3]> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| !is_lesion(i64::from(x), i64::from(y)))
            .map(pixel)
            .collect();
        if !skin.is_empty() {
            for c in 0..3 {
                let skin_mean = skin.iter().map(|p| p[c] / 255.0).sum::<f64>() / skin.len() as f64;
                f[11 + c] = skin_mean - f[5 + c];
            }
        }
    }
    let mut nearest = [0usize; ABCD_COLOURS.len()];
    let mut histogram = [0usize; 64];
    for &p in &lesion {
        let rgb = pixel(p);
        let k = (0..ABCD_COLOURS.len())
            .min_by(|&a, &b| {
                distance(&rgb, &ABCD_COLOURS[a]).total_cmp(&distance(&rgb, &ABCD_COLOURS[b]))
            })
            .unwrap_or(0);
        nearest[k] += 1;
        let bin = |v: f64| ((v / 64.0) as usize).min(3);
        histogram[bin(rgb[0]) * 16 + bin(rgb[1]) * 4 + bin(rgb[2])] += 1;
    }
    f[14] = nearest.iter().filter(|&&n| n as f64 >= 0.05 * area).count() as f64;
    f[15] = -histogram
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = n as f64 / area;
            p * p.log2()
        })
        .sum::<f64>()
        / 6.0;

    // Texture: uniform LBP(8, 1) histogram of the grey levels inside the lesion.
    let grey = imageops::grayscale(img);
    let mut lbp = [0usize; 10];
    let offsets = [
        (-1, -1),
        (0, -1),
        (1, -1),
        (1, 0),
        (1, 1),
        (0, 1),
        (-1, 1),
        (-1, 0),
    ];
    for &(x, y) in &lesion {
        if x == 0 || y == 0 || x + 1 >= w || y + 1 >= h {
            continue;
        }
        let centre = grey.get_pixel(x, y)[0];
        let bits: Vec<bool> = offsets
            .iter()
            .map(|&(dx, dy)| {
                grey.get_pixel((i64::from(x) + dx) as u32, (i64::from(y) + dy) as u32)[0] >= centre
            })
            .collect();
        let transitions = (0..8).filter(|&i| bits[i] != bits[(i + 1) % 8]).count();
        let ones = bits.iter().filter(|&&b| b).count();
        lbp[if transitions <= 2 { ones } else { 9 }] += 1;
    }
    let total = lbp.iter().sum::<usize>().max(1) as f64;
    for (k, &n) in lbp.iter().enumerate() {
        f[16 + k] = n as f64 / total;
    }
    f
}

fn mean_point(points: &[(u32, u32)]) -> (f64, f64) {
    let n = points.len().max(1) as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), &(x, y)| {
        (sx + f64::from(x), sy + f64::from(y))
    });
    (sx / n, sy / n)
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn distance(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// The darker class of Otsu's threshold on the grey levels, as a mask.
pub fn otsu_lesion(img: &RgbImage) -> GrayImage {
    let grey = imageops::grayscale(img);
    let mut histogram = [0f64; 256];
    for p in grey.pixels() {
        histogram[usize::from(p[0])] += 1.0;
    }
    let total: f64 = histogram.iter().sum();
    let sum_all: f64 = histogram
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n)
        .sum();
    let (mut weight_below, mut sum_below) = (0.0, 0.0);
    let (mut best, mut threshold) = (0.0, 128u8);
    for (t, &n) in histogram.iter().enumerate() {
        weight_below += n;
        sum_below += t as f64 * n;
        let weight_above = total - weight_below;
        if weight_below == 0.0 || weight_above == 0.0 {
            continue;
        }
        let between = weight_below
            * weight_above
            * (sum_below / weight_below - (sum_all - sum_below) / weight_above).powi(2);
        if between > best {
            best = between;
            threshold = t as u8;
        }
    }
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        Luma([if grey.get_pixel(x, y)[0] <= threshold {
            255
        } else {
            0
        }])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn disc_mask(w: u32, h: u32, r: f64) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            let d = (f64::from(x) - f64::from(w) / 2.0).hypot(f64::from(y) - f64::from(h) / 2.0);
            Luma([if d <= r { 255 } else { 0 }])
        })
    }

    #[test]
    fn a_disc_is_symmetric_and_compact_a_bar_is_not() {
        let img = RgbImage::from_pixel(80, 80, Rgb([120, 80, 60]));
        let disc = features_of(&img, &disc_mask(80, 80, 20.0));
        assert!(disc[1] < 0.05 && disc[2] < 0.05, "{disc:?}");
        assert!(disc[4] < 0.05, "radial irregularity {}", disc[4]);
        // An L shape is asymmetric about its principal axes.
        let l_shape = GrayImage::from_fn(80, 80, |x, y| {
            Luma([
                if (10..30).contains(&x) && (10..70).contains(&y)
                    || (10..70).contains(&x) && (50..70).contains(&y)
                {
                    255
                } else {
                    0
                },
            ])
        });
        let l = features_of(&img, &l_shape);
        assert!(l[1] > 0.2 && l[3] > disc[3], "{l:?}");
        // One colour: one ABCD colour present, uniform texture.
        assert_eq!(disc[14], 1.0);
        assert!((disc[5] - 120.0 / 255.0).abs() < 1e-9);
    }

    #[test]
    fn otsu_picks_the_dark_blob() {
        let img = RgbImage::from_fn(40, 40, |x, y| {
            if (10..20).contains(&x) && (10..20).contains(&y) {
                Rgb([40, 30, 30])
            } else {
                Rgb([220, 180, 170])
            }
        });
        let mask = otsu_lesion(&img);
        assert_eq!(mask.get_pixel(15, 15)[0], 255);
        assert_eq!(mask.get_pixel(2, 2)[0], 0);
    }
}
