//! Known-answer tests: every expected number was computed by hand or by scikit-learn / SciPy on
//! the same fixed arrays; `calibration/tests/reference.py` reproduces the library-computed ones.

use dermo_calibration::int8::{ActivationHistogram, RangeMethod};
use dermo_calibration::minimize::minimize_bounded;
use dermo_calibration::temperature::nll_gradient_log_t;
use dermo_calibration::*;
use ndarray::{array, Array2};

/// Ten samples, four classes (the `PROBS` array of reference.py). Rows 2/3 and 6/7 tie.
fn probs() -> Array2<f64> {
    array![
        [0.70, 0.10, 0.10, 0.10],
        [0.20, 0.50, 0.20, 0.10],
        [0.40, 0.40, 0.10, 0.10],
        [0.40, 0.30, 0.20, 0.10],
        [0.10, 0.10, 0.60, 0.20],
        [0.25, 0.25, 0.25, 0.25],
        [0.10, 0.20, 0.30, 0.40],
        [0.10, 0.20, 0.30, 0.40],
        [0.05, 0.05, 0.10, 0.80],
        [0.30, 0.10, 0.50, 0.10],
    ]
}
const LABELS: [usize; 10] = [0, 1, 1, 0, 2, 3, 3, 2, 3, 0];

fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "expected {expected}, got {actual}"
    );
}

mod confusion_metrics {
    use super::*;

    #[test]
    fn matches_sklearn_on_fixed_arrays() {
        let cm = ConfusionMatrix::from_scores(probs().view(), &LABELS).unwrap();
        // sklearn.metrics.confusion_matrix(LABELS, PROBS.argmax(1), labels=[0, 1, 2, 3])
        let expected = array![[2u64, 0, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 2]];
        assert_eq!(cm.counts(), expected.view());
        // sklearn.metrics.accuracy_score → 0.6
        close(cm.accuracy(), 0.6, 1e-12);
        // sklearn.metrics.balanced_accuracy_score → 0.5833333333333333
        close(cm.balanced_accuracy(), 0.5833333333333333, 1e-12);
        // sklearn.metrics.precision_recall_fscore_support(..., labels=[0, 1, 2, 3], zero_division=0)
        let precision = [0.5, 1.0, 0.5, 0.6666666666666666];
        let recall = [0.6666666666666666, 0.5, 0.5, 0.6666666666666666];
        let f1 = [
            0.5714285714285714,
            0.6666666666666666,
            0.5,
            0.6666666666666666,
        ];
        for (c, m) in cm.per_class().iter().enumerate() {
            close(m.precision, precision[c], 1e-12);
            close(m.recall, recall[c], 1e-12);
            close(m.f1, f1[c], 1e-12);
        }
        // f1_score(average="macro", zero_division=0) → 0.6011904761904762
        close(cm.macro_f1(), 0.6011904761904762, 1e-12);
        // Specificity by hand: class 0 has 7 negatives, 2 of them predicted 0 → 5/7.
        close(cm.class_metrics(0).specificity, 5.0 / 7.0, 1e-12);
        // Class 1: 8 negatives, none predicted 1 → 1.
        close(cm.class_metrics(1).specificity, 1.0, 1e-12);
    }

    #[test]
    fn balanced_accuracy_skips_classes_without_support() {
        // Class 2 never occurs; recalls are 1/2 (class 0) and 1 (class 1) → 0.75, as sklearn
        // (which also ignores predicted-only classes).
        let cm = ConfusionMatrix::from_predictions(&[0, 0, 1], &[0, 2, 1], 3).unwrap();
        close(cm.balanced_accuracy(), 0.75, 1e-12);
        assert_eq!(cm.recall(2), None);
        let unused = cm.class_metrics(2);
        assert_eq!(
            (unused.support, unused.predicted, unused.precision),
            (0, 1, 0.0)
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            ConfusionMatrix::from_predictions(&[0, 3], &[0, 1], 3),
            Err(CalibrationError::LabelOutOfRange {
                row: 1,
                label: 3,
                ..
            })
        ));
        assert!(matches!(
            ConfusionMatrix::from_scores(probs().view(), &LABELS[..9]),
            Err(CalibrationError::LengthMismatch {
                rows: 10,
                labels: 9,
                ..
            })
        ));
        let mut bad = probs();
        bad[[4, 1]] = f64::NAN;
        let err = ConfusionMatrix::from_scores(bad.view(), &LABELS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "confusion matrix: non-finite value at row 4"
        );
    }
}

