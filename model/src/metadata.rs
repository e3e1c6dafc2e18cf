//! What a model file says about itself: JSON values in ONNX `metadata_props` under `dermo.*` keys.
//!
//! Every key holds one JSON document, so a person can read them with any ONNX tool and the device
//! reads them without knowing how the file was trained.

use crate::preprocess::{Normalization, PreprocessConfig};
use crate::taxonomy::{Class, CLASSES};
use serde::{Deserialize, Serialize};

/// Version of the metadata layout; bumped when a key changes meaning.
pub const FORMAT_VERSION: u32 = 1;

pub const KEY_FORMAT: &str = "dermo.format";
pub const KEY_CLASSES: &str = "dermo.classes";
pub const KEY_INPUT: &str = "dermo.input";
pub const KEY_CALIBRATION: &str = "dermo.calibration";
pub const KEY_PROVENANCE: &str = "dermo.provenance";
pub const KEY_METRICS: &str = "dermo.metrics";
/// What each graph output holds, in words (`{name: description}`). Written by the ONNX writer for
/// people and tools; the runtime finds the optional outputs by name, so files without this key
/// (or without an output) still load.
pub const KEY_OUTPUTS: &str = "dermo.outputs";

/// The input sizes a model file may declare: smaller cannot hold a lesion's detail, larger would
/// not fit a device's memory.
pub const INPUT_SIZE_RANGE: std::ops::RangeInclusive<u32> = 32..=1024;

/// The required keys, in the order they are written.
pub const REQUIRED_KEYS: [&str; 5] = [
    KEY_FORMAT,
    KEY_CLASSES,
    KEY_INPUT,
    KEY_CALIBRATION,
    KEY_PROVENANCE,
];

/// All metadata of one model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// One entry per logit, in logit order.
    pub classes: Vec<ClassInfo>,
    pub input: InputSpec,
    pub calibration: CalibrationSpec,
    pub provenance: Provenance,
    /// Test metrics as the evaluator wrote them (free-form JSON; `null` when not evaluated).
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    pub code: String,
    pub name: String,
    pub malignant: bool,
}

impl From<Class> for ClassInfo {
    fn from(c: Class) -> Self {
        ClassInfo {
            code: c.code().to_string(),
            name: c.name().to_string(),
            malignant: c.is_malignant(),
        }
    }
}

/// How the network's input was made: the preprocessing (`size`, `color_constancy`, carried whole
/// and flat in the JSON), then `(x − mean) / std` per channel on 0–255 RGB, laid out `layout`. The
/// device builds its tensor from these; a file whose spec it cannot honour is refused at load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    #[serde(flatten)]
    pub preprocess: PreprocessConfig,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The only layout the runtime feeds: `"NCHW"`.
    pub layout: String,
}

/// The one input layout the runtime feeds.
pub const LAYOUT: &str = "NCHW";

impl InputSpec {
    /// The spec of a network trained with `preprocess` and the contract's normalization.
    pub fn new(preprocess: PreprocessConfig) -> InputSpec {
        let norm = Normalization::default();
        InputSpec {
            preprocess,
            mean: norm.mean,
            std: norm.std,
            layout: LAYOUT.into(),
        }
    }

    /// The normalization the file asks for.
    pub fn normalization(&self) -> Normalization {
        Normalization {
            mean: self.mean,
            std: self.std,
        }
    }
}

impl Default for InputSpec {
    fn default() -> Self {
        InputSpec::new(PreprocessConfig::default())
    }
}

/// The decision rule's parameters, fitted by `dermo calibrate` on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CalibrationSpec {
    /// Temperature dividing the logits before the softmax.
    pub temperature: f32,
    /// Refer when the malignant-group probability reaches this value.
    pub refer_threshold: f32,
    /// The sensitivity (for the malignant group) the refer threshold was chosen for.
    pub target_sensitivity: f32,
    /// Abstain when the top probability is below this value.
    pub abstain_min_confidence: f32,
    /// Out-of-distribution rule on the pooled features; `None` disables it.
    pub ood: Option<OodSpec>,
}

impl Default for CalibrationSpec {
    fn default() -> Self {
        CalibrationSpec {
            temperature: 1.0,
            refer_threshold: 0.5,
            target_sensitivity: 0.0,
            abstain_min_confidence: 0.0,
            ood: None,
        }
    }
}

