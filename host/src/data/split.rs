//! Lesion-grouped, class-stratified splits, and the study's dataset variants (balanced
//! training set, masked / raw + masked images).
//!
//! Groups: records sharing a lesion id, or a patient id when one is given, form one group
//! (union-find), and a group never crosses parts. Each group counts for its majority class.
//! Per class, the groups are shuffled with the seed, ordered largest first, and each goes to the
//! part furthest below its share of that class's images — so every part gets each class's
//! images in proportion, whatever the group sizes.

use super::manifest::{Manifest, Record, Variant};
use dermo_model::{Class, CLASSES, NUM_CLASSES};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("fractions must be positive and sum to 1, got {0:?}")]
    Fractions(Vec<f64>),
    #[error("k-fold needs K ≥ 2, got {0}")]
    KFold(usize),
    #[error("the manifest is empty")]
    Empty,
    #[error("image id {id:?} appears twice in the manifest (records {first} and {second}); split a manifest with one record per image")]
    Duplicate {
        id: String,
        first: usize,
        second: usize,
    },
    #[error("{count} record(s) have no mask but --mask-mode {mode} needs one (first: {first})")]
    NoMask {
        count: usize,
        mode: &'static str,
        first: String,
    },
    #[error("group leak: {kind} {id} appears in both {a} and {b}")]
    Leak {
        kind: &'static str,
        id: String,
        a: String,
        b: String,
    },
}

/// Which image variants the written splits hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMode {
    /// The images as captured.
    #[default]
    Raw,
    /// Background zeroed with the lesion mask (every record needs a mask).
    Masked,
    /// Every image twice: raw and masked (the study's mixed set).
    Both,
}

impl MaskMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MaskMode::Raw => "raw",
            MaskMode::Masked => "masked",
            MaskMode::Both => "both",
        }
    }
}

/// Group index per record: records sharing a lesion id or a patient id share a group. Groups are
/// numbered in order of their first record.
pub fn groups(manifest: &Manifest) -> Vec<usize> {
    let n = manifest.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_by_key: HashMap<(u8, &str), usize> = HashMap::new();
    for (i, r) in manifest.records.iter().enumerate() {
        let keys = [
            Some((0u8, r.lesion_id.as_str())),
            r.patient_id.as_deref().map(|p| (1u8, p)),
        ];
        for key in keys.into_iter().flatten() {
            let j = *first_by_key.entry(key).or_insert(i);
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut number: HashMap<usize, usize> = HashMap::new();
    (0..n)
        .map(|i| {
            let root = find(&mut parent, i);
            let next = number.len();
            *number.entry(root).or_insert(next)
        })
        .collect()
}

/// Part index per record, for parts with the given `fractions` (they must sum to 1).
pub fn assign(manifest: &Manifest, fractions: &[f64], seed: u64) -> Result<Vec<usize>, SplitError> {
    let sum: f64 = fractions.iter().sum();
    if fractions.is_empty()
        || fractions.iter().any(|&f| f <= 0.0 || !f.is_finite())
        || (sum - 1.0).abs() > 1e-6
    {
        return Err(SplitError::Fractions(fractions.to_vec()));
    }
    if manifest.is_empty() {
        return Err(SplitError::Empty);
    }
    let group_of = groups(manifest);
    let n_groups = group_of.iter().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_groups];
    for (i, &g) in group_of.iter().enumerate() {
        members[g].push(i);
    }
    // Groups of each class, in group order (so the seed alone decides the shuffle).
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); NUM_CLASSES];
    for (g, m) in members.iter().enumerate() {
        by_class[majority_class(manifest, m).index()].push(g);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut part_of_group = vec![0usize; n_groups];
    for class_groups in &mut by_class {
        class_groups.shuffle(&mut rng);
        class_groups.sort_by_key(|&g| std::cmp::Reverse(members[g].len()));
        let total: usize = class_groups.iter().map(|&g| members[g].len()).sum();
        let mut filled = vec![0usize; fractions.len()];
        for &g in class_groups.iter() {
            let deficit = |p: usize| fractions[p] * total as f64 - filled[p] as f64;
            let part = (0..fractions.len())
                .max_by(|&a, &b| deficit(a).total_cmp(&deficit(b)).then(b.cmp(&a)))
                .expect("at least one part");
            filled[part] += members[g].len();
            part_of_group[g] = part;
        }
    }
    Ok(group_of.iter().map(|&g| part_of_group[g]).collect())
}