mod roc_auc {
    use super::*;

    #[test]
    fn one_vs_rest_matches_sklearn_with_ties() {
        let auc = one_vs_rest_auc(probs().view(), &LABELS).unwrap();
        // roc_auc_score(LABELS == c, PROBS[:, c]) for c = 0..3
        let expected = [0.9285714285714285, 1.0, 0.90625, 0.9285714285714286];
        for (a, e) in auc.iter().zip(expected) {
            close(a.unwrap(), e, 1e-12);
        }
        // roc_auc_score(LABELS, PROBS, multi_class="ovr", average="macro") → 0.9408482142857142
        close(macro_auc(&auc).unwrap(), 0.9408482142857142, 1e-12);
    }

    #[test]
    fn curve_matches_sklearn_and_its_area_is_the_auc() {
        let scores = probs().column(1).to_vec();
        let positive: Vec<bool> = LABELS.iter().map(|&l| l == 1).collect();
        let curve = roc_curve(&scores, &positive).unwrap();
        // roc_curve(LABELS == 1, PROBS[:, 1], drop_intermediate=False)
        assert_eq!(
            curve.false_positive_rate,
            [0.0, 0.0, 0.0, 0.125, 0.25, 0.5, 0.875, 1.0]
        );
        assert_eq!(
            curve.true_positive_rate,
            [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(
            curve.thresholds,
            [f64::INFINITY, 0.5, 0.4, 0.3, 0.25, 0.2, 0.1, 0.05]
        );
        // The trapezoid area of the class-2 curve (which has tied scores) equals the rank AUC.
        let scores = probs().column(2).to_vec();
        let positive: Vec<bool> = LABELS.iter().map(|&l| l == 2).collect();
        let c = roc_curve(&scores, &positive).unwrap();
        let area: f64 = (1..c.false_positive_rate.len())
            .map(|i| {
                (c.false_positive_rate[i] - c.false_positive_rate[i - 1])
                    * (c.true_positive_rate[i] + c.true_positive_rate[i - 1])
                    / 2.0
            })
            .sum();
        close(area, roc_auc(&scores, &positive).unwrap(), 1e-12);
    }

    #[test]
    fn all_ties_give_one_half_and_one_class_is_an_error() {
        close(
            roc_auc(&[0.3; 4], &[true, false, true, false]).unwrap(),
            0.5,
            1e-12,
        );
        assert!(matches!(
            roc_auc(&[0.1, 0.2], &[true, true]),
            Err(CalibrationError::OneSided {
                positives: 2,
                negatives: 0,
                ..
            })
        ));
        // A class missing from the labels has no AUC and drops out of the macro mean.
        let auc = one_vs_rest_auc(probs().view(), &[0, 1, 1, 0, 1, 3, 3, 1, 3, 0]).unwrap();
        assert_eq!(auc[2], None);
        assert!(macro_auc(&auc).is_some());
    }
}

mod triage {
    use super::*;

    fn group() -> (Vec<f64>, Vec<bool>) {
        let g = MalignantGroup::new(&[0, 1], 4).unwrap();
        g.scores_and_truth(probs().view(), &LABELS).unwrap()
    }

    #[test]
    fn sensitivity_and_specificity_at_a_threshold() {
        let (scores, truth) = group();
        let at = operating_point(&scores, &truth, 0.5).unwrap();
        // sklearn.metrics.confusion_matrix(truth, score >= 0.5).ravel() → tn 4, fp 1, fn 1, tp 4
        assert_eq!(
            (
                at.true_negatives,
                at.false_positives,
                at.false_negatives,
                at.true_positives
            ),
            (4, 1, 1, 4)
        );
        close(at.sensitivity, 0.8, 1e-12);
        close(at.specificity, 0.8, 1e-12);
        // roc_auc_score(np.isin(LABELS, [0, 1]), PROBS[:, 0] + PROBS[:, 1]) → 0.96
        close(roc_auc(&scores, &truth).unwrap(), 0.96, 1e-12);
    }

    #[test]
    fn refer_threshold_reaches_the_target_with_the_best_specificity() {
        // By hand: positive scores 0.8 0.8 0.7 0.7 0.4; negatives 0.5 0.3 0.3 0.2 0.1.
        let (scores, truth) = group();
        // 95% of 5 positives needs all 5 → threshold 0.4, the negative at 0.5 is referred too.
        let p = threshold_for_sensitivity(&scores, &truth, 0.95).unwrap();
        close(p.threshold, 0.4, 1e-12);
        close(p.sensitivity, 1.0, 1e-12);
        close(p.specificity, 0.8, 1e-12);
        // 80% needs 4 → 0.7, which no negative reaches.
        let p = threshold_for_sensitivity(&scores, &truth, 0.8).unwrap();
        close(p.threshold, 0.7, 1e-12);
        close(p.sensitivity, 0.8, 1e-12);
        close(p.specificity, 1.0, 1e-12);
        // 60% needs 3; the third score 0.7 ties with the fourth, so 4 are caught.
        let p = threshold_for_sensitivity(&scores, &truth, 0.6).unwrap();
        close(p.threshold, 0.7, 1e-12);
        close(p.sensitivity, 0.8, 1e-12);
        assert!(threshold_for_sensitivity(&scores, &truth, 1.5).is_err());
    }

    #[test]
    fn group_must_be_valid() {
        assert!(MalignantGroup::new(&[], 7).is_err());
        assert!(MalignantGroup::new(&[0, 0], 7).is_err());
        assert!(MalignantGroup::new(&[7], 7).is_err());
        let g = MalignantGroup::new(&[4, 0, 1], 7).unwrap();
        assert_eq!(g.classes(), [0, 1, 4]);
    }
}

mod reliability_bins {
    use super::*;

    #[test]
    fn ece_by_hand() {
        // Confidences 0.7 0.5 0.4 0.4 0.6 0.25 0.4 0.4 0.8 0.5, correct 1 1 0 1 1 0 1 0 1 0.
        // (0.2,0.4]: 5 samples, confidence 0.37, accuracy 0.4 → gap 0.03
        // (0.4,0.6]: 3 samples, confidence 1.6/3, accuracy 2/3 → gap 0.1333…
        // (0.6,0.8]: 2 samples, confidence 0.75, accuracy 1 → gap 0.25
        // ECE = 0.5·0.03 + 0.3·0.1333… + 0.2·0.25 = 0.105; MCE = 0.25.
        let r = reliability(probs().view(), &LABELS, 5).unwrap();
        let counts: Vec<usize> = r.bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, [0, 5, 3, 2, 0]);
        close(r.bins[1].mean_confidence, 0.37, 1e-12);
        close(r.bins[1].accuracy, 0.4, 1e-12);
        close(r.bins[2].mean_confidence, 1.6 / 3.0, 1e-12);
        close(r.ece, 0.105, 1e-12);
        close(r.mce, 0.25, 1e-12);
        assert!(reliability(probs().view(), &LABELS, 0).is_err());
    }
}

mod temperature_scaling {
    use super::*;

