//! Import: three source layouts (plus the device's capture bundle) become one [`Manifest`].
//!
//! - HAM10000 / ISIC: a metadata CSV (`lesion_id,image_id,dx`, optional `patient_id`), an image
//!   folder (`<image_id>.jpg`) and an optional mask folder (`<image_id>_segmentation.png`).
//! - ImageFolder: `ROOT/<label name>/…/*.jpg`, one folder per class.
//! - Labelme: see [`super::labelme`].
//! - Scope bundle: the folder `dermo-scope export` writes, `captures.csv` plus images.
//!
//! Importing reads the sources and never writes to them.

use super::labels::{LabelTable, UnknownLabel};
use super::manifest::{Manifest, Record, Variant};
use super::progress;
use crate::files::absolute;
use dermo_model::bundle::{self, BundleRow};
use image::{ImageDecoder, ImageReader};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Component, Path, PathBuf};

/// File extensions taken as images when a folder is walked (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: missing column {column:?} (found: {found})")]
    MissingColumn {
        path: PathBuf,
        column: &'static str,
        found: String,
    },
    #[error("{path}, line {line}: {source}")]
    Label {
        path: PathBuf,
        line: u64,
        source: UnknownLabel,
    },
    #[error("{path}: {source}")]
    FolderLabel { path: PathBuf, source: UnknownLabel },
    #[error("{path}, line {line}: image {image} not found")]
    MissingImage {
        path: PathBuf,
        line: u64,
        image: PathBuf,
    },
    #[error("{path}, line {line}: {message}")]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}: no images found")]
    Empty { path: PathBuf },
    #[error("{what} {path} does not exist or is not a folder")]
    NoFolder { what: &'static str, path: PathBuf },
    #[error("{path}, line {line}: {name:?} leaves {folder}; only files inside it are read")]
    Outside {
        path: PathBuf,
        line: u64,
        name: String,
        folder: PathBuf,
    },
    #[error("{path}, line {line}: image_id {image_id:?} repeats line {first}")]
    Duplicate {
        path: PathBuf,
        line: u64,
        first: u64,
        image_id: String,
    },
}

/// An imported manifest plus what was left out and why.
#[derive(Debug, Default)]
pub struct Imported {
    pub manifest: Manifest,
    /// One line per skipped item (unknown label with `--skip-unknown`, unconfirmed capture).
    pub skipped: Vec<String>,
    /// Images whose header could not be read; they are kept (width = height = 0) for `check`.
    pub unreadable: Vec<PathBuf>,
}

/// A row found in the source, before its file is hashed and measured.
pub(crate) struct Pending {
    pub image_id: String,
    pub path: PathBuf,
    pub label: dermo_model::Class,
    pub lesion_id: String,
    pub patient_id: Option<String>,
    pub mask_path: Option<PathBuf>,
}

/// What an import leaves out, one line each, and whether an unknown label is left out or is an
/// error.
pub(crate) struct Skips {
    skip_unknown: bool,
    pub lines: Vec<String>,
}

impl Skips {
    pub fn new(skip_unknown: bool) -> Skips {
        Skips {
            skip_unknown,
            lines: Vec::new(),
        }
    }

    /// The class of `label`. An unknown one is `None` with a line naming `place` when skipping,
    /// else `error`.
    pub fn class(
        &mut self,
        labels: &LabelTable,
        label: &str,
        place: impl FnOnce() -> String,
        error: impl FnOnce(UnknownLabel) -> ImportError,
    ) -> Result<Option<dermo_model::Class>, ImportError> {
        match labels.lookup(label) {
            Ok(class) => Ok(Some(class)),
            Err(source) if self.skip_unknown => {
                self.lines.push(format!("{}: {source}", place()));
                Ok(None)
            }
            Err(source) => Err(error(source)),
        }
    }
}

