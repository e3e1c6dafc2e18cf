//! Dataset tooling: import, screening, lesion-grouped splits and the training cache.
//!
//! Every command reads a manifest (see [`manifest`]) or a source layout and writes only inside
//! its output folder; source images are never modified.

pub mod cache;
pub mod check;
pub mod external;
pub mod import;
pub mod labelme;
pub mod labels;
pub mod manifest;
pub mod polygon;
mod progress;
pub mod split;

pub use cache::{build_cache, cache_key, ensure_cache, Cache, CacheBuild, CacheError, CacheMeta};
pub use manifest::{Manifest, ManifestError, Record, Variant};

use anyhow::Context;
use clap::{Args, Subcommand};
use dermo_model::quality::QualityGate;
use dermo_model::PreprocessConfig;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Turn a dataset layout into OUT/manifest.csv (one row per image).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Screen every image: unreadable, too small, the device gate's quality issues, duplicates, mask problems.
    Check(CheckArgs),
    /// Split a manifest into train/val/test (or k folds), stratified by class, grouped by lesion.
    Split(SplitArgs),
    /// Decode and preprocess every image once into a u8 cache the trainer memory-maps.
    Cache(CacheArgs),
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// HAM10000 / ISIC layout: metadata CSV (lesion_id,image_id,dx[,patient_id]), images, masks.
    Ham10000(Ham10000Args),
    /// One folder per class: ROOT/<label name>/…/<image>. Each image counts as its own lesion.
    Imagefolder(ImagefolderArgs),
    /// Labelme *.json polygons (image beside the JSON or embedded); masks go to OUT/masks/.
    Labelme(LabelmeArgs),
    /// A bundle written by `dermo-scope export`: captures.csv plus images.
    ScopeBundle(ScopeBundleArgs),
    /// ISIC 2017 (labels.csv: image_id,split,melanoma; images/<id>.jpg) as an external
    /// validation set, OUT/external.csv: for `dermo eval` and `dermo train --external`, never
    /// for training.
    Isic2017(Isic2017Args),
    /// Any "image, melanoma 0/1" table as an external validation set (OUT/external.csv).
    BinaryCsv(BinaryCsvArgs),
}

#[derive(Args)]
pub struct Isic2017Args {
    /// The folder holding labels.csv and images/.
    dir: PathBuf,
    /// Output folder; the set is written to OUT/external.csv.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct BinaryCsvArgs {
    /// CSV with columns `image` (a file name inside --images) and `label` (1/0, true/false,
    /// melanoma/other).
    csv: PathBuf,
    /// Folder holding the images.
    #[arg(long)]
    images: PathBuf,
    /// Output folder; the set is written to OUT/external.csv.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct ImportCommon {
    /// Output folder; the manifest is written to OUT/manifest.csv.
    #[arg(long)]
    out: PathBuf,
    /// Label table (TOML, `[labels] "name" = "code"`) instead of the built-in data/labels.toml.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Skip (and list) items whose label is not in the table instead of failing.
    #[arg(long)]
    skip_unknown: bool,
}

#[derive(Args)]
pub struct Ham10000Args {
    /// The metadata CSV (HAM10000_metadata.csv).
    #[arg(long)]
    metadata: PathBuf,
    /// Folder of <image_id>.jpg files.
    #[arg(long)]
    images: PathBuf,
    /// Folder of <image_id>_segmentation.png lesion masks (optional).
    #[arg(long)]
    masks: Option<PathBuf>,
    #[command(flatten)]
    common: ImportCommon,
}

#[derive(Args)]
pub struct ImagefolderArgs {
    /// Root folder holding one sub-folder per class, named by a label of the label table.
    root: PathBuf,
    #[command(flatten)]
    common: ImportCommon,
}

#[derive(Args)]
pub struct LabelmeArgs {
    /// Folder searched recursively for Labelme *.json files.
    dir: PathBuf,
    /// Where the class comes from: the lesion shapes' label, or the folder holding the JSON.
    #[arg(long, value_enum, default_value_t = labelme::LabelFrom::Shape)]
    label_from: labelme::LabelFrom,
    /// With --label-from folder: the shape label of lesion outlines. Shapes labelled "hole" are
    /// always cut out of the mask.
    #[arg(long, default_value = "lesion")]
    lesion_label: String,
    #[command(flatten)]
    common: ImportCommon,
}