fn majority_class(manifest: &Manifest, members: &[usize]) -> Class {
    let mut counts = [0usize; NUM_CLASSES];
    for &i in members {
        counts[manifest.records[i].label.index()] += 1;
    }
    // Ties go to the lower class index, so the choice does not depend on record order.
    let best = (0..NUM_CLASSES)
        .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a)))
        .expect("seven classes");
    CLASSES[best]
}

/// The records of `manifest` in part `part` (manifest order kept).
pub fn select(manifest: &Manifest, parts: &[usize], keep: impl Fn(usize) -> bool) -> Manifest {
    Manifest::new(
        manifest
            .records
            .iter()
            .zip(parts)
            .filter(|(_, &p)| keep(p))
            .map(|(r, _)| r.clone())
            .collect(),
    )
}

/// Fails when a lesion id or patient id appears in two of the named parts.
pub fn verify_disjoint(parts: &[(&str, &Manifest)]) -> Result<(), SplitError> {
    let mut owner: HashMap<(&'static str, &str), &str> = HashMap::new();
    for &(name, m) in parts {
        for r in &m.records {
            let keys = [
                Some(("lesion", r.lesion_id.as_str())),
                r.patient_id.as_deref().map(|p| ("patient", p)),
            ];
            for (kind, id) in keys.into_iter().flatten() {
                match owner.insert((kind, id), name) {
                    Some(other) if other != name => {
                        return Err(SplitError::Leak {
                            kind,
                            id: id.to_owned(),
                            a: other.to_owned(),
                            b: name.to_owned(),
                        })
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// A class-balanced subset: at most `per_class` images of each class (all of a smaller class).
/// Images are drawn with the seed, one per lesion before any lesion gets a second, so the subset
/// keeps as many different lesions as it can.
pub fn balance(manifest: &Manifest, per_class: usize, seed: u64) -> Manifest {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xba1a_5ce0);
    let mut keep = vec![false; manifest.len()];
    for class in CLASSES {
        let mut idx: Vec<usize> = (0..manifest.len())
            .filter(|&i| manifest.records[i].label == class)
            .collect();
        idx.shuffle(&mut rng);
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut ranked: Vec<(usize, usize)> = idx
            .into_iter()
            .map(|i| {
                let n = seen
                    .entry(manifest.records[i].lesion_id.as_str())
                    .or_default();
                *n += 1;
                (*n, i)
            })
            .collect();
        ranked.sort_by_key(|&(rank, _)| rank);
        for &(_, i) in ranked.iter().take(per_class) {
            keep[i] = true;
        }
    }
    Manifest::new(
        manifest
            .records
            .iter()
            .zip(&keep)
            .filter(|(_, &k)| k)
            .map(|(r, _)| r.clone())
            .collect(),
    )
}

/// The smallest non-zero class count (the size of a fully balanced set per class).
pub fn smallest_class(manifest: &Manifest) -> usize {
    manifest
        .class_counts()
        .into_iter()
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0)
}

/// Applies the mask mode: raw rows, masked rows, or each raw row followed by its masked copy.
pub fn with_mask_mode(manifest: &Manifest, mode: MaskMode) -> Result<Manifest, SplitError> {
    if mode != MaskMode::Raw {
        let missing: Vec<&Record> = manifest
            .records
            .iter()
            .filter(|r| r.mask_path.is_none())
            .collect();
        if let Some(first) = missing.first() {
            return Err(SplitError::NoMask {
                count: missing.len(),
                mode: mode.as_str(),
                first: first.image_id.clone(),
            });
        }
    }
    let masked = |r: &Record| Record {
        variant: Variant::Masked,
        ..r.clone()
    };
    let raw = |r: &Record| Record {
        variant: Variant::Raw,
        ..r.clone()
    };
    let records = match mode {
        MaskMode::Raw => manifest.records.iter().map(raw).collect(),
        MaskMode::Masked => manifest.records.iter().map(masked).collect(),
        MaskMode::Both => manifest
            .records
            .iter()
            .flat_map(|r| [raw(r), masked(r)])
            .collect(),
    };
    Ok(Manifest::new(records))
}

/// Per-class counts of a part, for split.json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartSummary {
    pub images: usize,
    pub lesions: usize,
    pub per_class: BTreeMap<&'static str, usize>,
}

impl PartSummary {
    pub fn of(m: &Manifest) -> Self {
        let counts = m.class_counts();
        PartSummary {
            images: m.len(),
            lesions: m.lesion_count(),
            per_class: CLASSES
                .iter()
                .map(|c| (c.code(), counts[c.index()]))
                .collect(),
        }
    }
}

/// A table of per-class counts (and percentages) per part, for the terminal.
pub fn counts_table(parts: &[(&str, &Manifest)]) -> String {
    let mut s = format!("{:<12}{:>8}", "split", "images");
    for c in CLASSES {
        s += &format!("{:>14}", c.code());
    }
    s.push('\n');
    for (name, m) in parts {
        let counts = m.class_counts();
        s += &format!("{name:<12}{:>8}", m.len());
        for c in CLASSES {
            let n = counts[c.index()];
            let pct = 100.0 * n as f64 / m.len().max(1) as f64;
            s += &format!("{:>14}", format!("{n} ({pct:.1}%)"));
        }
        s.push('\n');
    }
    s
}

/// Everything `dermo data split` is asked for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SplitConfig {
    pub seed: u64,
    /// train, val, test.
    pub fractions: [f64; 3],
    /// Instead of train/val/test: K folds, each written as `fold-i/{train,val}.csv`.
    pub k_fold: Option<usize>,
    /// Cap each training class at this many images (`--balance`: the smallest class).
    pub balance: Option<Balance>,
    pub mask_mode: MaskMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Every class down to the smallest training class.
    Smallest,
    /// Every class down to at most this many images.
    AtMost(usize),
}

/// What `split.json` records: enough to repeat the split and to see what it holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SplitRecord {
    pub manifest: String,
    pub manifest_hash: String,
    #[serde(flatten)]
    pub config: SplitConfig,
    pub groups: usize,
    pub all: PartSummary,
    /// Per written file (`train`, `val`, `test` or `fold-0/train`, …), after balancing and
    /// mask mode.
    pub parts: BTreeMap<String, PartSummary>,
}

/// Splits `manifest` into named manifests per the config, verifying that no group crosses the
/// parts. Returns `(file stem, manifest)` pairs in writing order.
pub fn make_splits(
    manifest: &Manifest,
    cfg: &SplitConfig,
) -> Result<Vec<(String, Manifest)>, SplitError> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, r) in manifest.records.iter().enumerate() {
        if let Some(&j) = first.get(r.image_id.as_str()) {
            return Err(SplitError::Duplicate {
                id: r.image_id.clone(),
                first: j + 1,
                second: i + 1,
            });
        }
        first.insert(&r.image_id, i);
    }
    let mut out = Vec::new();
    match cfg.k_fold {
        Some(k) if k < 2 => return Err(SplitError::KFold(k)),
        Some(k) => {
            let parts = assign(manifest, &vec![1.0 / k as f64; k], cfg.seed)?;
            for fold in 0..k {
                let train = select(manifest, &parts, |p| p != fold);
                let val = select(manifest, &parts, |p| p == fold);
                verify_disjoint(&[("train", &train), ("val", &val)])?;
                out.push((format!("fold-{fold}/train"), balanced(&train, cfg)));
                out.push((format!("fold-{fold}/val"), val));
            }
        }
        None => {
            let parts = assign(manifest, &cfg.fractions, cfg.seed)?;
            let [train, val, test] = [0, 1, 2].map(|k| select(manifest, &parts, |p| p == k));
            verify_disjoint(&[("train", &train), ("val", &val), ("test", &test)])?;
            out.push(("train".to_owned(), balanced(&train, cfg)));
            out.push(("val".to_owned(), val));
            out.push(("test".to_owned(), test));
        }
    }
    out.into_iter()
        .map(|(name, m)| Ok((name, with_mask_mode(&m, cfg.mask_mode)?)))
        .collect()
}

