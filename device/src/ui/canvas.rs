//! An in-memory screen: every screen is drawn here first, then a display sink presents it in one
//! go (no half-drawn frames on a slow SPI panel, and the same pixels in a PNG as on the glass).

use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use image::RgbImage;
use std::convert::Infallible;

pub struct Canvas {
    size: Size,
    pixels: Vec<Rgb565>,
    outside: usize,
}

impl Canvas {
    pub fn new(size: Size) -> Canvas {
        Canvas {
            size,
            pixels: vec![Rgb565::BLACK; (size.width * size.height) as usize],
            outside: 0,
        }
    }

    /// Row-major pixels, `width × height`.
    pub fn pixels(&self) -> &[Rgb565] {
        &self.pixels
    }

    pub fn pixel(&self, p: Point) -> Option<Rgb565> {
        self.index(p).map(|i| self.pixels[i])
    }

    /// Pixels that screens tried to draw outside the canvas since the last [`Canvas::clear_counts`];
    /// a layout bug when non-zero.
    pub fn drawn_outside(&self) -> usize {
        self.outside
    }

    pub fn clear_counts(&mut self) {
        self.outside = 0;
    }

    pub fn to_rgb_image(&self) -> RgbImage {
        let mut img = RgbImage::new(self.size.width, self.size.height);
        for (dst, c) in img.pixels_mut().zip(&self.pixels) {
            let c = Rgb888::from(*c);
            dst.0 = [c.r(), c.g(), c.b()];
        }
        img
    }

    fn index(&self, p: Point) -> Option<usize> {
        let (w, h) = (self.size.width as i32, self.size.height as i32);
        (p.x >= 0 && p.y >= 0 && p.x < w && p.y < h).then(|| (p.y * w + p.x) as usize)
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        self.size
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb565;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb565>>,
    {
        for Pixel(p, c) in pixels {
            match self.index(p) {
                Some(i) => self.pixels[i] = c,
                None => self.outside += 1,
            }
        }
        Ok(())
    }
}
