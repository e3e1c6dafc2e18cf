//! Crash-safe file writes: write a temporary file, fsync it, rename it over the target, fsync the
//! directory. After a power cut the target holds either the old or the new bytes, never a mix.
//! One implementation for both halves: the device's journal, store and bundles, and the host's
//! records (`dermo_host::files::write_atomic`, which also creates missing folders).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Prefix of temporary files; anything starting with it is debris from an interrupted write.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `path` atomically (see the module docs); the folder must exist. The
/// temporary file is `TEMP_PREFIX<pid>-<name>` beside it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_tagged(path, bytes, &std::process::id().to_string())
}

/// [`write_atomic`] with the temporary file named `TEMP_PREFIX<tag>-<name>`: a tag no other
/// writer uses (a host name and process id where several machines share the folder).
pub fn write_atomic_tagged(path: &Path, bytes: &[u8], tag: &str) -> io::Result<()> {
    let dir = parent_dir(path);
    let tmp = temp_path(path, tag);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a directory's entries (new, renamed, removed files) durable.
///
/// A file system that cannot sync a directory at all (EINVAL, as some network and FUSE file
/// systems answer) is taken at its word: there is nothing more to make durable there.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// Creates `dir` and its parents, and makes each new entry durable.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    sync_dir(&parent_dir(dir))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!("{TEMP_PREFIX}{tag}-{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failure_names_no_half_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-subdir").join("a.json");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }
}
