//! The quality gate on real HAM10000 frames and on degraded copies of them.

use crate::common;

use dermo_device::{QualityGate, QualityIssue};
use image::{imageops, Rgb, RgbImage};

fn images(n: usize) -> Vec<RgbImage> {
    common::shared_images(n, 10015 / n)
        .iter()
        .map(|p| dermo_model::preprocess::decode_file(p).unwrap())
        .collect()
}

#[test]
fn real_dermoscopy_frames_pass() {
    let gate = QualityGate::default();
    let imgs = images(400);
    let failed: Vec<_> = imgs
        .iter()
        .map(|i| gate.check(i))
        .filter(|r| !r.passed())
        .collect();
    // The gate must not cost the model its test set: at most 1% refused.
    assert!(
        failed.len() * 100 <= imgs.len(),
        "{} of {} refused: {failed:?}",
        failed.len(),
        imgs.len()
    );
}

fn scaled(img: &RgbImage, factor: f32, offset: f32) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in 0..3 {
            p[c] = (p[c] as f32 * factor + offset).clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[test]
fn degraded_frames_get_the_matching_hint() {
    let gate = QualityGate::default();
    let imgs = images(40);
    let first = |img: &RgbImage| gate.check(img).issues.first().copied();
    for img in &imgs {
        assert_eq!(first(&imgs::blur(img)), Some(QualityIssue::Blurred));
        assert_eq!(first(&scaled(img, 0.2, 0.0)), Some(QualityIssue::TooDark));
        assert_eq!(first(&scaled(img, 3.0, 0.0)), Some(QualityIssue::TooBright));
    }
    // Plain skin with sensor noise and no lesion.
    let mut skin = RgbImage::from_pixel(200, 150, Rgb([205, 160, 140]));
    for (i, p) in skin.pixels_mut().enumerate() {
        let n = ((i * 2_654_435_761) % 7) as u8;
        p.0 = [p[0] - n, p[1] - n, p[2] - n];
    }
    assert_eq!(first(&skin), Some(QualityIssue::NoLesion));
    assert_eq!(QualityIssue::NoLesion.hint(), "Centre the lesion");
    assert_eq!(QualityIssue::Blurred.hint(), "Hold still");
}

mod imgs {
    use super::*;
    /// Motion/defocus blur strong enough that a clinician would retake the frame.
    pub fn blur(img: &RgbImage) -> RgbImage {
        imageops::blur(img, 4.0)
    }
}
