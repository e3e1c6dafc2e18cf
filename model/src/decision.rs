//! The decision rule: calibrated probabilities, refer on the malignant group, abstain when unsure.
//!
//! A wrong confident answer is the worst outcome; an abstention ("retake") is acceptable, so the
//! abstain checks run on every input and a referral is never hidden by an abstention.

use crate::metadata::CalibrationSpec;
use crate::taxonomy::{Class, CLASSES, NUM_CLASSES};
use serde::{Deserialize, Serialize};

/// Why the model declines to give an answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum AbstainReason {
    /// The pooled features are far from the training distribution.
    OutOfDistribution { score: f32, threshold: f32 },
    /// The top probability is below the calibrated minimum.
    LowConfidence { confidence: f32, min: f32 },
    /// The logits are not finite (a broken input or model).
    NonFinite,
}

/// The result for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Calibrated class probabilities in logit order.
    pub probs: [f32; NUM_CLASSES],
    /// The three most probable classes, most probable first.
    pub top3: [(Class, f32); 3],
    /// Sum of the malignant-group probabilities.
    pub malignant_prob: f32,
    /// Whether the malignant-group probability reached the refer threshold.
    pub refer: bool,
    pub abstain: Option<AbstainReason>,
    /// The out-of-distribution score, when the model has an OOD rule and features were given.
    pub ood_score: Option<f32>,
}

/// Applies the calibration to one image's logits (`NUM_CLASSES` values) and, when the model
/// carries an OOD rule, to the pooled features that rule reads (`Output::ood_features_of`).
pub fn decide(logits: &[f32], ood_features: Option<&[f32]>, cal: &CalibrationSpec) -> Decision {
    let probs = calibrated_probs(logits, cal.temperature);
    let mut order: Vec<usize> = (0..NUM_CLASSES).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let top3 = [0, 1, 2].map(|i| (CLASSES[order[i]], probs[order[i]]));
    let malignant_prob: f32 = CLASSES
        .iter()
        .filter(|c| c.is_malignant())
        .map(|c| probs[c.index()])
        .sum();
    let finite = logits.len() == NUM_CLASSES && probs.iter().all(|p| p.is_finite());
    let ood_score = match (&cal.ood, ood_features) {
        (Some(ood), Some(f)) => ood.score(f),
        _ => None,
    };
    let abstain = if !finite {
        Some(AbstainReason::NonFinite)
    } else if let (Some(score), Some(ood)) = (ood_score, &cal.ood) {
        (score > ood.threshold || !score.is_finite()).then_some(AbstainReason::OutOfDistribution {
            score,
            threshold: ood.threshold,
        })
    } else {
        None
    }
    .or_else(|| {
        (top3[0].1 < cal.abstain_min_confidence).then_some(AbstainReason::LowConfidence {
            confidence: top3[0].1,
            min: cal.abstain_min_confidence,
        })
    });
    Decision {
        probs,
        top3,
        malignant_prob,
        refer: finite && malignant_prob >= cal.refer_threshold,
        abstain,
        ood_score,
    }
}

/// `softmax(logits / T)`; a missing logit counts as −∞ and a non-positive temperature as 1.
pub fn calibrated_probs(logits: &[f32], temperature: f32) -> [f32; NUM_CLASSES] {
    let t = if temperature > 0.0 && temperature.is_finite() {
        temperature
    } else {
        1.0
    };
    let mut z = [f32::NEG_INFINITY; NUM_CLASSES];
    for (zi, l) in z.iter_mut().zip(logits) {
        *zi = l / t;
    }
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p = z.map(|v| (v - max).exp());
    let sum: f32 = p.iter().sum();
    for v in &mut p {
        *v /= sum;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::OodSpec;

    fn cal() -> CalibrationSpec {
        CalibrationSpec {
            temperature: 2.0,
            refer_threshold: 0.3,
            target_sensitivity: 0.9,
            abstain_min_confidence: 0.25,
            ood: None,
        }
    }

    #[test]
    fn temperature_flattens_and_ranks() {
        let logits = [0.0, 4.0, 0.0, 0.0, 2.0, 0.0, 0.0];
        let d = decide(&logits, None, &cal());
        assert!((d.probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(d.top3[0].0, Class::Bcc);
        assert_eq!(d.top3[1].0, Class::Mel);
        let sharp = calibrated_probs(&logits, 1.0);
        assert!(sharp[1] > d.probs[1]);
        // bcc + mel + akiec dominate → refer
        assert!(d.malignant_prob > 0.5 && d.refer);
        assert_eq!(d.abstain, None);
    }

    #[test]
    fn benign_confident_image_is_neither_referred_nor_abstained() {
        let d = decide(&[0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 0.0], None, &cal());
        assert_eq!(d.top3[0].0, Class::Nv);
        assert!(!d.refer && d.abstain.is_none());
    }

    #[test]
    fn flat_logits_abstain_for_low_confidence() {
        let d = decide(&[0.0; 7], None, &cal());
        assert!(matches!(
            d.abstain,
            Some(AbstainReason::LowConfidence { .. })
        ));
    }

    #[test]
    fn out_of_distribution_features_abstain() {
        let mut c = cal();
        c.ood = Some(OodSpec {
            block: None,
            frozen_backbone: false,
            feature_mean: vec![0.0; 4],
            feature_std: vec![1.0; 4],
            threshold: 2.0,
        });
        let logits = [0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 0.0];
        let near = decide(&logits, Some(&[0.1, -0.2, 0.3, 0.0]), &c);
        assert!(near.abstain.is_none());
        let far = decide(&logits, Some(&[5.0, -5.0, 5.0, 0.0]), &c);
        assert!(matches!(
            far.abstain,
            Some(AbstainReason::OutOfDistribution { .. })
        ));
        assert!(far.ood_score.unwrap() > 2.0);
    }

    #[test]
    fn nan_logits_abstain_and_never_refer() {
        let d = decide(&[f32::NAN; 7], None, &cal());
        assert_eq!(d.abstain, Some(AbstainReason::NonFinite));
        assert!(!d.refer);
    }
}
