//! Every metric of a labelled set of predictions with its lesion-grouped bootstrap interval, in
//! one serializable record (the body of `eval.json`).

use crate::bootstrap::{BootstrapConfig, GroupBootstrap, Interval};
use crate::confusion::ConfusionMatrix;
use crate::error::{check_scores, CalibrationError, Result};
use crate::reliability::{reliability, Reliability};
use crate::roc::{macro_auc, one_vs_rest_curves, roc_auc, roc_curve, RocCurve};
use crate::triage::{operating_point, MalignantGroup, OperatingPoint};
use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// What to evaluate besides the plain multi-class metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationOptions {
    pub malignant: MalignantGroup,
    /// Refer when the malignant group's probability is at or above this.
    pub refer_threshold: f64,
    pub bootstrap: BootstrapConfig,
    pub reliability_bins: usize,
}

/// One class against the rest. Intervals are `None` where the metric is undefined on the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassEvaluation {
    pub support: u64,
    pub precision: Option<Interval>,
    pub recall: Option<Interval>,
    pub f1: Option<Interval>,
    pub specificity: Option<Interval>,
    pub auc: Option<Interval>,
}

/// The malignant-versus-benign question at the refer threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageEvaluation {
    pub classes: Vec<usize>,
    pub threshold: f64,
    pub point: Option<OperatingPoint>,
    pub sensitivity: Option<Interval>,
    pub specificity: Option<Interval>,
    pub auc: Option<Interval>,
    pub roc: Option<RocCurve>,
}

/// All metrics of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub images: usize,
    pub groups: usize,
    pub accuracy: Option<Interval>,
    pub balanced_accuracy: Option<Interval>,
    pub macro_f1: Option<Interval>,
    pub macro_auc: Option<Interval>,
    /// Mean −ln p(true class), probabilities clipped at 1e-15 as `sklearn.metrics.log_loss`.
    pub log_loss: Option<Interval>,
    pub ece: Option<Interval>,
    pub per_class: Vec<ClassEvaluation>,
    /// Rows = true class, columns = predicted class.
    pub confusion: Vec<Vec<u64>>,
    pub triage: TriageEvaluation,
    pub reliability: Reliability,
    /// One-vs-rest curves, `None` for a class absent from the labels.
    pub roc: Vec<Option<RocCurve>>,
    pub bootstrap: BootstrapConfig,
}

// Positions of the statistics in the vector one resample produces.
const OVERALL: usize = 9;
const PER_CLASS: usize = 5;

/// Evaluates probabilities (rows sum to 1) against labels; `groups[i]` is the lesion of row i.
pub fn evaluate(
    probabilities: ArrayView2<f64>,
    labels: &[usize],
    groups: &[String],
    options: &EvaluationOptions,
) -> Result<Evaluation> {
    const WHAT: &str = "evaluation";
    check_scores(WHAT, probabilities, labels)?;
    if groups.len() != labels.len() {
        return Err(CalibrationError::LengthMismatch {
            what: WHAT,
            rows: groups.len(),
            labels: labels.len(),
        });
    }
    let classes = probabilities.ncols();
    let bootstrap = GroupBootstrap::new(groups, options.bootstrap)?;
    let statistics = |rows: &[usize]| -> Vec<f64> {
        let p = probabilities.select(Axis(0), rows);
        let y: Vec<usize> = rows.iter().map(|&r| labels[r]).collect();
        statistics(p.view(), &y, options)
    };
    let all: Vec<usize> = (0..labels.len()).collect();
    let estimates = statistics(&all);
    let intervals = bootstrap.intervals(&estimates, statistics);

    let confusion = ConfusionMatrix::from_scores(probabilities, labels)?;
    let per_class = (0..classes)
        .map(|c| {
            let at = OVERALL + c * PER_CLASS;
            ClassEvaluation {
                support: confusion.class_metrics(c).support,
                precision: intervals[at],
                recall: intervals[at + 1],
                f1: intervals[at + 2],
                specificity: intervals[at + 3],
                auc: intervals[at + 4],
            }
        })
        .collect();
    let (scores, truth) = options.malignant.scores_and_truth(probabilities, labels)?;
    let triage = TriageEvaluation {
        classes: options.malignant.classes().to_vec(),
        threshold: options.refer_threshold,
        point: operating_point(&scores, &truth, options.refer_threshold).ok(),
        sensitivity: intervals[6],
        specificity: intervals[7],
        auc: intervals[8],
        roc: roc_curve(&scores, &truth).ok(),
    };
    Ok(Evaluation {
        images: labels.len(),
        groups: bootstrap.groups(),
        accuracy: intervals[0],
        balanced_accuracy: intervals[1],
        macro_f1: intervals[2],
        macro_auc: intervals[3],
        log_loss: intervals[4],
        ece: intervals[5],
        per_class,
        confusion: confusion.to_rows(),
        triage,
        reliability: reliability(probabilities, labels, options.reliability_bins)?,
        roc: one_vs_rest_curves(probabilities, labels)?,
        bootstrap: options.bootstrap,
    })
}

/// The statistics of one (re)sample in a fixed order; NaN marks an undefined value.
fn statistics(p: ArrayView2<f64>, y: &[usize], options: &EvaluationOptions) -> Vec<f64> {
    let classes = p.ncols();
    let Ok(confusion) = ConfusionMatrix::from_scores(p, y) else {
        return vec![f64::NAN; OVERALL + classes * PER_CLASS];
    };
    let class_auc: Vec<Option<f64>> = (0..classes)
        .map(|c| {
            let positive: Vec<bool> = y.iter().map(|&l| l == c).collect();
            roc_auc(&p.column(c).to_vec(), &positive).ok()
        })
        .collect();
    let log_loss = p
        .rows()
        .into_iter()
        .zip(y)
        .map(|(row, &label)| -row[label].clamp(1e-15, 1.0).ln())
        .sum::<f64>()
        / y.len() as f64;
    let ece = reliability(p, y, options.reliability_bins).map_or(f64::NAN, |r| r.ece);
    let (scores, truth) = options.malignant.scores_and_truth(p, y).unwrap_or_default();
    let point = operating_point(&scores, &truth, options.refer_threshold).ok();
    let mut out = vec![
        confusion.accuracy(),
        confusion.balanced_accuracy(),
        confusion.macro_f1(),
        macro_auc(&class_auc).unwrap_or(f64::NAN),
        log_loss,
        ece,
        point.map_or(f64::NAN, |o| o.sensitivity),
        point.map_or(f64::NAN, |o| o.specificity),
        roc_auc(&scores, &truth).unwrap_or(f64::NAN),
    ];
    for (c, auc) in class_auc.iter().enumerate() {
        let m = confusion.class_metrics(c);
        let defined = |ok: bool, v: f64| if ok { v } else { f64::NAN };
        let negatives = confusion.total() - m.support;
        out.extend([
            defined(m.predicted > 0, m.precision),
            defined(m.support > 0, m.recall),
            defined(m.support > 0, m.f1),
            defined(negatives > 0, m.specificity),
            auc.unwrap_or(f64::NAN),
        ]);
    }
    out
}
