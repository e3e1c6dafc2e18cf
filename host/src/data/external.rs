//! External validation sets: images from other clinics labelled only melanoma / not melanoma
//! (ISIC 2017, or any "image, 0/1" table). They measure how a model holds up on someone else's
//! images and select among runs. **They are never trained on**: they are not manifests, so no
//! training, split or cache command accepts them.
//!
//! ```text
//! OUT/external.csv    image_id,path,melanoma,sha256   (path relative to OUT when inside it)
//! ```
//!
//! [`ExternalSet::load`] hands back absolute paths; [`ExternalSet::hash`] covers ids, labels and
//! image hashes, not locations. `dermo eval` recognises the file by its header.

use anyhow::Context;
use dermo_model::PreprocessConfig;
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// The file name an import writes into its output folder.
pub const EXTERNAL_CSV: &str = "external.csv";
const HEADER: [&str; 4] = ["image_id", "path", "melanoma", "sha256"];

/// One image of an external set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRecord {
    pub image_id: String,
    pub path: PathBuf,
    pub melanoma: bool,
    /// Hex sha256 of the image file's bytes.
    pub sha256: String,
}

/// A binary-labelled external set, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalSet {
    pub records: Vec<ExternalRecord>,
}

#[derive(Serialize, Deserialize)]
struct Row {
    image_id: String,
    path: String,
    melanoma: u8,
    sha256: String,
}

impl ExternalSet {
    /// Whether `path` is an external set (its header is this format's), not a manifest.
    pub fn is_external(path: &Path) -> bool {
        let Ok(mut reader) = csv::Reader::from_path(path) else {
            return false;
        };
        reader
            .headers()
            .is_ok_and(|h| h.iter().eq(HEADER.iter().copied()))
    }

    /// Reads `path`; every problem names the file and the line.
    pub fn load(path: &Path) -> anyhow::Result<ExternalSet> {
        let base = path.parent().unwrap_or(Path::new("."));
        let mut reader = csv::Reader::from_path(path)
            .with_context(|| format!("cannot read external set {}", path.display()))?;
        let headers = reader
            .headers()
            .with_context(|| format!("{}: no header line", path.display()))?
            .clone();
        anyhow::ensure!(
            headers.iter().eq(HEADER.iter().copied()),
            "{}: not an external set: the header must be `{}`",
            path.display(),
            HEADER.join(",")
        );
        let mut records = Vec::new();
        let mut seen = HashSet::new();
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            let line = i + 2;
            let row = row.with_context(|| format!("{} line {line}", path.display()))?;
            anyhow::ensure!(
                row.melanoma <= 1,
                "{} line {line}: melanoma must be 0 or 1, not {}",
                path.display(),
                row.melanoma
            );
            anyhow::ensure!(
                seen.insert(row.image_id.clone()),
                "{} line {line}: image_id {} appears twice",
                path.display(),
                row.image_id
            );
            records.push(ExternalRecord {
                image_id: row.image_id,
                path: base.join(row.path),
                melanoma: row.melanoma == 1,
                sha256: row.sha256,
            });
        }
        anyhow::ensure!(!records.is_empty(), "{}: no images", path.display());
        Ok(ExternalSet { records })
    }

    /// Writes the set to `path` (atomically), paths relative to its folder where possible.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let base = path.parent().unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in &self.records {
            let abs = std::path::absolute(&r.path).unwrap_or_else(|_| r.path.clone());
            let shown = abs
                .strip_prefix(&base)
                .map_or(abs.clone(), Path::to_path_buf);
            w.serialize(Row {
                image_id: r.image_id.clone(),
                path: shown.display().to_string(),
                melanoma: u8::from(r.melanoma),
                sha256: r.sha256.clone(),
            })?;
        }
        let bytes = w.into_inner().context("cannot encode the external set")?;
        crate::files::write_atomic(path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn melanomas(&self) -> usize {
        self.records.iter().filter(|r| r.melanoma).count()
    }

    /// sha256 over ids, labels and image hashes, in order.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for r in &self.records {
            h.update(format!(
                "{},{},{}\n",
                r.image_id,
                u8::from(r.melanoma),
                r.sha256
            ));
        }
        hex::encode(h.finalize())
    }

    /// Every image decoded and prepared (`PreprocessConfig`: colour constancy, resize) as the
    /// model sees it, in order, on all cores. An unreadable image is an error naming it.
    pub fn pixels(&self, cfg: &PreprocessConfig) -> anyhow::Result<Vec<RgbImage>> {
        self.records
            .par_iter()
            .map(|r| {
                let img = dermo_model::preprocess::decode_file(&r.path)
                    .with_context(|| format!("external image {}", r.path.display()))?;
                Ok(dermo_model::preprocess::prepare(img, cfg))
            })
            .collect()
    }
}

/// An image id or file name that stays inside its folder: no separators, no `..`, not absolute.
fn inside(
    dir: &Path,
    name: &str,
    what: &str,
    origin: &Path,
    line: usize,
) -> anyhow::Result<PathBuf> {
    let rel = Path::new(name);
    let plain = !name.is_empty()
        && rel.components().all(|c| matches!(c, Component::Normal(_)))
        && !name.contains('\\');
    anyhow::ensure!(
        plain,
        "{} line {line}: {what} {name:?} leaves the images folder; only plain relative names are accepted",
        origin.display()
    );
    Ok(dir.join(rel))
}

