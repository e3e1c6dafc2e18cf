//! Image quality: is this image worth classifying? One set of measures and one set of thresholds
//! for both halves — the device's gate (a failing frame gets a hint the clinician can act on,
//! "hold still", "too dark", "centre the lesion", instead of a prediction) and the host's
//! `dermo data check` (the same issues in a dataset), so "too dark" is the same number on both.
//!
//! All measures run on the luminance of a copy scaled to [`WORK_WIDTH`] pixels wide, so the
//! thresholds mean the same for a 200×150 file and a 1280×960 camera frame. The defaults were
//! set on the HAM10000 images (docs/device.md, "Quality gate"): they pass all but a fraction of a
//! percent of real dermoscopy frames.

use image::imageops::{self, FilterType};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Width of the luminance copy the measures run on.
pub const WORK_WIDTH: u32 = 160;
/// A pixel at or below this luma counts as clipped dark.
pub const CLIPPED_DARK_LUMA: f32 = 8.0;
/// A pixel at or above this luma counts as clipped bright.
pub const CLIPPED_BRIGHT_LUMA: f32 = 250.0;

/// Thresholds of the gate; `[quality]` in the device's config file, flags of `dermo data check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityGate {
    /// Below this variance of the Laplacian the frame is blurred (motion or focus).
    pub min_sharpness: f32,
    /// Above this variance of the Laplacian the frame is mostly sensor noise.
    pub max_sharpness: f32,
    /// Mean luminance (0–255) below which the frame is too dark.
    pub min_brightness: f32,
    /// Mean luminance above which the frame is too bright.
    pub max_brightness: f32,
    /// Largest fraction of clipped pixels ([`CLIPPED_DARK_LUMA`], [`CLIPPED_BRIGHT_LUMA`]) before
    /// the exposure is refused.
    pub max_clipped: f32,
    /// A lesion is "in view" when the centre's luminance spread reaches this (std, 0–255)…
    pub min_centre_detail: f32,
    /// …or the centre differs from the border by at least this much (mean luma).
    pub min_centre_contrast: f32,
}

impl Default for QualityGate {
    fn default() -> Self {
        QualityGate {
            min_sharpness: 4.0,
            max_sharpness: 6000.0,
            min_brightness: 50.0,
            max_brightness: 235.0,
            max_clipped: 0.4,
            min_centre_detail: 6.0,
            min_centre_contrast: 12.0,
        }
    }
}

/// What is wrong with a frame, most actionable first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityIssue {
    TooDark,
    TooBright,
    Blurred,
    Noisy,
    NoLesion,
}

impl QualityIssue {
    /// Every issue, in the order the gate reports them.
    pub const ALL: [QualityIssue; 5] = [
        QualityIssue::TooDark,
        QualityIssue::TooBright,
        QualityIssue::Blurred,
        QualityIssue::Noisy,
        QualityIssue::NoLesion,
    ];

    /// The issue's name in files (journal, `check.csv`): its serde name.
    pub fn code(self) -> &'static str {
        match self {
            QualityIssue::TooDark => "too_dark",
            QualityIssue::TooBright => "too_bright",
            QualityIssue::Blurred => "blurred",
            QualityIssue::Noisy => "noisy",
            QualityIssue::NoLesion => "no_lesion",
        }
    }

    /// The hint shown on the screen.
    pub fn hint(self) -> &'static str {
        match self {
            QualityIssue::TooDark => "Too dark",
            QualityIssue::TooBright => "Too bright",
            QualityIssue::Blurred => "Hold still",
            QualityIssue::Noisy => "Too noisy - check light",
            QualityIssue::NoLesion => "Centre the lesion",
        }
    }
}

/// The measures of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QualityMeasures {
    pub brightness: f32,
    pub clipped_dark: f32,
    pub clipped_bright: f32,
    pub sharpness: f32,
    pub centre_detail: f32,
    pub centre_contrast: f32,
}

/// The gate's verdict: the measures and every issue found (empty when the frame passes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    pub measures: QualityMeasures,
    pub issues: Vec<QualityIssue>,
}

impl QualityReport {
    pub fn passed(&self) -> bool {
        self.issues.is_empty()
    }
    /// The hint for the most actionable issue, if any.
    pub fn hint(&self) -> Option<&'static str> {
        self.issues.first().map(|i| i.hint())
    }
}

