//! The capture journal on the device's card: every capture as a frame (JPEG) and a result (JSON),
//! plus an append-only index.
//!
//! ```text
//! DATA_DIR/index.jsonl                              one IndexEntry per line, append-only
//! DATA_DIR/captures/YYYY-MM-DD/<id>.jpg             the frame as captured
//! DATA_DIR/captures/YYYY-MM-DD/<id>.json            JournalRecord: the CaptureResult + file hashes
//! ```
//!
//! A record is *acknowledged* once its index line is on disk (written with one `write` and
//! fsynced); the frame and result files are written atomically before that. After a crash,
//! [`Journal::open`] removes temporary files, cuts a torn last index line, indexes complete
//! records whose index line was lost, and deletes incomplete ones — so no half record survives
//! and no acknowledged one is lost.
//!
//! Reading trusts nothing in the index: an id must be a plain file name and the frame and record
//! paths must be `captures/<day>/<id>.jpg` and `.json`, resolving to files inside the journal
//! (no `..`, no absolute path, no symbolic link out). [`verify`] reports every line that fails this
//! or its hashes as a [`BadEntry`] and goes on with the rest. [`Journal::quarantine`] moves the
//! files of such records aside, never deleting them:
//!
//! ```text
//! DATA_DIR/quarantine/<YYYYMMDDTHHMMSSZ>/quarantined.jsonl     one QuarantinedRecord per line,
//!                                                               with its index line verbatim
//! DATA_DIR/quarantine/<YYYYMMDDTHHMMSSZ>/captures/<day>/...    the record's files, as they were
//! ```
//!
//! The report is written first, then the files are moved, then the index is replaced atomically
//! without the bad lines: a crash in between leaves the bad lines indexed (and still failing), so
//! running it again finishes the job, and no file is ever lost.

use crate::capture::{CaptureResult, OutcomeKind};
use dermo_model::atomic::{create_dir_all_durable, sync_dir, write_atomic, TEMP_PREFIX};
use dermo_model::Class;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const INDEX_FILE: &str = "index.jsonl";
pub const CAPTURES_DIR: &str = "captures";
pub const QUARANTINE_DIR: &str = "quarantine";
/// The report in each quarantine folder.
pub const QUARANTINE_REPORT: &str = "quarantined.jsonl";

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    pub captured_at: String,
    /// Frame and record paths relative to the data directory.
    pub frame: String,
    pub record: String,
    pub record_sha256: String,
    pub model_sha256: String,
    pub outcome: OutcomeKind,
    pub top_class: Option<Class>,
    pub refer: Option<bool>,
}

/// The JSON file stored beside each frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub id: String,
    /// The frame's file name (beside this record).
    pub frame: String,
    pub frame_sha256: String,
    #[serde(flatten)]
    pub result: CaptureResult,
}

/// When to stop capturing before the card is full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoragePolicy {
    /// Refuse a capture that would leave less than this many MiB free on the file system.
    pub min_free_mb: u64,
    /// Refuse a capture that would grow the journal beyond this many MiB; 0 = no cap.
    pub max_journal_mb: f64,
}

impl Default for StoragePolicy {
    fn default() -> Self {
        StoragePolicy {
            min_free_mb: 200,
            max_journal_mb: 0.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("storage full at {path}: {reason}")]
    StorageFull { path: PathBuf, reason: String },
    #[error("journal {path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("journal record {path} is unreadable: {reason}")]
    BadRecord { path: PathBuf, reason: String },
    /// An index line that does not parse, repeats an id, or names an id or path that is not a
    /// plain name inside the journal.
    #[error("journal index {path}: {reason}")]
    BadIndex { path: PathBuf, reason: String },
}

/// What [`Journal::open`] repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Bytes of a torn last index line that were cut.
    pub torn_index_bytes: u64,
    /// Index lines that did not parse (kept in place, skipped).
    pub unreadable_index_lines: usize,
    pub temp_files_removed: usize,
    /// Complete records whose index line was missing, now indexed.
    pub reindexed: usize,
    /// Files of incomplete records, deleted.
    pub incomplete_removed: usize,
}

impl Recovery {
    pub fn is_clean(&self) -> bool {
        *self == Recovery::default()
    }
}

