//! The installed models on a device: `current.onnx` and `previous.onnx` (each with its `.sig`),
//! replaced together in one atomic step so a power cut never pairs a model with the wrong
//! signature.
//!
//! ```text
//! STORE            symlink → STORE.d/gen-000007      (the path in the config, /opt/dermo/model)
//! STORE.d/gen-000007/current.onnx  current.onnx.sig  previous.onnx  previous.onnx.sig
//! ```
//!
//! `install` and `rollback` build a new generation directory beside the old one (hard links,
//! no copies of the unchanged model), make it durable, then swap the `STORE` symlink with a
//! `rename` — the one atomic step. Readers always see a complete generation. A store that is a
//! plain directory (as `scripts/deploy` first creates it) is adopted as the first generation.

use dermo_model::atomic::{create_dir_all_durable, sync_dir, TEMP_PREFIX};
use dermo_model::signature::signature_path;
use dermo_model::{ModelFile, ModelFileError, TrustPolicy};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub const CURRENT: &str = "current.onnx";
pub const PREVIOUS: &str = "previous.onnx";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("model store {path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("refusing to install: {0}")]
    Refused(Box<ModelFileError>),
    #[error("cannot roll back: {0}")]
    RollbackRefused(Box<ModelFileError>),
    #[error("cannot roll back: model store {0} has no previous model")]
    NoPrevious(PathBuf),
}

impl StoreError {
    /// The process exit status for this failure: 3 ("model invalid") when the trust policy or
    /// the file's contents refused the model, as when the device loads it; otherwise 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            StoreError::Refused(_) | StoreError::RollbackRefused(_) => 3,
            StoreError::Io { .. } | StoreError::NoPrevious(_) => 1,
        }
    }
}

/// What a store holds, by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    pub current: Option<String>,
    pub previous: Option<String>,
}

pub struct ModelStore {
    link: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |cause| StoreError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

impl ModelStore {
    pub fn new(store: &Path) -> ModelStore {
        ModelStore {
            link: store.to_path_buf(),
        }
    }

    /// The path the device loads.
    pub fn current_path(&self) -> PathBuf {
        self.link.join(CURRENT)
    }

    pub fn previous_path(&self) -> PathBuf {
        self.link.join(PREVIOUS)
    }

    fn generations_dir(&self) -> PathBuf {
        let mut s = self.link.as_os_str().to_owned();
        s.push(".d");
        PathBuf::from(s)
    }

    /// Checks `file` against `trust`, then makes it current and the old current previous.
    pub fn install(&self, file: &Path, trust: &TrustPolicy) -> Result<StoreStatus, StoreError> {
        ModelFile::open(file, trust).map_err(|e| StoreError::Refused(Box::new(e)))?;
        let old = self.current_generation()?;
        let new = self.new_generation(|dir| {
            copy_durable(file, &dir.join(CURRENT))?;
            copy_if_exists(&signature_path(file), &signature_path(&dir.join(CURRENT)))?;
            if let Some(old) = &old {
                link_if_exists(&old.join(CURRENT), &dir.join(PREVIOUS))?;
                link_if_exists(
                    &old.join(format!("{CURRENT}.sig")),
                    &dir.join(format!("{PREVIOUS}.sig")),
                )?;
            }
            Ok(())
        })?;
        self.switch_to(&new)?;
        self.status()
    }

    /// Swaps current and previous, after checking the previous model against `trust`.
    pub fn rollback(&self, trust: &TrustPolicy) -> Result<StoreStatus, StoreError> {
        let old = self
            .current_generation()?
            .filter(|g| g.join(PREVIOUS).exists())
            .ok_or_else(|| StoreError::NoPrevious(self.link.clone()))?;
        ModelFile::open(&old.join(PREVIOUS), trust)
            .map_err(|e| StoreError::RollbackRefused(Box::new(e)))?;
        let new = self.new_generation(|dir| {
            link_if_exists(&old.join(PREVIOUS), &dir.join(CURRENT))?;
            link_if_exists(
                &old.join(format!("{PREVIOUS}.sig")),
                &dir.join(format!("{CURRENT}.sig")),
            )?;
            link_if_exists(&old.join(CURRENT), &dir.join(PREVIOUS))?;
            link_if_exists(
                &old.join(format!("{CURRENT}.sig")),
                &dir.join(format!("{PREVIOUS}.sig")),
            )?;
            Ok(())
        })?;
        self.switch_to(&new)?;
        self.status()
    }

    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        let hash = |p: PathBuf| -> Result<Option<String>, StoreError> {
            match fs::read(&p) {
                Ok(b) => {
                    use sha2::{Digest, Sha256};
                    Ok(Some(hex::encode(Sha256::digest(&b))))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err(&p)(e)),
            }
        };
        Ok(StoreStatus {
            current: hash(self.current_path())?,
            previous: hash(self.previous_path())?,
        })
    }