/// Out-of-distribution score = mean over dims of `((f − mean) / std)²` of a global-average-pooled
/// feature map; abstain when the score exceeds `threshold` (fit on validation by the host, e.g. at
/// its 97.5th percentile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodSpec {
    /// Which feature map is pooled: `None`, the last one (the file's `features` output);
    /// `Some(i)`, the output of block `i` (the file's `ood_features` output). A mid-network
    /// block that kept its ImageNet weights tells non-skin input apart far better than the
    /// fine-tuned last layer, which only learned to separate lesion classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<usize>,
    /// Whose weights compute that block. `false`: the classifier's own. `true`: a frozen copy of
    /// the ImageNet stem and blocks `0..=block`, carried in the file for the rule alone (the
    /// `ood_features` output), so the rule reads the same features however much of the
    /// classifier was fine-tuned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen_backbone: bool,
    pub feature_mean: Vec<f32>,
    pub feature_std: Vec<f32>,
    pub threshold: f32,
}

impl OodSpec {
    /// The score of one pooled feature vector; `None` when its length does not match the spec.
    pub fn score(&self, features: &[f32]) -> Option<f32> {
        let n = self.feature_mean.len();
        if n == 0 || features.len() != n || self.feature_std.len() != n {
            return None;
        }
        let sum: f32 = features
            .iter()
            .zip(&self.feature_mean)
            .zip(&self.feature_std)
            .map(|((f, m), s)| {
                let z = (f - m) / s.max(1e-6);
                z * z
            })
            .sum();
        Some(sum / n as f32)
    }
}

/// Where a model came from, so a result can be traced back to its data and code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Provenance {
    /// Hash of the dataset manifest the run trained on.
    pub manifest_hash: String,
    /// Seed of the lesion-grouped split.
    pub split_seed: u64,
    /// `git` commit of the code that trained and exported the model.
    pub source_commit: String,
    /// Architecture name, e.g. `efficientnet-lite0`.
    pub arch: String,
    /// The training recipe as saved with the run.
    pub recipe: serde_json::Value,
    /// When the file was exported (RFC 3339).
    pub created: String,
    /// `fp32`, `int8` or `int8-full`.
    pub precision: String,
}

/// A missing or malformed `dermo.*` value.
///
/// Each message names the key and its cause once. A cause kept in a field is part of the message
/// and is not also returned by `source()`, so an error chain printed with `{:#}` (anyhow) does not
/// repeat it.
#[derive(Debug)]
pub enum MetadataError {
    Missing(&'static str),
    Json {
        key: &'static str,
        source: serde_json::Error,
    },
    Version {
        found: u32,
    },
    Classes {
        found: usize,
        expected: usize,
        codes: String,
    },
    InputSize {
        found: u32,
    },
    /// An input normalization or layout the runtime cannot apply.
    Input {
        field: &'static str,
        found: String,
        expected: &'static str,
    },
    Calibration {
        field: &'static str,
        value: f32,
        expected: &'static str,
    },
}

impl std::fmt::Display for MetadataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use MetadataError::*;
        match self {
            Missing(key) => write!(f, "metadata key {key:?} is missing (not a dermo model file?)"),
            Json { key, source } => write!(
                f,
                "metadata key {key:?} is not valid JSON for its type: {source}"
            ),
            Version { found } => write!(
                f,
                "metadata format {found} is not supported (this build reads format {FORMAT_VERSION})"
            ),
            Classes {
                found,
                expected,
                codes,
            } => write!(
                f,
                "metadata lists {found} classes, this build knows {expected}: {codes}"
            ),
            InputSize { found } => write!(
                f,
                "metadata key {KEY_INPUT:?}: size {found} is outside {}..={}",
                INPUT_SIZE_RANGE.start(),
                INPUT_SIZE_RANGE.end()
            ),
            Input {
                field,
                found,
                expected,
            } => write!(
                f,
                "metadata key {KEY_INPUT:?}: {field} is {found}, expected {expected}"
            ),
            Calibration {
                field,
                value,
                expected,
            } => write!(
                f,
                "metadata key {KEY_CALIBRATION:?}: {field} is {value}, expected {expected}"
            ),
        }
    }
}

impl std::error::Error for MetadataError {}