/// An index line that does not lead to an intact record: a line that does not parse, an id or
/// path that is not a plain name inside the journal, a duplicate id, a missing file, a hash that
/// does not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadEntry {
    /// 1-based line of the index.
    pub line: usize,
    /// The capture id as the line spells it (not safe to use as a path); `None` when the line
    /// does not parse.
    pub id: Option<String>,
    /// What is wrong, naming the file.
    pub reason: String,
}

/// One line of the index as read by [`read_index_lines`].
#[derive(Debug, Clone, PartialEq)]
pub struct IndexLine {
    /// 1-based line number.
    pub number: usize,
    /// The line's text, without its newline.
    pub text: String,
    /// What it parses to, or why it does not.
    pub entry: Result<IndexEntry, String>,
}

/// What [`verify`] found.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// Entries whose record and frame read back intact.
    pub good: Vec<IndexEntry>,
    pub bad: Vec<BadEntry>,
}

/// One record taken out of the index by [`Journal::quarantine`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedRecord {
    #[serde(flatten)]
    pub bad: BadEntry,
    /// The index line as it was, to put the record back by hand.
    pub index_line: String,
    /// Its files that were moved, relative to the data directory before and to the quarantine
    /// folder after. A path outside `captures/`, a file already gone, or a file that an intact
    /// record also names stays where it is.
    pub moved: Vec<String>,
}

/// What [`Journal::quarantine`] did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Quarantine {
    /// `DATA_DIR/quarantine/<stamp>`; `None` when every record verified.
    pub folder: Option<PathBuf>,
    pub records: Vec<QuarantinedRecord>,
    /// Records that verified and stay indexed.
    pub kept: usize,
}

pub struct Journal {
    root: PathBuf,
    policy: StoragePolicy,
    index: File,
    entries: usize,
    used_bytes: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |cause| {
        if cause.raw_os_error() == Some(libc::ENOSPC) {
            JournalError::StorageFull {
                path: path.to_path_buf(),
                reason: "no space left on device".into(),
            }
        } else {
            JournalError::Io {
                path: path.to_path_buf(),
                cause,
            }
        }
    }
}

impl Journal {
    /// Opens (creating if needed) the journal under `root`, repairing what a crash left behind.
    pub fn open(root: &Path, policy: StoragePolicy) -> Result<(Journal, Recovery), JournalError> {
        create_dir_all_durable(&root.join(CAPTURES_DIR)).map_err(io_err(root))?;
        let index_path = root.join(INDEX_FILE);
        let mut recovery = Recovery::default();
        let mut entries = repair_index(&index_path, &mut recovery)?;
        let mut index = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&index_path)
            .map_err(io_err(&index_path))?;
        sync_dir(root).map_err(io_err(root))?;

        let known: HashSet<String> = entries.iter().map(|e| e.id.clone()).collect();
        // A record file an index line names is indexed even when its name is not its line's id
        // (a damaged or forged line): `journal --repair` quarantines it, open never deletes it.
        let named: HashSet<String> = entries.iter().map(|e| e.record.clone()).collect();
        let mut used_bytes = fs::metadata(&index_path).map(|m| m.len()).unwrap_or(0);
        for day in read_dir_sorted(&root.join(CAPTURES_DIR))? {
            if !day.is_dir() {
                continue;
            }
            for file in read_dir_sorted(&day)? {
                let name = file_name(&file);
                if name.starts_with(TEMP_PREFIX) {
                    fs::remove_file(&file).map_err(io_err(&file))?;
                    recovery.temp_files_removed += 1;
                    continue;
                }
                let Some(id) = name.strip_suffix(".json") else {
                    continue;
                };
                if known.contains(id) || named.contains(&relative(root, &file)) {
                    continue;
                }
                // A complete record whose index line was lost is indexed now; one that cannot be
                // (incomplete, or no room left for its line) was never acknowledged: remove it.
                let indexed = complete_record(root, &file).ok().and_then(|entry| {
                    append_line(&mut index, &index_path, &entry).ok()?;
                    Some(entry)
                });
                match indexed {
                    Some(entry) => {
                        entries.push(entry);
                        recovery.reindexed += 1;
                    }
                    None => {
                        fs::remove_file(&file).map_err(io_err(&file))?;
                        recovery.incomplete_removed += 1;
                    }
                }
            }
            // Frames without a record: the write stopped between the two files.
            let indexed: HashSet<String> = entries.iter().map(|e| e.frame.clone()).collect();
            for file in read_dir_sorted(&day)? {
                let rel = relative(root, &file);
                if file_name(&file).ends_with(".jpg") && !indexed.contains(&rel) {
                    fs::remove_file(&file).map_err(io_err(&file))?;
                    recovery.incomplete_removed += 1;
                } else {
                    used_bytes += fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                }
            }
            sync_dir(&day).map_err(io_err(&day))?;
        }
        Ok((
            Journal {
                root: root.to_path_buf(),
                policy,
                index,
                entries: entries.len(),
                used_bytes,
            },
            recovery,
        ))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of acknowledged records.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Whether a capture of about `incoming` bytes may be stored under the policy.
    pub fn check_space(&self, incoming: u64) -> Result<(), JournalError> {
        const MIB: u64 = 1024 * 1024;
        let full = |reason: String| JournalError::StorageFull {
            path: self.root.clone(),
            reason,
        };
        let free = free_bytes(&self.root).map_err(io_err(&self.root))?;
        if free.saturating_sub(incoming) < self.policy.min_free_mb * MIB {
            return Err(full(format!(
                "{} MiB free, the floor is {} MiB",
                free / MIB,
                self.policy.min_free_mb
            )));
        }
        let cap = (self.policy.max_journal_mb * MIB as f64) as u64;
        if cap > 0 && self.used_bytes + incoming > cap {
            return Err(full(format!(
                "the journal holds {} KiB, its cap is {} MiB",
                self.used_bytes / 1024,
                self.policy.max_journal_mb
            )));
        }
        Ok(())
    }

