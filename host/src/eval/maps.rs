//! Where the model looked, on the host: class-activation maps for every image of a split
//! (`dermo eval --maps DIR`), the pointing game against the lesion masks, and a page of overlays.
//!
//! The maps are `dermo_model::maps`' (one definition with the device). The pointing game counts
//! an image as a hit when the peak cell of its predicted class's map lies on the lesion (the mask
//! pixel at the cell's centre). Two baselines say what a hit rate means:
//! - chance: a peak dropped at random lands on the lesion with probability = the mask's area
//!   fraction, so the mean area fraction is the expected hit rate of a map that looks nowhere;
//! - centre: a "map" whose peak is always the image centre. HAM10000 lesions are photographed
//!   centred, so this is the bar a map must clear to show it finds the lesion rather than the
//!   middle of the frame.
//!
//! Intervals resample lesions (every image of a lesion together), as every dermo interval does.

use super::document::{Document, Tile};
use super::network::{cached_image, normalized_batch, open_cache, Network};
use crate::data::manifest::Manifest;
use crate::data::Cache;
use crate::files::sanitize;
use anyhow::Context;
use dermo_calibration::{BootstrapConfig, GroupBootstrap, Interval};
use dermo_model::maps::{overlay, peak_in_mask};
use dermo_model::{Class, CLASSES, NUM_CLASSES};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `pointing.json` in a maps folder: what `dermo eval --maps DIR` measured and drew.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapsRecord {
    pub model: String,
    pub data: PathBuf,
    pub pointing_game: PointingGame,
    /// The overlay page's sections (older folders have none).
    #[serde(default)]
    pub gallery: Vec<GallerySection>,
    pub created: String,
}

/// The maps record's file name in a maps folder.
pub const MAPS_JSON: &str = "pointing.json";

impl MapsRecord {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        crate::files::read_json(&dir.join(MAPS_JSON))
    }
}

/// The pointing game on one split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointingGame {
    /// Images with a lesion mask (the others are skipped).
    pub images: usize,
    /// Fraction whose predicted class's map peaks on the lesion.
    pub hit_rate: Option<Interval>,
    /// Mean lesion area fraction: the hit rate of a randomly placed peak.
    pub chance: Option<Interval>,
    /// Fraction whose image centre lies on the lesion: the hit rate of a centre-only map.
    pub centre: Option<Interval>,
    /// Grid side of the maps.
    pub side: usize,
}

/// What one image's map said.
#[derive(Debug, Clone)]
pub struct ImageMap {
    pub image_id: String,
    pub lesion_id: String,
    pub label: Class,
    pub predicted: Class,
    /// Softmax probability (uncalibrated) of the predicted class.
    pub confidence: f32,
    /// The predicted class's map, `side²` logits.
    pub map: Vec<f32>,
    /// Pointing-game entries when the image has a mask: (hit, area fraction, centre on lesion).
    pub pointing: Option<(bool, f64, bool)>,
}

/// The maps of every image of a split, in manifest order, with the image cache they were computed
/// on (the pictures the overlay page draws over).
pub struct SplitMaps {
    pub maps: Vec<ImageMap>,
    /// Cells per side of every map.
    pub side: usize,
    pub cache: Cache,
}

