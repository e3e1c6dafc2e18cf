//! Labelme import on JSON built from real shared masks: outlines traced from the mask, the image
//! beside the JSON or embedded as base64, rasterized back and compared with the source mask.

use crate::data_support::{arg, dermo_output, failed, ham_dir, succeeded};
use base64::Engine;
use dermo_host::data::labelme::{read_annotation, LabelmeError, LabelmeOptions};
use dermo_host::data::labels::LabelTable;
use dermo_host::data::manifest::Manifest;
use dermo_host::data::polygon::trace_contours;
use dermo_model::Class;
use image::GrayImage;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A few shared images of different classes and mask shapes.
const IMAGES: [(&str, &str); 4] = [
    ("ISIC_0027419", "benign keratosis"),
    ("ISIC_0025964", "melanoma"),
    ("ISIC_0024306", "common nevus"),
    ("ISIC_0026042", "nevus"), // mask covering nearly the whole frame
];

fn image_path(id: &str) -> PathBuf {
    ham_dir().join("images").join(format!("{id}.jpg"))
}

fn source_mask(id: &str) -> GrayImage {
    let path = ham_dir()
        .join("masks")
        .join(format!("{id}_segmentation.png"));
    image::open(path).unwrap().into_luma8()
}

/// Labelme JSON whose shapes are the traced outlines of the shared mask of `id`.
fn labelme_json(id: &str, label: &str, image_ref: &str, embed: bool) -> Value {
    let mask = source_mask(id);
    let shapes: Vec<Value> = trace_contours(&mask)
        .into_iter()
        .map(|c| {
            json!({
                "label": if c.hole { "hole" } else { label },
                "points": c.points,
                "group_id": null,
                "shape_type": "polygon",
                "flags": {},
            })
        })
        .collect();
    let data = embed.then(|| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(image_path(id)).unwrap())
    });
    json!({
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_ref,
        "imageData": data,
        "imageHeight": mask.height(),
        "imageWidth": mask.width(),
    })
}

fn write_json(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn iou(a: &GrayImage, b: &GrayImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut inter, mut union) = (0usize, 0usize);
    for (p, q) in a.pixels().zip(b.pixels()) {
        let (x, y) = (p.0[0] >= 128, q.0[0] >= 128);
        inter += usize::from(x && y);
        union += usize::from(x || y);
    }
    inter as f64 / union.max(1) as f64
}

fn import(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["data", "import", "labelme", arg(dir), "--out", arg(out)];
    args.extend_from_slice(extra);
    dermo_output(&args)
}

fn check_masks(m: &Manifest, expected: usize) {
    assert_eq!(m.len(), expected);
    for r in &m.records {
        let id = Path::new(&r.image_id)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let got = image::open(r.mask_path.as_ref().unwrap())
            .unwrap()
            .into_luma8();
        let score = iou(&got, &source_mask(id));
        eprintln!("{id}: IoU {score:.4}");
        assert!(score >= 0.95, "{id}: IoU {score}");
        let (_, class) = IMAGES.iter().find(|(i, _)| *i == id).unwrap();
        assert_eq!(r.label, LabelTable::builtin().lookup(class).unwrap());
        // The image is the shared one, byte for byte.
        assert_eq!(
            std::fs::read(&r.path).unwrap(),
            std::fs::read(image_path(id)).unwrap()
        );
    }
}

#[test]
fn polygons_beside_their_image_rasterize_to_the_source_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("labelme");
    for (id, label) in IMAGES {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(image_path(id), dir.join(format!("{id}.jpg"))).unwrap();
        write_json(
            &dir.join(format!("{id}.json")),
            &labelme_json(id, label, &format!("{id}.jpg"), false),
        );
    }
    let out = tmp.path().join("out");
    let o = import(&dir, &out, &[]);
    succeeded(&o);
    let m = Manifest::load(&out.join("manifest.csv")).unwrap();
    check_masks(&m, IMAGES.len());
    // Images beside the JSON stay where they are; nothing is written next to the sources.
    assert!(m.records.iter().all(|r| r.path.starts_with(&dir)));
    assert!(!out.join("images").exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2 * IMAGES.len());
}

#[test]
fn embedded_image_data_is_written_out_and_folder_labels_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("labelme");
    for (id, label) in IMAGES {
        // imagePath names a file that does not exist: the embedded copy is used.
        let v = labelme_json(id, "lesion", &format!("../gone/{id}.jpg"), true);
        write_json(&dir.join(label).join(format!("{id}.json")), &v);
    }
    let out = tmp.path().join("out");
    let o = import(&dir, &out, &["--label-from", "folder"]);
    succeeded(&o);
    let m = Manifest::load(&out.join("manifest.csv")).unwrap();
    check_masks(&m, IMAGES.len());
    assert!(m
        .records
        .iter()
        .all(|r| r.path.starts_with(out.join("images"))));
    assert!(m
        .records
        .iter()
        .any(|r| r.image_id == "melanoma/ISIC_0025964" && r.label == Class::Mel));
}