/// Hashes and measures every pending row in parallel (order kept) and makes the manifest.
pub(crate) fn finish(
    pending: Vec<Pending>,
    source: &str,
    skipped: Vec<String>,
) -> Result<Imported, ImportError> {
    let bar = progress::bar(pending.len() as u64, "importing");
    let described: Vec<(String, Option<(u32, u32)>)> = pending
        .par_iter()
        .map(|p| {
            let d = describe(&p.path);
            bar.inc(1);
            d
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();
    let mut unreadable = Vec::new();
    let records = pending
        .into_iter()
        .zip(described)
        .map(|(p, (sha256, dims))| {
            if dims.is_none() {
                unreadable.push(p.path.clone());
            }
            let (width, height) = dims.unwrap_or((0, 0));
            Record {
                image_id: p.image_id,
                path: p.path,
                label: p.label,
                lesion_id: p.lesion_id,
                patient_id: p.patient_id,
                mask_path: p.mask_path,
                source: source.to_owned(),
                sha256,
                width,
                height,
                variant: Variant::Raw,
            }
        })
        .collect();
    Ok(Imported {
        manifest: Manifest::new(records),
        skipped,
        unreadable,
    })
}

/// sha256 of the file and its displayed size (EXIF rotation applied), read from the header only.
/// A header that cannot be parsed gives `None`: `dermo data check` reports such files.
pub fn describe(path: &Path) -> Result<(String, Option<(u32, u32)>), ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    let sha = hex::encode(Sha256::digest(&bytes));
    Ok((sha, header_dimensions(&bytes)))
}

fn header_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut decoder = reader.into_decoder().ok()?;
    let (w, h) = decoder.dimensions();
    let turned = matches!(
        decoder.orientation().ok()?,
        image::metadata::Orientation::Rotate90
            | image::metadata::Orientation::Rotate270
            | image::metadata::Orientation::Rotate90FlipH
            | image::metadata::Orientation::Rotate270FlipH
    );
    Some(if turned { (h, w) } else { (w, h) })
}

/// Where to look for the HAM10000 pieces.
pub struct Ham10000Source<'a> {
    pub metadata: &'a Path,
    pub images: &'a Path,
    pub masks: Option<&'a Path>,
}

/// Imports the HAM10000 / ISIC layout, in metadata order.
pub fn ham10000(
    src: &Ham10000Source,
    labels: &LabelTable,
    skip_unknown: bool,
) -> Result<Imported, ImportError> {
    let path = src.metadata;
    let table = read_csv(path)?;
    let col = |name| table.column(name);
    let (lesion, image, dx) = (col("lesion_id")?, col("image_id")?, col("dx")?);
    let patient = table.optional_column("patient_id");
    let images = folder("image folder", src.images)?;
    let masks = src.masks.map(|m| folder("mask folder", m)).transpose()?;
    let mut pending = Vec::with_capacity(table.rows.len());
    let mut skips = Skips::new(skip_unknown);
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for (line, row) in table.lines() {
        let place = || format!("{}, line {line}", path.display());
        let error = |source| ImportError::Label {
            path: path.to_owned(),
            line,
            source,
        };
        let Some(label) = skips.class(labels, &row[dx], place, error)? else {
            continue;
        };
        let image_id = row[image].trim().to_owned();
        let lesion_id = row[lesion].trim().to_owned();
        if image_id.is_empty() || lesion_id.is_empty() {
            return Err(ImportError::Row {
                path: path.to_owned(),
                line,
                message: "image_id and lesion_id must not be empty".into(),
            });
        }
        inside(&images, Path::new(&image_id)).ok_or_else(|| ImportError::Outside {
            path: path.to_owned(),
            line,
            name: image_id.clone(),
            folder: images.clone(),
        })?;
        if let Some(&first) = first_line.get(&image_id) {
            return Err(ImportError::Duplicate {
                path: path.to_owned(),
                line,
                first,
                image_id,
            });
        }
        first_line.insert(image_id.clone(), line);
        let image_path = ["jpg", "jpeg", "png"]
            .iter()
            .map(|ext| images.join(format!("{image_id}.{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| ImportError::MissingImage {
                path: path.to_owned(),
                line,
                image: images.join(format!("{image_id}.jpg")),
            })?;
        let mask_path = masks.as_ref().and_then(|dir| {
            [
                format!("{image_id}_segmentation.png"),
                format!("{image_id}.png"),
            ]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
        });
        pending.push(Pending {
            image_id,
            path: image_path,
            label,
            lesion_id,
            patient_id: patient.and_then(|c| non_empty(&row[c])),
            mask_path,
        });
    }
    if pending.is_empty() {
        return Err(ImportError::Empty {
            path: path.to_owned(),
        });
    }
    finish(pending, "ham10000", skips.lines)
}

/// Imports `ROOT/<label name>/…/image`: the folder name is the label, each image its own lesion
/// (the layout carries no lesion grouping).
pub fn imagefolder(
    root: &Path,
    labels: &LabelTable,
    skip_unknown: bool,
) -> Result<Imported, ImportError> {
    let root = absolute(root);
    let mut pending = Vec::new();
    let mut skips = Skips::new(skip_unknown);
    for class_dir in sorted_entries(&root)?.into_iter().filter(|p| p.is_dir()) {
        let name = class_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') {
            continue;
        }
        let place = || class_dir.display().to_string();
        let error = |source| ImportError::FolderLabel {
            path: class_dir.clone(),
            source,
        };
        let Some(label) = skips.class(labels, &name, place, error)? else {
            continue;
        };
        for path in walk_files(&class_dir, &IMAGE_EXTENSIONS)? {
            let rel = path.strip_prefix(&root).unwrap_or(&path).with_extension("");
            let image_id = rel.to_string_lossy().replace('\\', "/");
            pending.push(Pending {
                lesion_id: image_id.clone(),
                image_id,
                path,
                label,
                patient_id: None,
                mask_path: None,
            });
        }
    }
    if pending.is_empty() {
        return Err(ImportError::Empty { path: root });
    }
    finish(pending, "imagefolder", skips.lines)
}

