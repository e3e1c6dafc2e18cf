//! Writes each presented screen to `DIR/NNNN-<screen>.png`: for tests, docs and headless runs.

use super::{Display, DisplayError};
use crate::ui::{Canvas, Screen};
use dermo_model::atomic::{create_dir_all_durable, write_atomic};
use embedded_graphics::prelude::Size;
use std::path::{Path, PathBuf};

pub struct PngDisplay {
    dir: PathBuf,
    size: Size,
    seq: usize,
}

impl PngDisplay {
    pub fn new(dir: &Path, size: Size) -> Result<PngDisplay, DisplayError> {
        create_dir_all_durable(dir).map_err(|e| DisplayError::Open {
            name: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(PngDisplay {
            dir: dir.to_path_buf(),
            size,
            seq: 0,
        })
    }
}

/// Encodes a canvas as PNG bytes.
pub fn encode_png(canvas: &Canvas) -> Result<Vec<u8>, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    canvas
        .to_rgb_image()
        .write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

impl Display for PngDisplay {
    fn size(&self) -> Size {
        self.size
    }

    fn live(&self) -> bool {
        false
    }

    fn present(
        &mut self,
        screen: &Screen,
        canvas: &Canvas,
    ) -> Result<Option<PathBuf>, DisplayError> {
        self.seq += 1;
        let path = self
            .dir
            .join(format!("{:04}-{}.png", self.seq, screen.kind()));
        let err = |reason: String| DisplayError::Present {
            name: path.display().to_string(),
            reason,
        };
        let bytes = encode_png(canvas).map_err(|e| err(e.to_string()))?;
        write_atomic(&path, &bytes).map_err(|e| err(e.to_string()))?;
        Ok(Some(path))
    }
}
