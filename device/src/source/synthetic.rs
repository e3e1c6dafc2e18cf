//! A synthetic "lesion": a brown, textured ellipse on skin tone that drifts a little from frame
//! to frame. For demos, benchmarks and tests without a camera; it is not a dermoscopy image and
//! a trained model should abstain on it.

use super::{FrameSource, SourceError};
use crate::frame::{Frame, FrameData};
use image::{Rgb, RgbImage};

pub struct SyntheticSource {
    width: u32,
    height: u32,
    remaining: Option<usize>,
    index: u64,
}

impl SyntheticSource {
    /// `count`: frames to deliver before ending; `None` for an endless stream.
    pub fn new(width: u32, height: u32, count: Option<usize>) -> Self {
        SyntheticSource {
            width: width.max(16),
            height: height.max(16),
            remaining: count,
            index: 0,
        }
    }
}

/// The frame number `index` of the pattern, deterministic.
pub fn render(width: u32, height: u32, index: u64) -> RgbImage {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let (w, h) = (width as f32, height as f32);
    let t = index as f32 * 0.35;
    let (cx, cy) = (w * (0.5 + 0.05 * t.sin()), h * (0.5 + 0.05 * t.cos()));
    let (rx, ry) = (w.min(h) * 0.22, w.min(h) * 0.17);
    RgbImage::from_fn(width, height, |x, y| {
        let (dx, dy) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
        let r = (dx * dx + dy * dy).sqrt();
        let noise = rng.next_f32() * 16.0 - 8.0;
        // Vignetting like a dermatoscope's ring light.
        let edge = 1.0 - 0.35 * (((x as f32 / w) - 0.5).powi(2) + ((y as f32 / h) - 0.5).powi(2));
        let skin = [225.0, 180.0, 160.0];
        let lesion = [110.0, 70.0, 50.0];
        // Soft border between lesion and skin.
        let mix = ((r - 0.85) / 0.3).clamp(0.0, 1.0);
        let px = |c: usize| {
            ((lesion[c] * (1.0 - mix) + skin[c] * mix) * edge + noise).clamp(0.0, 255.0) as u8
        };
        Rgb([px(0), px(1), px(2)])
    })
}

/// A tiny deterministic generator; frames must not depend on a crate's RNG stream.
struct XorShift(u64);

impl XorShift {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

impl FrameSource for SyntheticSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if let Some(n) = &mut self.remaining {
            if *n == 0 {
                return Ok(None);
            }
            *n -= 1;
        }
        let img = render(self.width, self.height, self.index);
        let origin = format!("synthetic#{}", self.index);
        self.index += 1;
        Ok(Some(Frame::new(FrameData::Rgb(img), origin)))
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("synthetic {}x{}", self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_deterministic_darker_in_the_centre_and_finite() {
        let mut src = SyntheticSource::new(64, 48, Some(2));
        let a = src.next_frame().unwrap().unwrap();
        assert!(src.next_frame().unwrap().is_some());
        assert!(src.next_frame().unwrap().is_none());
        let FrameData::Rgb(img) = a.data else {
            panic!("synthetic frames are RGB")
        };
        assert_eq!(img, render(64, 48, 0));
        assert!(img.get_pixel(32, 24).0[0] < img.get_pixel(2, 2).0[0]);
    }

    #[test]
    fn synthetic_lesion_passes_the_quality_gate() {
        let img = render(320, 240, 0);
        let r = dermo_model::quality::QualityGate::default().check(&img);
        assert!(r.passed(), "{r:?}");
    }
}
