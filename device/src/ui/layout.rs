//! Where things go on a screen of a given size. Tuned for 240×240 and 320×240 SPI panels and
//! 800×480 DSI/HDMI displays; any other size gets the nearest of these proportions.

use embedded_graphics::mono_font::ascii::{
    FONT_10X20, FONT_6X10, FONT_7X13, FONT_9X15, FONT_9X15_BOLD,
};
use embedded_graphics::mono_font::MonoFont;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

#[derive(Clone, Copy)]
pub struct Fonts {
    pub banner: &'static MonoFont<'static>,
    pub body: &'static MonoFont<'static>,
    pub small: &'static MonoFont<'static>,
}

impl Fonts {
    fn for_width(width: u32) -> Fonts {
        if width >= 640 {
            Fonts {
                banner: &FONT_10X20,
                body: &FONT_10X20,
                small: &FONT_9X15,
            }
        } else if width >= 300 {
            Fonts {
                banner: &FONT_9X15_BOLD,
                body: &FONT_7X13,
                small: &FONT_6X10,
            }
        } else {
            Fonts {
                banner: &FONT_9X15_BOLD,
                body: &FONT_6X10,
                small: &FONT_6X10,
            }
        }
    }
}

/// The regions of the result screen (other screens reuse the banner and footer).
#[derive(Clone, Copy)]
pub struct Layout {
    pub size: Size,
    pub margin: i32,
    pub fonts: Fonts,
    /// Full-width band at the top: REFER / no-refer / RETAKE, or an error title.
    pub banner: Rectangle,
    /// The captured frame.
    pub image: Rectangle,
    /// Top-3 list, right of the image.
    pub list: Rectangle,
    /// Three lines at the bottom: warnings, model version, disclaimer.
    pub footer: Rectangle,
    pub wide: bool,
}

impl Layout {
    pub fn for_size(size: Size) -> Layout {
        let (w, h) = (size.width as i32, size.height as i32);
        let fonts = Fonts::for_width(size.width);
        let wide = size.width >= 640;
        let margin = (w / 60).clamp(3, 12);
        let banner_h = fonts.banner.character_size.height as i32 + if wide { 24 } else { 12 };
        let footer_line = fonts.small.character_size.height as i32 + 3;
        let footer_h = 3 * footer_line;
        let content_y = banner_h + margin;
        let content_h = (h - banner_h - footer_h - 2 * margin).max(0);
        let side = content_h.min(w * 45 / 100).max(0);
        let list_x = margin + side + margin;
        Layout {
            size,
            margin,
            fonts,
            banner: Rectangle::new(Point::zero(), Size::new(size.width, banner_h as u32)),
            image: Rectangle::new(
                Point::new(margin, content_y),
                Size::new(side as u32, side as u32),
            ),
            list: Rectangle::new(
                Point::new(list_x, content_y),
                Size::new((w - list_x - margin).max(0) as u32, content_h as u32),
            ),
            footer: Rectangle::new(
                Point::new(margin, h - footer_h),
                Size::new((w - 2 * margin).max(0) as u32, footer_h as u32),
            ),
            wide,
        }
    }

    /// Height of one footer line.
    pub fn footer_line(&self) -> i32 {
        self.fonts.small.character_size.height as i32 + 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_stay_on_screen_and_apart_at_every_supported_size() {
        for (w, h) in [(240, 240), (320, 240), (800, 480)] {
            let l = Layout::for_size(Size::new(w, h));
            let screen = Rectangle::new(Point::zero(), Size::new(w, h));
            for r in [l.banner, l.image, l.list, l.footer] {
                assert!(r.size.width > 0 && r.size.height > 0, "{w}x{h}: {r:?}");
                assert_eq!(screen.intersection(&r), r, "{w}x{h}: {r:?} off screen");
            }
            assert!(l.image.intersection(&l.list).is_zero_sized());
            assert!(l.list.intersection(&l.footer).is_zero_sized());
            assert!(l.image.size.width >= 100, "{w}x{h}: image too small");
        }
    }
}