    /// Stores one capture and returns its index entry once it is durable (acknowledged).
    pub fn record(
        &mut self,
        jpeg: &[u8],
        result: &CaptureResult,
    ) -> Result<IndexEntry, JournalError> {
        let seq = self.entries + 1;
        let stamp = result.captured_at.replace(['-', ':'], "").replace('.', "-");
        let id = format!("{stamp}-{seq:06}");
        let day_name = result
            .captured_at
            .get(..10)
            .unwrap_or("undated")
            .to_string();
        let day = self.root.join(CAPTURES_DIR).join(&day_name);
        let record = JournalRecord {
            id: id.clone(),
            frame: format!("{id}.jpg"),
            frame_sha256: hex::encode(Sha256::digest(jpeg)),
            result: result.clone(),
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| JournalError::BadRecord {
            path: day.join(format!("{id}.json")),
            reason: e.to_string(),
        })?;
        self.check_space((jpeg.len() + json.len() + 512) as u64)?;

        create_dir_all_durable(&day).map_err(io_err(&day))?;
        let frame_path = day.join(&record.frame);
        let record_path = day.join(format!("{id}.json"));
        write_atomic(&frame_path, jpeg).map_err(io_err(&frame_path))?;
        if let Err(e) = write_atomic(&record_path, &json).map_err(io_err(&record_path)) {
            let _ = fs::remove_file(&frame_path);
            return Err(e);
        }
        let entry = IndexEntry {
            id,
            captured_at: result.captured_at.clone(),
            frame: relative(&self.root, &frame_path),
            record: relative(&self.root, &record_path),
            record_sha256: hex::encode(Sha256::digest(&json)),
            model_sha256: result.model_sha256.clone(),
            outcome: result.outcome,
            top_class: result.top_class,
            refer: result.refer,
        };
        let index_path = self.root.join(INDEX_FILE);
        let line_len = match append_line(&mut self.index, &index_path, &entry) {
            Ok(n) => n,
            Err(e) => {
                // Not acknowledged: take back the files and any part of the line.
                let _ = fs::remove_file(&record_path);
                let _ = fs::remove_file(&frame_path);
                let _ = truncate_torn_line(&index_path);
                return Err(e);
            }
        };
        self.entries += 1;
        self.used_bytes += (jpeg.len() + json.len() + line_len) as u64;
        Ok(entry)
    }