/// Imports a `dermo-scope export` bundle: `DIR/captures.csv`, rows of
/// [`dermo_model::bundle::BundleRow`]. It needs `file` (image path relative to DIR; `image` is
/// accepted too) and `label` (the clinician-confirmed label name), and reads `capture_id` (the
/// image id), `frame_sha256` (checked against the file; when the column is there, every row needs
/// one), `lesion_id`, `patient_id` and `mask` when present; the device's prediction columns are
/// ignored. Rows with an empty label were never confirmed and are skipped.
pub fn scope_bundle(
    dir: &Path,
    labels: &LabelTable,
    skip_unknown: bool,
) -> Result<Imported, ImportError> {
    let dir = absolute(dir);
    let path = dir.join(bundle::CSV_FILE);
    let table = read_csv(&path)?;
    table
        .optional_column("file")
        .map_or_else(|| table.column("image"), Ok)?;
    table.column("label")?;
    let checks_hash = table.optional_column("frame_sha256").is_some();
    let header = csv::StringRecord::from(table.header.clone());
    let mut pending = Vec::new();
    let mut skips = Skips::new(skip_unknown);
    for (line, record) in table.lines() {
        let row: BundleRow = record
            .deserialize(Some(&header))
            .map_err(|e| ImportError::Row {
                path: path.clone(),
                line,
                message: format!("not a capture row: {e}"),
            })?;
        let label_name = row.label.as_deref().unwrap_or_default().trim();
        if label_name.is_empty() {
            skips.lines.push(format!(
                "{}, line {line}: no confirmed label",
                path.display()
            ));
            continue;
        }
        let place = || format!("{}, line {line}", path.display());
        let error = |source| ImportError::Label {
            path: path.clone(),
            line,
            source,
        };
        let Some(class) = skips.class(labels, label_name, place, error)? else {
            continue;
        };
        let within = |name: &str| {
            inside(&dir, Path::new(name)).ok_or_else(|| ImportError::Outside {
                path: path.clone(),
                line,
                name: name.to_owned(),
                folder: dir.clone(),
            })
        };
        let image_path = within(row.file.trim())?;
        if row.file.trim().is_empty() || !image_path.is_file() {
            return Err(ImportError::MissingImage {
                path: path.clone(),
                line,
                image: image_path,
            });
        }
        if checks_hash {
            let expected = non_empty_opt(&row.frame_sha256).ok_or_else(|| ImportError::Row {
                path: path.clone(),
                line,
                message: format!(
                    "frame_sha256 is empty, so {} cannot be checked",
                    image_path.display()
                ),
            })?;
            let (actual, _) = describe(&image_path)?;
            if !actual.eq_ignore_ascii_case(&expected) {
                return Err(ImportError::Row {
                    path: path.clone(),
                    line,
                    message: format!(
                        "{} has sha256 {actual}, but the bundle recorded {expected} (file changed or damaged)",
                        image_path.display()
                    ),
                });
            }
        }
        let stem = image_path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let image_id = non_empty_opt(&row.capture_id).unwrap_or(stem);
        let mask_path = non_empty_opt(&row.mask).map(|m| within(&m)).transpose()?;
        if let Some(m) = mask_path.as_ref().filter(|m| !m.is_file()) {
            return Err(ImportError::MissingImage {
                path: path.clone(),
                line,
                image: m.clone(),
            });
        }
        pending.push(Pending {
            lesion_id: non_empty_opt(&row.lesion_id).unwrap_or_else(|| format!("scope-{image_id}")),
            image_id,
            path: image_path,
            label: class,
            patient_id: non_empty_opt(&row.patient_id),
            mask_path,
        });
    }
    finish(pending, "scope-bundle", skips.lines)
}

