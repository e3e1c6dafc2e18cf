//! `dermo baseline`: the classical comparison model. ABCD features ([`super::abcd`]),
//! standardized, into a multinomial logistic regression (linfa), trained with every class
//! equally represented and evaluated with the same metrics and intervals as the CNN.

use super::abcd::{lesion_features, FEATURES, FEATURE_NAMES};
use super::network::progress_bar;
use super::record::{
    class_codes, malignant_group, measure, predictions_path, write_predictions, write_record,
    EvalRecord, Outcome,
};
use super::tta::Tta;
use crate::data::manifest::Manifest;
use crate::files::now;
use anyhow::Context;
use clap::Args;
use dermo_calibration::BootstrapConfig;
use dermo_model::NUM_CLASSES;
use linfa::traits::Fit;
use linfa::Dataset;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `dermo baseline`.
#[derive(Args, Debug)]
pub struct BaselineArgs {
    /// Training manifest (rows with a mask_path use the lesion mask; others an Otsu segmentation).
    #[arg(long)]
    pub train: PathBuf,
    /// Manifest to evaluate on (usually the test split).
    #[arg(long)]
    pub test: PathBuf,
    /// Where to write eval.json (predictions and the fitted model go beside it).
    #[arg(long, default_value = "work/baseline/eval.json")]
    pub out: PathBuf,
    /// L2 penalty of the logistic regression (on standardized features).
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// L-BFGS iterations.
    #[arg(long, default_value_t = 300)]
    pub max_iterations: u64,
    /// Bootstrap resamples (of lesions) for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The fitted baseline, saved beside eval.json as NAME.model.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineModel {
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// `[features, classes]` weights on standardized features.
    pub weights: Vec<Vec<f64>>,
    pub intercept: Vec<f64>,
    /// Class index of each weight column.
    pub classes: Vec<usize>,
}

impl BaselineModel {
    /// Class probabilities (`[images, NUM_CLASSES]`; classes unseen in training get 0).
    pub fn probabilities(&self, features: &Array2<f64>) -> Array2<f64> {
        let mut out = Array2::zeros((features.nrows(), NUM_CLASSES));
        for (i, row) in features.rows().into_iter().enumerate() {
            let z: Vec<f64> = (0..self.classes.len())
                .map(|k| {
                    self.intercept[k]
                        + row
                            .iter()
                            .enumerate()
                            .map(|(j, &x)| (x - self.mean[j]) / self.std[j] * self.weights[j][k])
                            .sum::<f64>()
                })
                .collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exp: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
            let sum: f64 = exp.iter().sum();
            for (k, &c) in self.classes.iter().enumerate() {
                out[[i, c]] = exp[k] / sum;
            }
        }
        out
    }
}

/// Features, labels and ids of a manifest.
pub struct FeatureTable {
    pub features: Array2<f64>,
    pub labels: Vec<usize>,
    pub image_ids: Vec<String>,
    pub lesion_ids: Vec<String>,
    pub manifest_hash: String,
}

/// Computes the ABCD features of every image of a manifest (in parallel, with a progress bar).
pub fn feature_table(manifest: &Path, progress: bool) -> anyhow::Result<FeatureTable> {
    let m = Manifest::load(manifest)?;
    anyhow::ensure!(
        !m.is_empty(),
        "{}: the manifest has no images",
        manifest.display()
    );
    let bar = progress_bar(m.len() as u64, progress);
    bar.set_message("features");
    let rows: Vec<[f64; FEATURES]> = m
        .records
        .par_iter()
        .map(|r| {
            let f = lesion_features(&r.path, r.mask_path.as_deref());
            bar.inc(1);
            f
        })
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("computing features of {}", manifest.display()))?;
    bar.finish_and_clear();
    let mut features = Array2::zeros((rows.len(), FEATURES));
    for (mut dst, src) in features.rows_mut().into_iter().zip(&rows) {
        dst.assign(&ndarray::ArrayView1::from(&src[..]));
    }
    Ok(FeatureTable {
        features,
        labels: m.records.iter().map(|r| r.label.index()).collect(),
        image_ids: m.records.iter().map(|r| r.image_id.clone()).collect(),
        lesion_ids: m.records.iter().map(|r| r.lesion_id.clone()).collect(),
        manifest_hash: m.hash(),
    })
}

