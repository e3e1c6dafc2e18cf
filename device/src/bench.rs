//! `dermo-scope bench`: per-frame latency of the device pipeline, split into its stages; with
//! `--profile`, inference split into tract's operators, grouped by kind ([`dermo_model::profile`]).

use crate::capture::{CaptureStep, StepTimes};
use crate::classifier::{Classifier, ClassifierError};
use crate::frame::Frame;
use crate::source::{FrameSource, SourceError};
use crate::ui::{self, Canvas, ResultView, Screen};
use dermo_model::{Profile, Profiler, RuntimeError};
use embedded_graphics::prelude::Size;
use image::RgbImage;
use serde::Serialize;
use std::time::Instant;

/// Milliseconds per frame for each stage, over the frames the model ran on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimes {
    /// Timed frames the quality gate refused (not in the figures).
    pub refused: usize,
    pub capture_decode: Vec<f64>,
    pub quality_gate: Vec<f64>,
    pub preprocess: Vec<f64>,
    pub inference: Vec<f64>,
    pub draw: Vec<f64>,
}

/// Median and mean of one stage.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub median_ms: f64,
    pub mean_ms: f64,
}

pub fn stat(v: &[f64]) -> Stat {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let median_ms = if s.is_empty() { 0.0 } else { s[s.len() / 2] };
    let mean_ms = s.iter().sum::<f64>() / s.len().max(1) as f64;
    Stat { median_ms, mean_ms }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    #[error("frame {origin} does not decode: {reason}")]
    Decode { origin: String, reason: String },
    #[error("profiling the model: {0}")]
    Profile(#[from] RuntimeError),
}

/// Runs `frames` frames (after `warmup` untimed ones) through capture+decode, the capture step
/// (quality gate, preprocess, inference + decision: [`CaptureStep`], as the device runs it) and
/// drawing the result screen at `screen` size. Frames the gate refuses are counted in
/// [`StageTimes::refused`] and not timed: the model does not run on them.
pub fn run(
    source: &mut dyn FrameSource,
    step: CaptureStep,
    screen: Size,
    warmup: usize,
    frames: usize,
) -> Result<StageTimes, BenchError> {
    let mut canvas = Canvas::new(screen);
    let mut t = StageTimes::default();
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1e3;
    for i in 0..warmup + frames {
        let t0 = Instant::now();
        let Some((frame, img)) = next_image(source)? else {
            break;
        };
        let capture_decode = ms(t0);
        let mut times = StepTimes::default();
        let result = step.run(&img, &frame.origin, frame.captured_at, &mut times)?;
        if result.decision.is_none() {
            t.refused += usize::from(i >= warmup);
            continue;
        }
        let t3 = Instant::now();
        let Ok(_) = ui::render(
            &Screen::Result(ResultView {
                frame: &img,
                outcome: result.screen_outcome(),
                warnings: Vec::new(),
                model: step.classifier.version().to_string(),
                map: result.maps.as_ref(),
            }),
            &mut canvas,
        );
        let draw = ms(t3);
        if i >= warmup {
            t.capture_decode.push(capture_decode);
            t.quality_gate.push(times.quality_gate);
            t.preprocess.push(times.preprocess);
            t.inference.push(times.inference);
            t.draw.push(draw);
        }
    }
    Ok(t)
}

/// The next frame of `source`, decoded.
fn next_image(source: &mut dyn FrameSource) -> Result<Option<(Frame, RgbImage)>, BenchError> {
    let Some(frame) = source.next_frame()? else {
        return Ok(None);
    };
    let img = frame.decode().map_err(|e| BenchError::Decode {
        origin: e.origin,
        reason: e.reason,
    })?;
    Ok(Some((frame, img)))
}

/// Runs `frames` frames (after `warmup` untimed ones) through capture+decode and preprocess, and
/// inference through `profiler`, which times each of tract's operators; their mean per frame,
/// grouped by kind.
pub fn profile(
    source: &mut dyn FrameSource,
    classifier: &Classifier,
    profiler: &mut Profiler,
    warmup: usize,
    frames: usize,
) -> Result<Profile, BenchError> {
    for i in 0..warmup + frames {
        if i == warmup {
            profiler.reset();
        }
        let Some((_, img)) = next_image(source)? else {
            break;
        };
        profiler.run(&classifier.preprocess(&img))?;
    }
    Ok(profiler.profile())
}
