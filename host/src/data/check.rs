//! Screening: per-image quality (the device's own measures and thresholds,
//! `dermo_model::quality`, so an image flagged here is one the device would refuse), exact and
//! near duplicates, mask problems.
//!
//! Near duplicates are found with a 64-bit perceptual hash (DCT of a 32×32 grey thumbnail, the
//! 8×8 lowest frequencies against their median) within a Hamming distance, confirmed by the mean
//! colour difference of 8×8 RGB thumbnails: dermoscopy images share so much structure (a dark
//! blob on skin, a vignette) that the hash alone pairs unrelated lesions.

use super::manifest::{Manifest, Record, Variant};
use super::progress;
use dermo_model::preprocess::decode_bytes;
use dermo_model::quality::{self, QualityGate, QualityIssue, QualityMeasures};
use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, RgbImage};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Thresholds of the screening; the defaults suit HAM10000-like dermoscopy images.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckConfig {
    /// Images whose shorter side is below this are `too_small`.
    pub min_side: u32,
    /// The quality thresholds: the device gate's, so both halves agree on what is too dark,
    /// blurred or lesion-free.
    pub gate: QualityGate,
    /// Perceptual-hash Hamming distance (of 64 bits) at most this may be a near duplicate…
    pub near_hamming: u32,
    /// …when the 8×8 colour thumbnails also differ by at most this (mean absolute, 0–255).
    pub near_color: f64,
    /// A mask covering more than this fraction of the image is `mask_full`.
    pub max_mask_fraction: f64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            min_side: 64,
            gate: QualityGate::default(),
            near_hamming: 4,
            near_color: 6.0,
            max_mask_fraction: 0.99,
        }
    }
}

/// A problem found with one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Issue {
    Unreadable,
    /// The file's sha256 is not the one the manifest recorded at import.
    Changed,
    TooSmall,
    /// What the device's quality gate would say of the image.
    Quality(QualityIssue),
    /// Same bytes as an earlier record (which is kept).
    ExactDuplicate,
    /// Looks like an image of another lesion of the same class: a possible split leak.
    NearDuplicate,
    /// Identical or near-identical to an image with another label.
    LabelConflict,
    MaskUnreadable,
    MaskEmpty,
    MaskFull,
    MaskWrongSize,
}

impl Issue {
    pub const ALL: [Issue; 15] = [
        Issue::Unreadable,
        Issue::Changed,
        Issue::TooSmall,
        Issue::Quality(QualityIssue::TooDark),
        Issue::Quality(QualityIssue::TooBright),
        Issue::Quality(QualityIssue::Blurred),
        Issue::Quality(QualityIssue::Noisy),
        Issue::Quality(QualityIssue::NoLesion),
        Issue::ExactDuplicate,
        Issue::NearDuplicate,
        Issue::LabelConflict,
        Issue::MaskUnreadable,
        Issue::MaskEmpty,
        Issue::MaskFull,
        Issue::MaskWrongSize,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Issue::Unreadable => "unreadable",
            Issue::Changed => "changed_since_import",
            Issue::TooSmall => "too_small",
            Issue::Quality(q) => q.code(),
            Issue::ExactDuplicate => "exact_duplicate",
            Issue::NearDuplicate => "near_duplicate_other_lesion",
            Issue::LabelConflict => "label_conflict",
            Issue::MaskUnreadable => "mask_unreadable",
            Issue::MaskEmpty => "mask_empty",
            Issue::MaskFull => "mask_full",
            Issue::MaskWrongSize => "mask_wrong_size",
        }
    }

    /// Whether `--exclude` drops an image with this issue. Near duplicates of other lesions, full
    /// masks and a lesion the gate does not see in the centre are only reported: all can be
    /// legitimate in a training set.
    pub fn excludes(self) -> bool {
        !matches!(
            self,
            Issue::NearDuplicate | Issue::MaskFull | Issue::Quality(QualityIssue::NoLesion)
        )
    }
}

