//! `dermo data import`: the real binary on the shared HAM10000 set and on small real layouts.

use crate::data_support::{arg, dermo_output, failed, ham_dir, succeeded};
use dermo_host::data::manifest::Manifest;
use dermo_model::Class;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Output;

fn import_ham(out: &Path) -> Manifest {
    let ham = ham_dir();
    succeeded(&dermo_output(&[
        "data",
        "import",
        "ham10000",
        "--metadata",
        arg(&ham.join("HAM10000_metadata.csv")),
        "--images",
        arg(&ham.join("images")),
        "--masks",
        arg(&ham.join("masks")),
        "--out",
        arg(out),
    ]));
    Manifest::load(&out.join("manifest.csv")).unwrap()
}

#[test]
fn ham10000_gives_10015_images_of_7470_lesions() {
    let tmp = tempfile::tempdir().unwrap();
    let m = import_ham(tmp.path());
    assert_eq!(m.len(), 10_015);
    assert_eq!(m.lesion_count(), 7_470);
    // The class counts the dataset's README states.
    let expected = [327, 514, 1099, 115, 1113, 6705, 142];
    assert_eq!(m.class_counts(), expected);
    assert!(m.records.iter().all(|r| r.mask_path.is_some()));
    assert!(m.records.iter().all(|r| (r.width, r.height) == (200, 150)));
    let first = &m.records[0];
    assert_eq!(
        (
            first.image_id.as_str(),
            first.lesion_id.as_str(),
            first.label
        ),
        ("ISIC_0027419", "HAM_0000118", Class::Bkl)
    );
    let bytes = std::fs::read(&first.path).unwrap();
    assert_eq!(first.sha256, hex::encode(Sha256::digest(&bytes)));

    // Deterministic: a second import gives the same manifest hash.
    let again = tempfile::tempdir().unwrap();
    assert_eq!(import_ham(again.path()).hash(), m.hash());
}

#[test]
fn ham10000_metadata_naming_a_missing_image_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = tmp.path().join("meta.csv");
    std::fs::write(
        &meta,
        "lesion_id,image_id,dx\nHAM_0000118,ISIC_0027419,bkl\nHAM_1,ISIC_missing,mel\n",
    )
    .unwrap();
    let out = dermo_output(&[
        "data",
        "import",
        "ham10000",
        "--metadata",
        arg(&meta),
        "--images",
        arg(&ham_dir().join("images")),
        "--out",
        arg(&tmp.path().join("out")),
    ]);
    let err = failed(&out);
    assert!(
        err.contains("meta.csv, line 3") && err.contains("ISIC_missing"),
        "{err}"
    );
    assert!(!tmp.path().join("out/manifest.csv").exists());
}

/// Copies shared images into `root/<folder>/`.
fn populate(root: &Path, folder: &str, ids: &[&str]) {
    let dir = root.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    for id in ids {
        let src = ham_dir().join("images").join(format!("{id}.jpg"));
        std::fs::copy(src, dir.join(format!("{id}.jpg"))).unwrap();
    }
}

#[test]
fn imagefolder_maps_folder_names_through_the_label_table() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    populate(&root, "melanoma", &["ISIC_0025964", "ISIC_0030623"]);
    populate(&root, "Common_Nevus", &["ISIC_0024306", "ISIC_0024307"]);
    populate(&root, "freckle", &["ISIC_0024308"]);
    let out = tmp.path().join("out");

    let import = |extra: &[&str]| {
        let args = [
            "data",
            "import",
            "imagefolder",
            arg(&root),
            "--out",
            arg(&out),
        ];
        dermo_output(&[&args[..], extra].concat())
    };

    let err = failed(&import(&[]));
    assert!(
        err.contains("freckle") && err.contains("known labels") && err.contains("common nevus"),
        "{err}"
    );

    let log = import(&["--skip-unknown"]);
    succeeded(&log);
    let m = Manifest::load(&out.join("manifest.csv")).unwrap();
    let got: Vec<(&str, Class)> = m
        .records
        .iter()
        .map(|r| (r.image_id.as_str(), r.label))
        .collect();
    assert_eq!(
        got,
        [
            ("Common_Nevus/ISIC_0024306", Class::Nv),
            ("Common_Nevus/ISIC_0024307", Class::Nv),
            ("melanoma/ISIC_0025964", Class::Mel),
            ("melanoma/ISIC_0030623", Class::Mel),
        ]
    );
    assert!(m.records.iter().all(|r| r.source == "imagefolder"));
}

