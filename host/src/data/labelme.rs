//! Labelme annotations: `*.json` files with polygon shapes, the image beside the JSON
//! (`imagePath`) or embedded in it (`imageData`, base64).
//!
//! Mask rule: the union of the lesion shapes, minus the union of the shapes labelled `hole`
//! (each shape filled with the even-odd rule, see [`super::polygon`]). Area shapes are
//! `polygon` (≥ 3 points), `rectangle` and `circle`; `point`, `line` and `linestrip` are ignored.
//! The class comes either from the lesion shapes' labels (`--label-from shape`, all lesion shapes
//! of a file must agree) or from the name of the folder holding the JSON (`--label-from
//! folder`, lesion shapes being those labelled `--lesion-label`).

use super::import::{self, ImportError, Imported, Pending};
use super::labels::{LabelTable, UnknownLabel};
use super::polygon::{self, Polygon};
use base64::Engine;
use dermo_model::Class;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The label that cuts a shape out of the lesion mask.
pub const HOLE_LABEL: &str = "hole";
/// Vertices of the polygon that stands for a Labelme circle.
const CIRCLE_VERTICES: usize = 64;

/// Where the class of an annotated image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LabelFrom {
    /// The label of the lesion shapes (e.g. "melanoma").
    #[default]
    Shape,
    /// The name of the folder holding the JSON file.
    Folder,
}

#[derive(Debug, Clone)]
pub struct LabelmeOptions {
    pub label_from: LabelFrom,
    /// With `LabelFrom::Folder`: the shape label that marks lesion outlines.
    pub lesion_label: String,
    /// Skip (and report) files whose label is not in the table, instead of failing.
    pub skip_unknown: bool,
}

impl Default for LabelmeOptions {
    fn default() -> Self {
        LabelmeOptions {
            label_from: LabelFrom::Shape,
            lesion_label: "lesion".into(),
            skip_unknown: false,
        }
    }
}

/// The parts of a Labelme file dermo reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelmeFile {
    pub shapes: Vec<Shape>,
    #[serde(default)]
    pub image_path: Option<String>,
    #[serde(default)]
    pub image_data: Option<String>,
    #[serde(default)]
    pub image_width: Option<u32>,
    #[serde(default)]
    pub image_height: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Shape {
    pub label: String,
    pub points: Vec<[f64; 2]>,
    #[serde(default = "default_shape_type")]
    pub shape_type: String,
}

fn default_shape_type() -> String {
    "polygon".into()
}