    /// Verifies every record; moves the files of those that fail into a new folder
    /// `quarantine/<stamp>/` and rewrites the index without their lines (order and crash
    /// guarantees in the module docs). Nothing is deleted. Not safe while another process
    /// appends to the same journal: stop `dermo-scope run` first.
    pub fn quarantine(&mut self) -> Result<Quarantine, JournalError> {
        let lines = read_index_lines(&self.root)?;
        let mut verifier = Verifier::new(&self.root);
        let mut kept_text = String::new();
        let mut kept_paths = HashSet::new();
        let mut failed = Vec::new();
        for line in &lines {
            match verifier.check(line) {
                Ok((entry, _, _)) => {
                    kept_text.push_str(&line.text);
                    kept_text.push('\n');
                    kept_paths.insert(entry.record);
                    kept_paths.insert(entry.frame);
                }
                Err(bad) => failed.push((bad, line)),
            }
        }
        let kept = lines.len() - failed.len();
        if failed.is_empty() {
            return Ok(Quarantine {
                folder: None,
                records: Vec::new(),
                kept,
            });
        }
        let folder = new_quarantine_folder(&self.root)?;
        let mut planned = HashSet::new();
        let records: Vec<QuarantinedRecord> = failed
            .into_iter()
            .map(|(bad, line)| {
                let moved = match &line.entry {
                    Ok(e) => [&e.record, &e.frame]
                        .into_iter()
                        .filter(|rel| {
                            !kept_paths.contains(*rel)
                                && movable(&self.root, rel)
                                && planned.insert((*rel).clone())
                        })
                        .cloned()
                        .collect(),
                    Err(_) => Vec::new(),
                };
                QuarantinedRecord {
                    bad,
                    index_line: line.text.clone(),
                    moved,
                }
            })
            .collect();

        // 1. The report, so a crash below still leaves the reasons and the index lines.
        let report_path = folder.join(QUARANTINE_REPORT);
        let mut report = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut report, r).map_err(|e| JournalError::BadRecord {
                path: report_path.clone(),
                reason: e.to_string(),
            })?;
            report.push(b'\n');
        }
        write_atomic(&report_path, &report).map_err(io_err(&report_path))?;
        // 2. The files.
        for rel in records.iter().flat_map(|r| &r.moved) {
            let (from, to) = (self.root.join(rel), folder.join(rel));
            let to_dir = to.parent().unwrap_or(&folder);
            create_dir_all_durable(to_dir).map_err(io_err(to_dir))?;
            fs::rename(&from, &to).map_err(io_err(&from))?;
            sync_dir(to_dir).map_err(io_err(to_dir))?;
            let from_dir = from.parent().unwrap_or(&self.root);
            sync_dir(from_dir).map_err(io_err(from_dir))?;
        }
        // 3. The index, in one atomic step.
        let index_path = self.root.join(INDEX_FILE);
        write_atomic(&index_path, kept_text.as_bytes()).map_err(io_err(&index_path))?;
        let (reopened, _) = Journal::open(&self.root, self.policy)?;
        *self = reopened;
        Ok(Quarantine {
            folder: Some(folder),
            records,
            kept,
        })
    }
}

