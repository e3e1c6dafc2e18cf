//! An SPI TFT panel (ST7789 or ILI9341) driven from user space through mipidsi and
//! linux-embedded-hal; the wiring comes from `[display.spi]` in the config.

use super::{Display, DisplayError, SpiConfig};
use crate::ui::{Canvas, Screen};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{CdevPin, Delay, SpidevDevice};
use mipidsi::interface::SpiInterface;
use mipidsi::models::{ILI9341Rgb565, Model, ST7789};
use mipidsi::options::{ColorInversion, Orientation, Rotation};
use mipidsi::Builder;
use std::fmt::Debug;
use std::path::PathBuf;

/// Any panel that draws RGB565.
struct SpiPanel<D> {
    name: String,
    panel: D,
    size: Size,
}

impl<D> Display for SpiPanel<D>
where
    D: DrawTarget<Color = Rgb565>,
    D::Error: Debug,
{
    fn size(&self) -> Size {
        self.size
    }

    fn live(&self) -> bool {
        true
    }

    fn present(
        &mut self,
        _screen: &Screen,
        canvas: &Canvas,
    ) -> Result<Option<PathBuf>, DisplayError> {
        self.panel
            .fill_contiguous(&canvas.bounding_box(), canvas.pixels().iter().copied())
            .map_err(|e| DisplayError::Present {
                name: self.name.clone(),
                reason: format!("{e:?}"),
            })?;
        Ok(None)
    }
}

pub fn open(cfg: &SpiConfig) -> Result<Box<dyn Display>, DisplayError> {
    match cfg.controller.as_str() {
        "st7789" => open_model(cfg, ST7789),
        "ili9341" => open_model(cfg, ILI9341Rgb565),
        other => Err(DisplayError::Open {
            name: cfg.device.display().to_string(),
            reason: format!("unknown SPI controller {other:?}; use st7789 or ili9341"),
        }),
    }
}

fn open_model<M>(cfg: &SpiConfig, model: M) -> Result<Box<dyn Display>, DisplayError>
where
    M: Model<ColorFormat = Rgb565> + 'static,
{
    let name = format!("{} on {}", cfg.controller, cfg.device.display());
    let fail = |reason: String| DisplayError::Open {
        name: name.clone(),
        reason,
    };
    let mut spi = SpidevDevice::open(&cfg.device).map_err(|e| fail(e.to_string()))?;
    spi.configure(
        &SpidevOptions::new()
            .bits_per_word(8)
            .max_speed_hz(cfg.speed_hz)
            .mode(SpiModeFlags::SPI_MODE_0)
            .build(),
    )
    .map_err(|e| fail(format!("cannot configure SPI: {e}")))?;
    let mut chip =
        Chip::new(&cfg.gpio_chip).map_err(|e| fail(format!("{}: {e}", cfg.gpio_chip.display())))?;
    let mut output = |pin: u32, what: &str| {
        chip.get_line(pin)
            .and_then(|l| l.request(LineRequestFlags::OUTPUT, 1, "dermo-scope"))
            .and_then(CdevPin::new)
            .map_err(|e| fail(format!("{what} pin {pin}: {e}")))
    };
    let dc = output(cfg.dc_pin, "data/command")?;
    let reset = cfg.reset_pin.map(|p| output(p, "reset")).transpose()?;
    // The interface keeps a transfer buffer for the display's whole life.
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    let di = SpiInterface::new(spi, dc, buffer);
    let rotation = Rotation::try_from_degree(cfg.rotation as i32).map_err(|_| {
        fail(format!(
            "rotation {} is not 0, 90, 180 or 270",
            cfg.rotation
        ))
    })?;
    let builder = Builder::new(model, di)
        .display_size(cfg.width, cfg.height)
        .display_offset(cfg.offset_x, cfg.offset_y)
        .orientation(Orientation::new().rotate(rotation))
        .invert_colors(if cfg.invert_colors {
            ColorInversion::Inverted
        } else {
            ColorInversion::Normal
        });
    let mut delay = Delay;
    let size = if rotation == Rotation::Deg90 || rotation == Rotation::Deg270 {
        Size::new(cfg.height as u32, cfg.width as u32)
    } else {
        Size::new(cfg.width as u32, cfg.height as u32)
    };
    match reset {
        Some(rst) => {
            let panel = builder
                .reset_pin(rst)
                .init(&mut delay)
                .map_err(|e| fail(format!("panel init failed: {e:?}")))?;
            Ok(Box::new(SpiPanel { name, panel, size }))
        }
        None => {
            let panel = builder
                .init(&mut delay)
                .map_err(|e| fail(format!("panel init failed: {e:?}")))?;
            Ok(Box::new(SpiPanel { name, panel, size }))
        }
    }
}
