//! A V4L2 camera (the dermatoscope's USB/CSI camera) through `v4l`.
//!
//! Negotiates MJPG (preferred: small buffers at high resolution) or YUYV, streams through
//! memory-mapped buffers, and reopens the device when it drops out and returns.

use super::pixfmt::{mjpeg_with_huffman_tables, yuyv_to_rgb};
use super::{FrameSource, SourceError};
use crate::frame::{Frame, FrameData};
use std::path::{Path, PathBuf};
use std::time::Duration;
use v4l::buffer::{Flags, Type};
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

const MJPG: &[u8; 4] = b"MJPG";
const YUYV: &[u8; 4] = b"YUYV";
const BUFFERS: u32 = 4;
/// A frame taking longer than this means the camera has stalled (or gone).
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);

pub struct CameraSource {
    path: PathBuf,
    width: u32,
    height: u32,
    open: Option<OpenCamera>,
    sequence: u64,
}

struct OpenCamera {
    // Declared first so the mapped buffers are released before the device is closed.
    stream: MmapStream<'static>,
    format: Format,
    _device: Device,
}

impl CameraSource {
    /// Opens `path`, asking for `width`×`height` (the driver picks the nearest size it has).
    pub fn open(path: &Path, width: u32, height: u32) -> Result<Self, SourceError> {
        let open = open_camera(path, width, height).map_err(|reason| SourceError::Open {
            source_name: path.display().to_string(),
            reason,
        })?;
        Ok(CameraSource {
            path: path.to_path_buf(),
            width,
            height,
            open: Some(open),
            sequence: 0,
        })
    }

    fn disconnected(&mut self, reason: String) -> SourceError {
        self.open = None;
        SourceError::Disconnected {
            source_name: format!("camera {}", self.path.display()),
            reason,
        }
    }
}

fn open_camera(path: &Path, width: u32, height: u32) -> Result<OpenCamera, String> {
    let device = Device::with_path(path).map_err(|e| e.to_string())?;
    let offered: Vec<FourCC> = device
        .enum_formats()
        .map_err(|e| format!("cannot list formats: {e}"))?
        .into_iter()
        .map(|d| d.fourcc)
        .collect();
    let wanted = [FourCC::new(MJPG), FourCC::new(YUYV)]
        .into_iter()
        .find(|f| offered.contains(f))
        .ok_or_else(|| {
            let names: Vec<String> = offered.iter().map(|f| f.to_string()).collect();
            format!(
                "camera offers {}; dermo-scope reads MJPG or YUYV",
                names.join(", ")
            )
        })?;
    let format = device
        .set_format(&Format::new(width, height, wanted))
        .map_err(|e| format!("cannot set format {wanted} {width}x{height}: {e}"))?;
    if format.fourcc != wanted {
        return Err(format!(
            "asked for {wanted}, the driver chose {}",
            format.fourcc
        ));
    }
    let mut stream = MmapStream::with_buffers(&device, Type::VideoCapture, BUFFERS)
        .map_err(|e| format!("cannot map capture buffers: {e}"))?;
    stream.set_timeout(FRAME_TIMEOUT);
    Ok(OpenCamera {
        stream,
        format,
        _device: device,
    })
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let Some(cam) = self.open.as_mut() else {
            return Err(self.disconnected("not open".into()));
        };
        let format = cam.format;
        let (buf, meta) = match cam.stream.next() {
            Ok(x) => x,
            Err(e) => return Err(self.disconnected(e.to_string())),
        };
        self.sequence += 1;
        let origin = format!("{}#{}", self.path.display(), meta.sequence);
        // Buffers are sized for the largest frame; only `bytesused` of them is this frame.
        let bytes = &buf[..(meta.bytesused as usize).min(buf.len())];
        if bytes.is_empty() || meta.flags.contains(Flags::ERROR) {
            return Err(SourceError::BadFrame {
                origin,
                reason: "the driver marked the buffer empty or corrupt".into(),
            });
        }
        let bad = |reason: String| SourceError::BadFrame {
            origin: origin.clone(),
            reason,
        };
        let data = if format.fourcc == FourCC::new(MJPG) {
            FrameData::Encoded(
                mjpeg_with_huffman_tables(bytes)
                    .map_err(|e| bad(e.to_string()))?
                    .into_owned(),
            )
        } else {
            FrameData::Rgb(
                yuyv_to_rgb(bytes, format.width, format.height, format.stride as usize)
                    .map_err(|e| bad(e.to_string()))?,
            )
        };
        Ok(Some(Frame::new(data, origin)))
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        self.open = None;
        let open = open_camera(&self.path, self.width, self.height)
            .map_err(|reason| self.disconnected(reason))?;
        self.open = Some(open);
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.open {
            Some(c) => format!(
                "camera {} ({} {}x{})",
                self.path.display(),
                c.format.fourcc,
                c.format.width,
                c.format.height
            ),
            None => format!("camera {} (disconnected)", self.path.display()),
        }
    }
}