impl Metadata {
    /// Metadata for the seven-class taxonomy with default input and calibration.
    pub fn new(input: InputSpec, calibration: CalibrationSpec, provenance: Provenance) -> Self {
        Metadata {
            classes: CLASSES.iter().map(|&c| ClassInfo::from(c)).collect(),
            input,
            calibration,
            provenance,
            metrics: serde_json::Value::Null,
        }
    }

    /// The `(key, JSON value)` pairs written into `metadata_props`.
    pub fn to_props(&self) -> Vec<(String, String)> {
        fn json<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).expect("metadata types always serialize")
        }
        vec![
            (KEY_FORMAT.into(), FORMAT_VERSION.to_string()),
            (KEY_CLASSES.into(), json(&self.classes)),
            (KEY_INPUT.into(), json(&self.input)),
            (KEY_CALIBRATION.into(), json(&self.calibration)),
            (KEY_PROVENANCE.into(), json(&self.provenance)),
            (KEY_METRICS.into(), json(&self.metrics)),
        ]
    }

    /// Reads the `dermo.*` keys back; other keys are ignored. `dermo.metrics` is optional.
    pub fn from_props(props: &[(String, String)]) -> Result<Self, MetadataError> {
        let find = |key: &'static str| {
            props
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let get = |key: &'static str| find(key).ok_or(MetadataError::Missing(key));
        fn parse<T: for<'de> Deserialize<'de>>(
            key: &'static str,
            v: &str,
        ) -> Result<T, MetadataError> {
            serde_json::from_str(v).map_err(|source| MetadataError::Json { key, source })
        }
        let format: u32 = parse(KEY_FORMAT, get(KEY_FORMAT)?)?;
        if format != FORMAT_VERSION {
            return Err(MetadataError::Version { found: format });
        }
        let classes: Vec<ClassInfo> = parse(KEY_CLASSES, get(KEY_CLASSES)?)?;
        let known = classes.len() == CLASSES.len()
            && classes.iter().zip(CLASSES).all(|(i, c)| i.code == c.code());
        if !known {
            return Err(MetadataError::Classes {
                found: classes.len(),
                expected: CLASSES.len(),
                codes: classes
                    .iter()
                    .map(|c| c.code.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        let meta = Metadata {
            classes,
            input: parse(KEY_INPUT, get(KEY_INPUT)?)?,
            calibration: parse(KEY_CALIBRATION, get(KEY_CALIBRATION)?)?,
            provenance: parse(KEY_PROVENANCE, get(KEY_PROVENANCE)?)?,
            metrics: match find(KEY_METRICS) {
                Some(v) => parse(KEY_METRICS, v)?,
                None => serde_json::Value::Null,
            },
        };
        meta.check_ranges()?;
        Ok(meta)
    }

    /// Refuses values the runtime and the decision rule cannot use: an input size outside
    /// [`INPUT_SIZE_RANGE`], a layout other than [`LAYOUT`], a mean that is not finite or a std
    /// that is not positive and finite, a temperature that is not positive and finite, and a refer
    /// threshold or minimum confidence outside `[0, 1]`.
    fn check_ranges(&self) -> Result<(), MetadataError> {
        let input = &self.input;
        if !INPUT_SIZE_RANGE.contains(&input.preprocess.size) {
            return Err(MetadataError::InputSize {
                found: input.preprocess.size,
            });
        }
        if input.layout != LAYOUT {
            return Err(MetadataError::Input {
                field: "layout",
                found: format!("{:?}", input.layout),
                expected: "\"NCHW\"",
            });
        }
        if !input.mean.iter().all(|m| m.is_finite()) {
            return Err(MetadataError::Input {
                field: "mean",
                found: format!("{:?}", input.mean),
                expected: "finite values",
            });
        }
        if !input.std.iter().all(|s| *s > 0.0 && s.is_finite()) {
            return Err(MetadataError::Input {
                field: "std",
                found: format!("{:?}", input.std),
                expected: "finite values > 0",
            });
        }
        let cal = &self.calibration;
        let checks = [
            (
                "temperature",
                cal.temperature,
                cal.temperature > 0.0 && cal.temperature.is_finite(),
                "a finite value > 0",
            ),
            (
                "refer_threshold",
                cal.refer_threshold,
                (0.0..=1.0).contains(&cal.refer_threshold),
                "a probability in [0, 1]",
            ),
            (
                "abstain_min_confidence",
                cal.abstain_min_confidence,
                (0.0..=1.0).contains(&cal.abstain_min_confidence),
                "a probability in [0, 1]",
            ),
        ];
        match checks.into_iter().find(|(_, _, ok, _)| !ok) {
            Some((field, value, _, expected)) => Err(MetadataError::Calibration {
                field,
                value,
                expected,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut m = Metadata::new(
            InputSpec::default(),
            CalibrationSpec {
                temperature: 1.7,
                refer_threshold: 0.21,
                target_sensitivity: 0.95,
                abstain_min_confidence: 0.3,
                ood: Some(OodSpec {
                    block: Some(10),
                    frozen_backbone: true,
                    feature_mean: vec![0.5, 1.0],
                    feature_std: vec![1.0, 2.0],
                    threshold: 3.0,
                }),
            },
            Provenance {
                manifest_hash: "abc".into(),
                split_seed: 7,
                arch: "efficientnet-lite0".into(),
                recipe: serde_json::json!({"epochs": 30}),
                precision: "int8".into(),
                ..Provenance::default()
            },
        );
        m.metrics = serde_json::json!({"balanced_accuracy": 0.71});
        m
    }

    #[test]
    fn props_round_trip() {
        let m = sample();
        let props = m.to_props();
        assert!(props.iter().all(|(k, _)| k.starts_with("dermo.")));
        assert_eq!(Metadata::from_props(&props).unwrap(), m);
    }

    #[test]
    fn missing_and_broken_keys_are_named() {
        let mut props = sample().to_props();
        props.retain(|(k, _)| k != KEY_CALIBRATION);
        let e = Metadata::from_props(&props).unwrap_err().to_string();
        assert!(e.contains("dermo.calibration"), "{e}");

        let mut props = sample().to_props();
        props[2].1 = "{not json".into();
        let e = Metadata::from_props(&props).unwrap_err().to_string();
        assert!(e.contains(KEY_INPUT), "{e}");
    }

    #[test]
    fn values_the_runtime_cannot_use_are_refused_by_name() {
        let refused = |edit: fn(&mut Metadata)| {
            let mut m = sample();
            edit(&mut m);
            Metadata::from_props(&m.to_props()).unwrap_err().to_string()
        };
        for size in [0, 31, 1025, 60000] {
            let mut m = sample();
            m.input.preprocess.size = size;
            let e = Metadata::from_props(&m.to_props()).unwrap_err().to_string();
            assert!(
                e.contains(KEY_INPUT) && e.contains(&format!("size {size}")),
                "{e}"
            );
        }
        for (e, field) in [
            (refused(|m| m.calibration.temperature = 0.0), "temperature"),
            (refused(|m| m.calibration.temperature = -1.0), "temperature"),
            (
                refused(|m| m.calibration.refer_threshold = 1.5),
                "refer_threshold",
            ),
            (
                refused(|m| m.calibration.abstain_min_confidence = -0.1),
                "abstain_min_confidence",
            ),
        ] {
            assert!(e.contains(KEY_CALIBRATION) && e.contains(field), "{e}");
        }
        for (e, field) in [
            (refused(|m| m.input.layout = "NHWC".into()), "layout"),
            (refused(|m| m.input.std = [128.0, 0.0, 128.0]), "std"),
            (refused(|m| m.input.std = [-1.0; 3]), "std"),
        ] {
            assert!(e.contains(KEY_INPUT) && e.contains(field), "{e}");
        }
        // The preprocessing travels whole but flat: `size` and `color_constancy` sit beside
        // `mean`, `std` and `layout` in the JSON, as in files written before.
        let input = serde_json::to_value(&sample().input).unwrap();
        for key in ["size", "color_constancy", "mean", "std", "layout"] {
            assert!(input.get(key).is_some(), "{input}");
        }
        // JSON has no NaN or infinity; a non-finite temperature cannot even be written.
        let mut props = sample().to_props();
        props[3].1 = props[3].1.replace("1.7", "1e39");
        let e = Metadata::from_props(&props).unwrap_err().to_string();
        assert!(e.contains("temperature"), "{e}");
    }

    #[test]
    fn ood_score_is_mean_squared_z() {
        let o = sample().calibration.ood.unwrap();
        // z = (1.5-0.5)/1 = 1, (5-1)/2 = 2 → (1 + 4) / 2
        assert_eq!(o.score(&[1.5, 5.0]), Some(2.5));
        assert_eq!(o.score(&[1.0]), None);
    }
}