    #[test]
    fn brent_finds_known_minima() {
        let m = minimize_bounded(f64::cos, 3.0, 4.0, 1e-10, 100).unwrap();
        close(m.x, std::f64::consts::PI, 1e-7);
        let m = minimize_bounded(|x| (x - 2.0).powi(2) + 1.0, 0.0, 10.0, 1e-10, 100).unwrap();
        close(m.x, 2.0, 1e-7);
        close(m.value, 1.0, 1e-12);
        // Parabolic steps make a quadratic cheap; pure golden section would need ~50 calls.
        assert!(m.evaluations < 20, "{} evaluations", m.evaluations);
        // A monotone function ends at the bound.
        let m = minimize_bounded(|x| x, -1.0, 1.0, 1e-10, 200).unwrap();
        close(m.x, -1.0, 1e-6);
    }

    #[test]
    fn softmax_by_hand() {
        // exp([1,2,3]) / Σ = [0.09003057317038046, 0.24472847105479767, 0.6652409557748219]
        let p = softmax(array![[1.0, 2.0, 3.0]].view(), 1.0);
        close(p[[0, 0]], 0.09003057317038046, 1e-15);
        close(p[[0, 2]], 0.6652409557748219, 1e-15);
        // T = 2 halves the logits: exp([0.5,1,1.5]) / Σ.
        let p = softmax(array![[1.0, 2.0, 3.0]].view(), 2.0);
        close(p[[0, 0]], 0.1863237232258476, 1e-15);
        // Large logits stay finite.
        let p = softmax(array![[1000.0, 0.0]].view(), 1.0);
        close(p[[0, 0]], 1.0, 1e-15);
    }