/// The measures of one readable image.
#[derive(Debug, Clone, PartialEq)]
pub struct Measures {
    pub width: u32,
    pub height: u32,
    pub sha256: String,
    /// The quality measures, exactly as the device's gate takes them.
    pub quality: QualityMeasures,
    pub phash: u64,
    thumbnail: Vec<u8>,
    /// Lesion fraction of the mask, when the record has a readable mask.
    pub mask_fraction: Option<f64>,
}

/// Everything found about one record.
#[derive(Debug, Clone)]
pub struct ImageReport {
    pub measures: Option<Measures>,
    /// Why the image (or its mask) could not be read.
    pub error: Option<String>,
    pub issues: Vec<Issue>,
    /// Index of the earlier record with the same bytes.
    pub duplicate_of: Option<usize>,
}

/// How two near-identical images relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    SameLesion,
    OtherLesion,
    OtherClass,
}

impl Relation {
    pub fn code(self) -> &'static str {
        match self {
            Relation::SameLesion => "same_lesion",
            Relation::OtherLesion => "other_lesion_same_class",
            Relation::OtherClass => "other_class",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NearPair {
    pub a: usize,
    pub b: usize,
    pub hamming: u32,
    pub color_distance: f64,
    pub relation: Relation,
}

/// The result of screening a manifest; indices refer to its records.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub images: Vec<ImageReport>,
    pub near_pairs: Vec<NearPair>,
}

/// Screens every record of `manifest` (in parallel, with a progress bar).
pub fn check(manifest: &Manifest, cfg: &CheckConfig) -> CheckReport {
    let bar = progress::bar(manifest.len() as u64, "checking");
    let mut images: Vec<ImageReport> = manifest
        .records
        .par_iter()
        .map(|r| {
            let report = inspect(r, cfg);
            bar.inc(1);
            report
        })
        .collect();
    bar.finish_and_clear();
    mark_exact_duplicates(manifest, &mut images);
    let near_pairs = near_duplicates(manifest, &images, cfg);
    for p in &near_pairs {
        let issue = match p.relation {
            Relation::SameLesion => continue,
            Relation::OtherLesion => Issue::NearDuplicate,
            Relation::OtherClass => Issue::LabelConflict,
        };
        images[p.a].issues.push(issue);
        images[p.b].issues.push(issue);
    }
    for img in &mut images {
        img.issues.sort();
        img.issues.dedup();
    }
    CheckReport { images, near_pairs }
}

fn inspect(record: &Record, cfg: &CheckConfig) -> ImageReport {
    let unreadable = |error: String| ImageReport {
        measures: None,
        error: Some(error),
        issues: vec![Issue::Unreadable],
        duplicate_of: None,
    };
    let bytes = match std::fs::read(&record.path) {
        Ok(b) => b,
        Err(e) => return unreadable(format!("cannot read {}: {e}", record.path.display())),
    };
    let img = match decode_bytes(&bytes, &record.path.display().to_string()) {
        Ok(img) => img,
        Err(e) => return unreadable(e.to_string()),
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let grey = imageops::grayscale(&img);
    let verdict = cfg.gate.check(&img);
    let mut measures = Measures {
        width: img.width(),
        height: img.height(),
        quality: verdict.measures,
        phash: phash(&grey),
        thumbnail: imageops::resize(&img, 8, 8, FilterType::Triangle).into_raw(),
        mask_fraction: None,
        sha256,
    };
    let mut issues = Vec::new();
    let mut error = None;
    if !record.sha256.is_empty() && record.sha256 != measures.sha256 {
        issues.push(Issue::Changed);
    }
    if measures.width.min(measures.height) < cfg.min_side {
        issues.push(Issue::TooSmall);
    }
    issues.extend(verdict.issues.into_iter().map(Issue::Quality));
    if let Some(mask_path) = &record.mask_path {
        match read_mask(mask_path) {
            Err(e) => {
                issues.push(Issue::MaskUnreadable);
                error = Some(e);
            }
            Ok(mask) => {
                if mask.dimensions() != img.dimensions() {
                    issues.push(Issue::MaskWrongSize);
                }
                let lesion = mask.pixels().filter(|p| p.0[0] > 0).count();
                let fraction = lesion as f64 / (mask.width() * mask.height()).max(1) as f64;
                if lesion == 0 {
                    issues.push(Issue::MaskEmpty);
                } else if fraction > cfg.max_mask_fraction {
                    issues.push(Issue::MaskFull);
                }
                measures.mask_fraction = Some(fraction);
            }
        }
    }
    ImageReport {
        measures: Some(measures),
        error,
        issues,
        duplicate_of: None,
    }
}

/// A mask as grey levels, lesion = non-zero (the rule `apply_mask` uses).
fn read_mask(path: &Path) -> Result<GrayImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let rgb: RgbImage =
        decode_bytes(&bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
    Ok(DynamicImage::ImageRgb8(rgb).into_luma8())
}

/// 64-bit DCT perceptual hash: bit set where a low-frequency coefficient exceeds their median.
pub fn phash(grey: &GrayImage) -> u64 {
    const N: usize = 32;
    let small = imageops::resize(grey, N as u32, N as u32, FilterType::Triangle);
    let px: Vec<f64> = small.as_raw().iter().map(|&v| f64::from(v)).collect();
    let cos: Vec<f64> = (0..8 * N)
        .map(|i| {
            let (k, n) = (i / N, i % N);
            (std::f64::consts::PI * (2 * n + 1) as f64 * k as f64 / (2 * N) as f64).cos()
        })
        .collect();
    // Separable 2-D DCT-II, only the 8×8 lowest frequencies (scale factors do not change the
    // comparison with the median).
    let mut rows = vec![0f64; N * 8]; // rows[y * 8 + u]
    for y in 0..N {
        for u in 0..8 {
            rows[y * 8 + u] = (0..N).map(|x| px[y * N + x] * cos[u * N + x]).sum();
        }
    }
    let mut coeffs = [0f64; 64];
    for v in 0..8 {
        for u in 0..8 {
            coeffs[v * 8 + u] = (0..N).map(|y| rows[y * 8 + u] * cos[v * N + y]).sum();
        }
    }
    let mut sorted = coeffs[1..].to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    coeffs
        .iter()
        .enumerate()
        .fold(0u64, |h, (i, &c)| if c > median { h | 1 << i } else { h })
}

/// Flags every later record whose bytes equal an earlier one of the same variant; differing
/// labels on the same bytes are a label conflict for all of them.
fn mark_exact_duplicates(manifest: &Manifest, images: &mut [ImageReport]) {
    let keys: Vec<Option<(String, Variant)>> = images
        .iter()
        .zip(&manifest.records)
        .map(|(img, r)| img.measures.as_ref().map(|m| (m.sha256.clone(), r.variant)))
        .collect();
    let mut first: HashMap<&(String, Variant), usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(key) = key else { continue };
        match first.get(key) {
            None => {
                first.insert(key, i);
            }
            Some(&j) => {
                images[i].issues.push(Issue::ExactDuplicate);
                images[i].duplicate_of = Some(j);
                if manifest.records[i].label != manifest.records[j].label {
                    images[i].issues.push(Issue::LabelConflict);
                    images[j].issues.push(Issue::LabelConflict);
                }
            }
        }
    }
}

/// All pairs of distinct files (same variant) within the hash and colour thresholds.
fn near_duplicates(
    manifest: &Manifest,
    images: &[ImageReport],
    cfg: &CheckConfig,
) -> Vec<NearPair> {
    let hashed: Vec<(usize, &Measures)> = images
        .iter()
        .enumerate()
        .filter(|(_, img)| img.duplicate_of.is_none())
        .filter_map(|(i, img)| img.measures.as_ref().map(|m| (i, m)))
        .collect();
    hashed
        .par_iter()
        .enumerate()
        .flat_map_iter(|(k, &(a, ma))| {
            hashed[k + 1..].iter().filter_map(move |&(b, mb)| {
                let hamming = (ma.phash ^ mb.phash).count_ones();
                if hamming > cfg.near_hamming {
                    return None;
                }
                let (ra, rb) = (&manifest.records[a], &manifest.records[b]);
                if ra.variant != rb.variant {
                    return None;
                }
                let color_distance = color_distance(&ma.thumbnail, &mb.thumbnail);
                if color_distance > cfg.near_color {
                    return None;
                }
                let relation = if ra.label != rb.label {
                    Relation::OtherClass
                } else if ra.lesion_id == rb.lesion_id {
                    Relation::SameLesion
                } else {
                    Relation::OtherLesion
                };
                Some(NearPair {
                    a,
                    b,
                    hamming,
                    color_distance,
                    relation,
                })
            })
        })
        .collect()
}

fn color_distance(a: &[u8], b: &[u8]) -> f64 {
    let sum: u32 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u32::from(x.abs_diff(y)))
        .sum();
    f64::from(sum) / a.len().max(1) as f64
}

