//! Prints each screen as one line on stderr (stdout carries the JSON results).

use super::{Display, DisplayError};
use crate::ui::{Canvas, Screen};
use embedded_graphics::prelude::Size;
use std::io::Write;
use std::path::PathBuf;

pub struct TextDisplay {
    size: Size,
}

impl TextDisplay {
    pub fn new(size: Size) -> TextDisplay {
        TextDisplay { size }
    }
}

impl Display for TextDisplay {
    fn size(&self) -> Size {
        self.size
    }

    fn live(&self) -> bool {
        false
    }

    fn present(
        &mut self,
        screen: &Screen,
        _canvas: &Canvas,
    ) -> Result<Option<PathBuf>, DisplayError> {
        let mut err = std::io::stderr().lock();
        writeln!(err, "{}", screen.describe()).map_err(|e| DisplayError::Present {
            name: "stderr".into(),
            reason: e.to_string(),
        })?;
        Ok(None)
    }
}