/// Fits the standardized multinomial logistic regression, each class replicated up to the
/// size of the largest so that every class weighs the same.
pub fn fit(table: &FeatureTable, alpha: f64, max_iterations: u64) -> anyhow::Result<BaselineModel> {
    let x = &table.features;
    let mean = x.mean_axis(Axis(0)).context("no training rows")?;
    let std = x
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-12 { s } else { 1.0 });
    let standardized = (x - &mean) / &std;
    let mut counts = [0usize; NUM_CLASSES];
    for &l in &table.labels {
        counts[l] += 1;
    }
    let largest = counts.iter().copied().max().unwrap_or(0);
    let mut rows = Vec::new();
    for c in 0..NUM_CLASSES {
        let members: Vec<usize> = (0..table.labels.len())
            .filter(|&i| table.labels[i] == c)
            .collect();
        if members.is_empty() {
            continue;
        }
        rows.extend((0..largest).map(|k| members[k % members.len()]));
    }
    let records = standardized.select(Axis(0), &rows);
    let targets: Array1<usize> = rows.iter().map(|&i| table.labels[i]).collect();
    let fitted = MultiLogisticRegression::default()
        .alpha(alpha)
        .max_iterations(max_iterations)
        .fit(&Dataset::new(records, targets))
        .context("fitting the logistic regression")?;
    Ok(BaselineModel {
        features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        mean: mean.to_vec(),
        std: std.to_vec(),
        weights: fitted
            .params()
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect(),
        intercept: fitted.intercept().to_vec(),
        classes: fitted.classes().to_vec(),
    })
}

pub fn run_baseline(a: BaselineArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let train = feature_table(&a.train, true)?;
    let test = feature_table(&a.test, true)?;
    let model = fit(&train, a.alpha, a.max_iterations)?;
    let record = evaluate(
        &model,
        &test,
        &a.test,
        BootstrapConfig {
            resamples: a.resamples,
            seed: a.seed,
            level: 0.95,
        },
        started.elapsed().as_secs_f64(),
        &a.out,
    )?;
    let model_path = a.out.with_extension("model.json");
    crate::files::write_atomic(&model_path, &serde_json::to_vec_pretty(&model)?)
        .with_context(|| format!("cannot write {}", model_path.display()))?;
    super::evaluation::print_summary(&record, &a.out);
    Ok(())
}

/// Evaluates the baseline on a feature table and writes eval.json + predictions.
pub fn evaluate(
    model: &BaselineModel,
    test: &FeatureTable,
    data: &Path,
    bootstrap: BootstrapConfig,
    seconds: f64,
    out: &Path,
) -> anyhow::Result<EvalRecord> {
    let probabilities = model.probabilities(&test.features);
    let (metrics, before) = measure(
        probabilities.view(),
        probabilities.view(),
        &test.labels,
        &test.lesion_ids,
        0.5,
        bootstrap,
    )?;
    let record = EvalRecord {
        model: "baseline: ABCD features + multinomial logistic regression (linfa)".into(),
        data: data.to_owned(),
        manifest_hash: test.manifest_hash.clone(),
        tta: Tta::None,
        classes: class_codes(),
        temperature: 1.0,
        calibration: None,
        metrics,
        reliability_uncalibrated: before,
        decisions: None,
        seconds,
        created: now(),
    };
    write_record(out, &record)?;
    write_predictions(
        &predictions_path(out),
        &test.image_ids,
        &test.lesion_ids,
        &test.labels,
        probabilities.view(),
        &baseline_outcomes(probabilities.view()),
    )?;
    Ok(record)
}

/// The baseline refers at p(malignant) ≥ 0.5 and never abstains: it has no device decision.
fn baseline_outcomes(probabilities: ndarray::ArrayView2<f64>) -> Vec<Outcome> {
    let group = malignant_group();
    probabilities
        .rows()
        .into_iter()
        .map(|row| Outcome {
            refer: group.classes().iter().map(|&c| row[c]).sum::<f64>() >= 0.5,
            abstain: "",
        })
        .collect()
}
