//! Test-time augmentation: the views of one preprocessed S×S image that the network sees, whose
//! logits are averaged.

use clap::ValueEnum;
use image::imageops::{self, FilterType};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Which views to average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tta {
    /// The image as is.
    #[default]
    None,
    /// The image and its horizontal, vertical and double flips (4 views).
    Flips,
    /// Centre crops of 100%, 87.5% and 75% of the side resized back to S, each also mirrored
    /// (6 views): the multi-scale inputs of Mahbod et al. 2020.
    Multiscale,
}

/// One view of an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    Identity,
    FlipH,
    FlipV,
    FlipHV,
    /// Centre crop keeping this fraction of the side, resized back; mirrored when `mirror`.
    Crop {
        fraction: f32,
        mirror: bool,
    },
}

impl Tta {
    pub fn views(self) -> Vec<View> {
        match self {
            Tta::None => vec![View::Identity],
            Tta::Flips => vec![View::Identity, View::FlipH, View::FlipV, View::FlipHV],
            Tta::Multiscale => [1.0, 0.875, 0.75]
                .into_iter()
                .flat_map(|fraction| [false, true].map(|mirror| View::Crop { fraction, mirror }))
                .collect(),
        }
    }
}

impl View {
    /// The view of a square image, same size as the input.
    pub fn apply(self, img: &RgbImage) -> RgbImage {
        match self {
            View::Identity => img.clone(),
            View::FlipH => imageops::flip_horizontal(img),
            View::FlipV => imageops::flip_vertical(img),
            View::FlipHV => imageops::rotate180(img),
            View::Crop { fraction, mirror } => {
                let (w, h) = img.dimensions();
                let (cw, ch) = (
                    ((w as f32 * fraction).round() as u32).clamp(1, w),
                    ((h as f32 * fraction).round() as u32).clamp(1, h),
                );
                let cropped =
                    imageops::crop_imm(img, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image();
                let resized = if (cw, ch) == (w, h) {
                    cropped
                } else {
                    imageops::resize(&cropped, w, h, FilterType::Triangle)
                };
                if mirror {
                    imageops::flip_horizontal(&resized)
                } else {
                    resized
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_keep_the_size_and_move_pixels_where_expected() {
        let mut img = RgbImage::new(8, 8);
        img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        assert_eq!(View::FlipH.apply(&img).get_pixel(7, 0)[0], 255);
        assert_eq!(View::FlipV.apply(&img).get_pixel(0, 7)[0], 255);
        assert_eq!(View::FlipHV.apply(&img).get_pixel(7, 7)[0], 255);
        for view in Tta::Multiscale.views() {
            assert_eq!(view.apply(&img).dimensions(), (8, 8));
        }
        // A 75% crop of an 8-pixel side drops the corner pixel.
        let crop = View::Crop {
            fraction: 0.75,
            mirror: false,
        }
        .apply(&img);
        assert_eq!(crop.get_pixel(0, 0)[0], 0);
        assert_eq!(Tta::Flips.views().len(), 4);
        assert_eq!(Tta::Multiscale.views().len(), 6);
    }
}
