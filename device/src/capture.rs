//! The result of one capture, as `--once` prints it and the journal stores it.

use crate::ui::{Outcome, DISCLAIMER};
pub use dermo_model::bundle::OutcomeKind;
use dermo_model::decision::{AbstainReason, Decision};
use dermo_model::quality::QualityReport;
use dermo_model::{AttentionMaps, Class};
use serde::{Deserialize, Serialize};

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

/// What the model said about a frame that passed the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub decision: Decision,
    /// Where it looked, when the model file has class maps.
    pub maps: Option<AttentionMaps>,
}

impl CaptureResult {
    /// Builds the result from the gate's report and, when the gate passed, the model's decision.
    pub fn new(
        origin: &str,
        captured_at: chrono::DateTime<chrono::Utc>,
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
