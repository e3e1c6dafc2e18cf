//! `dermo-scope bench`: per-frame latency of the device pipeline, split into its stages; with
//! `--profile`, inference split into tract's operators, grouped by kind ([`dermo_model::profile`]).

use crate::capture::CaptureResult;
use crate::classifier::{Classifier, ClassifierError};
use crate::source::{FrameSource, SourceError};
use crate::ui::{self, Canvas, ResultView, Screen};
use crate::QualityGate;
use dermo_model::{Profile, Profiler, RuntimeError};
use embedded_graphics::prelude::Size;
use serde::Serialize;
use std::time::Instant;

/// Milliseconds per frame for each stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageTimes {
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

/// Runs `frames` frames (after `warmup` untimed ones) through capture+decode, the quality gate,
/// preprocess, inference (+ decision) and drawing the result screen at `screen` size.
pub fn run(
    source: &mut dyn FrameSource,
    classifier: &Classifier,
    screen: Size,
    warmup: usize,
    frames: usize,
) -> Result<StageTimes, BenchError> {
    let gate = QualityGate::default();
    let mut canvas = Canvas::new(screen);
    let mut t = StageTimes {
        capture_decode: Vec::new(),
        quality_gate: Vec::new(),
        preprocess: Vec::new(),
        inference: Vec::new(),
        draw: Vec::new(),
    };
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1e3;
    for i in 0..warmup + frames {
        let t0 = Instant::now();
        let Some(frame) = source.next_frame()? else {
            break;
        };
        let img = frame.decode().map_err(|e| BenchError::Decode {
            origin: e.origin,
            reason: e.reason,
        })?;
        let capture_decode = ms(t0);
        let tq = Instant::now();
        let quality = gate.check(&img);
        let quality_gate = ms(tq);
        let t1 = Instant::now();
        let input = classifier.preprocess(&img);
        let preprocess = ms(t1);
        let t2 = Instant::now();
        let classified = classifier.conclude(&classifier.infer(&input)?);
        let inference = ms(t2);
        let t3 = Instant::now();
        let result = CaptureResult::new(
            &frame.origin,
            frame.captured_at,
            quality,
            classifier.sha256(),
            classifier.version(),
            Some(classified),
        );
        let Ok(_) = ui::render(
            &Screen::Result(ResultView {
                frame: &img,
                outcome: result.screen_outcome(),
                warnings: Vec::new(),
                model: classifier.version().to_string(),
                map: result.maps.as_ref(),
            }),
            &mut canvas,
        );
        let draw = ms(t3);
        if i >= warmup {
            t.capture_decode.push(capture_decode);
            t.quality_gate.push(quality_gate);
            t.preprocess.push(preprocess);
            t.inference.push(inference);
            t.draw.push(draw);
        }
    }
    Ok(t)
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
        let Some(frame) = source.next_frame()? else {
            break;
        };
        let img = frame.decode().map_err(|e| BenchError::Decode {
            origin: e.origin,
            reason: e.reason,
        })?;
        profiler.run(&classifier.preprocess(&img))?;
    }
    Ok(profiler.profile())
}