impl QualityGate {
    pub fn check(&self, img: &RgbImage) -> QualityReport {
        let m = measure(img);
        let mut issues = Vec::new();
        // Exposure first: a dark frame also looks blurred and lesion-free.
        if m.brightness < self.min_brightness || m.clipped_dark > self.max_clipped {
            issues.push(QualityIssue::TooDark);
        }
        if m.brightness > self.max_brightness || m.clipped_bright > self.max_clipped {
            issues.push(QualityIssue::TooBright);
        }
        if m.sharpness < self.min_sharpness {
            issues.push(QualityIssue::Blurred);
        }
        if m.sharpness > self.max_sharpness {
            issues.push(QualityIssue::Noisy);
        }
        if m.centre_detail < self.min_centre_detail && m.centre_contrast < self.min_centre_contrast
        {
            issues.push(QualityIssue::NoLesion);
        }
        QualityReport {
            measures: m,
            issues,
        }
    }
}

/// Computes the measures on a [`WORK_WIDTH`]-wide luminance copy.
pub fn measure(img: &RgbImage) -> QualityMeasures {
    let luma = work_luma(img);
    let (w, h) = luma.dims;
    let y = &luma.values;
    let n = y.len().max(1) as f32;
    let brightness = y.iter().sum::<f32>() / n;
    let clipped_dark = y.iter().filter(|&&v| v <= CLIPPED_DARK_LUMA).count() as f32 / n;
    let clipped_bright = y.iter().filter(|&&v| v >= CLIPPED_BRIGHT_LUMA).count() as f32 / n;

    // Variance of the 4-neighbour Laplacian: low when edges are smeared.
    let mut lap = Vec::with_capacity(w.saturating_sub(2) * h.saturating_sub(2));
    for r in 1..h.saturating_sub(1) {
        for c in 1..w.saturating_sub(1) {
            let i = r * w + c;
            lap.push(y[i - 1] + y[i + 1] + y[i - w] + y[i + w] - 4.0 * y[i]);
        }
    }
    let sharpness = variance(&lap);

    // Centre disc vs outer border, radii relative to the shorter side.
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let short = w.min(h).max(1) as f32;
    let (mut centre, mut border) = (Vec::new(), Vec::new());
    for r in 0..h {
        for c in 0..w {
            let d = ((c as f32 - cx).powi(2) + (r as f32 - cy).powi(2)).sqrt() / short;
            if d < 0.25 {
                centre.push(y[r * w + c]);
            } else if d > 0.45 {
                border.push(y[r * w + c]);
            }
        }
    }
    let centre_detail = variance(&centre).sqrt();
    let centre_contrast = if border.is_empty() {
        0.0
    } else {
        (mean(&border) - mean(&centre)).abs()
    };
    QualityMeasures {
        brightness,
        clipped_dark,
        clipped_bright,
        sharpness,
        centre_detail,
        centre_contrast,
    }
}

struct Luma {
    dims: (usize, usize),
    values: Vec<f32>,
}

fn work_luma(img: &RgbImage) -> Luma {
    let (w, h) = img.dimensions();
    let small;
    let src = if w > WORK_WIDTH {
        let nh = ((h as f32 * WORK_WIDTH as f32 / w as f32).round() as u32).max(1);
        small = imageops::resize(img, WORK_WIDTH, nh, FilterType::Triangle);
        &small
    } else {
        img
    };
    let values = src
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    Luma {
        dims: (src.width() as usize, src.height() as usize),
        values,
    }
}

fn mean(v: &[f32]) -> f32 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f32>() / v.len() as f32
    }
}

fn variance(v: &[f32]) -> f32 {
    let m = mean(v);
    mean(&v.iter().map(|x| (x - m) * (x - m)).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn issues(img: &RgbImage) -> Vec<QualityIssue> {
        QualityGate::default().check(img).issues
    }

    #[test]
    fn blank_frames_have_no_lesion_and_extremes_are_exposure_problems() {
        let grey = RgbImage::from_pixel(200, 150, Rgb([128, 128, 128]));
        assert!(issues(&grey).contains(&QualityIssue::NoLesion));
        assert_eq!(
            issues(&RgbImage::from_pixel(200, 150, Rgb([5, 5, 5])))[0],
            QualityIssue::TooDark
        );
        assert_eq!(
            issues(&RgbImage::from_pixel(200, 150, Rgb([252, 252, 252])))[0],
            QualityIssue::TooBright
        );
    }

    #[test]
    fn sharpness_is_zero_on_flat_and_high_on_edges() {
        let flat = RgbImage::from_pixel(64, 48, Rgb([120, 90, 80]));
        assert_eq!(measure(&flat).sharpness, 0.0);
        let stripes = RgbImage::from_fn(64, 48, |x, _| {
            if x % 2 == 0 {
                Rgb([20, 20, 20])
            } else {
                Rgb([230, 230, 230])
            }
        });
        assert!(measure(&stripes).sharpness > 1e4);
    }

    #[test]
    fn codes_are_the_serde_names() {
        for issue in QualityIssue::ALL {
            assert_eq!(
                serde_json::to_value(issue).unwrap(),
                serde_json::Value::String(issue.code().into())
            );
        }
    }
}
