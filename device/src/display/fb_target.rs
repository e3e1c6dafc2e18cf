//! A `DrawTarget` over framebuffer memory in the layout the kernel reports: 16 or 32 bits per
//! pixel, channel offsets and lengths from `fb_var_screeninfo`, rows `line_length` bytes apart
//! (which may exceed `width × bytes per pixel`). Works on any byte slice, so it is tested without
//! a framebuffer device.

use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use std::convert::Infallible;

/// One colour channel's place in a pixel word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub offset: u32,
    pub length: u32,
}

/// How pixels sit in framebuffer memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelLayout {
    pub width: u32,
    pub height: u32,
    pub bits_per_pixel: u32,
    /// Bytes from one row to the next.
    pub line_length: u32,
    pub red: Channel,
    pub green: Channel,
    pub blue: Channel,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("framebuffer has {0} bits per pixel; dermo-scope drives 16 and 32")]
    UnsupportedDepth(u32),
    #[error("framebuffer memory is {have} bytes, its layout needs {need}")]
    TooSmall { have: usize, need: usize },
}

impl PixelLayout {
    /// RGB565, the common 16-bit layout.
    pub fn rgb565(width: u32, height: u32, line_length: u32) -> PixelLayout {
        PixelLayout {
            width,
            height,
            bits_per_pixel: 16,
            line_length,
            red: Channel {
                offset: 11,
                length: 5,
            },
            green: Channel {
                offset: 5,
                length: 6,
            },
            blue: Channel {
                offset: 0,
                length: 5,
            },
        }
    }

    /// XRGB8888, the common 32-bit layout.
    pub fn xrgb8888(width: u32, height: u32, line_length: u32) -> PixelLayout {
        PixelLayout {
            width,
            height,
            bits_per_pixel: 32,
            line_length,
            red: Channel {
                offset: 16,
                length: 8,
            },
            green: Channel {
                offset: 8,
                length: 8,
            },
            blue: Channel {
                offset: 0,
                length: 8,
            },
        }
    }

    fn bytes_per_pixel(&self) -> usize {
        self.bits_per_pixel as usize / 8
    }

    /// The bytes the layout addresses.
    pub fn needed_bytes(&self) -> usize {
        if self.height == 0 {
            return 0;
        }
        self.line_length as usize * (self.height as usize - 1)
            + self.width as usize * self.bytes_per_pixel()
    }

    fn encode(&self, c: Rgb565) -> u32 {
        let c = Rgb888::from(c);
        let put = |v: u8, ch: Channel| ((v as u32) >> (8 - ch.length.min(8))) << ch.offset;
        put(c.r(), self.red) | put(c.g(), self.green) | put(c.b(), self.blue)
    }
}

pub struct FbTarget<'a> {
    layout: PixelLayout,
    memory: &'a mut [u8],
}

impl<'a> FbTarget<'a> {
    pub fn new(layout: PixelLayout, memory: &'a mut [u8]) -> Result<Self, LayoutError> {
        if !matches!(layout.bits_per_pixel, 16 | 32) {
            return Err(LayoutError::UnsupportedDepth(layout.bits_per_pixel));
        }
        if memory.len() < layout.needed_bytes() {
            return Err(LayoutError::TooSmall {
                have: memory.len(),
                need: layout.needed_bytes(),
            });
        }
        Ok(FbTarget { layout, memory })
    }
}

impl OriginDimensions for FbTarget<'_> {
    fn size(&self) -> Size {
        Size::new(self.layout.width, self.layout.height)
    }
}

impl DrawTarget for FbTarget<'_> {
    type Color = Rgb565;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb565>>,
    {
        let l = self.layout;
        let bpp = l.bytes_per_pixel();
        for Pixel(p, c) in pixels {
            if p.x < 0 || p.y < 0 || p.x as u32 >= l.width || p.y as u32 >= l.height {
                continue;
            }
            let at = p.y as usize * l.line_length as usize + p.x as usize * bpp;
            let word = l.encode(c);
            // Framebuffers are little-endian on every board dermo-scope targets.
            self.memory[at..at + bpp].copy_from_slice(&word.to_le_bytes()[..bpp]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};

    #[test]
    fn sixteen_bit_honours_line_length() {
        // 3x2 pixels, 8 bytes per line (2 bytes of padding).
        let mut mem = vec![0xAAu8; 16];
        let layout = PixelLayout::rgb565(3, 2, 8);
        let mut fb = FbTarget::new(layout, &mut mem).unwrap();
        fb.clear(Rgb565::RED).unwrap();
        fb.draw_iter([Pixel(Point::new(2, 1), Rgb565::BLUE)])
            .unwrap();
        assert_eq!(&mem[0..2], &0xF800u16.to_le_bytes());
        assert_eq!(&mem[6..8], &[0xAA, 0xAA], "padding untouched");
        assert_eq!(&mem[12..14], &0x001Fu16.to_le_bytes());
    }

    #[test]
    fn thirty_two_bit_places_channels() {
        let mut mem = vec![0u8; 4 * 4 * 2];
        let mut fb = FbTarget::new(PixelLayout::xrgb8888(4, 2, 16), &mut mem).unwrap();
        Rectangle::new(Point::new(1, 1), Size::new(1, 1))
            .into_styled(PrimitiveStyle::with_fill(Rgb565::GREEN))
            .draw(&mut fb)
            .unwrap();
        let px = u32::from_le_bytes(mem[20..24].try_into().unwrap());
        assert_eq!(px, 0x0000_FF00);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let mut mem = vec![0u8; 10];
        assert_eq!(
            FbTarget::new(PixelLayout::rgb565(4, 2, 8), &mut mem).err(),
            Some(LayoutError::TooSmall { have: 10, need: 16 })
        );
        let mut l = PixelLayout::rgb565(1, 1, 2);
        l.bits_per_pixel = 24;
        assert_eq!(
            FbTarget::new(l, &mut mem).err(),
            Some(LayoutError::UnsupportedDepth(24))
        );
    }
}
