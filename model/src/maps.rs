//! Where the model looked: class-activation maps, read from a model file's `class_maps` output.
//!
//! EfficientNet-Lite0 ends in global average pooling and one dense layer, and the two commute:
//! applying the dense layer at every cell of the last feature map gives, per class, a grid of
//! logits whose mean is the class's logit (CAM, Zhou et al. 2016). The ONNX writer emits that as
//! a 1×1 convolution (`onnx::CLASS_MAPS`), so the device needs no gradients. The grid is
//! `side × side` over the whole network input (6×6 at 192 px, 7×7 at 224), row-major, top row
//! first: cell `(r, c)` covers the input square `[r, r+1) × [c, c+1)` in units of `input / side`,
//! which is also that fraction of the frame the input was resized from.
//!
//! One definition, used by the device (screen overlay, journal, `--once`) and by the host
//! (parity with libtorch, `dermo eval --maps`, the pointing game).

use crate::runtime::Output;
use crate::taxonomy::{Class, CLASSES, NUM_CLASSES};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// The maps one capture keeps: the top class's and the malignant group's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionMaps {
    /// Cells per side of the grid.
    pub side: usize,
    /// The class whose map `top` is (the most probable one).
    pub top_class: Class,
    /// `side²` logits of `top_class`, row-major.
    pub top: Vec<f32>,
    /// `side²` malignant-group log-odds (see [`malignant_map`]), row-major.
    pub malignant: Vec<f32>,
}

impl AttentionMaps {
    /// The maps of image `i` of a batch, for its most probable class (by logit, which the
    /// calibration temperature does not reorder). `None` when the file has no `class_maps`.
    pub fn of(out: &Output, i: usize) -> Option<AttentionMaps> {
        let maps = out.class_maps.as_ref()?;
        let logits = out.logits_of(i);
        let top = (0..NUM_CLASSES).max_by(|&a, &b| logits[a].total_cmp(&logits[b]))?;
        let per_class: Vec<&[f32]> = (0..NUM_CLASSES)
            .map(|k| maps.of(i, k))
            .collect::<Option<_>>()?;
        Some(AttentionMaps {
            side: maps.side,
            top_class: CLASSES[top],
            top: per_class[top].to_vec(),
            malignant: malignant_map(&per_class),
        })
    }
}

/// At each cell, the log-odds of the malignant classes against the rest: log-sum-exp of the
/// malignant classes' logits there, less that of the benign ones. Positive where that cell alone
/// would lean malignant. `per_class` holds one map per class, in logit order.
pub fn malignant_map(per_class: &[&[f32]]) -> Vec<f32> {
    let cells = per_class.first().map_or(0, |m| m.len());
    let lse = |cell: usize, malignant: bool| {
        let v: Vec<f32> = CLASSES
            .iter()
            .zip(per_class)
            .filter(|(c, _)| c.is_malignant() == malignant)
            .map(|(_, m)| m[cell])
            .collect();
        let top = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        top + v.iter().map(|x| (x - top).exp()).sum::<f32>().ln()
    };
    (0..cells)
        .map(|cell| lse(cell, true) - lse(cell, false))
        .collect()
}

/// `(row, column)` of the largest value of a `side × side` row-major grid (the first on ties).
pub fn peak(grid: &[f32], side: usize) -> (usize, usize) {
    let best = (0..grid.len()).fold(0, |b, i| if grid[i] > grid[b] { i } else { b });
    (best / side.max(1), best % side.max(1))
}

/// `grid` scaled so its minimum is 0 and its maximum 1 (all zeros when it is flat).
pub fn normalized(grid: &[f32]) -> Vec<f32> {
    let lo = grid.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = grid.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = hi - lo;
    grid.iter()
        .map(|v| if span > 0.0 { (v - lo) / span } else { 0.0 })
        .collect()
}

