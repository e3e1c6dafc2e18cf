//! The capture loop of `dermo-scope run`: frames in, screens and journal records out.

use crate::capture::{CaptureResult, CaptureStep, StepTimes};
use crate::classifier::{Classifier, ClassifierError};
use crate::config::Config;
use crate::controls::{self, Trigger, TriggerEvent};
use crate::display::{self, Display, DisplayError};
use crate::journal::{Journal, JournalError, StoragePolicy};
use crate::source::{self, FrameSource, SourceError, SourceSpec};
use crate::ui::{self, Canvas, ErrorKind, ErrorView, PreviewView, ResultView, Screen};
use anyhow::Context;
use dermo_model::quality::QualityGate;
use dermo_model::{RuntimeOptions, TrustPolicy};
use embedded_graphics::prelude::Size;
use image::RgbImage;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("model invalid: {0}")]
    ModelInvalid(ClassifierError),
    #[error(transparent)]
    StorageFull(JournalError),
    #[error("frame source lost: {0}")]
    SourceLost(SourceError),
    #[error(transparent)]
    Journal(JournalError),
    #[error("{0}")]
    Display(DisplayError),
    #[error("inference failed: {0}")]
    Inference(ClassifierError),
    #[error("cannot write results: {0}")]
    Output(std::io::Error),
}

impl From<DisplayError> for RunError {
    fn from(e: DisplayError) -> Self {
        RunError::Display(e)
    }
}

impl RunError {
    /// The process exit status for this failure (documented in `dermo-scope --help`).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::ModelInvalid(_) => 3,
            RunError::StorageFull(_) => 4,
            RunError::SourceLost(_) => 5,
            _ => 1,
        }
    }
}

/// How the loop behaves.
pub struct RunSettings {
    pub model: PathBuf,
    pub trust: TrustPolicy,
    /// The inference threads and kernels ([`Config::runtime_options`]).
    pub runtime: RuntimeOptions,
    pub gate: QualityGate,
    pub data_dir: PathBuf,
    pub storage: StoragePolicy,
    /// `None`: wait for a lost source forever.
    pub reconnect_timeout: Option<Duration>,
    /// How long a result stays on a live display.
    pub result_hold: Duration,
    /// Blend the class-activation map over the capture on the result screen.
    pub show_map: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub captures: usize,
    pub bad_frames: usize,
    pub reconnects: usize,
}

/// A display plus the canvas screens are drawn into.
pub struct Screens {
    display: Box<dyn Display>,
    canvas: Canvas,
}

impl Screens {
    pub fn new(display: Box<dyn Display>) -> Screens {
        let canvas = Canvas::new(display.size());
        Screens { display, canvas }
    }

    pub fn live(&self) -> bool {
        self.display.live()
    }

    pub fn show(&mut self, screen: &Screen) -> Result<Option<PathBuf>, DisplayError> {
        let Ok(_) = ui::render(screen, &mut self.canvas);
        self.display.present(screen, &self.canvas)
    }

    fn error(&mut self, kind: ErrorKind, detail: String) -> Result<(), DisplayError> {
        self.show(&Screen::Error(ErrorView { kind, detail }))
            .map(|_| ())
    }
}

/// Writes one JSON event line on `out` and flushes it: for a capture, this line is the
/// acknowledgement that the record is on disk.
fn emit(out: &mut dyn Write, value: serde_json::Value) -> Result<(), RunError> {
    writeln!(out, "{value}")
        .and_then(|_| out.flush())
        .map_err(RunError::Output)
}

pub struct App<'a> {
    pub settings: RunSettings,
    pub screens: Screens,
    pub source: Box<dyn FrameSource>,
    pub trigger: Box<dyn Trigger>,
    pub out: &'a mut dyn Write,
}

