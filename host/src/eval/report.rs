//! `dermo report`: an HTML page and a Markdown file, with PNG figures beside them, for a run
//! folder (training curves, calibration, every `eval*.json`, and where the model looked: each
//! sub-folder written by `dermo eval RUN --maps RUN/NAME`, as a pointing-game table and a grid of
//! captioned overlays) or a sweep folder (the results table and balanced accuracy against each
//! axis).

use super::calibrate::CalibrationFit;
use super::document::Document;
use super::maps::{add_gallery, MapsRecord, GALLERY_NOTE, MAPS_JSON};
use super::plots::{self, Series};
use super::record::{read_record, with_interval, EvalRecord};
use super::sweep_results::{self, SweepResults};
use crate::train::run_folder;
use anyhow::Context;
use clap::Args;
use dermo_calibration::Interval;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const HTML: &str = "index.html";
pub const MARKDOWN: &str = "report.md";

const DISCLAIMER: &str = "dermo is a decision-support tool, not a diagnosis. Models trained on \
HAM10000 inherit its CC BY-NC-SA 4.0 licence (non-commercial). Intervals are 95% percentile \
bootstrap intervals that resample lesions, not images.";

/// `dermo report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run folder (config.toml, metrics.csv, calibration-fit.json, eval*.json) or a sweep
    /// folder (sweep.json from `dermo sweep`).
    pub target: PathBuf,
    /// Output folder for index.html, report.md and the PNG figures.
    #[arg(long)]
    pub out: PathBuf,
    /// eval.json of the classical baseline (`dermo baseline`) to compare against.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

pub fn run_report(a: ReportArgs) -> anyhow::Result<()> {
    let html = write_report(&a.target, &a.out, a.baseline.as_deref())?;
    eprintln!(
        "written {} and {}",
        html.display(),
        a.out.join(MARKDOWN).display()
    );
    Ok(())
}

/// Writes the report of `target` into `out`; returns the HTML page's path.
pub fn write_report(target: &Path, out: &Path, baseline: Option<&Path>) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let baseline = baseline.map(read_record).transpose()?;
    let doc = if target.join(sweep_results::SWEEP_JSON).is_file() {
        sweep_document(target, out, baseline.as_ref())?
    } else {
        run_document(target, out, baseline.as_ref())?
    };
    let html = out.join(HTML);
    std::fs::write(&html, doc.to_html())
        .with_context(|| format!("cannot write {}", html.display()))?;
    let md = out.join(MARKDOWN);
    std::fs::write(&md, doc.to_markdown())
        .with_context(|| format!("cannot write {}", md.display()))?;
    Ok(html)
}

fn run_document(run: &Path, out: &Path, baseline: Option<&EvalRecord>) -> anyhow::Result<Document> {
    let mut doc = Document::new(format!("dermo report: {}", run.display()));
    doc.paragraph(DISCLAIMER);

    if let Ok(text) = std::fs::read_to_string(run.join(run_folder::RUN)) {
        let info: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}/run.json is not JSON", run.display()))?;
        doc.heading(2, "Run");
        let rows = [
            "started_at",
            "device",
            "train_manifest",
            "val_manifest",
            "seed",
            "mode",
            "source_commit",
        ]
        .iter()
        .filter_map(|k| info.get(*k).map(|v| vec![k.to_string(), json_text(v)]))
        .collect();
        doc.table(&["field", "value"], rows);
    }
    if let Ok(recipe) = std::fs::read_to_string(run.join(run_folder::CONFIG)) {
        doc.heading(3, "Recipe (config.toml)");
        doc.pre(recipe);
    }
    let metrics = run.join(run_folder::METRICS);
    if metrics.is_file() {
        training_curves(&mut doc, &metrics, out)?;
    }
    let fit_path = run.join(run_folder::CALIBRATION_FIT);
    if fit_path.is_file() {
        let text = std::fs::read_to_string(&fit_path)?;
        let fit: CalibrationFit = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a calibration fit", fit_path.display()))?;
        calibration_section(&mut doc, &fit);
    }
    let evals = eval_files(run)?;
    for path in &evals {
        let record = read_record(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        evaluation_section(&mut doc, &name, &record, out)?;
    }
    for dir in maps_folders(run)? {
        maps_section(&mut doc, &dir, out)?;
    }
    if let Some(b) = baseline {
        doc.heading(2, "Against the classical baseline");
        doc.paragraph(format!("Baseline: {} on {}.", b.model, b.data.display()));
        let mut rows = Vec::new();
        for path in &evals {
            let r = read_record(path)?;
            rows.push(comparison_row(&format!("CNN ({})", r.data.display()), &r));
        }
        rows.push(comparison_row("baseline", b));
        doc.table(&COMPARISON_HEADER, rows);
        evaluation_section(&mut doc, "baseline", b, out)?;
    }
    if evals.is_empty() && baseline.is_none() {
        doc.paragraph("No eval*.json in this folder yet: run `dermo eval RUN --data TEST.csv`.");
    }
    figures_table(&mut doc);
    Ok(doc)
}