/// The value of a `side × side` grid at the point `(x, y)` of a `width × height` picture the
/// grid covers, interpolated bilinearly between cell centres (clamped at the borders): what an
/// overlay draws at each pixel.
pub fn sample(grid: &[f32], side: usize, width: u32, height: u32, x: u32, y: u32) -> f32 {
    let at = |p: u32, extent: u32| {
        let f = (p as f32 + 0.5) / extent as f32 * side as f32 - 0.5;
        let f = f.clamp(0.0, (side - 1) as f32);
        let i = (f.floor() as usize).min(side.saturating_sub(2));
        (i, f - i as f32)
    };
    if side == 1 {
        return grid[0];
    }
    let ((c, fx), (r, fy)) = (at(x, width), at(y, height));
    let g = |r: usize, c: usize| grid[r * side + c];
    let top = g(r, c) * (1.0 - fx) + g(r, c + 1) * fx;
    let bottom = g(r + 1, c) * (1.0 - fx) + g(r + 1, c + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// `img` with `grid` (any values; scaled to its own range) blended over it as a heat colour:
/// transparent where the map is lowest, up to `opacity` (0–1) where it is highest, so the skin
/// stays visible under weak cells. What the result screen and the host's map pages show.
pub fn overlay(img: &RgbImage, grid: &[f32], side: usize, opacity: f32) -> RgbImage {
    let g = normalized(grid);
    let (w, h) = img.dimensions();
    let mut out = img.clone();
    for (x, y, p) in out.enumerate_pixels_mut() {
        let v = sample(&g, side, w, h, x, y);
        let a = opacity.clamp(0.0, 1.0) * v;
        let c = heat(v);
        for k in 0..3 {
            p[k] = (f32::from(p[k]) * (1.0 - a) + f32::from(c[k]) * a).round() as u8;
        }
    }
    out
}

/// A heat colour for `v` in `[0, 1]`: dark blue → cyan → yellow → red.
pub fn heat(v: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 4] = [
        [0.0, 0.0, 140.0],
        [0.0, 200.0, 230.0],
        [255.0, 230.0, 0.0],
        [230.0, 20.0, 0.0],
    ];
    let f = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (f.floor() as usize).min(STOPS.len() - 2);
    let t = f - i as f32;
    [0, 1, 2].map(|k| (STOPS[i][k] * (1.0 - t) + STOPS[i + 1][k] * t).round() as u8)
}

/// Whether the grid's peak cell falls on the lesion: the mask (any size, non-zero = lesion,
/// covering the same picture as the grid) has a lesion pixel at the centre of the peak cell. The
/// pointing game's hit.
pub fn peak_in_mask(grid: &[f32], side: usize, mask: &image::GrayImage) -> bool {
    let (r, c) = peak(grid, side);
    let (w, h) = mask.dimensions();
    let x = ((c as f32 + 0.5) / side as f32 * w as f32) as u32;
    let y = ((r as f32 + 0.5) / side as f32 * h as f32) as u32;
    mask.get_pixel(x.min(w - 1), y.min(h - 1))[0] > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_and_normalized_on_a_known_grid() {
        let g = [0.0, 1.0, 5.0, 2.0];
        assert_eq!(peak(&g, 2), (1, 0));
        assert_eq!(normalized(&g), vec![0.0, 0.2, 1.0, 0.4]);
        assert_eq!(normalized(&[3.0; 4]), vec![0.0; 4]);
    }

    #[test]
    fn sample_hits_cell_centres_and_interpolates_between() {
        // 2×2 grid over a 4×4 picture: cell centres at pixels 1 and 3 (centre 1.5 → between).
        let g = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(sample(&g, 2, 4, 4, 0, 0), 0.0);
        assert_eq!(sample(&g, 2, 4, 4, 3, 3), 3.0);
        let mid = sample(&g, 2, 4, 4, 1, 1);
        assert!((mid - 0.75).abs() < 1e-6, "{mid}");
    }

    #[test]
    fn malignant_map_is_the_group_log_odds() {
        // One cell; logits where only melanoma is high: the cell leans malignant.
        let logits: Vec<f32> = CLASSES
            .iter()
            .map(|c| if *c == Class::Mel { 3.0 } else { 0.0 })
            .collect();
        let per_class: Vec<Vec<f32>> = logits.iter().map(|&l| vec![l]).collect();
        let refs: Vec<&[f32]> = per_class.iter().map(|v| v.as_slice()).collect();
        let m = malignant_map(&refs)[0];
        let malignant = CLASSES.iter().filter(|c| c.is_malignant()).count() as f32;
        let benign = NUM_CLASSES as f32 - malignant;
        let expected = (3f32.exp() + malignant - 1.0).ln() - benign.ln();
        assert!((m - expected).abs() < 1e-5, "{m} vs {expected}");
    }

    #[test]
    fn overlay_colours_the_peak_and_leaves_the_lowest_cell_alone() {
        let img = RgbImage::from_pixel(40, 40, image::Rgb([100, 100, 100]));
        let g = [0.0, 0.0, 0.0, 1.0];
        let o = overlay(&img, &g, 2, 0.6);
        assert_eq!(o.get_pixel(0, 0).0, [100, 100, 100]);
        let hot = o.get_pixel(39, 39).0;
        assert!(hot[0] > 150 && hot[2] < 60, "{hot:?}");
        assert_eq!(heat(0.0), [0, 0, 140]);
        assert_eq!(heat(1.0), [230, 20, 0]);
    }

    #[test]
    fn peak_in_mask_reads_the_peak_cells_centre() {
        let mut mask = image::GrayImage::new(60, 60);
        for y in 40..60 {
            for x in 0..20 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        // 3×3 grid, peak at row 2, column 0: its centre (10, 50) is inside.
        let mut g = vec![0.0; 9];
        g[6] = 1.0;
        assert!(peak_in_mask(&g, 3, &mask));
        g[6] = 0.0;
        g[4] = 1.0;
        assert!(!peak_in_mask(&g, 3, &mask));
    }
}
