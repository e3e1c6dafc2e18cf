//! `dermo-scope export`: bundles the journal's captures for the host
//! (`dermo data import scope-bundle`).
//!
//! ```text
//! BUNDLE/images/<id>.jpg     the frames, byte for byte as journaled
//! BUNDLE/captures.csv        one row per capture (format in README.md, "The device")
//! ```

use crate::atomic::{create_dir_all_durable, sync_dir, write_atomic};
use crate::capture::OutcomeKind;
use crate::journal::{read_index, read_record, JournalError};
use dermo_model::CLASSES;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

pub const CSV_FILE: &str = "captures.csv";
pub const IMAGES_DIR: &str = "images";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("bundle directory {0} already exists and is not empty; choose a new --out")]
    NotEmpty(PathBuf),
    #[error("cannot write bundle file {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot write {path}: {cause}")]
    Csv { path: PathBuf, cause: csv::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    pub captures: usize,
    pub predictions: usize,
    pub abstained: usize,
    pub retakes: usize,
}

/// The CSV header: fixed columns, then one probability column per class in logit order.
/// `label`, `lesion_id` and `patient_id` are left empty for the clinician: the host imports only
/// labelled rows, and groups splits by lesion (a lesion captured twice must share its id).
pub fn csv_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "file",
        "label",
        "lesion_id",
        "patient_id",
        "captured_at",
        "model_sha256",
        "outcome",
        "top_class",
        "refer",
        "malignant_prob",
        "capture_id",
        "frame_sha256",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    h.extend(CLASSES.iter().map(|c| format!("prob_{}", c.code())));
    h
}

/// Copies every indexed capture of the journal at `data_dir` into a new bundle at `out`.
pub fn export_bundle(
    data_dir: &Path,
    out: &Path,
    progress: bool,
) -> Result<ExportSummary, ExportError> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(ExportError::NotEmpty(out.to_path_buf()));
    }
    let images = out.join(IMAGES_DIR);
    create_dir_all_durable(&images).map_err(|cause| ExportError::Write {
        path: images.clone(),
        cause,
    })?;
    let entries = read_index(data_dir)?;
    let bar = if progress {
        ProgressBar::new(entries.len() as u64).with_style(
            ProgressStyle::with_template("exporting {bar:40} {pos}/{len} captures")
                .expect("static template"),
        )
    } else {
        ProgressBar::hidden()
    };
    let mut csv = csv::Writer::from_writer(Vec::new());
    let csv_path = out.join(CSV_FILE);
    let csv_err = |cause| ExportError::Csv {
        path: csv_path.clone(),
        cause,
    };
    csv.write_record(csv_header()).map_err(csv_err)?;
    let mut summary = ExportSummary {
        captures: 0,
        predictions: 0,
        abstained: 0,
        retakes: 0,
    };
    for entry in &entries {
        let record = read_record(data_dir, entry)?;
        let file = format!("{IMAGES_DIR}/{}.jpg", record.id);
        let src = data_dir.join(&entry.frame);
        let dst = out.join(&file);
        let write_err = |cause| ExportError::Write {
            path: dst.clone(),
            cause,
        };
        let bytes = std::fs::read(&src).map_err(|cause| ExportError::Write {
            path: src.clone(),
            cause,
        })?;
        write_atomic(&dst, &bytes).map_err(write_err)?;
        let r = &record.result;
        let opt = |v: Option<String>| v.unwrap_or_default();
        let mut row = vec![
            file,
            String::new(),
            String::new(),
            String::new(),
            r.captured_at.clone(),
            r.model_sha256.clone(),
            serde_json::to_value(r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            opt(r.top_class.map(|c| c.code().to_string())),
            opt(r.refer.map(|b| b.to_string())),
            opt(r
                .decision
                .as_ref()
                .map(|d| format!("{:.6}", d.malignant_prob))),
            record.id.clone(),
            record.frame_sha256.clone(),
        ];
        row.extend(
            CLASSES
                .iter()
                .map(|&c| opt(r.prob(c).map(|p| format!("{p:.6}")))),
        );
        csv.write_record(&row).map_err(csv_err)?;
        summary.captures += 1;
        match r.outcome {
            OutcomeKind::Prediction => summary.predictions += 1,
            OutcomeKind::Abstain => summary.abstained += 1,
            OutcomeKind::Retake => summary.retakes += 1,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let bytes = csv
        .into_inner()
        .map_err(|e| csv_err(csv::Error::from(e.into_error())))?;
    write_atomic(&csv_path, &bytes).map_err(|cause| ExportError::Write {
        path: csv_path.clone(),
        cause,
    })?;
    sync_dir(&images).map_err(|cause| ExportError::Write {
        path: images.clone(),
        cause,
    })?;
    Ok(summary)
}