impl<'a> App<'a> {
    /// The loop `cfg` describes, with the model file `model` under `trust`: its source, display
    /// (`auto`: the framebuffer when `/dev/fb0` exists, else text) and trigger (`auto`: stdin for
    /// a camera, continuous otherwise) opened, events written to `out`.
    pub fn from_config(
        cfg: &Config,
        model: PathBuf,
        trust: TrustPolicy,
        out: &'a mut dyn Write,
    ) -> anyhow::Result<App<'a>> {
        let size = Size::new(cfg.display.width, cfg.display.height);
        let display = display::open(&cfg.display.display.resolve(), &cfg.display.spi, size)?;
        let camera = matches!(cfg.source.source, SourceSpec::Camera { .. });
        let trigger = controls::open(cfg.controls.trigger, camera, &cfg.trigger_settings())
            .map_err(anyhow::Error::msg)?;
        let reconnect_s = cfg.source.reconnect_timeout_s;
        let settings = RunSettings {
            model,
            trust,
            runtime: cfg.runtime_options(),
            gate: cfg.quality.clone(),
            data_dir: cfg.data_dir(),
            storage: cfg.journal.storage(),
            reconnect_timeout: (reconnect_s > 0).then(|| Duration::from_secs(reconnect_s)),
            result_hold: Duration::from_millis(cfg.controls.result_hold_ms),
            show_map: cfg.display.show_map,
        };
        let source = source::open(&cfg.source.source, &cfg.source_settings())
            .with_context(|| format!("opening the frame source {:?}", cfg.source.source))?;
        Ok(App {
            settings,
            screens: Screens::new(display),
            source,
            trigger,
            out,
        })
    }

    /// Runs until the source ends, the user quits, or a failure stops capturing. The last event
    /// is `finished` (with how it `stopped`) after the source ends, a quit, a storage-full stop
    /// and a source that stays lost, as long as stdout can still be written.
    pub fn run(mut self) -> Result<RunSummary, RunError> {
        let classifier = match Classifier::load(
            &self.settings.model,
            &self.settings.trust,
            self.settings.runtime,
        ) {
            Ok(c) => c,
            Err(e) => {
                self.screens.error(ErrorKind::ModelInvalid, e.to_string())?;
                return Err(RunError::ModelInvalid(e));
            }
        };
        let (mut journal, recovery) = Journal::open(&self.settings.data_dir, self.settings.storage)
            .map_err(|e| self.storage_failure(e))?;
        if !recovery.is_clean() {
            emit(
                self.out,
                json!({"event": "journal_recovered", "recovery": recovery}),
            )?;
        }
        emit(
            self.out,
            json!({
                "event": "started",
                "model": classifier.path(),
                "model_sha256": classifier.sha256(),
                "source": self.source.describe(),
                "trigger": self.trigger.describe(),
                "journal": journal.root(),
                "journal_records": journal.len(),
            }),
        )?;
        let mut summary = RunSummary::default();
        let stop = self.capture(&classifier, &mut journal, &mut summary);
        let stopped = match &stop {
            Ok(how) => *how,
            // Orderly stops: the storage floor, or a source that stayed away.
            Err(RunError::StorageFull(_)) => "storage_full",
            Err(RunError::SourceLost(_)) => "source_lost",
            Err(_) => return stop.map(|_| summary),
        };
        let finished = emit(
            self.out,
            json!({
                "event": "finished",
                "stopped": stopped,
                "captures": summary.captures,
                "bad_frames": summary.bad_frames,
                "reconnects": summary.reconnects,
            }),
        );
        match stop {
            Ok(_) => finished.map(|()| summary),
            // The stop's own error wins over failing to report it (a full disk may hold stdout).
            Err(e) => Err(e),
        }
    }

    /// The capture loop; returns how it ended normally (`source_ended` or `quit`).
    fn capture(
        &mut self,
        classifier: &Classifier,
        journal: &mut Journal,
        summary: &mut RunSummary,
    ) -> Result<&'static str, RunError> {
        loop {
            // Stop before the card fills, not when a write fails.
            journal
                .check_space(0)
                .map_err(|e| self.storage_failure(e))?;
            let event = self.trigger.poll();
            if event == Some(TriggerEvent::Quit) {
                return Ok("quit");
            }
            let frame = match self.source.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok("source_ended"),
                Err(SourceError::BadFrame { origin, reason }) => {
                    summary.bad_frames += 1;
                    self.bad_frame(&origin, &reason)?;
                    continue;
                }
                Err(e) => {
                    self.reconnect(e)?;
                    summary.reconnects += 1;
                    continue;
                }
            };
            let img = match frame.decode() {
                Ok(img) => img,
                Err(e) => {
                    summary.bad_frames += 1;
                    self.bad_frame(&frame.origin, &e.reason)?;
                    continue;
                }
            };
            let quality = self.settings.gate.check(&img);
            if event != Some(TriggerEvent::Capture) {
                if self.screens.live() {
                    let status =
                        format!("{} - {}", self.source.describe(), self.trigger.describe());
                    self.screens.show(&Screen::Preview(PreviewView {
                        frame: &img,
                        hint: quality.hint(),
                        status,
                    }))?;
                }
                continue;
            }
            let step = CaptureStep {
                gate: &self.settings.gate,
                classifier,
            };
            let result = step
                .finish(
                    &img,
                    quality,
                    &frame.origin,
                    frame.captured_at,
                    &mut StepTimes::default(),
                )
                .map_err(RunError::Inference)?;
            let jpeg = frame
                .jpeg_bytes(&img)
                .map_err(|e| RunError::Output(std::io::Error::other(e)))?;
            let entry = journal
                .record(&jpeg, &result)
                .map_err(|e| self.storage_failure(e))?;
            summary.captures += 1;
            let screen_file = self.show_result(&img, &result, classifier.version())?;
            emit(
                self.out,
                json!({
                    "event": "capture",
                    "journal_id": entry.id,
                    "record": journal.root().join(&entry.record),
                    "screen": screen_file,
                    "result": result,
                }),
            )?;
            // A live result stays until its time is up or a press; `m` flips the map and
            // redraws it.
            while self.screens.live() && self.hold_result() == Some(TriggerEvent::ToggleMap) {
                self.settings.show_map = !self.settings.show_map;
                self.show_result(&img, &result, classifier.version())?;
            }
        }
    }

    fn show_result(
        &mut self,
        img: &RgbImage,
        result: &CaptureResult,
        model: &str,
    ) -> Result<Option<PathBuf>, RunError> {
        Ok(self.screens.show(&Screen::Result(ResultView {
            frame: img,
            outcome: result.screen_outcome(),
            // The first issue is the retake hint in the banner; the footer lists the rest.
            warnings: result
                .quality
                .issues
                .iter()
                .skip(1)
                .map(|i| i.hint().to_string())
                .collect(),
            model: model.to_string(),
            map: result.maps.as_ref().filter(|_| self.settings.show_map),
        }))?)
    }

    fn bad_frame(&mut self, origin: &str, reason: &str) -> Result<(), RunError> {
        emit(
            self.out,
            json!({"event": "bad_frame", "origin": origin, "error": reason}),
        )
    }

    /// Shows the storage-full screen for a full card; other journal errors pass through.
    fn storage_failure(&mut self, e: JournalError) -> RunError {
        match e {
            JournalError::StorageFull { .. } => {
                if let Err(d) = self.screens.error(ErrorKind::StorageFull, e.to_string()) {
                    return RunError::Display(d);
                }
                RunError::StorageFull(e)
            }
            other => RunError::Journal(other),
        }
    }

    /// Shows "camera lost" and retries until the source is back or the timeout passes.
    fn reconnect(&mut self, lost: SourceError) -> Result<(), RunError> {
        self.screens
            .error(ErrorKind::CameraLost, lost.to_string())?;
        emit(
            self.out,
            json!({"event": "source_lost", "error": lost.to_string()}),
        )?;
        let since = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(2));
            match self.source.reconnect() {
                Ok(()) => {
                    emit(
                        self.out,
                        json!({"event": "source_back", "source": self.source.describe()}),
                    )?;
                    return Ok(());
                }
                Err(e) => {
                    if self
                        .settings
                        .reconnect_timeout
                        .is_some_and(|t| since.elapsed() >= t)
                    {
                        return Err(RunError::SourceLost(e));
                    }
                }
            }
        }
    }

    /// Keeps a result on a live display; a trigger press dismisses it early.
    /// Waits while a result shows; returns the event that ended the wait (`None`: time is up).
    fn hold_result(&mut self) -> Option<TriggerEvent> {
        let until = Instant::now() + self.settings.result_hold;
        while Instant::now() < until {
            if !self.trigger.is_continuous() {
                if let Some(event) = self.trigger.poll() {
                    return Some(event);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Resolves the model file: the explicit path, or the first candidate that exists.
pub fn find_model(explicit: Option<&Path>, candidates: &[PathBuf]) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        format!(
            "no model file found; looked for {} (give one with --model, or set [model] path in the config)",
            list.join(", ")
        )
    })
}