const COMPARISON_HEADER: [&str; 5] = [
    "model",
    "balanced accuracy",
    "macro AUC",
    "malignant sensitivity",
    "malignant specificity",
];

fn comparison_row(name: &str, r: &EvalRecord) -> Vec<String> {
    let m = &r.metrics;
    vec![
        name.to_owned(),
        with_interval(&m.balanced_accuracy),
        with_interval(&m.macro_auc),
        with_interval(&m.triage.sensitivity),
        with_interval(&m.triage.specificity),
    ]
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `eval*.json` files of a folder, sorted by name.
pub fn eval_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with("eval") && name.ends_with(".json") && !name.ends_with(".model.json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Sub-folders of a run written by `dermo eval RUN --maps RUN/NAME` (they hold pointing.json),
/// sorted by name.
fn maps_folders(run: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(run)
        .with_context(|| format!("cannot list {}", run.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(MAPS_JSON).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The pointing game of one maps folder and its overlays as a grid; the overlays are copied
/// into `out/NAME/images/` so the report stands alone.
fn maps_section(doc: &mut Document, dir: &Path, out: &Path) -> anyhow::Result<()> {
    let record = MapsRecord::load(dir)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let g = &record.pointing_game;
    doc.heading(2, format!("Where the model looked: {name}"));
    doc.paragraph(format!(
        "{} on {}: the pointing game on {} images with a lesion mask ({}×{} maps). A hit is a map \
         whose peak for the predicted class lies on the lesion.",
        record.model,
        record.data.display(),
        g.images,
        g.side,
        g.side
    ));
    doc.table(
        &["the peak lands on the lesion", "fraction [95% interval]"],
        vec![
            vec!["the model's map".into(), with_interval(&g.hit_rate)],
            vec!["chance (mean lesion area)".into(), with_interval(&g.chance)],
            vec!["always the image centre".into(), with_interval(&g.centre)],
        ],
    );
    doc.paragraph(GALLERY_NOTE);
    for tile in record.gallery.iter().flat_map(|s| &s.tiles) {
        let (from, to) = (dir.join(&tile.file), out.join(&name).join(&tile.file));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(&from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    add_gallery(doc, &record.gallery, &format!("{name}/"));
    Ok(())
}

fn training_curves(doc: &mut Document, metrics: &Path, out: &Path) -> anyhow::Result<()> {
    let mut reader = csv::Reader::from_path(metrics)
        .with_context(|| format!("cannot read {}", metrics.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let mut columns: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in reader.records() {
        let row = row.with_context(|| format!("{}: malformed row", metrics.display()))?;
        for (name, value) in header.iter().zip(row.iter()) {
            columns
                .entry(name.clone())
                .or_default()
                .push(value.parse().unwrap_or(f64::NAN));
        }
    }
    let epochs = columns.get("epoch").cloned().unwrap_or_default();
    if epochs.is_empty() {
        return Ok(());
    }
    let series = |names: &[(&str, &str)]| -> Vec<Series> {
        names
            .iter()
            .filter_map(|(column, label)| {
                columns.get(*column).map(|ys| Series {
                    name: label.to_string(),
                    points: epochs
                        .iter()
                        .copied()
                        .zip(ys.iter().copied())
                        .filter(|(_, y)| y.is_finite())
                        .collect(),
                })
            })
            .collect()
    };
    let file = "curves.png";
    plots::line_panels(
        &out.join(file),
        &[
            (
                "Loss",
                "epoch",
                "cross-entropy",
                series(&[("train_loss", "train"), ("val_loss", "validation")]),
            ),
            (
                "Validation accuracy",
                "epoch",
                "accuracy",
                series(&[
                    ("val_acc", "accuracy"),
                    ("val_bal_acc", "balanced accuracy"),
                ]),
            ),
        ],
    )?;
    doc.heading(2, "Training");
    doc.figure(
        file,
        "Loss and validation accuracy per epoch (metrics.csv).",
    );
    Ok(())
}

fn calibration_section(doc: &mut Document, fit: &CalibrationFit) {
    doc.heading(2, "Calibration");
    let t = &fit.temperature;
    let mut rows = vec![
        vec![
            "validation data".into(),
            format!("{} ({} images)", fit.data.display(), fit.images),
        ],
        vec![
            "temperature".into(),
            format!(
                "{:.4}{}",
                t.temperature,
                if t.at_bound {
                    " (at the search bound)"
                } else {
                    ""
                }
            ),
        ],
        vec![
            "NLL at T = 1 → fitted T".into(),
            format!("{:.4} → {:.4}", t.nll_before, t.nll_after),
        ],
        vec![
            "d NLL / d log T at the fit".into(),
            format!("{:.2e}", t.gradient),
        ],
        vec![
            "ECE before → after".into(),
            format!("{:.4} → {:.4}", fit.ece_before, fit.ece_after),
        ],
        vec![
            "refer threshold (p malignant ≥)".into(),
            format!(
                "{:.4} for target sensitivity {:.2}",
                fit.refer.threshold, fit.target_sensitivity
            ),
        ],
        vec![
            "validation sensitivity / specificity".into(),
            format!(
                "{:.3} / {:.3}",
                fit.refer.sensitivity, fit.refer.specificity
            ),
        ],
    ];
    if let Some(ood) = &fit.ood {
        rows.push(vec![
            "OOD threshold".into(),
            format!(
                "{:.3} on {} ({:.1}th percentile of validation scores)",
                ood.threshold,
                super::network::OodFeatures {
                    block: ood.block,
                    frozen_backbone: ood.frozen_backbone
                }
                .describe(),
                100.0 * ood.quantile
            ),
        ]);
        rows.push(vec![
            "OOD abstentions".into(),
            format!(
                "{:.1}% of validation images, {:.0}% of {} synthetic non-lesion frames",
                100.0 * ood.validation_abstain_rate,
                100.0 * ood.synthetic_abstain_rate,
                ood.synthetic.len()
            ),
        ]);
    }
    doc.table(&["quantity", "value"], rows);
}

fn evaluation_section(
    doc: &mut Document,
    name: &str,
    r: &EvalRecord,
    out: &Path,
) -> anyhow::Result<()> {
    let m = &r.metrics;
    doc.heading(2, format!("Evaluation: {name}"));
    doc.paragraph(format!(
        "{} on {} — {} images of {} lesions, test-time augmentation {:?}, temperature {:.3} ({}), bootstrap {} resamples (seed {}).",
        r.model,
        r.data.display(),
        m.images,
        m.groups,
        r.tta,
        r.temperature,
        r.calibration.as_deref().unwrap_or("not calibrated"),
        m.bootstrap.resamples,
        m.bootstrap.seed
    ));
    let triage_at = format!("at p(malignant) ≥ {:.3}", m.triage.threshold);
    doc.table(
        &["metric", "estimate [95% interval]"],
        vec![
            vec![
                "balanced accuracy".into(),
                with_interval(&m.balanced_accuracy),
            ],
            vec!["accuracy".into(), with_interval(&m.accuracy)],
            vec!["macro F1".into(), with_interval(&m.macro_f1)],
            vec![
                "macro AUC (one vs rest)".into(),
                with_interval(&m.macro_auc),
            ],
            vec![
                format!("malignant sensitivity {triage_at}"),
                with_interval(&m.triage.sensitivity),
            ],
            vec![
                format!("malignant specificity {triage_at}"),
                with_interval(&m.triage.specificity),
            ],
            vec!["malignant AUC".into(), with_interval(&m.triage.auc)],
            vec!["log loss".into(), with_interval(&m.log_loss)],
            vec!["expected calibration error".into(), with_interval(&m.ece)],
        ],
    );
    let classes = &r.classes;
    let rows = classes
        .iter()
        .zip(&m.per_class)
        .map(|(c, e)| {
            vec![
                c.clone(),
                e.support.to_string(),
                with_interval(&e.recall),
                with_interval(&e.precision),
                with_interval(&e.f1),
                with_interval(&e.specificity),
                with_interval(&e.auc),
            ]
        })
        .collect();
    doc.table(
        &[
            "class",
            "images",
            "recall",
            "precision",
            "F1",
            "specificity",
            "AUC",
        ],
        rows,
    );

    let file = format!("{name}-confusion.png");
    plots::confusion_matrix(&out.join(&file), classes, &m.confusion)?;
    doc.figure(
        file,
        format!("Confusion matrix, {name} (shade: share of the true class)."),
    );

    let mut curves: Vec<(String, &dermo_calibration::RocCurve, Option<f64>)> = classes
        .iter()
        .zip(&m.roc)
        .zip(&m.per_class)
        .filter_map(|((c, roc), e)| {
            roc.as_ref()
                .map(|roc| (c.clone(), roc, e.auc.map(|a| a.estimate)))
        })
        .collect();
    if let Some(roc) = &m.triage.roc {
        curves.push((
            "malignant group".into(),
            roc,
            m.triage.auc.map(|a| a.estimate),
        ));
    }
    let file = format!("{name}-roc.png");
    plots::roc_curves(&out.join(&file), &curves)?;
    doc.figure(
        file,
        format!("ROC curves per class and for the malignant group, {name}."),
    );

    let file = format!("{name}-reliability.png");
    let after = format!("T = {:.2}", r.temperature);
    plots::reliability_panels(
        &out.join(&file),
        &[
            ("T = 1".to_string(), &r.reliability_uncalibrated),
            (after, &m.reliability),
        ],
    )?;
    doc.figure(
        file,
        format!("Reliability before and after temperature scaling, {name} (bars: accuracy per confidence bin; dots: mean confidence)."),
    );

    let file = format!("{name}-recall.png");
    let bars: Vec<(String, Vec<Interval>)> = classes
        .iter()
        .zip(&m.per_class)
        .map(|(c, e)| (c.clone(), e.recall.into_iter().collect()))
        .collect();
    plots::intervals_by_category(
        &out.join(&file),
        &format!("Recall per class, {name}"),
        "recall",
        &bars,
        &[],
        None,
    )?;
    doc.figure(
        file,
        format!("Recall per class with 95% lesion-bootstrap intervals, {name}."),
    );
    Ok(())
}

fn figures_table(doc: &mut Document) {
    let rows: Vec<Vec<String>> = doc
        .figures()
        .into_iter()
        .map(|(n, file, caption)| vec![n.to_string(), file, caption])
        .collect();
    if !rows.is_empty() {
        doc.heading(2, "Figures");
        doc.table(&["figure", "file", "shows"], rows);
    }
}

fn sweep_document(
    dir: &Path,
    out: &Path,
    baseline: Option<&EvalRecord>,
) -> anyhow::Result<Document> {
    let results = SweepResults::load(&dir.join(sweep_results::SWEEP_JSON))?;
    let mut doc = Document::new(format!("dermo sweep report: {}", dir.display()));
    doc.paragraph(DISCLAIMER);
    doc.paragraph(format!(
        "Grid {} ({} design), {} cells × seeds {:?}; every cell trained on {} and evaluated on {}.",
        results.grid.display(),
        results.design,
        results.cells.len(),
        results.seeds,
        results.train.display(),
        results.test.display()
    ));
    doc.heading(2, "Results");
    doc.table(&sweep_results::TABLE_HEADER, results.table_rows());
    if let Some(b) = baseline {
        doc.paragraph(format!(
            "Classical baseline ({}): balanced accuracy {}.",
            b.model,
            with_interval(&b.metrics.balanced_accuracy)
        ));
    }
    for axis in &results.axes {
        let file = sweep_results::axis_plot_file(&axis.name);
        sweep_results::plot_axis(&results, axis, &out.join(&file), baseline)?;
        doc.figure(
            file,
            format!(
                "Balanced accuracy against {} (one mark per seed with its 95% lesion-bootstrap interval; bar: mean over seeds).",
                axis.name
            ),
        );
    }
    figures_table(&mut doc);
    Ok(doc)
}