#[test]
fn unknown_labels_fail_with_the_known_ones_unless_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("labelme");
    let (id, _) = IMAGES[1];
    write_json(
        &dir.join("a.json"),
        &labelme_json(id, "melanoma", "x.jpg", true),
    );
    write_json(
        &dir.join("b.json"),
        &labelme_json(id, "freckle", "x.jpg", true),
    );
    let out = tmp.path().join("out");
    let o = import(&dir, &out, &[]);
    let err = failed(&o);
    assert!(
        err.contains("b.json") && err.contains("freckle") && err.contains("melanoma"),
        "{err}"
    );
    let o = import(&dir, &out, &["--skip-unknown"]);
    succeeded(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("b.json"));
    assert_eq!(Manifest::load(&out.join("manifest.csv")).unwrap().len(), 1);
}

/// Reads one broken file and returns the error text, which must name the file.
fn broken(name: &str, content: &str) -> (LabelmeError, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::write(&path, content).unwrap();
    let err = read_annotation(
        &path,
        tmp.path(),
        None,
        &LabelTable::builtin(),
        &LabelmeOptions::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(arg(&path)), "{text}");
    (err, text)
}

fn with_shapes(shapes: Value) -> String {
    let (id, _) = IMAGES[1];
    let mut v = labelme_json(id, "melanoma", "missing.jpg", true);
    v["shapes"] = shapes;
    v.to_string()
}

#[test]
fn bad_files_give_clear_errors_naming_the_file() {
    let (e, text) = broken("malformed.json", "{\"shapes\": [ {\"label\": ");
    assert!(
        matches!(e, LabelmeError::Json { .. }) && text.contains("malformed Labelme JSON"),
        "{text}"
    );

    let two = with_shapes(
        json!([{"label": "melanoma", "points": [[10, 10], [50, 50]], "shape_type": "polygon"}]),
    );
    let (e, text) = broken("two_points.json", &two);
    assert!(
        matches!(e, LabelmeError::TooFewPoints { points: 2, .. }),
        "{text}"
    );

    let outside = with_shapes(
        json!([{"label": "melanoma", "points": [[10, 10], [250, 10], [50, 60]], "shape_type": "polygon"}]),
    );
    let (e, text) = broken("outside.json", &outside);
    assert!(
        matches!(e, LabelmeError::OutsideImage { .. }) && text.contains("250"),
        "{text}"
    );

    let no_image = json!({"shapes": [], "imagePath": "nowhere.jpg", "imageData": null}).to_string();
    let (e, text) = broken("no_image.json", &no_image);
    assert!(
        matches!(e, LabelmeError::MissingImage { .. }) && text.contains("nowhere.jpg"),
        "{text}"
    );

    // The binary reports the same, naming the file, and writes no manifest.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.json"), &two).unwrap();
    let o = import(&dir, &tmp.path().join("out"), &[]);
    assert!(failed(&o).contains("bad.json"));
    assert!(!tmp.path().join("out/manifest.csv").exists());
}

#[test]
fn image_paths_that_leave_the_import_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("labelme");
    let (id, label) = IMAGES[1];
    // A real image just outside the import folder: `../` or its absolute path used to reach it.
    let outside = tmp.path().join("outside.jpg");
    std::fs::copy(image_path(id), &outside).unwrap();
    for (name, image_ref) in [("up", "../outside.jpg"), ("absolute", arg(&outside))] {
        let json = dir.join(format!("{name}.json"));
        write_json(&json, &labelme_json(id, label, image_ref, false));
        let o = import(&dir, &tmp.path().join("out"), &[]);
        assert!(!o.status.success(), "{name}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{name}.json"))
                && err.contains(&format!("imagePath {image_ref:?} leaves")),
            "{err}"
        );
        std::fs::remove_file(json).unwrap();
    }
    assert!(!tmp.path().join("out/manifest.csv").exists());

    // `../` that stays inside the import folder is fine: melanoma/x.json names ../images/x.jpg.
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::copy(image_path(id), dir.join(format!("images/{id}.jpg"))).unwrap();
    write_json(
        &dir.join(format!("melanoma/{id}.json")),
        &labelme_json(id, label, &format!("../images/{id}.jpg"), false),
    );
    let o = import(&dir, &tmp.path().join("out"), &[]);
    succeeded(&o);
    let m = Manifest::load(&tmp.path().join("out/manifest.csv")).unwrap();
    assert_eq!(m.len(), 1);
    assert!(m.records[0].path.ends_with(format!("images/{id}.jpg")));
}