/// Runs `network` over every image of `manifest` (through its image cache) for its class maps.
pub fn map_manifest(
    network: &mut dyn Network,
    manifest_path: &Path,
    cache_root: &Path,
) -> anyhow::Result<SplitMaps> {
    const BATCH: usize = 32;
    let manifest = Manifest::load(manifest_path)?;
    let (cache, _) = open_cache(manifest_path, &network.preprocess(), cache_root)?;
    let bar = super::network::progress_bar(cache.len() as u64, true);
    bar.set_message("maps");
    let mut out = Vec::with_capacity(cache.len());
    let mut side = 0;
    let mut buffer = Vec::new();
    for start in (0..cache.len()).step_by(BATCH) {
        let end = (start + BATCH).min(cache.len());
        normalized_batch(&cache, start..end, &mut buffer)?;
        let maps = network.class_maps(&buffer, end - start)?.with_context(|| {
            format!(
                "{} has no class maps (re-export it with this version of dermo)",
                network.describe()
            )
        })?;
        side = maps.side;
        for (k, i) in (start..end).enumerate() {
            let per_class: Vec<&[f32]> = (0..NUM_CLASSES)
                .map(|c| maps.of(k, c).context("class maps shorter than the batch"))
                .collect::<anyhow::Result<_>>()?;
            // The map's mean is the logit.
            let logits: Vec<f32> = per_class
                .iter()
                .map(|m| m.iter().sum::<f32>() / m.len() as f32)
                .collect();
            let top = (0..NUM_CLASSES)
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                .unwrap_or(0);
            let denom: f32 = logits.iter().map(|l| (l - logits[top]).exp()).sum();
            let record = &manifest.records[i];
            let pointing = match &record.mask_path {
                None => None,
                Some(p) => Some(pointing_entry(per_class[top], side, p)?),
            };
            out.push(ImageMap {
                image_id: record.image_id.clone(),
                lesion_id: record.lesion_id.clone(),
                label: record.label,
                predicted: CLASSES[top],
                confidence: 1.0 / denom,
                map: per_class[top].to_vec(),
                pointing,
            });
        }
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    Ok(SplitMaps {
        maps: out,
        side,
        cache,
    })
}

fn pointing_entry(map: &[f32], side: usize, mask: &Path) -> anyhow::Result<(bool, f64, bool)> {
    let mask = image::open(mask)
        .with_context(|| format!("cannot read lesion mask {}", mask.display()))?
        .to_luma8();
    let (w, h) = mask.dimensions();
    anyhow::ensure!(w > 0 && h > 0, "lesion mask is empty");
    let lesion = mask.pixels().filter(|p| p[0] > 0).count();
    let area = lesion as f64 / (w as f64 * h as f64);
    let centre = mask.get_pixel(w / 2, h / 2)[0] > 0;
    Ok((peak_in_mask(map, side, &mask), area, centre))
}

/// The pointing game over the images that have masks, with lesion-bootstrap intervals.
pub fn pointing_game(split: &SplitMaps, config: BootstrapConfig) -> anyhow::Result<PointingGame> {
    // Per masked image: [hit, lesion area fraction, centre on the lesion], and its lesion.
    let (groups, rows): (Vec<&str>, Vec<[f64; 3]>) = split
        .maps
        .iter()
        .filter_map(|m| {
            let (hit, area, centre) = m.pointing?;
            let flag = |b: bool| f64::from(u8::from(b));
            Some((m.lesion_id.as_str(), [flag(hit), area, flag(centre)]))
        })
        .unzip();
    let (mut hit_rate, mut chance, mut centre) = (None, None, None);
    if !rows.is_empty() {
        let means = |idx: &[usize]| -> Vec<f64> {
            (0..3)
                .map(|k| idx.iter().map(|&i| rows[i][k]).sum::<f64>() / idx.len().max(1) as f64)
                .collect()
        };
        let all: Vec<usize> = (0..rows.len()).collect();
        let boot = GroupBootstrap::new(&groups, config)?;
        let mut intervals = boot.intervals(&means(&all), means).into_iter();
        (hit_rate, chance, centre) = (
            intervals.next().flatten(),
            intervals.next().flatten(),
            intervals.next().flatten(),
        );
    }
    Ok(PointingGame {
        images: rows.len(),
        hit_rate,
        chance,
        centre,
        side: split.side,
    })
}

/// One group of overlays on the page: its heading and its captioned pictures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GallerySection {
    pub heading: String,
    /// Files relative to the maps folder (`images/….png`).
    pub tiles: Vec<Tile>,
}

/// Writes `DIR/index.html`: overlays of the worst errors (the most confident wrong answers) and of
/// a sample of each true class, each captioned with the true and the predicted class, as a grid;
/// the PNGs go in `DIR/images/`, drawn over each image as the network saw it. Returns the
/// sections, which pointing.json keeps so that `dermo report` can show the same grid.
pub fn write_page(
    dir: &Path,
    split: &SplitMaps,
    per_group: usize,
    title: &str,
) -> anyhow::Result<Vec<GallerySection>> {
    let (maps, side) = (&split.maps, split.side);
    let images_dir = dir.join("images");
    std::fs::create_dir_all(&images_dir)
        .with_context(|| format!("cannot create {}", images_dir.display()))?;
    let mut errors: Vec<usize> = (0..maps.len())
        .filter(|&i| maps[i].label != maps[i].predicted)
        .collect();
    errors.sort_by(|&a, &b| maps[b].confidence.total_cmp(&maps[a].confidence));
    errors.truncate(per_group);
    let mut groups = vec![("The most confident errors".to_string(), errors)];
    for class in CLASSES {
        let of_class: Vec<usize> = (0..maps.len())
            .filter(|&i| maps[i].label == class)
            .take(per_group)
            .collect();
        groups.push((format!("{} ({})", class.name(), class.code()), of_class));
    }
    let mut sections = Vec::new();
    for (heading, rows) in groups {
        let mut tiles = Vec::new();
        for i in rows {
            let m = &maps[i];
            let file = format!("images/{}.png", sanitize(&m.image_id));
            overlay(&cached_image(&split.cache, i)?, &m.map, side, 0.55)
                .save(dir.join(&file))
                .with_context(|| format!("cannot write {}", dir.join(&file).display()))?;
            tiles.push(Tile {
                file,
                caption: format!(
                    "{} · true {} · predicted {} ({:.0}%)",
                    m.image_id,
                    m.label.code(),
                    m.predicted.code(),
                    m.confidence * 100.0
                ),
            });
        }
        sections.push(GallerySection { heading, tiles });
    }
    let mut doc = Document::new(title);
    doc.paragraph(GALLERY_NOTE);
    add_gallery(&mut doc, &sections, "");
    let page = dir.join("index.html");
    std::fs::write(&page, doc.to_html())
        .with_context(|| format!("cannot write {}", page.display()))?;
    Ok(sections)
}

/// What the overlays show, for every page that has them.
pub const GALLERY_NOTE: &str = "Class-activation map of the predicted class over the image as the \
network saw it: blue low, red high. Decision support, not a diagnosis.";

/// The sections as headings and galleries, their files prefixed with `prefix` (the maps folder
/// relative to the page).
pub fn add_gallery(doc: &mut Document, sections: &[GallerySection], prefix: &str) {
    for s in sections {
        doc.heading(3, &s.heading);
        doc.gallery(
            s.tiles
                .iter()
                .map(|t| Tile {
                    file: format!("{prefix}{}", t.file),
                    caption: t.caption.clone(),
                })
                .collect(),
        );
    }
}
