//! `dermo-scope export`: bundles the journal's captures for the host
//! (`dermo data import scope-bundle`).
//!
//! The bundle's layout and row schema are `dermo_model::bundle` (shared with the host's import).
//!
//! The bundle is built in a temporary folder beside `BUNDLE` (`.tmp-export-<pid>-<name>`) and
//! renamed into place at the end: a failed export leaves no bundle and no temporary folder
//! (only a killed one leaves the temporary folder, which may be deleted). An existing `BUNDLE`
//! must be an empty directory. Every index line is checked as [`crate::journal::verify`] does
//! (ids and paths inside the journal, hashes); a record that fails is skipped and reported in
//! [`ExportSummary::skipped`], or, with `strict`, fails the export.

use crate::capture::OutcomeKind;
use crate::journal::{read_index_lines, BadEntry, JournalError, Verifier};
use dermo_model::atomic::{create_dir_all_durable, sync_dir, write_atomic, TEMP_PREFIX};
use dermo_model::bundle::{BundleRow, CSV_FILE, IMAGES_DIR};
use dermo_model::CLASSES;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs;
use std::path::{Path, PathBuf};

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
    #[error("journal {root} has {} damaged record(s); with --strict nothing is exported", bad.len())]
    Damaged { root: PathBuf, bad: Vec<BadEntry> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub captures: usize,
    pub predictions: usize,
    pub abstained: usize,
    pub retakes: usize,
    /// Index lines whose record failed its checks, not exported.
    pub skipped: Vec<BadEntry>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Fail (exporting nothing) when any record fails its checks, instead of skipping it.
    pub strict: bool,
}

/// Copies every intact indexed capture of the journal at `data_dir` into a new bundle at `out`
/// (see the module docs).
pub fn export_bundle(
    data_dir: &Path,
    out: &Path,
    options: ExportOptions,
) -> Result<ExportSummary, ExportError> {
    if out.exists()
        && fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(ExportError::NotEmpty(out.to_path_buf()));
    }
    let staging = Staging::create(out)?;
    let summary = write_bundle(data_dir, &staging.dir, options)?;
    if options.strict && !summary.skipped.is_empty() {
        return Err(ExportError::Damaged {
            root: data_dir.to_path_buf(),
            bad: summary.skipped,
        });
    }
    staging.finish(out)?;
    Ok(summary)
}

/// Writes the bundle into `out`, an empty directory.
fn write_bundle(
    data_dir: &Path,
    out: &Path,
    options: ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let images = out.join(IMAGES_DIR);
    create_dir_all_durable(&images).map_err(|cause| ExportError::Write {
        path: images.clone(),
        cause,
    })?;
    let lines = read_index_lines(data_dir)?;
    let bar = if options.progress {
        ProgressBar::new(lines.len() as u64).with_style(
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
    csv.write_record(BundleRow::header()).map_err(csv_err)?;
    let mut summary = ExportSummary {
        captures: 0,
        predictions: 0,
        abstained: 0,
        retakes: 0,
        skipped: Vec::new(),
    };
    let mut verifier = Verifier::new(data_dir);
    for line in &lines {
        bar.inc(1);
        // The id is a plain file name once the verifier accepts the line.
        let (_, record, frame) = match verifier.check(line) {
            Ok(capture) => capture,
            Err(bad) => {
                summary.skipped.push(bad);
                continue;
            }
        };
        let file = format!("{IMAGES_DIR}/{}.jpg", record.id);
        let dst = out.join(&file);
        write_atomic(&dst, &frame).map_err(|cause| ExportError::Write {
            path: dst.clone(),
            cause,
        })?;
        let r = &record.result;
        let mut row = BundleRow {
            file,
            captured_at: Some(r.captured_at.clone()),
            model_sha256: Some(r.model_sha256.clone()),
            outcome: Some(r.outcome),
            top_class: r.top_class.map(|c| c.code().to_string()),
            refer: r.refer,
            malignant_prob: r.decision.as_ref().map(|d| d.malignant_prob),
            capture_id: Some(record.id.clone()),
            frame_sha256: Some(record.frame_sha256.clone()),
            ..BundleRow::default()
        };
        for c in CLASSES {
            row.probs[c.index()] = r.prob(c);
        }
        csv.write_record(row.record()).map_err(csv_err)?;
        summary.captures += 1;
        match r.outcome {
            OutcomeKind::Prediction => summary.predictions += 1,
            OutcomeKind::Abstain => summary.abstained += 1,
            OutcomeKind::Retake => summary.retakes += 1,
        }
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

/// The temporary folder a bundle is built in. Dropped before [`Staging::finish`], it removes
/// itself and the parent folders it created.
struct Staging {
    dir: PathBuf,
    /// Folders created for it, deepest first.
    created: Vec<PathBuf>,
    done: bool,
}

impl Staging {
    fn create(out: &Path) -> Result<Staging, ExportError> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".into());
        let dir = parent.join(format!("{TEMP_PREFIX}export-{}-{name}", std::process::id()));
        let created: Vec<PathBuf> = parent
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        let mut staging = Staging {
            dir: dir.clone(),
            created,
            done: false,
        };
        let write_err = |cause| ExportError::Write {
            path: dir.clone(),
            cause,
        };
        create_dir_all_durable(&parent).map_err(write_err)?;
        if dir.exists() {
            // Left by an earlier export that had this process id and was killed.
            fs::remove_dir_all(&dir).map_err(write_err)?;
        }
        fs::create_dir(&dir).map_err(write_err)?;
        staging.created.insert(0, dir.clone());
        Ok(staging)
    }

    /// Renames the finished bundle to `out` (replacing an empty directory) and makes it durable.
    fn finish(mut self, out: &Path) -> Result<(), ExportError> {
        let write_err = |cause| ExportError::Write {
            path: out.to_path_buf(),
            cause,
        };
        fs::rename(&self.dir, out).map_err(write_err)?;
        self.done = true;
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        sync_dir(parent).map_err(write_err)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let _ = fs::remove_dir_all(&self.dir);
        // Only folders that are empty again: never anything someone else put there meanwhile.
        for d in self.created.iter().skip(1) {
            if fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
}
