//! The sweep's own copies of the split manifests, and their variants per mask mode and balance:
//!
//! ```text
//! DIR/data/{train,val,test}.csv         the grid's manifests (training on a lesion subset when asked)
//! DIR/data/<mask>-<balance>/{train,val,test}.csv   what the cells of that data variant read
//! ```
//!
//! Every file is written atomically and from the same inputs always holds the same content, so
//! preparing again while tasks read them is safe.

use super::grid::{Balance, Cell, GridData};
use crate::data::manifest::Manifest;
use crate::data::split::{self, MaskMode};
use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The manifests one cell trains, validates and tests on.
pub(super) struct Variant {
    pub(super) train: PathBuf,
    pub(super) val: PathBuf,
    pub(super) test: PathBuf,
}

/// The sweep's copies of the split manifests (subset when asked).
pub(super) struct Splits {
    pub(super) train: PathBuf,
    pub(super) val: PathBuf,
    pub(super) test: PathBuf,
}

impl Splits {
    /// Where a sweep folder keeps its copies, written or not.
    pub(super) fn paths(out: &Path) -> Self {
        let dir = out.join("data");
        Splits {
            train: dir.join("train.csv"),
            val: dir.join("val.csv"),
            test: dir.join("test.csv"),
        }
    }

    /// Copies the grid's manifests (paths relative to the grid's folder) into `out/data/`.
    pub(super) fn prepare(data: &GridData, grid_folder: &Path, out: &Path) -> anyhow::Result<Self> {
        let splits = Splits::paths(out);
        let copy = |source: &Path, fraction: Option<f64>, path: &Path| -> anyhow::Result<()> {
            let source = if source.is_absolute() {
                source.to_owned()
            } else {
                grid_folder.join(source)
            };
            let m = Manifest::load(&source)?;
            let m = match fraction {
                Some(f) => lesion_subset(&m, f),
                None => m,
            };
            m.save(path)?;
            Ok(())
        };
        std::fs::create_dir_all(out.join("data"))
            .with_context(|| format!("cannot create {}", out.join("data").display()))?;
        copy(&data.train, data.lesion_fraction, &splits.train)?;
        copy(&data.val, None, &splits.val)?;
        copy(&data.test, None, &splits.test)?;
        Ok(splits)
    }

    /// Where the manifests of a cell's data variant are (see [`Splits::write_variant`]).
    pub(super) fn variant_paths(cell: &Cell, out: &Path) -> Variant {
        let dir = out
            .join("data")
            .join(format!("{}-{}", cell.mask.as_str(), cell.balance.label()));
        Variant {
            train: dir.join("train.csv"),
            val: dir.join("val.csv"),
            test: dir.join("test.csv"),
        }
    }

    /// Writes the manifests of a cell's mask mode and balance: training in that mode (balanced
    /// when asked); validation and test in the same mode, except that `both` is judged on raw
    /// images (what a camera delivers).
    pub(super) fn write_variant(&self, cell: &Cell, out: &Path) -> anyhow::Result<Variant> {
        let paths = Splits::variant_paths(cell, out);
        let (mask, balance) = (cell.mask, cell.balance);
        let eval_mode = if mask == MaskMode::Both {
            MaskMode::Raw
        } else {
            mask
        };
        let write =
            |source: &Path, mode: MaskMode, balance: Balance, path: &Path| -> anyhow::Result<()> {
                let m =
                    split::with_mask_mode(&Manifest::load(source)?, mode).with_context(|| {
                        format!("{}: mask mode {}", source.display(), mode.as_str())
                    })?;
                let m = match balance {
                    Balance::None => m,
                    Balance::Smallest => {
                        let n = split::smallest_class(&m);
                        split::balance(&m, n, 0)
                    }
                    Balance::AtMost(n) => split::balance(&m, n, 0),
                };
                m.save(path)?;
                Ok(())
            };
        if let Some(dir) = paths.train.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        write(&self.train, mask, balance, &paths.train)?;
        write(&self.val, eval_mode, Balance::None, &paths.val)?;
        write(&self.test, eval_mode, Balance::None, &paths.test)?;
        Ok(paths)
    }
}

/// The first `fraction` of each class's lesions, in manifest order (at least one per class
/// present), with all their images.
pub fn lesion_subset(m: &Manifest, fraction: f64) -> Manifest {
    let mut lesions_of_class: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    let mut class_of: HashMap<&str, usize> = HashMap::new();
    for r in &m.records {
        if !class_of.contains_key(r.lesion_id.as_str()) {
            class_of.insert(&r.lesion_id, r.label.index());
            lesions_of_class
                .entry(r.label.index())
                .or_default()
                .push(&r.lesion_id);
        }
    }
    let mut keep: HashMap<&str, ()> = HashMap::new();
    for lesions in lesions_of_class.values() {
        let n = ((lesions.len() as f64 * fraction).ceil() as usize).max(1);
        keep.extend(lesions.iter().take(n).map(|&l| (l, ())));
    }
    Manifest::new(
        m.records
            .iter()
            .filter(|r| keep.contains_key(r.lesion_id.as_str()))
            .cloned()
            .collect(),
    )
}