fn record(image_id: String, path: PathBuf, melanoma: bool) -> anyhow::Result<ExternalRecord> {
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read image {}", path.display()))?;
    Ok(ExternalRecord {
        image_id,
        path,
        melanoma,
        sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

fn parse_flag(value: &str, origin: &Path, line: usize) -> anyhow::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" | "melanoma" | "mel" => Ok(true),
        "0" | "0.0" | "false" | "other" | "not-melanoma" => Ok(false),
        other => anyhow::bail!(
            "{} line {line}: label {other:?} is neither melanoma (1) nor not (0)",
            origin.display()
        ),
    }
}

/// The ISIC 2017 layout of `../shared/data/isic2017/`: `labels.csv` (`image_id,split,melanoma`)
/// and `images/<image_id>.jpg`.
pub fn import_isic2017(dir: &Path) -> anyhow::Result<ExternalSet> {
    let labels = dir.join("labels.csv");
    table(&labels, &dir.join("images"), "image_id", "melanoma", |id| {
        format!("{id}.jpg")
    })
}

/// A generic table: column `image` (a file name inside `images`) and column `label` (1 / 0,
/// true / false, melanoma / other).
pub fn import_binary_csv(csv: &Path, images: &Path) -> anyhow::Result<ExternalSet> {
    table(csv, images, "image", "label", str::to_owned)
}

fn table(
    csv_path: &Path,
    images: &Path,
    id_column: &str,
    label_column: &str,
    file_of: impl Fn(&str) -> String,
) -> anyhow::Result<ExternalSet> {
    anyhow::ensure!(
        images.is_dir(),
        "images folder {} does not exist (or is not a folder)",
        images.display()
    );
    let mut reader = csv::Reader::from_path(csv_path)
        .with_context(|| format!("cannot read {}", csv_path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "{}: no `{name}` column (columns: {})",
                    csv_path.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let (id_at, label_at) = (column(id_column)?, column(label_column)?);
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{} line {line}", csv_path.display()))?;
        let id = row.get(id_at).unwrap_or("").trim().to_owned();
        let melanoma = parse_flag(row.get(label_at).unwrap_or(""), csv_path, line)?;
        let path = inside(images, &file_of(&id), id_column, csv_path, line)?;
        anyhow::ensure!(
            seen.insert(id.clone()),
            "{} line {line}: {id_column} {id} appears twice",
            csv_path.display()
        );
        rows.push((id, path, melanoma));
    }
    anyhow::ensure!(!rows.is_empty(), "{}: no rows", csv_path.display());
    let records = rows
        .into_par_iter()
        .map(|(id, path, melanoma)| record(id, path, melanoma))
        .collect::<anyhow::Result<_>>()?;
    Ok(ExternalSet { records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isic() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/isic2017")
    }

    #[test]
    fn generic_table_round_trips_and_refuses_escapes_and_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("img");
        std::fs::create_dir(&images).unwrap();
        let src = isic().join("images");
        let mut names: Vec<_> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in &names[..3] {
            std::fs::copy(src.join(n), images.join(n)).unwrap();
        }
        let n = |i: usize| names[i].to_string_lossy().into_owned();
        let csv = dir.path().join("labels.csv");
        std::fs::write(
            &csv,
            format!("image,label\n{},1\n{},0\n{},other\n", n(0), n(1), n(2)),
        )
        .unwrap();
        let set = import_binary_csv(&csv, &images).unwrap();
        assert_eq!((set.len(), set.melanomas()), (3, 1));
        let out = dir.path().join("out").join(EXTERNAL_CSV);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        set.save(&out).unwrap();
        assert!(ExternalSet::is_external(&out));
        let back = ExternalSet::load(&out).unwrap();
        assert_eq!(back.hash(), set.hash());
        assert_eq!(
            back.records[0].path,
            set.records[0].path.canonicalize().unwrap()
        );

        for (bad, needle) in [
            (
                format!("image,label\n../{},1\n", n(0)),
                "leaves the images folder",
            ),
            (
                "image,label\n/etc/passwd,1\n".to_owned(),
                "leaves the images folder",
            ),
            (
                format!("image,label\n{},1\n{},0\n", n(0), n(0)),
                "appears twice",
            ),
            (format!("image,label\n{},maybe\n", n(0)), "neither melanoma"),
            (format!("image,dx\n{},1\n", n(0)), "no `label` column"),
        ] {
            std::fs::write(&csv, bad).unwrap();
            let err = format!("{:#}", import_binary_csv(&csv, &images).unwrap_err());
            assert!(err.contains(needle) && err.contains("labels.csv"), "{err}");
        }
    }

    #[test]
    fn isic2017_imports_all_images_with_their_labels() {
        let set = import_isic2017(&isic()).unwrap();
        assert_eq!((set.len(), set.melanomas()), (2150, 404));
        assert!(set.records.iter().all(|r| r.sha256.len() == 64));
    }
}