#[derive(Args)]
pub struct ScopeBundleArgs {
    /// The bundle folder (holding captures.csv).
    dir: PathBuf,
    #[command(flatten)]
    common: ImportCommon,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Manifest CSV to screen.
    manifest: PathBuf,
    /// Output folder: check.csv (per image), near_duplicates.csv, summary.txt.
    #[arg(long)]
    out: PathBuf,
    /// Also write OUT/manifest.csv without the images that have an excluding issue.
    #[arg(long)]
    exclude: bool,
    /// Shorter side below this many pixels is "too_small".
    #[arg(long, default_value_t = check::CheckConfig::default().min_side)]
    min_side: u32,
    /// Variance of the Laplacian (luma scaled to 160 px wide) below this is "blurred"; the
    /// device gate's min_sharpness.
    #[arg(long, default_value_t = QualityGate::default().min_sharpness)]
    min_sharpness: f32,
    /// Mean luma (0–255) below this is "too_dark"; the device gate's min_brightness.
    #[arg(long, default_value_t = QualityGate::default().min_brightness)]
    min_brightness: f32,
    /// Mean luma above this is "too_bright"; the device gate's max_brightness.
    #[arg(long, default_value_t = QualityGate::default().max_brightness)]
    max_brightness: f32,
    /// Largest Hamming distance (of 64 bits) between perceptual hashes of near duplicates.
    #[arg(long, default_value_t = check::CheckConfig::default().near_hamming)]
    near_hamming: u32,
    /// Largest mean colour difference (0–255) of 8×8 thumbnails of near duplicates.
    #[arg(long, default_value_t = check::CheckConfig::default().near_color)]
    near_color: f64,
}

#[derive(Args)]
pub struct SplitArgs {
    /// Manifest CSV to split.
    manifest: PathBuf,
    /// Output folder: train.csv, val.csv, test.csv (or fold-i/{train,val}.csv) and split.json.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the group shuffle; the same seed and manifest give the same split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train, validation and test fractions (summing to 1).
    #[arg(long, value_delimiter = ',', default_values_t = [0.7, 0.15, 0.15])]
    fractions: Vec<f64>,
    /// K-fold instead: K folds, fold-i/val.csv is fold i and fold-i/train.csv the rest.
    #[arg(long, value_name = "K")]
    k_fold: Option<usize>,
    /// Class-balanced training set: every class cut to the smallest training class.
    #[arg(long, conflicts_with = "balance_to")]
    balance: bool,
    /// Class-balanced training set: every class cut to at most N images.
    #[arg(long, value_name = "N")]
    balance_to: Option<usize>,
    /// raw images, masked images (background zeroed), or both (each image twice).
    #[arg(long, value_enum, default_value_t = split::MaskMode::Raw)]
    mask_mode: split::MaskMode,
}

#[derive(Args)]
pub struct CacheArgs {
    /// Manifest CSV to cache (masked rows get their lesion mask applied first).
    manifest: PathBuf,
    /// Side of the square images, in pixels.
    #[arg(long, default_value_t = PreprocessConfig::default().size)]
    size: u32,
    /// Apply Shades-of-Gray colour constancy before resizing.
    #[arg(long)]
    color_constancy: bool,
    /// Cache root; the cache goes into OUT/<size>px-<key>, key = manifest hash + preprocessing.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Import(c) => run_import(c),
        DataCommand::Check(a) => run_check(a),
        DataCommand::Split(a) => run_split(a),
        DataCommand::Cache(a) => run_cache(a),
    }
}