    #[test]
    fn analytic_two_class_temperature() {
        // All logits [2, 0]; three labels 0 and one label 1. The NLL is smallest where
        // σ(2/T) = 3/4, i.e. T = 2 / ln 3 = 1.8204784532536746.
        let logits = array![[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]];
        let fit = fit_temperature(logits.view(), &[0, 0, 0, 1]).unwrap();
        close(fit.temperature, 2.0 / 3f64.ln(), 1e-7);
        assert!(!fit.at_bound);
        assert!(fit.gradient.abs() < 1e-6);
        // NLL at the optimum = −(¾ ln ¾ + ¼ ln ¼) = 0.5623351446188083.
        close(fit.nll_after, 0.5623351446188083, 1e-12);
    }

    #[test]
    fn matches_scipy_on_fixed_logits() {
        // reference.py: minimize_scalar(nll, bounds=(ln 0.05, ln 20), method="bounded",
        // options={"xatol": 1e-10}) → T 1.260882188570858, NLL 0.723927659669261; NLL(T=1)
        // 0.7387189868264257.
        let logits = array![
            [2.0, 0.5, -1.0],
            [1.5, 1.4, 0.0],
            [0.2, 2.5, -0.5],
            [3.0, -1.0, 0.5],
            [-0.5, 0.0, 1.0],
            [1.0, 2.0, 0.0],
            [4.0, 0.0, 0.0],
            [0.0, 3.0, 1.0],
        ];
        let labels = [0, 1, 1, 2, 2, 0, 0, 1];
        let fit = fit_temperature(logits.view(), &labels).unwrap();
        close(fit.temperature, 1.260882188570858, 1e-6);
        close(fit.nll_after, 0.723927659669261, 1e-12);
        close(fit.nll_before, 0.7387189868264257, 1e-12);
        // The analytic derivative agrees with a central difference.
        let h = 1e-5;
        let numeric = (nll(logits.view(), &labels, (0.3f64 + h).exp()).unwrap()
            - nll(logits.view(), &labels, (0.3f64 - h).exp()).unwrap())
            / (2.0 * h);
        close(
            nll_gradient_log_t(logits.view(), &labels, 0.3f64.exp()).unwrap(),
            numeric,
            1e-8,
        );
    }

    #[test]
    fn separable_data_hits_the_lower_bound() {
        // Every prediction right: sharper is always better, so T goes to the bottom of its range.
        let logits = array![[3.0, 0.0], [0.0, 3.0]];
        let fit = fit_temperature(logits.view(), &[0, 1]).unwrap();
        assert!(fit.at_bound);
        close(fit.temperature, temperature::TEMPERATURE_RANGE.0, 1e-4);
        assert!(nll(logits.view(), &[0, 1], 0.0).is_err());
    }
}

mod group_bootstrap {
    use super::*;

    fn mean_of(values: &[f64]) -> impl Fn(&[usize]) -> f64 + '_ {
        move |rows| rows.iter().map(|&r| values[r]).sum::<f64>() / rows.len() as f64
    }