/// Why a Labelme file cannot be imported; every variant names the JSON file.
#[derive(Debug, thiserror::Error)]
pub enum LabelmeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: malformed Labelme JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: shape {index} ({label:?}) is a polygon with {points} point(s); at least 3 are needed")]
    TooFewPoints {
        path: PathBuf,
        index: usize,
        label: String,
        points: usize,
    },
    #[error(
        "{path}: shape {index} ({label:?}) has point ({x}, {y}) outside the {width}×{height} image"
    )]
    OutsideImage {
        path: PathBuf,
        index: usize,
        label: String,
        x: f64,
        y: f64,
        width: u32,
        height: u32,
    },
    #[error("{path}: shape {index} ({label:?}) of type {kind:?} is not supported (use polygon, rectangle or circle)")]
    UnsupportedShape {
        path: PathBuf,
        index: usize,
        label: String,
        kind: String,
    },
    #[error("{path}: shape {index} ({label:?}) of type {kind:?} needs 2 points, has {points}")]
    BadShape {
        path: PathBuf,
        index: usize,
        label: String,
        kind: String,
        points: usize,
    },
    #[error("{path}: imagePath {image_path:?} leaves {root}; only images inside it are read")]
    OutsideFolder {
        path: PathBuf,
        image_path: String,
        root: PathBuf,
    },
    #[error("{path}: missing image: {tried} does not exist and the file has no imageData")]
    MissingImage { path: PathBuf, tried: String },
    #[error("{path}: the image cannot be read: {detail}")]
    BadImage { path: PathBuf, detail: String },
    #[error(
        "{path}: imageWidth × imageHeight say {json_w}×{json_h} but the image is {width}×{height}"
    )]
    SizeMismatch {
        path: PathBuf,
        json_w: u32,
        json_h: u32,
        width: u32,
        height: u32,
    },
    #[error("{path}: {source}")]
    Label { path: PathBuf, source: UnknownLabel },
    #[error("{path}: the lesion shapes name different classes ({first} and {second})")]
    MixedClasses {
        path: PathBuf,
        first: Class,
        second: Class,
    },
    #[error("{path}: no lesion shape ({expected})")]
    NoLesion { path: PathBuf, expected: String },
    #[error(
        "{path}: --label-from folder needs the JSON inside a class folder below the import folder"
    )]
    NoFolder { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// One Labelme file turned into an image, a class and a lesion mask.
#[derive(Debug)]
pub struct Annotation {
    /// The image bytes: read from beside the JSON or decoded from `imageData`.
    pub image: ImageSource,
    pub label: Class,
    pub mask: image::GrayImage,
}

#[derive(Debug)]
pub enum ImageSource {
    /// An image file next to the JSON (left where it is).
    File(PathBuf),
    /// Embedded bytes and the file extension of their format.
    Embedded(Vec<u8>, &'static str),
}

/// Reads one Labelme file below `root` (the import folder, which its `imagePath` must not leave).
/// `folder_label` is the name of the folder holding it (for `LabelFrom::Folder`).
pub fn read_annotation(
    json_path: &Path,
    root: &Path,
    folder_label: Option<&str>,
    labels: &LabelTable,
    opts: &LabelmeOptions,
) -> Result<Annotation, LabelmeError> {
    let path = json_path.to_owned();
    let text = std::fs::read(json_path).map_err(|source| LabelmeError::Read {
        path: path.clone(),
        source,
    })?;
    let file: LabelmeFile = serde_json::from_slice(&text).map_err(|source| LabelmeError::Json {
        path: path.clone(),
        source,
    })?;
    let (image, width, height) = load_image(json_path, root, &file)?;
    if let (Some(json_w), Some(json_h)) = (file.image_width, file.image_height) {
        if (json_w, json_h) != (width, height) {
            return Err(LabelmeError::SizeMismatch {
                path,
                json_w,
                json_h,
                width,
                height,
            });
        }
    }
    let mut lesion: Vec<Polygon> = Vec::new();
    let mut holes: Vec<Polygon> = Vec::new();
    let mut class: Option<Class> = match opts.label_from {
        LabelFrom::Shape => None,
        LabelFrom::Folder => {
            let name = folder_label.ok_or(LabelmeError::NoFolder { path: path.clone() })?;
            Some(labels.lookup(name).map_err(|source| LabelmeError::Label {
                path: path.clone(),
                source,
            })?)
        }
    };
    for (index, shape) in file.shapes.iter().enumerate() {
        let Some(outline) = outline(&path, index, shape)? else {
            continue;
        };
        for &[x, y] in &shape.points {
            let inside =
                (0.0..=f64::from(width)).contains(&x) && (0.0..=f64::from(height)).contains(&y);
            if !inside {
                return Err(LabelmeError::OutsideImage {
                    path,
                    index,
                    label: shape.label.clone(),
                    x,
                    y,
                    width,
                    height,
                });
            }
        }
        if shape.label.trim().eq_ignore_ascii_case(HOLE_LABEL) {
            holes.push(outline);
            continue;
        }
        match opts.label_from {
            LabelFrom::Folder => {
                if shape
                    .label
                    .trim()
                    .eq_ignore_ascii_case(opts.lesion_label.trim())
                {
                    lesion.push(outline);
                }
            }
            LabelFrom::Shape => {
                let c = labels
                    .lookup(&shape.label)
                    .map_err(|source| LabelmeError::Label {
                        path: path.clone(),
                        source,
                    })?;
                match class {
                    Some(first) if first != c => {
                        return Err(LabelmeError::MixedClasses {
                            path,
                            first,
                            second: c,
                        })
                    }
                    _ => class = Some(c),
                }
                lesion.push(outline);
            }
        }
    }
    let (Some(label), false) = (class, lesion.is_empty()) else {
        let expected = match opts.label_from {
            LabelFrom::Shape => "expected a polygon labelled with a class name".to_owned(),
            LabelFrom::Folder => format!("expected a polygon labelled {:?}", opts.lesion_label),
        };
        return Err(LabelmeError::NoLesion { path, expected });
    };
    let mask = polygon::rasterize(&lesion, &holes, width, height);
    Ok(Annotation { image, label, mask })
}

/// The outline of an area shape; `None` for shapes without area (points and lines).
fn outline(path: &Path, index: usize, shape: &Shape) -> Result<Option<Polygon>, LabelmeError> {
    let p = &shape.points;
    let two_points = |kind: &str| {
        if p.len() == 2 {
            Ok((p[0], p[1]))
        } else {
            Err(LabelmeError::BadShape {
                path: path.to_owned(),
                index,
                label: shape.label.clone(),
                kind: kind.to_owned(),
                points: p.len(),
            })
        }
    };
    match shape.shape_type.as_str() {
        "polygon" => {
            if p.len() < 3 {
                return Err(LabelmeError::TooFewPoints {
                    path: path.to_owned(),
                    index,
                    label: shape.label.clone(),
                    points: p.len(),
                });
            }
            Ok(Some(p.clone()))
        }
        "rectangle" => {
            let ([x0, y0], [x1, y1]) = two_points("rectangle")?;
            Ok(Some(vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
        }
        "circle" => {
            let ([cx, cy], [rx, ry]) = two_points("circle")?;
            let r = (rx - cx).hypot(ry - cy);
            Ok(Some(
                (0..CIRCLE_VERTICES)
                    .map(|i| {
                        let a = std::f64::consts::TAU * i as f64 / CIRCLE_VERTICES as f64;
                        [cx + r * a.cos(), cy + r * a.sin()]
                    })
                    .collect(),
            ))
        }
        "point" | "line" | "linestrip" => Ok(None),
        other => Err(LabelmeError::UnsupportedShape {
            path: path.to_owned(),
            index,
            label: shape.label.clone(),
            kind: other.to_owned(),
        }),
    }
}

/// The image of a Labelme file and its size: the file at `imagePath` (relative to the JSON, inside
/// `root`) when it exists, else the embedded `imageData`.
fn load_image(
    json_path: &Path,
    root: &Path,
    file: &LabelmeFile,
) -> Result<(ImageSource, u32, u32), LabelmeError> {
    let path = json_path.to_owned();
    let beside = file
        .image_path
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let folder = json_path.parent().and_then(|f| f.strip_prefix(root).ok());
            folder
                .and_then(|f| import::inside(root, &f.join(p.replace('\\', "/"))))
                .ok_or_else(|| LabelmeError::OutsideFolder {
                    path: path.clone(),
                    image_path: p.to_owned(),
                    root: root.to_owned(),
                })
        })
        .transpose()?;
    let bad = |detail: String| LabelmeError::BadImage {
        path: path.clone(),
        detail,
    };
    if let Some(image_path) = beside.as_ref().filter(|p| p.is_file()) {
        let bytes =
            std::fs::read(image_path).map_err(|e| bad(format!("{}: {e}", image_path.display())))?;
        let (w, h) =
            dimensions(&bytes).map_err(|e| bad(format!("{}: {e}", image_path.display())))?;
        return Ok((ImageSource::File(crate::files::absolute(image_path)), w, h));
    }
    match file.image_data.as_deref().filter(|d| !d.trim().is_empty()) {
        Some(data) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| bad(format!("imageData is not valid base64: {e}")))?;
            let (w, h) = dimensions(&bytes).map_err(|e| bad(format!("imageData: {e}")))?;
            let ext = image::guess_format(&bytes)
                .ok()
                .and_then(|f| f.extensions_str().first().copied())
                .unwrap_or("img");
            Ok((ImageSource::Embedded(bytes, ext), w, h))
        }
        None => Err(LabelmeError::MissingImage {
            path,
            tried: beside.map_or_else(
                || "imagePath (empty)".to_owned(),
                |p| p.display().to_string(),
            ),
        }),
    }
}

