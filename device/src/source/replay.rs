//! Replays image files: one file, or every image of a directory in name order. A file larger
//! than the input cap is a bad frame, refused before it is read.

use super::{FrameSource, SourceError};
use crate::frame::{read_image_file, Frame, FrameData, InputError};
use std::path::{Path, PathBuf};

const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "gif"];

pub struct ReplaySource {
    root: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    max_input: u64,
}

impl ReplaySource {
    /// Replays `path`; files over `max_input` bytes are bad frames.
    pub fn open(path: &Path, max_input: u64) -> Result<Self, SourceError> {
        let files = list_images(path).map_err(|reason| SourceError::Open {
            source_name: path.display().to_string(),
            reason,
        })?;
        Ok(ReplaySource {
            root: path.to_path_buf(),
            files,
            next: 0,
            max_input,
        })
    }

    fn name(&self) -> String {
        format!("replay {}", self.root.display())
    }
}

/// The image files under `path` (or `path` itself), sorted by name.
fn list_images(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    Ok(files)
}

impl FrameSource for ReplaySource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let Some(file) = self.files.get(self.next).cloned() else {
            return Ok(None);
        };
        match read_image_file(&file, self.max_input) {
            Ok(bytes) => {
                self.next += 1;
                Ok(Some(Frame::new(
                    FrameData::Encoded(bytes),
                    file.display().to_string(),
                )))
            }
            // The whole replay root vanished (card pulled, share unmounted): like a camera
            // dropping out. Keep our place so a reconnect resumes with the same file.
            Err(InputError::Read { cause, .. }) if !self.root.exists() => {
                Err(SourceError::Disconnected {
                    source_name: self.name(),
                    reason: cause.to_string(),
                })
            }
            Err(e) => {
                self.next += 1;
                Err(SourceError::BadFrame {
                    origin: file.display().to_string(),
                    reason: e.problem(),
                })
            }
        }
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        let files = list_images(&self.root).map_err(|reason| SourceError::Disconnected {
            source_name: self.name(),
            reason,
        })?;
        // Resume after the last file delivered, by name, in case the listing changed.
        let done = self.next.checked_sub(1).and_then(|i| self.files.get(i));
        self.next = match done {
            Some(last) => files.iter().position(|f| f > last).unwrap_or(files.len()),
            None => 0,
        };
        self.files = files;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} ({} images)", self.name(), self.files.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_images_in_name_order_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.jpg", "a.PNG", "notes.txt"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let mut src = ReplaySource::open(dir.path(), 1 << 20).unwrap();
        let a = src.next_frame().unwrap().unwrap();
        assert!(a.origin.ends_with("a.PNG"));
        let b = src.next_frame().unwrap().unwrap();
        assert!(b.origin.ends_with("b.jpg"));
        assert!(src.next_frame().unwrap().is_none());
    }

    #[test]
    fn a_file_over_the_input_cap_is_a_bad_frame_and_the_replay_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jpg"), vec![0u8; 2048]).unwrap();
        std::fs::write(dir.path().join("b.jpg"), b"small").unwrap();
        let mut src = ReplaySource::open(dir.path(), 1024).unwrap();
        match src.next_frame() {
            Err(SourceError::BadFrame { origin, reason }) => {
                assert!(origin.ends_with("a.jpg"), "{origin}");
                assert!(
                    reason.contains("input cap") && !reason.contains("a.jpg"),
                    "{reason}"
                );
            }
            other => panic!("{:?}", other.map(|f| f.map(|f| f.origin))),
        }
        assert!(src.next_frame().unwrap().unwrap().origin.ends_with("b.jpg"));
    }

    #[test]
    fn vanished_directory_disconnects_and_resumes_after_reconnect() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("replay");
        std::fs::create_dir(&root).unwrap();
        for name in ["1.jpg", "2.jpg", "3.jpg"] {
            std::fs::write(root.join(name), name).unwrap();
        }
        let mut src = ReplaySource::open(&root, 1 << 20).unwrap();
        assert!(src.next_frame().unwrap().is_some());
        let moved = dir.path().join("away");
        std::fs::rename(&root, &moved).unwrap();
        assert!(matches!(
            src.next_frame(),
            Err(SourceError::Disconnected { .. })
        ));
        assert!(src.reconnect().is_err());
        std::fs::rename(&moved, &root).unwrap();
        src.reconnect().unwrap();
        let f = src.next_frame().unwrap().unwrap();
        assert!(f.origin.ends_with("2.jpg"), "{}", f.origin);
    }
}