/// A CSV file read whole, with its header.
struct Table {
    path: PathBuf,
    header: Vec<String>,
    rows: Vec<csv::StringRecord>,
}

impl Table {
    fn column(&self, name: &'static str) -> Result<usize, ImportError> {
        self.optional_column(name)
            .ok_or_else(|| ImportError::MissingColumn {
                path: self.path.clone(),
                column: name,
                found: self.header.join(","),
            })
    }

    fn optional_column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Rows with their 1-based line numbers in the file (the header is line 1).
    fn lines(&self) -> impl Iterator<Item = (u64, &csv::StringRecord)> {
        self.rows.iter().enumerate().map(|(i, r)| {
            let line = r.position().map_or(i as u64 + 2, |p| p.line());
            (line, r)
        })
    }
}

fn read_csv(path: &Path) -> Result<Table, ImportError> {
    let csv_err = |source| ImportError::Csv {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(std::io::BufReader::new(file));
    let header = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_owned())
        .collect();
    let rows = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(csv_err)?;
    Ok(Table {
        path: path.to_owned(),
        header,
        rows,
    })
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn non_empty_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().and_then(non_empty)
}

/// `dir/name` when `name`, a path read from a source file, stays inside `dir`: relative, and no
/// `..` climbing out of it (checked on the text).
pub(crate) fn inside(dir: &Path, name: &Path) -> Option<PathBuf> {
    let mut depth = 0usize;
    for c in name.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth = depth.checked_sub(1)?,
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(dir.join(name))
}

/// The canonical path of a folder named on the command line, which must exist.
fn folder(what: &'static str, p: &Path) -> Result<PathBuf, ImportError> {
    if p.is_dir() {
        Ok(absolute(p))
    } else {
        Err(ImportError::NoFolder {
            what,
            path: p.to_owned(),
        })
    }
}

pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let io = |source| ImportError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}

/// Every file below `dir` whose extension is one of `extensions`, in sorted path order; hidden
/// files and folders are skipped.
pub(crate) fn walk_files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, ImportError> {
    let hidden =
        |e: &walkdir::DirEntry| e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !hidden(e));
    for entry in walk {
        let entry = entry.map_err(|e| ImportError::Io {
            path: e.path().unwrap_or(dir).to_owned(),
            source: e.into(),
        })?;
        if !entry.file_type().is_dir() && has_extension(entry.path(), extensions) {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

pub(crate) fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| extensions.contains(&e.as_str()))
}
