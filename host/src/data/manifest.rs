//! The dataset manifest: one CSV row per image, the single input of `check`, `split`, `cache`
//! and training.
//!
//! Paths are stored relative to the manifest's folder when the file lies inside it (so an import
//! folder can be moved as a whole) and absolute otherwise; [`Manifest::load`] always hands back
//! absolute paths. [`Manifest::hash`] covers the content, not the location, of the data.

use dermo_model::{Class, NUM_CLASSES};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which pixels of an image a row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The image as captured.
    #[default]
    Raw,
    /// The background (mask value < 128) zeroed with the lesion mask before preprocessing.
    Masked,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::Masked => "masked",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "raw" | "" => Ok(Variant::Raw),
            "masked" => Ok(Variant::Masked),
            other => Err(format!(
                "unknown variant {other:?} (expected raw or masked)"
            )),
        }
    }
}

/// One image of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub image_id: String,
    pub path: PathBuf,
    pub label: Class,
    /// Every image of one lesion must stay on one side of a split.
    pub lesion_id: String,
    pub patient_id: Option<String>,
    pub mask_path: Option<PathBuf>,
    /// Where the row came from: `ham10000`, `imagefolder`, `labelme`, `scope-bundle`.
    pub source: String,
    /// Hex sha256 of the image file's bytes.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    pub variant: Variant,
}

/// A dataset: records in a fixed order (the order of the training cache).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub records: Vec<Record>,
}

/// What can go wrong reading or writing a manifest; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write manifest {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("manifest {path}, line {line}: {message}")]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// The CSV row as written: the header is the field names in this order.
#[derive(Serialize, Deserialize)]
struct Row {
    image_id: String,
    path: String,
    label: String,
    lesion_id: String,
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    mask_path: String,
    #[serde(default)]
    source: String,
    sha256: String,
    width: u32,
    height: u32,
    #[serde(default)]
    variant: String,
}

impl Manifest {
    pub fn new(records: Vec<Record>) -> Self {
        Manifest { records }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Reads a manifest CSV; relative paths are resolved against the manifest's folder.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let file = fs::File::open(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = absolute_parent(path);
        let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
        let mut records = Vec::new();
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            let row = row.map_err(|source| ManifestError::Csv {
                path: path.to_owned(),
                source,
            })?;
            let line = i as u64 + 2;
            let bad = |message: String| ManifestError::Row {
                path: path.to_owned(),
                line,
                message,
            };
            let label = row.label.parse::<Class>().map_err(|e| bad(e.to_string()))?;
            let variant = row.variant.parse::<Variant>().map_err(bad)?;
            if row.image_id.is_empty() || row.path.is_empty() || row.lesion_id.is_empty() {
                return Err(bad("image_id, path and lesion_id must not be empty".into()));
            }
            records.push(Record {
                image_id: row.image_id,
                path: base.join(&row.path),
                label,
                lesion_id: row.lesion_id,
                patient_id: non_empty(row.patient_id),
                mask_path: non_empty(row.mask_path).map(|m| base.join(m)),
                source: row.source,
                sha256: row.sha256,
                width: row.width,
                height: row.height,
                variant,
            });
        }
        Ok(Manifest { records })
    }

    /// Writes the manifest atomically: a temporary file beside it, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), ManifestError> {
        let base = absolute_parent(path);
        let mut writer = csv::Writer::from_writer(Vec::new());
        for r in &self.records {
            let row = Row {
                image_id: r.image_id.clone(),
                path: stored_path(&base, &r.path),
                label: r.label.code().to_owned(),
                lesion_id: r.lesion_id.clone(),
                patient_id: r.patient_id.clone().unwrap_or_default(),
                mask_path: r
                    .mask_path
                    .as_deref()
                    .map(|m| stored_path(&base, m))
                    .unwrap_or_default(),
                source: r.source.clone(),
                sha256: r.sha256.clone(),
                width: r.width,
                height: r.height,
                variant: r.variant.as_str().to_owned(),
            };
            writer.serialize(row).map_err(|source| ManifestError::Csv {
                path: path.to_owned(),
                source,
            })?;
        }
        if self.records.is_empty() {
            // csv writes the header only with the first row; an empty manifest still gets one.
            writer
                .write_record(HEADER)
                .map_err(|source| ManifestError::Csv {
                    path: path.to_owned(),
                    source,
                })?;
        }
        let bytes = writer.into_inner().map_err(|e| ManifestError::Write {
            path: path.to_owned(),
            source: e.into_error(),
        })?;
        crate::files::write_atomic(path, &bytes).map_err(|source| ManifestError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// Hex sha256 of the canonical content: every field except the file locations, in record
    /// order. Moving a dataset keeps its hash; changing a label, an image or the order does not.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"dermo-manifest-v1\n");
        for r in &self.records {
            let mask = r
                .mask_path
                .as_deref()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let fields = [
                r.image_id.as_str(),
                r.label.code(),
                r.lesion_id.as_str(),
                r.patient_id.as_deref().unwrap_or(""),
                mask.as_str(),
                r.source.as_str(),
                r.sha256.as_str(),
                &r.width.to_string(),
                &r.height.to_string(),
                r.variant.as_str(),
            ];
            for f in fields {
                h.update(f.as_bytes());
                h.update([0x1f]);
            }
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    /// Number of records per class, in logit order.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for r in &self.records {
            counts[r.label.index()] += 1;
        }
        counts
    }

    /// Number of distinct lesion ids.
    pub fn lesion_count(&self) -> usize {
        let ids: std::collections::HashSet<&str> =
            self.records.iter().map(|r| r.lesion_id.as_str()).collect();
        ids.len()
    }
}

