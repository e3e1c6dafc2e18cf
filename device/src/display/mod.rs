//! Display sinks: where a drawn screen goes — the Linux framebuffer, an SPI panel, PNG files or
//! text. Screens are drawn into a [`Canvas`] first and a sink presents the finished canvas.

#[cfg(all(target_os = "linux", feature = "framebuffer"))]
pub mod fb;
pub mod fb_target;
pub mod png;
#[cfg(all(target_os = "linux", feature = "spi"))]
pub mod spi;
pub mod text;

use crate::ui::{Canvas, Screen};
use embedded_graphics::prelude::Size;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub trait Display {
    /// The drawable size in pixels.
    fn size(&self) -> Size;

    /// Whether the sink shows the live preview (a panel) or only results (files, text).
    fn live(&self) -> bool;

    /// Shows a finished canvas; `screen` is what it depicts (for sinks that write text or name
    /// files). Returns the file written, for file sinks.
    fn present(
        &mut self,
        screen: &Screen,
        canvas: &Canvas,
    ) -> Result<Option<PathBuf>, DisplayError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("cannot open display {name}: {reason}")]
    Open { name: String, reason: String },
    #[error("display {name}: {reason}")]
    Present { name: String, reason: String },
}

/// SPI panel wiring, `[display.spi]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpiConfig {
    /// `st7789` or `ili9341`.
    pub controller: String,
    pub device: PathBuf,
    pub gpio_chip: PathBuf,
    /// Data/command line offset on `gpio_chip`.
    pub dc_pin: u32,
    /// Reset line offset; `None` when the panel's reset is tied high.
    pub reset_pin: Option<u32>,
    pub width: u16,
    pub height: u16,
    /// Panel memory offset (ST7789 240×240 modules use 0,0 or 0,80 depending on rotation).
    pub offset_x: u16,
    pub offset_y: u16,
    /// Most ST7789 modules need inverted colours.
    pub invert_colors: bool,
    /// 0, 90, 180 or 270.
    pub rotation: u16,
    pub speed_hz: u32,
}

impl Default for SpiConfig {
    fn default() -> Self {
        SpiConfig {
            controller: "st7789".into(),
            device: "/dev/spidev0.0".into(),
            gpio_chip: "/dev/gpiochip0".into(),
            dc_pin: 25,
            reset_pin: Some(27),
            width: 240,
            height: 240,
            offset_x: 0,
            offset_y: 0,
            invert_colors: true,
            rotation: 0,
            speed_hz: 40_000_000,
        }
    }
}

/// Which sink to open, from `--display` (`fb[:DEVICE]`, `spi`, `png:DIR`, `text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplaySpec {
    Framebuffer { device: PathBuf },
    Spi,
    Png { dir: PathBuf },
    Text,
}

impl std::str::FromStr for DisplaySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "fb" => Ok(DisplaySpec::Framebuffer {
                device: "/dev/fb0".into(),
            }),
            Some(("fb", dev)) if !dev.is_empty() => {
                Ok(DisplaySpec::Framebuffer { device: dev.into() })
            }
            None if s == "spi" => Ok(DisplaySpec::Spi),
            Some(("png", dir)) if !dir.is_empty() => Ok(DisplaySpec::Png { dir: dir.into() }),
            None if s == "text" => Ok(DisplaySpec::Text),
            _ => Err(format!(
                "unknown display {s:?}; use fb[:DEVICE], spi, png:DIR or text"
            )),
        }
    }
}

/// `--display` or `[display] display`: a sink, or `auto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayChoice {
    /// The framebuffer when `/dev/fb0` exists, else text.
    Auto,
    Spec(DisplaySpec),
}

impl std::str::FromStr for DisplayChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DisplayChoice::Auto),
            _ => s.parse().map(DisplayChoice::Spec).map_err(|_: String| {
                format!("unknown display {s:?}; use fb[:DEVICE], spi, png:DIR, text or auto")
            }),
        }
    }
}

impl DisplayChoice {
    /// The sink to open on this machine.
    pub fn resolve(&self) -> DisplaySpec {
        match self {
            DisplayChoice::Spec(spec) => spec.clone(),
            DisplayChoice::Auto if std::path::Path::new("/dev/fb0").exists() => {
                DisplaySpec::Framebuffer {
                    device: "/dev/fb0".into(),
                }
            }
            DisplayChoice::Auto => DisplaySpec::Text,
        }
    }
}

/// Opens a sink. `size` is used by the sinks without a native size (PNG, text).
pub fn open(
    spec: &DisplaySpec,
    spi: &SpiConfig,
    size: Size,
) -> Result<Box<dyn Display>, DisplayError> {
    let _ = spi;
    match spec {
        DisplaySpec::Png { dir } => Ok(Box::new(png::PngDisplay::new(dir, size)?)),
        DisplaySpec::Text => Ok(Box::new(text::TextDisplay::new(size))),
        #[cfg(all(target_os = "linux", feature = "framebuffer"))]
        DisplaySpec::Framebuffer { device } => Ok(Box::new(fb::FramebufferDisplay::open(device)?)),
        #[cfg(all(target_os = "linux", feature = "spi"))]
        DisplaySpec::Spi => spi::open(spi),
        #[allow(unreachable_patterns)]
        other => Err(DisplayError::Open {
            name: format!("{other:?}"),
            reason: "this build has no support for it (cargo features `framebuffer`, `spi`)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            "fb".parse::<DisplaySpec>().unwrap(),
            DisplaySpec::Framebuffer {
                device: "/dev/fb0".into()
            }
        );
        assert_eq!(
            "png:out".parse::<DisplaySpec>().unwrap(),
            DisplaySpec::Png { dir: "out".into() }
        );
        assert!("png:".parse::<DisplaySpec>().is_err());
        assert!("hdmi".parse::<DisplaySpec>().is_err());
    }
}