    #[test]
    fn resamples_whole_lesions() {
        let groups = ["a", "a", "a", "b", "c", "c"];
        let b = GroupBootstrap::new(&groups, BootstrapConfig::default()).unwrap();
        assert_eq!(b.groups(), 3);
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let rows = b.draw(&mut rng);
            let count = |r: usize| rows.iter().filter(|&&x| x == r).count();
            // Images of one lesion always travel together.
            assert_eq!(count(0), count(1));
            assert_eq!(count(1), count(2));
            assert_eq!(count(4), count(5));
            // Three lesions are drawn, whatever their sizes.
            assert_eq!(count(0) + count(3) + count(4), 3);
        }
    }

    #[test]
    fn interval_matches_the_binomial_width() {
        // 400 single-image lesions, half of them 1: the mean's bootstrap distribution is
        // Binomial(400, ½)/400, so the 95% interval is ≈ 0.5 ± 1.96·√(¼/400) = 0.5 ± 0.049.
        let values: Vec<f64> = (0..400).map(|i| (i % 2) as f64).collect();
        let ids: Vec<usize> = (0..400).collect();
        let b = GroupBootstrap::new(
            &ids,
            BootstrapConfig {
                resamples: 2000,
                seed: 3,
                level: 0.95,
            },
        )
        .unwrap();
        let i = b.interval(0.5, mean_of(&values)).unwrap();
        assert_eq!(i.resamples, 2000);
        close(i.low, 0.451, 0.01);
        close(i.high, 0.549, 0.01);
    }

    #[test]
    fn grouping_widens_the_interval_and_seeds_repeat() {
        // 40 lesions × 10 identical images: the evidence is 40 lesions, not 400 images.
        let values: Vec<f64> = (0..400).map(|i| ((i / 10) % 2) as f64).collect();
        let lesions: Vec<usize> = (0..400).map(|i| i / 10).collect();
        let images: Vec<usize> = (0..400).collect();
        let config = BootstrapConfig::default();
        let by_lesion = GroupBootstrap::new(&lesions, config).unwrap();
        let by_image = GroupBootstrap::new(&images, config).unwrap();
        let grouped = by_lesion.interval(0.5, mean_of(&values)).unwrap();
        let naive = by_image.interval(0.5, mean_of(&values)).unwrap();
        let (gw, nw) = (grouped.high - grouped.low, naive.high - naive.low);
        // Expected widths 2·1.96·√(¼/40) = 0.31 and 2·1.96·√(¼/400) = 0.098.
        close(gw, 0.31, 0.04);
        close(nw, 0.098, 0.015);
        // The same seed repeats the same resamples; another seed draws others.
        let spread: Vec<f64> = (0..400).map(|i| (i * 37 % 101) as f64).collect();
        let first = by_lesion.interval(50.0, mean_of(&spread));
        assert_eq!(by_lesion.interval(50.0, mean_of(&spread)), first);
        let other = GroupBootstrap::new(&lesions, BootstrapConfig { seed: 9, ..config }).unwrap();
        assert_ne!(other.interval(50.0, mean_of(&spread)), first);
    }

    #[test]
    fn undefined_statistics_are_skipped_or_none() {
        let ids = [0, 1, 2, 3];
        let b = GroupBootstrap::new(&ids, BootstrapConfig::default()).unwrap();
        let intervals = b.intervals(&[1.0, f64::NAN], |_| vec![1.0, f64::NAN]);
        assert_eq!(intervals[0].unwrap().low, 1.0);
        assert_eq!(intervals[1], None);
        assert!(GroupBootstrap::new::<u8>(&[], BootstrapConfig::default()).is_err());
        let bad = BootstrapConfig {
            level: 1.0,
            ..Default::default()
        };
        assert!(GroupBootstrap::new(&ids, bad).is_err());
    }
}

mod int8_ranges {
    use super::*;

    #[test]
    fn histogram_grows_by_merging_bins() {
        let mut h = ActivationHistogram::new(4).unwrap();
        h.observe(&[1.0, -0.1]).unwrap();
        close(h.bin_width(), 0.25, 0.0);
        assert_eq!(h.counts(), [1, 0, 0, 1]);
        // 3.0 needs the range doubled twice (limit 1 → 4): bins merge pairwise each time.
        h.observe(&[3.0]).unwrap();
        close(h.bin_width(), 1.0, 0.0);
        assert_eq!(h.counts(), [2, 0, 0, 1]);
        let r = h.range(RangeMethod::MinMax).unwrap();
        assert_eq!((r.min, r.max), (-0.1, 3.0));
        close(r.symmetric_scale() as f64, 3.0 / 127.0, 1e-7);
        assert!(h.observe(&[f32::NAN]).is_err());
        assert!(ActivationHistogram::new(64)
            .unwrap()
            .range(RangeMethod::MinMax)
            .is_err());
    }

    #[test]
    fn percentile_by_hand() {
        // Values 1..=1000 in 1000 bins of width 1: bin k holds k (bin 999 also holds 1000).
        // 99% of 1000 values = 990 are reached inside bin 990 at its end → 991.
        let values: Vec<f32> = (1..=1000).map(|v| v as f32).collect();
        let mut h = ActivationHistogram::new(1000).unwrap();
        h.observe(&values).unwrap();
        let r = h.range(RangeMethod::Percentile(99.0)).unwrap();
        assert_eq!((r.min, r.max), (1.0, 991.0));
        assert!(h.range(RangeMethod::Percentile(0.0)).is_err());
    }

