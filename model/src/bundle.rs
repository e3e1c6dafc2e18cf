//! The capture bundle: what `dermo-scope export` writes and `dermo data import scope-bundle`
//! reads. One row type, [`BundleRow`], for both.
//!
//! ```text
//! BUNDLE/images/<id>.jpg     the frames, byte for byte as journaled
//! BUNDLE/captures.csv        one BundleRow per capture: the fixed columns, then prob_<class>
//! ```
//!
//! The device leaves `label`, `lesion_id` and `patient_id` empty for the clinician to fill in;
//! the host imports only labelled rows and groups splits by lesion (a lesion captured twice must
//! share its id). A hand-made bundle may name the image column `image` and add a `mask` column.

use crate::taxonomy::{Class, CLASSES, NUM_CLASSES};
use serde::{Deserialize, Serialize};

pub const CSV_FILE: &str = "captures.csv";
pub const IMAGES_DIR: &str = "images";

/// What became of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The model answered.
    Prediction,
    /// The model declined (out of distribution, low confidence, non-finite output).
    Abstain,
    /// The quality gate refused the frame; the model did not run.
    Retake,
}

impl std::str::FromStr for OutcomeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            OutcomeKind::Prediction,
            OutcomeKind::Abstain,
            OutcomeKind::Retake,
        ]
        .into_iter()
        .find(|o| o.code() == s)
        .ok_or_else(|| format!("unknown outcome {s:?}"))
    }
}

impl OutcomeKind {
    /// The name in files: its serde name.
    pub fn code(self) -> &'static str {
        match self {
            OutcomeKind::Prediction => "prediction",
            OutcomeKind::Abstain => "abstain",
            OutcomeKind::Retake => "retake",
        }
    }
}

/// One row of `captures.csv`. Reading ignores columns it does not know (the probabilities
/// among them); an absent optional column reads as empty. The device's prediction columns
/// (`outcome`, `refer`, `malignant_prob`) read as empty when a spreadsheet has rewritten them
/// beyond recognition (`TRUE` still reads as true): the host imports images and labels, not
/// predictions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BundleRow {
    /// The image, relative to the bundle folder.
    #[serde(alias = "image")]
    pub file: String,
    /// The clinician-confirmed label name; empty until confirmed.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub lesion_id: Option<String>,
    #[serde(default)]
    pub patient_id: Option<String>,
    /// RFC 3339, UTC.
    #[serde(default)]
    pub captured_at: Option<String>,
    #[serde(default)]
    pub model_sha256: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub outcome: Option<OutcomeKind>,
    #[serde(default)]
    pub top_class: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub refer: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub malignant_prob: Option<f32>,
    /// The journal's capture id, which becomes the image id.
    #[serde(default)]
    pub capture_id: Option<String>,
    /// The frame's sha256, checked against the file on import.
    #[serde(default)]
    pub frame_sha256: Option<String>,
    /// A lesion mask, relative to the bundle folder (hand-made bundles only).
    #[serde(default)]
    pub mask: Option<String>,
    /// Calibrated probabilities in logit order (`prob_<class>`); written, not read.
    #[serde(skip)]
    pub probs: [Option<f32>; NUM_CLASSES],
}

/// A field parsed case-insensitively after trimming; empty or unparseable is `None`.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
{
    let text: Option<String> = Option::deserialize(d)?;
    Ok(text.and_then(|t| t.trim().to_lowercase().parse().ok()))
}

/// The fixed columns of the header, in file order.
const FIXED: [&str; 12] = [
    "file",
    "label",
    "lesion_id",
    "patient_id",
    "captured_at",
    "model_sha256",
    "outcome",
    "top_class",
    "refer",
    "malignant_prob",
    "capture_id",
    "frame_sha256",
];

impl BundleRow {
    /// The header the device writes: the fixed columns, then `prob_<class>` in logit order.
    pub fn header() -> Vec<String> {
        let mut h: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
        h.extend(CLASSES.iter().map(|c| format!("prob_{}", c.code())));
        h
    }

    /// The row's fields under [`BundleRow::header`]; probabilities with six decimals.
    pub fn record(&self) -> Vec<String> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let prob = |p: Option<f32>| p.map(|p| format!("{p:.6}")).unwrap_or_default();
        let mut r = vec![
            self.file.clone(),
            text(&self.label),
            text(&self.lesion_id),
            text(&self.patient_id),
            text(&self.captured_at),
            text(&self.model_sha256),
            self.outcome
                .map(|o| o.code().to_string())
                .unwrap_or_default(),
            text(&self.top_class),
            self.refer.map(|b| b.to_string()).unwrap_or_default(),
            prob(self.malignant_prob),
            text(&self.capture_id),
            text(&self.frame_sha256),
        ];
        r.extend(self.probs.iter().map(|&p| prob(p)));
        r
    }

    /// The probability of `class`, when the model answered.
    pub fn prob(&self, class: Class) -> Option<f32> {
        self.probs[class.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(rows: &[BundleRow]) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(BundleRow::header()).unwrap();
        for r in rows {
            w.write_record(r.record()).unwrap();
        }
        w.into_inner().unwrap()
    }

    fn read(bytes: &[u8]) -> Vec<BundleRow> {
        csv::Reader::from_reader(bytes)
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn what_the_device_writes_the_host_reads_back() {
        let mut answered = BundleRow {
            file: "images/c1.jpg".into(),
            captured_at: Some("2026-12-03T08:00:00Z".into()),
            model_sha256: Some("ab".repeat(32)),
            outcome: Some(OutcomeKind::Prediction),
            top_class: Some("nv".into()),
            refer: Some(false),
            malignant_prob: Some(0.125),
            capture_id: Some("c1".into()),
            frame_sha256: Some("cd".repeat(32)),
            ..BundleRow::default()
        };
        answered.probs[Class::Nv.index()] = Some(0.875);
        let retake = BundleRow {
            file: "images/c2.jpg".into(),
            outcome: Some(OutcomeKind::Retake),
            capture_id: Some("c2".into()),
            ..BundleRow::default()
        };
        let bytes = written(&[answered.clone(), retake.clone()]);
        let back = read(&bytes);
        // Probabilities are written for people, not read back.
        answered.probs = [None; NUM_CLASSES];
        assert_eq!(back, [answered, retake]);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("file,label,lesion_id,patient_id,captured_at,"));
        assert!(text.contains(",0.125000,c1,") && text.contains(",0.875000"));
    }

    #[test]
    fn hand_made_bundles_name_the_image_column_image_and_may_add_masks() {
        let rows = read(b"image,label,mask\na.jpg,mel,a_mask.png\nb.jpg,,\n");
        assert_eq!(rows[0].file, "a.jpg");
        assert_eq!(rows[0].label.as_deref(), Some("mel"));
        assert_eq!(rows[0].mask.as_deref(), Some("a_mask.png"));
        assert_eq!(
            (rows[1].label.as_deref(), rows[1].mask.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn spreadsheet_rewrites_of_the_prediction_columns_do_not_stop_an_import() {
        let rows =
            read(b"file,label,outcome,refer,malignant_prob\na.jpg,mel,Prediction,TRUE,n/a\n");
        assert_eq!(rows[0].outcome, Some(OutcomeKind::Prediction));
        assert_eq!(rows[0].refer, Some(true));
        assert_eq!(rows[0].malignant_prob, None);
    }

    #[test]
    fn outcome_codes_are_the_serde_names() {
        for o in [
            OutcomeKind::Prediction,
            OutcomeKind::Abstain,
            OutcomeKind::Retake,
        ] {
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::Value::String(o.code().into())
            );
        }
    }
}
