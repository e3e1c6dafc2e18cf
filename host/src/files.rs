//! The workbench's own files: atomic writes, JSON documents, stored paths and timestamps. One
//! definition each, used by every command.

use anyhow::Context;
use std::fs;
use std::path::{Path, PathBuf};

/// A suffix for temporary files that no other writer uses: host name and process id, since a
/// cache or run folder may sit on a file system shared by cluster nodes (where process ids repeat).
pub fn temp_suffix() -> String {
    let mut name = [0u8; 256];
    // SAFETY: gethostname writes at most `name.len()` bytes into the buffer it is given.
    let host = match unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } {
        0 => {
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            String::from_utf8_lossy(&name[..end]).replace(['/', '.'], "_")
        }
        _ => "host".into(),
    };
    format!("{host}-{}", std::process::id())
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one:
/// a temporary file beside it, fsync, rename, then fsync of the folder. Creates missing folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    dermo_model::atomic::write_atomic_tagged(path, bytes, &temp_suffix())
}

/// Reads a JSON document; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is malformed", path.display()))
}

/// The path as records store it: canonical when it exists (no `..`, no symbolic links), else
/// absolute, else as given.
pub fn absolute(p: &Path) -> PathBuf {
    fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_owned())
}

/// The current time for records: RFC 3339, UTC, whole seconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A name made safe as one path component: ASCII letters, digits and `-_.=,` stay, the rest
/// becomes `_`.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("a.json");
        write_atomic(&path, b"{\"x\": 1}").unwrap();
        write_atomic(&path, b"{\"x\": 2}").unwrap();
        let v: serde_json::Value = read_json(&path).unwrap();
        assert_eq!(v["x"], 2);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        let err = read_json::<serde_json::Value>(&dir.path().join("none.json")).unwrap_err();
        assert!(format!("{err:#}").contains("none.json"));
        assert!(now().ends_with('Z'));
        assert!(absolute(Path::new(".")).is_absolute());
    }
}