    /// The generation `STORE` points at, repairing an interrupted first install (a plain
    /// directory is adopted as a generation; a missing link points at the newest generation).
    fn current_generation(&self) -> Result<Option<PathBuf>, StoreError> {
        let gens = self.generations_dir();
        match fs::symlink_metadata(&self.link) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&self.link).map_err(io_err(&self.link))?;
                let parent = self.link.parent().unwrap_or(Path::new("."));
                Ok(Some(parent.join(target)))
            }
            Ok(m) if m.is_dir() => {
                // A store laid down by hand: adopt it as generation 0.
                create_dir_all_durable(&gens).map_err(io_err(&gens))?;
                let adopted = gens.join(generation_name(0));
                fs::rename(&self.link, &adopted).map_err(io_err(&self.link))?;
                sync_dir(&gens).map_err(io_err(&gens))?;
                self.switch_to(&adopted)?;
                Ok(Some(adopted))
            }
            Ok(_) => Err(StoreError::Io {
                path: self.link.clone(),
                cause: io::Error::other("exists but is neither a directory nor a symlink"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let newest = list_generations(&gens)?.pop();
                if let Some(g) = &newest {
                    self.switch_to(g)?;
                }
                Ok(newest)
            }
            Err(e) => Err(io_err(&self.link)(e)),
        }
    }

    /// Fills a fresh generation directory with `fill`, made durable, and returns its path.
    fn new_generation(
        &self,
        fill: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<PathBuf, StoreError> {
        let gens = self.generations_dir();
        create_dir_all_durable(&gens).map_err(io_err(&gens))?;
        let next = list_generations(&gens)?
            .last()
            .and_then(|g| generation_number(g))
            .map_or(1, |n| n + 1);
        let tmp = gens.join(format!("{TEMP_PREFIX}{}", generation_name(next)));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        fill(&tmp).map_err(io_err(&tmp))?;
        sync_dir(&tmp).map_err(io_err(&tmp))?;
        let dir = gens.join(generation_name(next));
        fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
        sync_dir(&gens).map_err(io_err(&gens))?;
        Ok(dir)
    }

    /// Points `STORE` at `generation` atomically, then removes the other generations.
    fn switch_to(&self, generation: &Path) -> Result<(), StoreError> {
        let parent = self.link.parent().unwrap_or(Path::new(".")).to_path_buf();
        let target = generation.strip_prefix(&parent).unwrap_or(generation);
        let tmp_link = parent.join(format!(
            "{TEMP_PREFIX}{}",
            self.link
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let _ = fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(target, &tmp_link).map_err(io_err(&tmp_link))?;
        fs::rename(&tmp_link, &self.link).map_err(io_err(&self.link))?;
        sync_dir(&parent).map_err(io_err(&parent))?;
        let gens = self.generations_dir();
        for g in list_generations(&gens)? {
            if g != generation {
                let _ = fs::remove_dir_all(&g);
            }
        }
        Ok(())
    }
}

fn generation_name(n: u64) -> String {
    format!("gen-{n:06}")
}

fn generation_number(p: &Path) -> Option<u64> {
    p.file_name()?.to_str()?.strip_prefix("gen-")?.parse().ok()
}

/// Complete generations, oldest first (temporary ones are skipped).
fn list_generations(gens: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let rd = match fs::read_dir(gens) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(io_err(gens))?,
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| generation_number(p).is_some())
        .collect();
    v.sort_by_key(|p| generation_number(p));
    Ok(v)
}

fn copy_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?;
    fs::File::open(to)?.sync_all()
}

fn copy_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::metadata(from) {
        Ok(_) => copy_durable(from, to),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Hard-links `from` to `to` (same file system: the generations are siblings).
fn link_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