/// Reads the index of the journal at `root` (no repair; see [`Journal::open`]).
pub fn read_index(root: &Path) -> Result<Vec<IndexEntry>, JournalError> {
    let path = root.join(INDEX_FILE);
    let text = match fs::read_to_string(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(io_err(&path))?,
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| JournalError::BadRecord {
                path: path.clone(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// Reads the index of the journal at `root` line by line, keeping lines that do not parse (no
/// repair; see [`Journal::open`]).
pub fn read_index_lines(root: &Path) -> Result<Vec<IndexLine>, JournalError> {
    let path = root.join(INDEX_FILE);
    let bytes = match fs::read(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(io_err(&path))?,
    };
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| IndexLine {
            number: i + 1,
            text: l.to_string(),
            entry: serde_json::from_str(l).map_err(|e| e.to_string()),
        })
        .collect())
}

/// Checks index lines in order: each must parse, name a capture id not seen on an earlier line,
/// and lead to an intact record ([`read_capture`]).
pub struct Verifier<'a> {
    root: &'a Path,
    seen: HashMap<String, usize>,
}

impl<'a> Verifier<'a> {
    pub fn new(root: &'a Path) -> Self {
        Verifier {
            root,
            seen: HashMap::new(),
        }
    }

    /// The line's entry, its record and its frame's bytes (those that were hashed), or why not.
    pub fn check(
        &mut self,
        line: &IndexLine,
    ) -> Result<(IndexEntry, JournalRecord, Vec<u8>), BadEntry> {
        let index = self.root.join(INDEX_FILE);
        let bad = |id: Option<&str>, reason: String| BadEntry {
            line: line.number,
            id: id.map(str::to_string),
            reason,
        };
        let entry = match &line.entry {
            Ok(e) => e,
            Err(e) => {
                let err = JournalError::BadIndex {
                    path: index,
                    reason: format!("line {} does not parse: {e}", line.number),
                };
                return Err(bad(None, err.to_string()));
            }
        };
        if let Some(first) = self.seen.get(&entry.id) {
            let err = JournalError::BadIndex {
                path: index,
                reason: format!(
                    "line {}: capture id {:?} is also on line {first}",
                    line.number, entry.id
                ),
            };
            return Err(bad(Some(&entry.id), err.to_string()));
        }
        self.seen.insert(entry.id.clone(), line.number);
        let (record, frame) =
            read_capture(self.root, entry).map_err(|e| bad(Some(&entry.id), e.to_string()))?;
        Ok((entry.clone(), record, frame))
    }
}

/// Checks every line of the index at `root`; one bad record does not stop the others.
pub fn verify(root: &Path) -> Result<Verification, JournalError> {
    let mut verifier = Verifier::new(root);
    let mut v = Verification::default();
    for line in read_index_lines(root)? {
        match verifier.check(&line) {
            Ok((entry, _, _)) => v.good.push(entry),
            Err(bad) => v.bad.push(bad),
        }
    }
    Ok(v)
}

/// Reads and checks one indexed record: its JSON hash and its frame's hash.
pub fn read_record(root: &Path, entry: &IndexEntry) -> Result<JournalRecord, JournalError> {
    read_capture(root, entry).map(|(record, _)| record)
}

/// Reads and checks one indexed record and returns it with its frame's bytes. The entry's id
/// must be a plain file name and its paths `captures/<day>/<id>.json` and `.jpg`, regular files
/// inside `root`; the record must name the same id and frame, and both hashes must match.
pub fn read_capture(
    root: &Path,
    entry: &IndexEntry,
) -> Result<(JournalRecord, Vec<u8>), JournalError> {
    check_entry(entry).map_err(|reason| JournalError::BadIndex {
        path: root.join(INDEX_FILE),
        reason,
    })?;
    let path = inside(root, &entry.record)?;
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let bad = |reason: String| JournalError::BadRecord {
        path: path.clone(),
        reason,
    };
    if hex::encode(Sha256::digest(&bytes)) != entry.record_sha256 {
        return Err(bad("its hash does not match the index".into()));
    }
    let record: JournalRecord = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let frame_name = format!("{}.jpg", entry.id);
    if record.id != entry.id || record.frame != frame_name {
        return Err(bad(format!(
            "it names capture {:?} and frame {:?}; the index says {:?} and {frame_name:?}",
            record.id, record.frame, entry.id
        )));
    }
    let frame_path = inside(root, &entry.frame)?;
    let frame = fs::read(&frame_path).map_err(io_err(&frame_path))?;
    if hex::encode(Sha256::digest(&frame)) != record.frame_sha256 {
        return Err(bad(format!(
            "frame {} does not match its hash",
            entry.frame
        )));
    }
    Ok((record, frame))
}

/// A capture id or a file name the journal may use as a path component: not empty, not `.` or
/// `..`, no `/`, `\` or NUL.
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

/// Checks an entry's id and paths by their text alone (no file system access).
fn check_entry(entry: &IndexEntry) -> Result<(), String> {
    if !is_plain_name(&entry.id) {
        return Err(format!(
            "capture id {:?} is not a plain file name",
            entry.id
        ));
    }
    for (what, rel, ext) in [
        ("record", &entry.record, "json"),
        ("frame", &entry.frame, "jpg"),
    ] {
        let ok = match rel.split('/').collect::<Vec<_>>()[..] {
            [CAPTURES_DIR, day, file] => {
                is_plain_name(day) && file == format!("{}.{ext}", entry.id)
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "capture {:?}: {what} path {rel:?} is not {CAPTURES_DIR}/<day>/{}.{ext}",
                entry.id, entry.id
            ));
        }
    }
    Ok(())
}

/// `root/rel` when it is a regular file whose real path (symbolic links resolved) is inside
/// `root`. `rel` has passed [`check_entry`].
fn inside(root: &Path, rel: &str) -> Result<PathBuf, JournalError> {
    let path = root.join(rel);
    let real = fs::canonicalize(&path).map_err(io_err(&path))?;
    let real_root = fs::canonicalize(root).map_err(io_err(root))?;
    let bad = |reason: String| JournalError::BadRecord {
        path: path.clone(),
        reason,
    };
    if !real.starts_with(&real_root) {
        return Err(bad(format!(
            "it resolves to {}, outside the journal",
            real.display()
        )));
    }
    if !fs::metadata(&real).map_err(io_err(&path))?.is_file() {
        return Err(bad("it is not a regular file".into()));
    }
    Ok(path)
}

