//! The label table: free-text label names (folder names, Labelme shape labels, clinician
//! labels) → taxonomy classes. The default table is `data/labels.toml`, built into the binary;
//! `--labels FILE` swaps in an edited copy.

use dermo_model::{Class, CLASSES};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const BUILTIN: &str = include_str!("../../../data/labels.toml");

/// Label name (normalized) → class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelTable {
    names: BTreeMap<String, Class>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabelTableError {
    #[error("cannot read label table {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("label table {origin} is not valid TOML with a [labels] table of strings: {source}")]
    Parse {
        origin: String,
        source: toml::de::Error,
    },
    #[error("label table {origin}: {name:?} maps to {code:?}, which is not a class code (akiec bcc bkl df mel nv vasc)")]
    BadClass {
        origin: String,
        name: String,
        code: String,
    },
}

/// A label the table does not know; the message lists every known name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown label {label:?}; known labels: {}. Add it to the label table (data/labels.toml, or --labels FILE) or pass --skip-unknown", known.join(", "))]
pub struct UnknownLabel {
    pub label: String,
    pub known: Vec<String>,
}

#[derive(serde::Deserialize)]
struct File {
    labels: BTreeMap<String, String>,
}

impl LabelTable {
    /// The table shipped in `data/labels.toml`.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN, "data/labels.toml").expect("the built-in label table is valid")
    }

    pub fn load(path: &Path) -> Result<Self, LabelTableError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelTableError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The built-in table, or the one at `path` when given.
    pub fn load_or_builtin(path: Option<&Path>) -> Result<Self, LabelTableError> {
        path.map_or_else(|| Ok(Self::builtin()), Self::load)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, LabelTableError> {
        let file: File = toml::from_str(text).map_err(|source| LabelTableError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        let mut names: BTreeMap<String, Class> =
            CLASSES.iter().map(|c| (c.code().to_owned(), *c)).collect();
        for (name, code) in file.labels {
            let class = code
                .parse::<Class>()
                .map_err(|_| LabelTableError::BadClass {
                    origin: origin.to_owned(),
                    name: name.clone(),
                    code: code.clone(),
                })?;
            names.insert(normalize(&name), class);
        }
        Ok(LabelTable { names })
    }

    /// The class of a label name; case, spaces, '-' and '_' do not matter.
    pub fn lookup(&self, label: &str) -> Result<Class, UnknownLabel> {
        self.names
            .get(&normalize(label))
            .copied()
            .ok_or_else(|| UnknownLabel {
                label: label.to_owned(),
                known: self.names.keys().cloned().collect(),
            })
    }
}

fn normalize(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_maps_names_and_codes() {
        let t = LabelTable::builtin();
        assert_eq!(t.lookup("melanoma").unwrap(), Class::Mel);
        assert_eq!(t.lookup("Common_Nevus").unwrap(), Class::Nv);
        assert_eq!(t.lookup("  common   nevus ").unwrap(), Class::Nv);
        assert_eq!(t.lookup("BCC").unwrap(), Class::Bcc);
        let err = t.lookup("freckle").unwrap_err().to_string();
        assert!(
            err.contains("\"freckle\"") && err.contains("melanoma"),
            "{err}"
        );
    }

    #[test]
    fn a_table_naming_no_class_is_rejected() {
        let err = LabelTable::parse("[labels]\nmole = \"mole\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.toml") && err.contains("mole"), "{err}");
    }
}
