//! Inputs the binary must refuse early and clearly: an empty `data_dir` in the config, an input
//! image over `[source] max_input_mb` (a regular file, and `/dev/zero`, which has no length), and
//! error messages that name their cause once.

use crate::common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    fs::create_dir_all(dir).unwrap();
    let p = dir.join("scope.toml");
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn empty_data_dir_is_refused_at_load_naming_the_key_and_the_file() {
    let t = tempfile::tempdir().unwrap();
    let config = write_config(&t.path().join("etc"), "[journal]\ndata_dir = \"\"\n");
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    for args in [
        &["journal"][..],
        &["export", "--out", "bundle"],
        &["run", "--source", "synthetic:1", "--display", "text"],
    ] {
        let out = common::dermo_scope()
            .current_dir(&work)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("[journal] data_dir") && err.contains(&*config.to_string_lossy()),
            "{args:?}: {err}"
        );
        common::assert_no_repeated_cause(&err);
    }
    // Nothing was created, neither beside the config nor in the working directory.
    assert_eq!(common::walk(t.path()), [config]);
    assert_eq!(fs::read_dir(&work).unwrap().count(), 0);

    // An empty --data-dir is a usage error.
    let out = common::dermo_scope()
        .current_dir(&work)
        .args(["journal", "--data-dir", ""])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read_dir(&work).unwrap().count(), 0);
}

#[test]
fn once_refuses_an_input_over_the_cap_before_reading_it_whole() {
    let t = tempfile::tempdir().unwrap();
    let default_cap = write_config(&t.path().join("a"), "");
    let once = |config: &Path, image: &Path| {
        let started = Instant::now();
        let out = common::dermo_scope()
            .arg("--config")
            .arg(config)
            .arg("--once")
            .arg(image)
            .output()
            .unwrap();
        (out, started.elapsed())
    };

    // A device without a length: stopped at the 32 MiB default, not read for gigabytes.
    let (out, took) = once(&default_cap, Path::new("/dev/zero"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("32 MiB") && err.contains("max_input_mb"),
        "{err}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    common::assert_no_repeated_cause(&err);

    // A regular file over a configured cap: refused on its length.
    let small_cap = write_config(&t.path().join("b"), "[source]\nmax_input_mb = 1\n");
    let big = t.path().join("big.jpg");
    fs::write(&big, vec![0u8; 2 * 1024 * 1024]).unwrap();
    let (out, _) = once(&small_cap, &big);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("big.jpg") && err.contains("1 MiB") && err.contains("(2.0 MiB)"),
        "{err}"
    );
}

/// A PNG whose header claims `side`×`side` pixels, with an empty image-data chunk.
fn png_claiming(side: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let body: Vec<u8> = kind.iter().chain(data).copied().collect();
        out.extend(&body);
        out.extend(crc32fast::hash(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(side.to_be_bytes());
    ihdr.extend(side.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[]);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn error_messages_name_their_cause_once() {
    let t = tempfile::tempdir().unwrap();
    let config = write_config(&t.path().join("etc"), "");
    let once = |image: &Path| {
        let out = common::dermo_scope()
            .arg("--config")
            .arg(&config)
            .arg("--once")
            .arg(image)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // A missing file: "No such file or directory" once (it was printed twice).
    let missing = t.path().join("missing.jpg");
    let err = once(&missing);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    common::assert_no_repeated_cause(&err);

    // An image over the decoder's limits ("Image size exceeds limit" was printed twice).
    let huge = t.path().join("huge.png");
    fs::write(&huge, png_claiming(40_000)).unwrap();
    let err = once(&huge);
    assert!(
        err.contains("huge.png") && err.contains("decoding limits"),
        "{err}"
    );
    common::assert_no_repeated_cause(&err);

    // The shared crate's errors through an anyhow chain, as the host and the device print them.
    let chained = |e: anyhow::Error| format!("{e:#}");
    let e = dermo_model::preprocess::decode_file(&missing).unwrap_err();
    common::assert_no_repeated_cause(&chained(e.into()));
    let e = dermo_model::preprocess::decode_bytes(&png_claiming(40_000), "huge").unwrap_err();
    common::assert_no_repeated_cause(&chained(e.into()));
    let e =
        dermo_model::ModelFile::open(&missing, &dermo_model::TrustPolicy::unsigned()).unwrap_err();
    common::assert_no_repeated_cause(&chained(e.into()));
    let e = dermo_model::signature::read_verifying_key(&missing).unwrap_err();
    common::assert_no_repeated_cause(&chained(e.into()));
}
