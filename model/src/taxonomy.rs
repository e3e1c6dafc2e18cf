//! The class taxonomy: seven HAM10000 diagnoses, three of them in the malignant group.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One diagnostic class. The order of the variants is the order of the model's logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Akiec,
    Bcc,
    Bkl,
    Df,
    Mel,
    Nv,
    Vasc,
}

pub const NUM_CLASSES: usize = 7;

/// All classes in logit order.
pub const CLASSES: [Class; NUM_CLASSES] = [
    Class::Akiec,
    Class::Bcc,
    Class::Bkl,
    Class::Df,
    Class::Mel,
    Class::Nv,
    Class::Vasc,
];

impl Class {
    /// The short code used in HAM10000 metadata (`dx`) and in every file dermo writes.
    pub fn code(self) -> &'static str {
        match self {
            Class::Akiec => "akiec",
            Class::Bcc => "bcc",
            Class::Bkl => "bkl",
            Class::Df => "df",
            Class::Mel => "mel",
            Class::Nv => "nv",
            Class::Vasc => "vasc",
        }
    }

    /// A name a person can read.
    pub fn name(self) -> &'static str {
        match self {
            Class::Akiec => "actinic keratosis / intraepithelial carcinoma",
            Class::Bcc => "basal cell carcinoma",
            Class::Bkl => "benign keratosis",
            Class::Df => "dermatofibroma",
            Class::Mel => "melanoma",
            Class::Nv => "melanocytic nevus",
            Class::Vasc => "vascular lesion",
        }
    }

    /// Whether the class belongs to the malignant group (mel, bcc, akiec) that triggers a referral.
    pub fn is_malignant(self) -> bool {
        matches!(self, Class::Mel | Class::Bcc | Class::Akiec)
    }

    /// Position of the class in the logit vector.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Class> {
        CLASSES.get(i).copied()
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A label that is not one of the seven class codes.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown class code {0:?}; known codes: akiec bcc bkl df mel nv vasc")]
pub struct UnknownClass(pub String);

impl FromStr for Class {
    type Err = UnknownClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        CLASSES
            .iter()
            .copied()
            .find(|c| c.code() == s)
            .ok_or(UnknownClass(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_in_logit_order() {
        for (i, c) in CLASSES.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Class::from_index(i), Some(*c));
            assert_eq!(c.code().parse::<Class>().unwrap(), *c);
        }
        assert!("melanoma".parse::<Class>().is_err());
    }

    #[test]
    fn malignant_group_is_mel_bcc_akiec() {
        let m: Vec<&str> = CLASSES
            .iter()
            .filter(|c| c.is_malignant())
            .map(|c| c.code())
            .collect();
        assert_eq!(m, ["akiec", "bcc", "mel"]);
    }
}