const HEADER: [&str; 11] = [
    "image_id",
    "path",
    "label",
    "lesion_id",
    "patient_id",
    "mask_path",
    "source",
    "sha256",
    "width",
    "height",
    "variant",
];

fn non_empty(s: String) -> Option<String> {
    if s.trim().is_empty() {
        None
    } else {
        Some(s)
    }
}

fn absolute_parent(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new(""));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_owned())
}

fn stored_path(base: &Path, path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match abs.strip_prefix(base) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        _ => abs.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, dir: &Path) -> Record {
        Record {
            image_id: id.into(),
            path: dir.join("images").join(format!("{id}.jpg")),
            label: Class::Mel,
            lesion_id: format!("L-{id}"),
            patient_id: None,
            mask_path: Some(PathBuf::from("/elsewhere/m.png")),
            source: "test".into(),
            sha256: "ab".repeat(32),
            width: 200,
            height: 150,
            variant: Variant::Masked,
        }
    }

    #[test]
    fn save_load_round_trips_and_stores_inner_paths_relative() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::new(vec![record("a", dir.path()), record("b", dir.path())]);
        let path = dir.path().join("manifest.csv");
        m.save(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("image_id,path,label,"));
        assert!(text.contains(",images/a.jpg,"), "{text}");
        assert!(text.contains(",/elsewhere/m.png,"), "{text}");
        let back = Manifest::load(&path).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.hash(), m.hash());
    }

    #[test]
    fn hash_ignores_location_but_not_labels() {
        let a = Manifest::new(vec![record("a", Path::new("/x"))]);
        let moved = Manifest::new(vec![record("a", Path::new("/y"))]);
        let mut relabelled = a.clone();
        relabelled.records[0].label = Class::Nv;
        assert_eq!(a.hash(), moved.hash());
        assert_ne!(a.hash(), relabelled.hash());
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        fs::write(
            &path,
            "image_id,path,label,lesion_id,patient_id,mask_path,source,sha256,width,height,variant\n\
             a,a.jpg,melanoma,L1,,,x,00,1,1,raw\n",
        )
        .unwrap();
        let err = Manifest::load(&path).unwrap_err().to_string();
        assert!(err.contains("m.csv") && err.contains("line 2"), "{err}");
        assert!(Manifest::load(&dir.path().join("missing.csv")).is_err());
    }

    #[test]
    fn empty_manifest_keeps_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        Manifest::default().save(&path).unwrap();
        assert!(Manifest::load(&path).unwrap().is_empty());
    }
}
