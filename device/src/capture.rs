//! One capture: the step every path takes (quality gate, then the model only when the gate
//! passes, then one [`CaptureResult`]) — the app loop, `--once` and `bench` all run
//! [`CaptureStep`] — and the result, as `--once` prints it and the journal stores it.

use crate::classifier::{Classified, Classifier, ClassifierError};
use crate::ui::{Outcome, DISCLAIMER};
use chrono::{DateTime, Utc};
pub use dermo_model::bundle::OutcomeKind;
use dermo_model::decision::{AbstainReason, Decision};
use dermo_model::quality::{QualityGate, QualityReport};
use dermo_model::{AttentionMaps, Class};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The capture step: the gate and the classifier it runs.
#[derive(Clone, Copy)]
pub struct CaptureStep<'a> {
    pub gate: &'a QualityGate,
    pub classifier: &'a Classifier,
}

/// Milliseconds one step spent in each stage; 0 for a stage that did not run (the model does
/// not run on a frame the gate refuses).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimes {
    pub quality_gate: f64,
    pub preprocess: f64,
    pub inference: f64,
}

impl CaptureStep<'_> {
    /// The whole step on a decoded frame.
    pub fn run(
        &self,
        img: &RgbImage,
        origin: &str,
        captured_at: DateTime<Utc>,
        times: &mut StepTimes,
    ) -> Result<CaptureResult, ClassifierError> {
        let started = Instant::now();
        let quality = self.gate.check(img);
        times.quality_gate = ms(started);
        self.finish(img, quality, origin, captured_at, times)
    }

    /// The rest of the step for a frame the gate has already judged (the app loop judges every
    /// frame for the preview, and captures only some).
    pub fn finish(
        &self,
        img: &RgbImage,
        quality: QualityReport,
        origin: &str,
        captured_at: DateTime<Utc>,
        times: &mut StepTimes,
    ) -> Result<CaptureResult, ClassifierError> {
        let classified = if quality.passed() {
            let started = Instant::now();
            let input = self.classifier.preprocess(img);
            times.preprocess = ms(started);
            let started = Instant::now();
            let classified = self.classifier.conclude(&self.classifier.infer(&input)?);
            times.inference = ms(started);
            Some(classified)
        } else {
            None
        };
        Ok(CaptureResult::new(
            origin,
            captured_at,
            quality,
            self.classifier.sha256(),
            self.classifier.version(),
            classified,
        ))
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Everything known about one capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureResult {
    /// RFC 3339, UTC.
    pub captured_at: String,
    /// Where the frame came from (file path, camera buffer).
    pub origin: String,
    pub model_sha256: String,
    pub model_version: String,
    pub outcome: OutcomeKind,
    /// Most probable class when the model answered.
    pub top_class: Option<Class>,
    /// The refer flag when the model answered.
    pub refer: Option<bool>,
    /// The retake hint when the gate refused the frame.
    pub hint: Option<String>,
    pub quality: QualityReport,
    /// The full decision (calibrated probabilities, top 3, OOD score); `None` on retake.
    pub decision: Option<Decision>,
    /// Where the model looked: the top class's and the malignant group's class-activation maps
    /// (`dermo_model::maps`). `None` on retake, and for model files without class maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maps: Option<AttentionMaps>,
    pub disclaimer: String,
}

impl CaptureResult {
    /// Builds the result from the gate's report and, when the gate passed, the model's decision.
    pub fn new(
        origin: &str,
        captured_at: DateTime<Utc>,
        quality: QualityReport,
        model_sha256: &str,
        model_version: &str,
        classified: Option<Classified>,
    ) -> CaptureResult {
        let (decision, maps) = match classified {
            Some(c) => (Some(c.decision), c.maps),
            None => (None, None),
        };
        let (outcome, top_class, refer, hint) = match &decision {
            None => (
                OutcomeKind::Retake,
                None,
                None,
                Some(quality.hint().unwrap_or("Retake").to_string()),
            ),
            Some(d) if d.abstain.is_some() => (OutcomeKind::Abstain, None, None, None),
            Some(d) => (
                OutcomeKind::Prediction,
                Some(d.top3[0].0),
                Some(d.refer),
                None,
            ),
        };
        CaptureResult {
            captured_at: captured_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            origin: origin.to_string(),
            model_sha256: model_sha256.to_string(),
            model_version: model_version.to_string(),
            outcome,
            top_class,
            refer,
            hint,
            quality,
            decision,
            maps,
            disclaimer: DISCLAIMER.to_string(),
        }
    }

    /// The outcome as the result screen shows it.
    pub fn screen_outcome(&self) -> Outcome {
        match (&self.outcome, &self.decision) {
            (OutcomeKind::Prediction, Some(d)) => Outcome::Prediction {
                top3: d.top3,
                refer: d.refer,
                malignant_prob: d.malignant_prob,
            },
            (OutcomeKind::Abstain, Some(d)) => Outcome::Abstain {
                reason: d.abstain.map(describe_abstain).unwrap_or_default(),
            },
            _ => Outcome::Retake {
                hint: self.hint.clone().unwrap_or_else(|| "Retake".into()),
            },
        }
    }

    /// Calibrated probability of `class`, when the model ran.
    pub fn prob(&self, class: Class) -> Option<f32> {
        self.decision.as_ref().map(|d| d.probs[class.index()])
    }
}

/// A sentence for the screen.
pub fn describe_abstain(reason: AbstainReason) -> String {
    match reason {
        AbstainReason::OutOfDistribution { .. } => {
            "This does not look like a dermoscopy image of a lesion.".into()
        }
        AbstainReason::LowConfidence { confidence, .. } => format!(
            "The model is unsure (top class {:.0}%).",
            confidence * 100.0
        ),
        AbstainReason::NonFinite => "The model produced no valid output.".into(),
    }
}