/// Whether [`Journal::quarantine`] may move `root/rel`: a plain `captures/<day>/<file>` path to
/// something that exists, in a folder whose real path is inside `root`. A symbolic link is
/// moved as the link; what it points to is never touched.
fn movable(root: &Path, rel: &str) -> bool {
    let plain = match rel.split('/').collect::<Vec<_>>()[..] {
        [CAPTURES_DIR, day, file] => is_plain_name(day) && is_plain_name(file),
        _ => false,
    };
    let path = root.join(rel);
    let dir_inside = || {
        let dir = fs::canonicalize(path.parent()?).ok()?;
        Some(dir.starts_with(fs::canonicalize(root).ok()?))
    };
    plain && fs::symlink_metadata(&path).is_ok() && dir_inside() == Some(true)
}

/// Creates `root/quarantine/<UTC stamp>` (with `-2`, `-3`, … when taken) durably.
fn new_quarantine_folder(root: &Path) -> Result<PathBuf, JournalError> {
    let parent = root.join(QUARANTINE_DIR);
    create_dir_all_durable(&parent).map_err(io_err(&parent))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    for n in 1.. {
        let folder = match n {
            1 => parent.join(&stamp),
            n => parent.join(format!("{stamp}-{n}")),
        };
        match fs::create_dir(&folder) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            r => r.map_err(io_err(&folder))?,
        }
        sync_dir(&parent).map_err(io_err(&parent))?;
        return Ok(folder);
    }
    unreachable!("an unbounded range ends only by returning")
}

/// Cuts a torn last line and returns the entries that parse.
fn repair_index(path: &Path, recovery: &mut Recovery) -> Result<Vec<IndexEntry>, JournalError> {
    let bytes = match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(io_err(path))?,
    };
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        truncate_torn_line(path).map_err(io_err(path))?;
        recovery.torn_index_bytes = (bytes.len() - keep) as u64;
    }
    let mut entries = Vec::new();
    for line in String::from_utf8_lossy(&bytes[..keep]).lines() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(e) => entries.push(e),
            Err(_) => recovery.unreadable_index_lines += 1,
        }
    }
    Ok(entries)
}

/// Cuts the index back to its last complete line.
fn truncate_torn_line(path: &Path) -> io::Result<()> {
    let bytes = fs::read(path)?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(keep as u64)?;
        f.sync_all()?;
    }
    Ok(())
}

/// The index entry of a record file whose frame is present and intact.
fn complete_record(root: &Path, record_path: &Path) -> Result<IndexEntry, String> {
    let bytes = fs::read(record_path).map_err(|e| e.to_string())?;
    let record: JournalRecord = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    // Its own name, and the frame beside it: nothing it says may lead elsewhere.
    if record_path.file_name() != Some(format!("{}.json", record.id).as_ref())
        || record.frame != format!("{}.jpg", record.id)
        || !is_plain_name(&record.id)
    {
        return Err("its id or frame name does not match its file name".into());
    }
    let frame_path = record_path.with_file_name(&record.frame);
    let frame = fs::read(&frame_path).map_err(|e| e.to_string())?;
    if hex::encode(Sha256::digest(&frame)) != record.frame_sha256 {
        return Err("frame hash mismatch".into());
    }
    Ok(IndexEntry {
        id: record.id.clone(),
        captured_at: record.result.captured_at.clone(),
        frame: relative(root, &frame_path),
        record: relative(root, record_path),
        record_sha256: hex::encode(Sha256::digest(&bytes)),
        model_sha256: record.result.model_sha256.clone(),
        outcome: record.result.outcome,
        top_class: record.result.top_class,
        refer: record.result.refer,
    })
}

/// Appends one JSON line with a single `write` and makes it durable; returns its length.
fn append_line(index: &mut File, path: &Path, entry: &IndexEntry) -> Result<usize, JournalError> {
    let mut line = serde_json::to_vec(entry).map_err(|e| JournalError::BadRecord {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    line.push(b'\n');
    index.write_all(&line).map_err(io_err(path))?;
    index.sync_data().map_err(io_err(path))?;
    Ok(line.len())
}

/// Bytes available to an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs only writes into the zeroed struct we own; `c` is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}
