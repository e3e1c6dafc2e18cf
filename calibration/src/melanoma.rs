//! Melanoma versus the rest, on a set labelled only that way: an external validation set from
//! other clinics (ISIC 2017), whose other diagnoses (nevi, seborrheic keratoses) are not told
//! apart, so only this binary question can be scored on it.
//!
//! Four figures answer "how does this model do on someone else's images":
//! - the ROC AUC of the melanoma probability against melanoma / not melanoma;
//! - the sensitivity and specificity, for melanoma, of the device's referral (the malignant
//!   group's probability reaching the refer threshold);
//! - the refer rate (all images referred, whatever their label);
//! - the abstention rate (images the device would ask to retake).
//!
//! Intervals are percentile bootstraps over images: such sets carry no lesion ids.

use crate::bootstrap::{BootstrapConfig, GroupBootstrap, Interval};
use crate::error::{CalibrationError, Result};
use crate::roc::roc_auc;
use serde::{Deserialize, Serialize};

/// One image as the device saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MelanomaCase {
    /// The calibrated probability of the melanoma class.
    pub melanoma_prob: f64,
    /// Whether the device refers it (malignant-group probability ≥ the refer threshold).
    pub referred: bool,
    /// Whether the device abstains on it (out of distribution, low confidence, non-finite).
    pub abstained: bool,
    /// The label: melanoma or not.
    pub melanoma: bool,
}

/// The figures of [`evaluate_melanoma`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MelanomaEvaluation {
    pub images: usize,
    pub melanomas: usize,
    /// ROC AUC of the melanoma probability.
    pub auc: Option<Interval>,
    /// Melanomas referred / melanomas.
    pub sensitivity: Option<Interval>,
    /// Non-melanomas not referred / non-melanomas.
    pub specificity: Option<Interval>,
    /// Images referred / images.
    pub refer_rate: Option<Interval>,
    /// Images abstained on / images.
    pub abstention_rate: Option<Interval>,
}

/// The figures of `cases`, with bootstrap intervals (resampling images).
pub fn evaluate_melanoma(
    cases: &[MelanomaCase],
    bootstrap: BootstrapConfig,
) -> Result<MelanomaEvaluation> {
    const WHAT: &str = "melanoma evaluation";
    if cases.is_empty() {
        return Err(CalibrationError::Empty { what: WHAT });
    }
    if let Some(row) = cases.iter().position(|c| !c.melanoma_prob.is_finite()) {
        return Err(CalibrationError::NonFinite { what: WHAT, row });
    }
    let ids: Vec<usize> = (0..cases.len()).collect();
    let plan = GroupBootstrap::new(&ids, bootstrap)?;
    let pick = |rows: &[usize]| -> Vec<MelanomaCase> { rows.iter().map(|&i| cases[i]).collect() };
    let statistics = |c: &[MelanomaCase]| -> Vec<f64> {
        vec![
            auc(c),
            sensitivity(c),
            specificity(c),
            rate(c, |c| c.referred),
            rate(c, |c| c.abstained),
        ]
    };
    let estimates = statistics(cases);
    let intervals = plan.intervals(&estimates, |rows| statistics(&pick(rows)));
    let mut it = intervals.into_iter();
    let mut next = || it.next().flatten();
    Ok(MelanomaEvaluation {
        images: cases.len(),
        melanomas: cases.iter().filter(|c| c.melanoma).count(),
        auc: next(),
        sensitivity: next(),
        specificity: next(),
        refer_rate: next(),
        abstention_rate: next(),
    })
}

/// ROC AUC of the melanoma probability (NaN when one label is absent).
fn auc(cases: &[MelanomaCase]) -> f64 {
    let scores: Vec<f64> = cases.iter().map(|c| c.melanoma_prob).collect();
    let truth: Vec<bool> = cases.iter().map(|c| c.melanoma).collect();
    roc_auc(&scores, &truth).unwrap_or(f64::NAN)
}

fn sensitivity(cases: &[MelanomaCase]) -> f64 {
    let positives: Vec<_> = cases.iter().filter(|c| c.melanoma).copied().collect();
    rate(&positives, |c| c.referred)
}

fn specificity(cases: &[MelanomaCase]) -> f64 {
    let negatives: Vec<_> = cases.iter().filter(|c| !c.melanoma).copied().collect();
    rate(&negatives, |c| !c.referred)
}

/// Share of `cases` for which `hit` holds (NaN for none).
fn rate(cases: &[MelanomaCase], hit: impl Fn(&MelanomaCase) -> bool) -> f64 {
    if cases.is_empty() {
        return f64::NAN;
    }
    cases.iter().filter(|c| hit(c)).count() as f64 / cases.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(melanoma_prob: f64, referred: bool, abstained: bool, melanoma: bool) -> MelanomaCase {
        MelanomaCase {
            melanoma_prob,
            referred,
            abstained,
            melanoma,
        }
    }

    #[test]
    fn known_answer_on_six_images() {
        // Melanomas score 0.9, 0.6, 0.3; others 0.7, 0.2, 0.1. Pairs (mel > other): 0.9 beats
        // all 3, 0.6 beats 2, 0.3 beats 2 → 7 of 9.
        let cases = [
            case(0.9, true, false, true),
            case(0.6, true, false, true),
            case(0.3, false, true, true),
            case(0.7, true, false, false),
            case(0.2, false, false, false),
            case(0.1, false, true, false),
        ];
        let e = evaluate_melanoma(&cases, BootstrapConfig::default()).unwrap();
        assert_eq!((e.images, e.melanomas), (6, 3));
        assert!((e.auc.unwrap().estimate - 7.0 / 9.0).abs() < 1e-12);
        assert!((e.sensitivity.unwrap().estimate - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.specificity.unwrap().estimate - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.refer_rate.unwrap().estimate - 0.5).abs() < 1e-12);
        assert!((e.abstention_rate.unwrap().estimate - 1.0 / 3.0).abs() < 1e-12);
        let auc = e.auc.unwrap();
        assert!(auc.low <= auc.estimate && auc.estimate <= auc.high);
    }

    #[test]
    fn one_sided_sets_have_no_auc_and_bad_input_is_refused() {
        let all_mel = [case(0.9, true, false, true), case(0.4, false, false, true)];
        let e = evaluate_melanoma(&all_mel, BootstrapConfig::default()).unwrap();
        assert!(e.auc.is_none() && e.specificity.is_none());
        assert_eq!(e.sensitivity.unwrap().estimate, 0.5);
        assert!(evaluate_melanoma(&[], BootstrapConfig::default()).is_err());
        let nan = [case(f64::NAN, false, false, true)];
        assert!(matches!(
            evaluate_melanoma(&nan, BootstrapConfig::default()),
            Err(CalibrationError::NonFinite { row: 0, .. })
        ));
    }
}