impl CheckReport {
    /// Records without any excluding issue.
    pub fn cleaned(&self, manifest: &Manifest) -> Manifest {
        Manifest::new(
            manifest
                .records
                .iter()
                .zip(&self.images)
                .filter(|(_, img)| !img.issues.iter().any(|i| i.excludes()))
                .map(|(r, _)| r.clone())
                .collect(),
        )
    }

    /// Number of images with each issue, in [`Issue::ALL`] order.
    pub fn issue_counts(&self) -> Vec<(Issue, usize)> {
        Issue::ALL
            .iter()
            .map(|&issue| {
                let n = self
                    .images
                    .iter()
                    .filter(|i| i.issues.contains(&issue))
                    .count();
                (issue, n)
            })
            .collect()
    }

    /// The per-image CSV: one row per record, in manifest order.
    pub fn write_images_csv(&self, manifest: &Manifest, path: &Path) -> anyhow::Result<()> {
        let mut near: HashMap<usize, Vec<String>> = HashMap::new();
        for p in &self.near_pairs {
            let name = |i: usize| format!("{}:{}", manifest.records[i].image_id, p.relation.code());
            near.entry(p.a).or_default().push(name(p.b));
            near.entry(p.b).or_default().push(name(p.a));
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "image_id",
            "variant",
            "label",
            "lesion_id",
            "path",
            "readable",
            "width",
            "height",
            "brightness",
            "clipped_dark",
            "clipped_bright",
            "sharpness",
            "centre_detail",
            "centre_contrast",
            "phash",
            "mask_fraction",
            "issues",
            "duplicate_of",
            "near_duplicates",
            "error",
        ])?;
        for (i, (r, img)) in manifest.records.iter().zip(&self.images).enumerate() {
            let m = img.measures.as_ref();
            let num = |f: fn(&QualityMeasures) -> f32| {
                m.map(|m| format!("{:.3}", f(&m.quality)))
                    .unwrap_or_default()
            };
            w.write_record([
                r.image_id.clone(),
                r.variant.to_string(),
                r.label.to_string(),
                r.lesion_id.clone(),
                r.path.display().to_string(),
                m.is_some().to_string(),
                m.map(|m| m.width.to_string()).unwrap_or_default(),
                m.map(|m| m.height.to_string()).unwrap_or_default(),
                num(|q| q.brightness),
                num(|q| q.clipped_dark),
                num(|q| q.clipped_bright),
                num(|q| q.sharpness),
                num(|q| q.centre_detail),
                num(|q| q.centre_contrast),
                m.map(|m| format!("{:016x}", m.phash)).unwrap_or_default(),
                m.and_then(|m| m.mask_fraction)
                    .map(|f| format!("{f:.4}"))
                    .unwrap_or_default(),
                img.issues
                    .iter()
                    .map(|i| i.code())
                    .collect::<Vec<_>>()
                    .join(";"),
                img.duplicate_of
                    .map(|j| manifest.records[j].image_id.clone())
                    .unwrap_or_default(),
                near.get(&i).map(|v| v.join(";")).unwrap_or_default(),
                img.error.clone().unwrap_or_default(),
            ])?;
        }
        crate::files::write_atomic(path, &w.into_inner()?)?;
        Ok(())
    }

    /// The near-duplicate pairs as CSV.
    pub fn write_pairs_csv(&self, manifest: &Manifest, path: &Path) -> anyhow::Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "a",
            "b",
            "relation",
            "hamming",
            "color_distance",
            "label_a",
            "label_b",
            "lesion_a",
            "lesion_b",
        ])?;
        for p in &self.near_pairs {
            let (a, b) = (&manifest.records[p.a], &manifest.records[p.b]);
            w.write_record([
                a.image_id.clone(),
                b.image_id.clone(),
                p.relation.code().to_owned(),
                p.hamming.to_string(),
                format!("{:.2}", p.color_distance),
                a.label.to_string(),
                b.label.to_string(),
                a.lesion_id.clone(),
                b.lesion_id.clone(),
            ])?;
        }
        crate::files::write_atomic(path, &w.into_inner()?)?;
        Ok(())
    }

    /// A short summary a person can read.
    pub fn summary(&self, manifest: &Manifest, cfg: &CheckConfig) -> String {
        let mut s = String::new();
        let flagged = self.images.iter().filter(|i| !i.issues.is_empty()).count();
        let excluded = self
            .images
            .iter()
            .filter(|i| i.issues.iter().any(|x| x.excludes()))
            .count();
        let _ = writeln!(
            s,
            "dermo data check: {} images, {flagged} with issues, {excluded} that --exclude drops",
            manifest.len()
        );
        let _ = writeln!(s, "\nIssues (images):");
        for (issue, n) in self.issue_counts() {
            if n == 0 {
                continue;
            }
            let examples: Vec<&str> = self
                .images
                .iter()
                .zip(&manifest.records)
                .filter(|(i, _)| i.issues.contains(&issue))
                .take(5)
                .map(|(_, r)| r.image_id.as_str())
                .collect();
            let more = if n > examples.len() { ", …" } else { "" };
            let excl = if issue.excludes() {
                ""
            } else {
                " (reported only)"
            };
            let _ = writeln!(
                s,
                "  {:<28} {n:>6}{excl}  e.g. {}{more}",
                issue.code(),
                examples.join(", ")
            );
        }
        if flagged == 0 {
            let _ = writeln!(s, "  none");
        }
        let _ = writeln!(
            s,
            "\nNear-duplicate pairs (perceptual hash ≤ {} bits and colour ≤ {}):",
            cfg.near_hamming, cfg.near_color
        );
        for rel in [
            Relation::SameLesion,
            Relation::OtherLesion,
            Relation::OtherClass,
        ] {
            let n = self.near_pairs.iter().filter(|p| p.relation == rel).count();
            let _ = writeln!(s, "  {:<28} {n:>6}", rel.code());
        }
        let _ = writeln!(
            s,
            "\nThresholds: shorter side < {} px, mask fraction > {}; quality (the device gate's, on luma \
             scaled to {} px wide): mean luma < {} or > {}, clipped (≤ {} or ≥ {}) fraction > {}, \
             sharpness (Laplacian variance) < {} or > {}, centre detail < {} and contrast < {}.",
            cfg.min_side,
            cfg.max_mask_fraction,
            quality::WORK_WIDTH,
            cfg.gate.min_brightness,
            cfg.gate.max_brightness,
            quality::CLIPPED_DARK_LUMA,
            quality::CLIPPED_BRIGHT_LUMA,
            cfg.gate.max_clipped,
            cfg.gate.min_sharpness,
            cfg.gate.max_sharpness,
            cfg.gate.min_centre_detail,
            cfg.gate.min_centre_contrast
        );
        let errors: Vec<&String> = self
            .images
            .iter()
            .filter_map(|i| i.error.as_ref())
            .take(10)
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(s, "\nRead errors:");
            for e in errors {
                let _ = writeln!(s, "  {e}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn phash_survives_brightness_but_not_a_different_picture() {
        let disc = |cx: f32, lift: u8| {
            GrayImage::from_fn(64, 48, move |x, y| {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - 24.0).powi(2)).sqrt();
                Luma([if d < 12.0 { 40 + lift } else { 180 + lift }])
            })
        };
        let (left, brighter, right) = (disc(20.0, 0), disc(20.0, 30), disc(44.0, 0));
        assert_eq!((phash(&left) ^ phash(&brighter)).count_ones(), 0);
        assert!((phash(&left) ^ phash(&right)).count_ones() > 8);
    }
}
