//! Where frames come from: a V4L2 camera, replayed files, or a synthetic pattern — all behind
//! one [`FrameSource`] trait so the capture loop does not care which.

#[cfg(all(target_os = "linux", feature = "camera"))]
pub mod camera;
pub mod pixfmt;
pub mod replay;
pub mod synthetic;

use crate::frame::Frame;
use std::path::PathBuf;

/// Something that delivers frames, one at a time.
pub trait FrameSource {
    /// Blocks until the next frame. `Ok(None)` means a finite source (a replay) has ended.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;

    /// Tries once to bring the source back after [`SourceError::Disconnected`].
    fn reconnect(&mut self) -> Result<(), SourceError>;

    /// A short name for logs and screens, e.g. `camera /dev/video0 (MJPG 640x480)`.
    fn describe(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source is gone (camera unplugged, replay directory removed); [`FrameSource::reconnect`]
    /// may bring it back.
    #[error("{source_name} is disconnected: {reason}")]
    Disconnected { source_name: String, reason: String },
    /// This one frame is unusable; the next may be fine.
    #[error("bad frame from {origin}: {reason}")]
    BadFrame { origin: String, reason: String },
    /// The source cannot be opened as configured.
    #[error("cannot open {source_name}: {reason}")]
    Open { source_name: String, reason: String },
}

/// Which source to open, parsed from `--source` (`camera[:DEVICE]`, `dir:PATH`, `file:PATH`,
/// `synthetic[:COUNT]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Camera { device: PathBuf },
    Replay { path: PathBuf },
    Synthetic { count: Option<usize> },
}

impl std::str::FromStr for SourceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind, arg) {
            ("camera", None) => Ok(SourceSpec::Camera {
                device: PathBuf::from("/dev/video0"),
            }),
            ("camera", Some(dev)) => Ok(SourceSpec::Camera { device: dev.into() }),
            ("dir" | "file", Some(p)) if !p.is_empty() => Ok(SourceSpec::Replay { path: p.into() }),
            ("synthetic", None) => Ok(SourceSpec::Synthetic { count: None }),
            ("synthetic", Some(n)) => n
                .parse()
                .map(|n| SourceSpec::Synthetic { count: Some(n) })
                .map_err(|_| format!("synthetic:COUNT needs a number, got {n:?}")),
            _ => Err(format!(
                "unknown source {s:?}; use camera[:DEVICE], dir:PATH, file:PATH or synthetic[:COUNT]"
            )),
        }
    }
}

/// Source settings from the config file.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// Camera (and synthetic) frame size.
    pub width: u32,
    pub height: u32,
    /// Largest replayed file read, in bytes.
    pub max_input: u64,
}

/// Opens the source a spec names.
pub fn open(
    spec: &SourceSpec,
    settings: &SourceSettings,
) -> Result<Box<dyn FrameSource>, SourceError> {
    match spec {
        SourceSpec::Replay { path } => Ok(Box::new(replay::ReplaySource::open(
            path,
            settings.max_input,
        )?)),
        SourceSpec::Synthetic { count } => Ok(Box::new(synthetic::SyntheticSource::new(
            settings.width,
            settings.height,
            *count,
        ))),
        #[cfg(all(target_os = "linux", feature = "camera"))]
        SourceSpec::Camera { device } => Ok(Box::new(camera::CameraSource::open(
            device,
            settings.width,
            settings.height,
        )?)),
        #[cfg(not(all(target_os = "linux", feature = "camera")))]
        SourceSpec::Camera { device } => Err(SourceError::Open {
            source_name: device.display().to_string(),
            reason: "this build has no camera support (cargo feature `camera`)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            "camera".parse::<SourceSpec>().unwrap(),
            SourceSpec::Camera {
                device: "/dev/video0".into()
            }
        );
        assert_eq!(
            "dir:/data/x".parse::<SourceSpec>().unwrap(),
            SourceSpec::Replay {
                path: "/data/x".into()
            }
        );
        assert_eq!(
            "synthetic:5".parse::<SourceSpec>().unwrap(),
            SourceSpec::Synthetic { count: Some(5) }
        );
        assert!("dir:".parse::<SourceSpec>().is_err());
        assert!("webcam".parse::<SourceSpec>().is_err());
    }
}
