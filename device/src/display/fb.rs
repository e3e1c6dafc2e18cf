//! The Linux framebuffer (`/dev/fbN`): HDMI and DSI displays, and SPI panels driven by a kernel
//! fbtft driver.

use super::fb_target::{Channel, FbTarget, PixelLayout};
use super::{Display, DisplayError};
use crate::ui::{Canvas, Screen};
use embedded_graphics::prelude::*;
use framebuffer::Framebuffer;
use std::path::{Path, PathBuf};

pub struct FramebufferDisplay {
    name: String,
    fb: Framebuffer,
    layout: PixelLayout,
}

impl FramebufferDisplay {
    pub fn open(device: &Path) -> Result<FramebufferDisplay, DisplayError> {
        let name = device.display().to_string();
        let fb = Framebuffer::new(device).map_err(|e| DisplayError::Open {
            name: name.clone(),
            reason: e.details,
        })?;
        let v = &fb.var_screen_info;
        let ch = |b: &framebuffer::Bitfield| Channel {
            offset: b.offset,
            length: b.length,
        };
        let layout = PixelLayout {
            width: v.xres,
            height: v.yres,
            bits_per_pixel: v.bits_per_pixel,
            line_length: fb.fix_screen_info.line_length,
            red: ch(&v.red),
            green: ch(&v.green),
            blue: ch(&v.blue),
        };
        // Checks depth and size once, at open time.
        let mut probe = vec![0u8; layout.needed_bytes()];
        FbTarget::new(layout, &mut probe).map_err(|e| DisplayError::Open {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(FramebufferDisplay { name, fb, layout })
    }
}

impl Display for FramebufferDisplay {
    fn size(&self) -> Size {
        Size::new(self.layout.width, self.layout.height)
    }

    fn live(&self) -> bool {
        true
    }

    fn present(
        &mut self,
        _screen: &Screen,
        canvas: &Canvas,
    ) -> Result<Option<PathBuf>, DisplayError> {
        let mut target = FbTarget::new(self.layout, &mut self.fb.frame[..]).map_err(|e| {
            DisplayError::Present {
                name: self.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let area = canvas.bounding_box();
        let _ = target.fill_contiguous(&area, canvas.pixels().iter().copied());
        Ok(None)
    }
}