    #[test]
    fn entropy_matches_the_reference_implementation() {
        // Half-Gaussian counts floor(1e4·exp(−c²/2)) at bin centres c of 512 bins on [0, 16],
        // plus one outlier at 16. reference.py (MXNet `_get_optimal_threshold` on magnitudes,
        // `scipy.stats.entropy(smooth(p), smooth(q))`): 128 levels → 4.28125, 32 → 4.15625.
        let width = 16.0 / 512.0;
        let mut h = ActivationHistogram::new(512).unwrap();
        h.observe(&[16.0]).unwrap();
        for k in 0..512 {
            let centre = (k as f64 + 0.5) * width;
            let count = (1e4 * (-0.5 * centre * centre).exp()).floor() as usize;
            h.observe(&vec![centre as f32; count]).unwrap();
        }
        assert_eq!(h.total(), 400_992);
        let entropy = |levels| {
            h.range(RangeMethod::Entropy {
                quantized_bins: levels,
            })
            .unwrap()
        };
        assert_eq!(entropy(128).max, 4.28125);
        // Only positive values were seen, so the lower end stays the smallest one (1/64).
        assert_eq!(entropy(128).min, 0.015625);
        assert_eq!(entropy(32).max, 4.15625);
        // Min-max keeps the outlier, which would waste 3/4 of the int8 levels.
        assert_eq!(h.range(RangeMethod::MinMax).unwrap().max, 16.0);
    }
}

mod full_evaluation {
    use super::*;

    #[test]
    fn estimates_match_the_known_answers_and_intervals_bracket_them() {
        let groups: Vec<String> = ["l1", "l1", "l2", "l3", "l4", "l5", "l5", "l6", "l7", "l8"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = EvaluationOptions {
            malignant: MalignantGroup::new(&[0, 1], 4).unwrap(),
            refer_threshold: 0.5,
            bootstrap: BootstrapConfig {
                resamples: 200,
                seed: 1,
                level: 0.95,
            },
            reliability_bins: 5,
        };
        let e = evaluate(probs().view(), &LABELS, &groups, &options).unwrap();
        assert_eq!((e.images, e.groups), (10, 8));
        close(e.accuracy.unwrap().estimate, 0.6, 1e-12);
        close(
            e.balanced_accuracy.unwrap().estimate,
            0.5833333333333333,
            1e-12,
        );
        close(e.macro_auc.unwrap().estimate, 0.9408482142857142, 1e-12);
        close(e.ece.unwrap().estimate, 0.105, 1e-12);
        close(e.triage.sensitivity.unwrap().estimate, 0.8, 1e-12);
        close(e.triage.auc.unwrap().estimate, 0.96, 1e-12);
        // sklearn.metrics.log_loss(LABELS, PROBS) = mean −ln p(true class) by hand:
        let log_loss = -[0.7f64, 0.5, 0.4, 0.4, 0.6, 0.25, 0.4, 0.3, 0.8, 0.3]
            .iter()
            .map(|p| p.ln())
            .sum::<f64>()
            / 10.0;
        close(e.log_loss.unwrap().estimate, log_loss, 1e-12);
        close(e.per_class[1].precision.unwrap().estimate, 1.0, 1e-12);
        assert_eq!(e.confusion[0], [2, 0, 1, 0]);
        for i in [
            e.accuracy,
            e.balanced_accuracy,
            e.macro_f1,
            e.per_class[0].recall,
        ] {
            let i = i.unwrap();
            assert!(i.low <= i.estimate && i.estimate <= i.high, "{i:?}");
            assert!(i.low < i.high, "{i:?}");
        }
        // The record round-trips through JSON (infinite ROC thresholds become null and back).
        let json = serde_json::to_string(&e).unwrap();
        let back: Evaluation = serde_json::from_str(&json).unwrap();
        assert_eq!(back.confusion, e.confusion);
        assert_eq!(back.per_class.len(), 4);
        close(back.ece.unwrap().estimate, 0.105, 1e-12);
        assert_eq!(back.triage.roc.unwrap().thresholds[0], f64::INFINITY);
    }
}
