//! Inputs the binary must refuse early and clearly: an empty `data_dir` in the config, and an
//! input image over `[source] max_input_mb` (a regular file, and `/dev/zero`, which has no length).

mod common;

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