fn balanced(train: &Manifest, cfg: &SplitConfig) -> Manifest {
    match cfg.balance {
        None => train.clone(),
        Some(Balance::Smallest) => balance(train, smallest_class(train), cfg.seed),
        Some(Balance::AtMost(n)) => balance(train, n, cfg.seed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn rec(id: usize, lesion: &str, patient: Option<&str>, label: Class) -> Record {
        Record {
            image_id: format!("img{id}"),
            path: PathBuf::from(format!("/x/{id}.jpg")),
            label,
            lesion_id: lesion.into(),
            patient_id: patient.map(Into::into),
            mask_path: None,
            source: "t".into(),
            sha256: String::new(),
            width: 1,
            height: 1,
            variant: Variant::Raw,
        }
    }

    #[test]
    fn patients_join_lesions_into_one_group() {
        let m = Manifest::new(vec![
            rec(0, "A", Some("p1"), Class::Nv),
            rec(1, "B", Some("p1"), Class::Mel),
            rec(2, "C", None, Class::Nv),
            rec(3, "A", None, Class::Nv),
        ]);
        assert_eq!(groups(&m), vec![0, 0, 1, 0]);
    }

    #[test]
    fn assignment_is_deterministic_and_keeps_groups_whole() {
        let records: Vec<Record> = (0..300)
            .map(|i| rec(i, &format!("L{}", i / 3), None, CLASSES[(i / 3) % 7]))
            .collect();
        let m = Manifest::new(records);
        let a = assign(&m, &[0.7, 0.15, 0.15], 0).unwrap();
        assert_eq!(a, assign(&m, &[0.7, 0.15, 0.15], 0).unwrap());
        assert_ne!(a, assign(&m, &[0.7, 0.15, 0.15], 1).unwrap());
        for i in 0..300 {
            assert_eq!(a[i], a[i - i % 3]);
        }
        assert!(assign(&m, &[0.7, 0.2], 0).is_err());
    }

    #[test]
    fn leaks_are_reported() {
        let a = Manifest::new(vec![rec(0, "A", None, Class::Nv)]);
        let b = Manifest::new(vec![rec(1, "A", None, Class::Nv)]);
        let err = verify_disjoint(&[("train", &a), ("test", &b)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lesion A") && err.contains("train") && err.contains("test"),
            "{err}"
        );
    }

    #[test]
    fn balance_caps_each_class_and_prefers_new_lesions() {
        let mut records: Vec<Record> = (0..10)
            .map(|i| rec(i, &format!("L{}", i / 5), None, Class::Nv))
            .collect();
        records.push(rec(10, "M", None, Class::Mel));
        let m = Manifest::new(records);
        let b = balance(&m, 2, 0);
        assert_eq!(b.class_counts()[Class::Nv.index()], 2);
        assert_eq!(b.class_counts()[Class::Mel.index()], 1);
        let nv: Vec<&str> = b
            .records
            .iter()
            .filter(|r| r.label == Class::Nv)
            .map(|r| r.lesion_id.as_str())
            .collect();
        assert_ne!(nv[0], nv[1]);
    }
}