fn sha256_of(id: &str) -> String {
    let bytes = std::fs::read(ham_dir().join("images").join(format!("{id}.jpg"))).unwrap();
    hex::encode(Sha256::digest(bytes))
}

/// A bundle as `dermo-scope export` writes it (device columns, prediction columns ignored),
/// with clinician labels filled in for two of three captures.
fn write_bundle(bundle: &Path) {
    populate(
        bundle,
        "images",
        &["ISIC_0024306", "ISIC_0025964", "ISIC_0024307"],
    );
    let header = "file,label,captured_at,model_sha256,outcome,top_class,refer,malignant_prob,\
                  capture_id,frame_sha256,lesion_id";
    let rows = [
        format!(
            "images/ISIC_0024306.jpg,common nevus,2025-01-02T10:00:00Z,ab12,prediction,nv,false,\
             0.1,c1,{},patient7-back",
            sha256_of("ISIC_0024306")
        ),
        format!(
            "images/ISIC_0025964.jpg,melanoma,2025-01-02T10:01:00Z,ab12,prediction,mel,true,0.8,\
             c2,{},",
            sha256_of("ISIC_0025964")
        ),
        format!(
            "images/ISIC_0024307.jpg,,2025-01-02T10:02:00Z,ab12,retake,,,,c3,{},",
            sha256_of("ISIC_0024307")
        ),
    ];
    std::fs::write(
        bundle.join("captures.csv"),
        format!("{header}\n{}\n", rows.join("\n")),
    )
    .unwrap();
}

#[test]
fn scope_bundle_keeps_confirmed_captures() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    write_bundle(&bundle);
    let out = tmp.path().join("out");
    succeeded(&dermo_output(&[
        "data",
        "import",
        "scope-bundle",
        arg(&bundle),
        "--out",
        arg(&out),
    ]));
    let m = Manifest::load(&out.join("manifest.csv")).unwrap();
    let got: Vec<(&str, &str, Class)> = m
        .records
        .iter()
        .map(|r| (r.image_id.as_str(), r.lesion_id.as_str(), r.label))
        .collect();
    assert_eq!(
        got,
        [
            ("c1", "patient7-back", Class::Nv),
            ("c2", "scope-c2", Class::Mel)
        ]
    );
    assert!(m.records.iter().all(|r| r.source == "scope-bundle"));
}

#[test]
fn scope_bundle_with_a_changed_image_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    write_bundle(&bundle);
    // The first capture's file no longer matches the sha256 the device journaled.
    std::fs::copy(
        ham_dir().join("images/ISIC_0024307.jpg"),
        bundle.join("images/ISIC_0024306.jpg"),
    )
    .unwrap();
    let o = dermo_output(&[
        "data",
        "import",
        "scope-bundle",
        arg(&bundle),
        "--out",
        arg(&tmp.path().join("out")),
    ]);
    let err = failed(&o);
    assert!(
        err.contains("captures.csv, line 2") && err.contains("ISIC_0024306.jpg"),
        "{err}"
    );
}

/// `dermo data import ham10000` on `meta` (written from `rows`) and the images in `images`.
fn import_meta(tmp: &Path, rows: &str, images: &Path, masks: Option<&Path>) -> Output {
    let (meta, out) = (tmp.join("meta.csv"), tmp.join("out"));
    std::fs::write(&meta, format!("lesion_id,image_id,dx\n{rows}")).unwrap();
    let mut args = vec!["data", "import", "ham10000", "--metadata", arg(&meta)];
    args.extend(["--images", arg(images)]);
    if let Some(m) = masks {
        args.extend(["--masks", arg(m)]);
    }
    args.extend(["--out", arg(&out)]);
    dermo_output(&args)
}