fn dimensions(bytes: &[u8]) -> Result<(u32, u32), String> {
    let img = dermo_model::preprocess::decode_bytes(bytes, "image").map_err(|e| e.to_string())?;
    Ok(img.dimensions())
}

/// Imports every `*.json` below `dir`: masks are written to `out/masks/`, embedded images to
/// `out/images/`; the image id is the JSON's path below `dir` without extension, and each image
/// is its own lesion.
pub fn import(
    dir: &Path,
    out: &Path,
    labels: &LabelTable,
    opts: &LabelmeOptions,
) -> Result<Imported, LabelmeError> {
    let dir = crate::files::absolute(dir);
    let out = crate::files::absolute(out);
    let files = import::walk_files(&dir, &["json"])?;
    if files.is_empty() {
        return Err(ImportError::Empty { path: dir }.into());
    }
    let mut pending = Vec::new();
    let mut skipped = Vec::new();
    for json in files {
        let rel = json.strip_prefix(&dir).unwrap_or(&json).to_owned();
        let folder = rel
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned());
        let annotation = match read_annotation(&json, &dir, folder.as_deref(), labels, opts) {
            Ok(a) => a,
            Err(e @ LabelmeError::Label { .. }) if opts.skip_unknown => {
                skipped.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        let image_id = rel.with_extension("").to_string_lossy().replace('\\', "/");
        let file_stem = image_id.replace('/', "__");
        let mask_path = out.join("masks").join(format!("{file_stem}.png"));
        write_file(&mask_path, |p| {
            annotation.mask.save(p).map_err(std::io::Error::other)
        })?;
        let image_path = match annotation.image {
            ImageSource::File(p) => p,
            ImageSource::Embedded(bytes, ext) => {
                let p = out.join("images").join(format!("{file_stem}.{ext}"));
                write_file(&p, |p| std::fs::write(p, &bytes))?;
                p
            }
        };
        pending.push(Pending {
            lesion_id: image_id.clone(),
            image_id,
            path: image_path,
            label: annotation.label,
            patient_id: None,
            mask_path: Some(mask_path),
        });
    }
    Ok(import::finish(pending, "labelme", skipped)?)
}

fn write_file(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), LabelmeError> {
    let err = |source| LabelmeError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    write(path).map_err(err)
}