fn save_external(set: &external::ExternalSet, out: &Path, started: Instant) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = out.join(external::EXTERNAL_CSV);
    set.save(&path)?;
    eprintln!(
        "external set: {} images, {} melanoma, {} other; hash {}\nwrote {} in {:.1}s \
         (for validation and selection only: never train on it)",
        set.len(),
        set.melanomas(),
        set.len() - set.melanomas(),
        set.hash(),
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_import(cmd: ImportCommand) -> anyhow::Result<()> {
    let started = Instant::now();
    let (imported, common) = match cmd {
        ImportCommand::Isic2017(a) => {
            return save_external(&external::import_isic2017(&a.dir)?, &a.out, started)
        }
        ImportCommand::BinaryCsv(a) => {
            let set = external::import_binary_csv(&a.csv, &a.images)?;
            return save_external(&set, &a.out, started);
        }
        ImportCommand::Ham10000(a) => {
            let labels = load_labels(&a.common)?;
            let src = import::Ham10000Source {
                metadata: &a.metadata,
                images: &a.images,
                masks: a.masks.as_deref(),
            };
            (
                import::ham10000(&src, &labels, a.common.skip_unknown)?,
                a.common,
            )
        }
        ImportCommand::Imagefolder(a) => {
            let labels = load_labels(&a.common)?;
            (
                import::imagefolder(&a.root, &labels, a.common.skip_unknown)?,
                a.common,
            )
        }
        ImportCommand::Labelme(a) => {
            let labels = load_labels(&a.common)?;
            let opts = labelme::LabelmeOptions {
                label_from: a.label_from,
                lesion_label: a.lesion_label,
                skip_unknown: a.common.skip_unknown,
            };
            (
                labelme::import(&a.dir, &a.common.out, &labels, &opts)?,
                a.common,
            )
        }
        ImportCommand::ScopeBundle(a) => {
            let labels = load_labels(&a.common)?;
            (
                import::scope_bundle(&a.dir, &labels, a.common.skip_unknown)?,
                a.common,
            )
        }
    };
    let path = common.out.join("manifest.csv");
    let m = &imported.manifest;
    m.save(&path)?;
    for s in &imported.skipped {
        eprintln!("skipped: {s}");
    }
    for p in &imported.unreadable {
        eprintln!(
            "warning: cannot read the header of {} (kept; `dermo data check` reports it)",
            p.display()
        );
    }
    let masks = m.records.iter().filter(|r| r.mask_path.is_some()).count();
    println!(
        "{}: {} images, {} lesions, {masks} masks, {} skipped ({:.1} s)",
        path.display(),
        m.len(),
        m.lesion_count(),
        imported.skipped.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", split::counts_table(&[("all", m)]).trim_end());
    println!("manifest hash {}", m.hash());
    Ok(())
}

fn load_labels(common: &ImportCommon) -> anyhow::Result<labels::LabelTable> {
    Ok(labels::LabelTable::load_or_builtin(
        common.labels.as_deref(),
    )?)
}

fn run_check(a: CheckArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let m = Manifest::load(&a.manifest)?;
    let cfg = check::CheckConfig {
        min_side: a.min_side,
        gate: QualityGate {
            min_sharpness: a.min_sharpness,
            min_brightness: a.min_brightness,
            max_brightness: a.max_brightness,
            ..QualityGate::default()
        },
        near_hamming: a.near_hamming,
        near_color: a.near_color,
        ..Default::default()
    };
    let report = check::check(&m, &cfg);
    ensure_dir(&a.out)?;
    report.write_images_csv(&m, &a.out.join("check.csv"))?;
    report.write_pairs_csv(&m, &a.out.join("near_duplicates.csv"))?;
    let mut summary = report.summary(&m, &cfg);
    if a.exclude {
        let cleaned = report.cleaned(&m);
        let path = a.out.join("manifest.csv");
        cleaned.save(&path)?;
        summary += &format!(
            "\nCleaned manifest: {} ({} of {} images kept).\n",
            path.display(),
            cleaned.len(),
            m.len()
        );
    }
    crate::files::write_atomic(&a.out.join("summary.txt"), summary.as_bytes())
        .with_context(|| format!("cannot write {}", a.out.join("summary.txt").display()))?;
    print!("{summary}");
    println!(
        "({:.1} s; details in {})",
        started.elapsed().as_secs_f64(),
        a.out.join("check.csv").display()
    );
    Ok(())
}

fn run_split(a: SplitArgs) -> anyhow::Result<()> {
    let m = Manifest::load(&a.manifest)?;
    let fractions: [f64; 3] = a.fractions.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "--fractions needs three values (train,val,test), got {:?}",
            a.fractions
        )
    })?;
    let cfg = split::SplitConfig {
        seed: a.seed,
        fractions,
        k_fold: a.k_fold,
        balance: match (a.balance, a.balance_to) {
            (_, Some(n)) => Some(split::Balance::AtMost(n)),
            (true, None) => Some(split::Balance::Smallest),
            (false, None) => None,
        },
        mask_mode: a.mask_mode,
    };
    let parts = split::make_splits(&m, &cfg)?;
    ensure_dir(&a.out)?;
    for (name, part) in &parts {
        part.save(&a.out.join(format!("{name}.csv")))?;
    }
    let record = split::SplitRecord {
        manifest: a.manifest.display().to_string(),
        manifest_hash: m.hash(),
        config: cfg,
        groups: split::groups(&m).into_iter().max().map_or(0, |g| g + 1),
        all: split::PartSummary::of(&m),
        parts: parts
            .iter()
            .map(|(n, p)| (n.clone(), split::PartSummary::of(p)))
            .collect(),
    };
    let json_path = a.out.join("split.json");
    crate::files::write_atomic(
        &json_path,
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", json_path.display()))?;
    let mut table: Vec<(&str, &Manifest)> = vec![("all", &m)];
    table.extend(parts.iter().map(|(n, p)| (n.as_str(), p)));
    print!("{}", split::counts_table(&table));
    println!(
        "no lesion{} crosses splits; {} groups; wrote {}",
        if m.records.iter().any(|r| r.patient_id.is_some()) {
            " or patient"
        } else {
            ""
        },
        record.groups,
        a.out.display()
    );
    Ok(())
}

fn run_cache(a: CacheArgs) -> anyhow::Result<()> {
    let cfg = PreprocessConfig {
        size: a.size,
        color_constancy: a.color_constancy,
    };
    let started = Instant::now();
    let build = cache::ensure_cache(&a.manifest, &cfg, &a.out)
        .with_context(|| format!("caching {}", a.manifest.display()))?;
    let cache = Cache::open(&build.dir)?;
    let secs = started.elapsed().as_secs_f64();
    if build.built {
        println!(
            "cache {}: {} images at {}×{} px in {:.1} s ({:.0} images/s)",
            build.dir.display(),
            cache.len(),
            cache.size(),
            cache.size(),
            secs,
            cache.len() as f64 / secs.max(1e-9),
        );
    } else {
        println!(
            "cache {}: up to date ({} images at {}×{} px), nothing to do",
            build.dir.display(),
            cache.len(),
            cache.size(),
            cache.size()
        );
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}
