//! The screens, drawn with embedded-graphics and generic over the draw target, so one screen
//! renders to a PNG in a test and to a panel on the device.

pub mod canvas;
pub mod layout;
mod screens;
pub mod text;

pub use canvas::Canvas;
pub use layout::Layout;
pub use screens::{render, RenderReport};

use dermo_model::{AttentionMaps, Class};
use image::RgbImage;

/// The line every result screen and report carries.
pub const DISCLAIMER: &str = "Decision support - not a diagnosis";

/// What the screen shows.
pub enum Screen<'a> {
    /// Live camera image with the aiming circle and the current hint.
    Preview(PreviewView<'a>),
    /// The outcome of one capture.
    Result(ResultView<'a>),
    /// Something stops capturing.
    Error(ErrorView),
}

pub struct PreviewView<'a> {
    pub frame: &'a RgbImage,
    /// The quality gate's hint; `None` when the frame would be accepted.
    pub hint: Option<&'a str>,
    /// One short status line (source, trigger), e.g. `camera /dev/video0 - press button`.
    pub status: String,
}

pub struct ResultView<'a> {
    pub frame: &'a RgbImage,
    pub outcome: Outcome,
    /// Quality remarks shown in the footer.
    pub warnings: Vec<String>,
    /// Model version line, e.g. `model 1a2b3c4d int8 2025-11-26`.
    pub model: String,
    /// Where the model looked: when given, the top class's map is blended over the capture
    /// (`dermo_model::maps::overlay`).
    pub map: Option<&'a AttentionMaps>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The model answered.
    Prediction {
        top3: [(Class, f32); 3],
        refer: bool,
        malignant_prob: f32,
    },
    /// The model declined (out of distribution, low confidence).
    Abstain { reason: String },
    /// The quality gate refused the frame; nothing was classified.
    Retake { hint: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    CameraLost,
    ModelInvalid,
    StorageFull,
}

pub struct ErrorView {
    pub kind: ErrorKind,
    pub detail: String,
}

impl ErrorKind {
    pub fn title(self) -> &'static str {
        match self {
            ErrorKind::CameraLost => "Camera lost",
            ErrorKind::ModelInvalid => "Model invalid",
            ErrorKind::StorageFull => "Storage full",
        }
    }
    /// What the user should do.
    pub fn action(self) -> &'static str {
        match self {
            ErrorKind::CameraLost => "Reconnecting... check the camera cable.",
            ErrorKind::ModelInvalid => {
                "No predictions. Install a signed model or run: dermo-scope model rollback"
            }
            ErrorKind::StorageFull => {
                "Capture stopped. Export the captures and free space on the card."
            }
        }
    }
}

impl Screen<'_> {
    /// A stable short name: `preview`, `result`, `camera-lost`, `model-invalid`, `storage-full`.
    pub fn kind(&self) -> &'static str {
        match self {
            Screen::Preview(_) => "preview",
            Screen::Result(_) => "result",
            Screen::Error(e) => match e.kind {
                ErrorKind::CameraLost => "camera-lost",
                ErrorKind::ModelInvalid => "model-invalid",
                ErrorKind::StorageFull => "storage-full",
            },
        }
    }

    /// The screen as plain text, for the text display and logs.
    pub fn describe(&self) -> String {
        match self {
            Screen::Preview(p) => format!(
                "[preview] {} | {}",
                p.status,
                p.hint.unwrap_or("ready - capture")
            ),
            Screen::Result(r) => {
                let body = match &r.outcome {
                    Outcome::Prediction {
                        top3,
                        refer,
                        malignant_prob,
                    } => {
                        let list: Vec<String> = top3
                            .iter()
                            .map(|(c, p)| format!("{} {:.0}%", c.code(), p * 100.0))
                            .collect();
                        format!(
                            "{} | {} | malignant group {:.0}%",
                            if *refer { "REFER" } else { "no referral flag" },
                            list.join(", "),
                            malignant_prob * 100.0
                        )
                    }
                    Outcome::Abstain { reason } => format!("RETAKE - no answer: {reason}"),
                    Outcome::Retake { hint } => format!("RETAKE - {hint}"),
                };
                let mut s = format!("[result] {body} | {}", r.model);
                for w in &r.warnings {
                    s.push_str(&format!(" | warning: {w}"));
                }
                s.push_str(&format!(" | {DISCLAIMER}"));
                s
            }
            Screen::Error(e) => format!(
                "[{}] {}: {} | {}",
                self.kind(),
                e.kind.title(),
                e.detail,
                e.kind.action()
            ),
        }
    }
}