#[test]
fn ham10000_image_ids_that_leave_the_folder_or_repeat_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("set/images");
    populate(
        &tmp.path().join("set"),
        "images",
        &["ISIC_0024306", "ISIC_0024307"],
    );
    // A real image outside the images folder, which `../../outside` reached.
    std::fs::copy(
        images.join("ISIC_0024306.jpg"),
        tmp.path().join("outside.jpg"),
    )
    .unwrap();
    let rows = "HAM_1,ISIC_0024306,nv\nHAM_2,../../outside,mel\n";
    let err = failed(&import_meta(tmp.path(), rows, &images, None));
    assert!(
        err.contains("meta.csv, line 3") && err.contains("\"../../outside\" leaves"),
        "{err}"
    );

    let rows = "HAM_1,ISIC_0024306,nv\nHAM_2,ISIC_0024307,nv\nHAM_3,ISIC_0024306,mel\n";
    let err = failed(&import_meta(tmp.path(), rows, &images, None));
    assert!(
        err.contains("meta.csv, line 4")
            && err.contains("\"ISIC_0024306\"")
            && err.contains("line 2"),
        "{err}"
    );
    assert!(!tmp.path().join("out/manifest.csv").exists());
}

#[test]
fn ham10000_image_or_mask_folders_that_do_not_exist_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    populate(tmp.path(), "images", &["ISIC_0024306"]);
    let rows = "HAM_1,ISIC_0024306,nv\n";
    // A mistyped --masks used to import without masks, silently.
    let masks = tmp.path().join("maks");
    let err = failed(&import_meta(tmp.path(), rows, &images, Some(&masks)));
    assert!(
        err.contains("mask folder") && err.contains(arg(&masks)),
        "{err}"
    );
    let missing = tmp.path().join("imgs");
    let err = failed(&import_meta(tmp.path(), rows, &missing, None));
    assert!(
        err.contains("image folder") && err.contains(arg(&missing)),
        "{err}"
    );
    assert!(!tmp.path().join("out/manifest.csv").exists());
    succeeded(&import_meta(tmp.path(), rows, &images, None));
}

/// Runs `dermo data import scope-bundle` on `bundle` after `edit` changed its captures.csv.
fn import_edited_bundle(tmp: &Path, edit: impl FnOnce(String) -> String) -> Output {
    let bundle = tmp.join("bundle");
    write_bundle(&bundle);
    let csv = bundle.join("captures.csv");
    std::fs::write(&csv, edit(std::fs::read_to_string(&csv).unwrap())).unwrap();
    dermo_output(&[
        "data",
        "import",
        "scope-bundle",
        arg(&bundle),
        "--out",
        arg(&tmp.join("out")),
    ])
}

#[test]
fn scope_bundle_files_outside_the_bundle_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // Without a hash to check, the file outside the bundle used to be imported as an image.
    let out = import_edited_bundle(tmp.path(), |csv| {
        csv.replace("images/ISIC_0024306.jpg", "../../../../etc/passwd")
            .replace(&sha256_of("ISIC_0024306"), "")
    });
    let err = failed(&out);
    assert!(
        err.contains("captures.csv, line 2") && err.contains("\"../../../../etc/passwd\" leaves"),
        "{err}"
    );
    assert!(!tmp.path().join("out/manifest.csv").exists());
}

#[test]
fn scope_bundle_rows_without_a_frame_hash_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // The second capture's hash is gone: it used to be imported unchecked.
    let out = import_edited_bundle(tmp.path(), |csv| {
        csv.replace(&sha256_of("ISIC_0025964"), "")
    });
    let err = failed(&out);
    assert!(
        err.contains("captures.csv, line 3") && err.contains("frame_sha256 is empty"),
        "{err}"
    );
    assert!(!tmp.path().join("out/manifest.csv").exists());
}
