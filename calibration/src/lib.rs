//! dermo-calibration: math on scores and labels, in pure Rust on ndarray.
//!
//! - [`confusion`]: confusion matrix, accuracy, balanced accuracy, per-class precision, recall,
//!   F1 and specificity;
//! - [`roc`]: one-vs-rest ROC curves and tie-aware AUC;
//! - [`triage`]: the malignant group's summed probability, sensitivity and specificity at a
//!   refer threshold, and the threshold that reaches a target sensitivity;
//! - [`bootstrap`]: percentile intervals that resample lesions, not images;
//! - [`reliability`]: reliability bins and expected calibration error;
//! - [`temperature`]: temperature scaling fitted by NLL with Brent's method ([`minimize`]);
//! - [`int8`]: activation ranges for int8 quantization (min-max, percentile, entropy);
//! - [`evaluation`]: all of the above with intervals in one record;
//! - [`melanoma`]: melanoma versus the rest on a binary-labelled external set (AUC, referral
//!   sensitivity and specificity, refer and abstention rates).
//!
//! Score matrices are `ArrayView2<f64>` of shape `[samples, classes]`; labels are class indices.

pub mod bootstrap;
pub mod confusion;
mod error;
pub mod evaluation;
pub mod int8;
pub mod melanoma;
pub mod minimize;
pub mod reliability;
pub mod roc;
pub mod temperature;
pub mod triage;

pub use bootstrap::{BootstrapConfig, GroupBootstrap, Interval};
pub use confusion::{ClassMetrics, ConfusionMatrix};
pub use error::{CalibrationError, Result};
pub use evaluation::{evaluate, ClassEvaluation, Evaluation, EvaluationOptions, TriageEvaluation};
pub use int8::{ActivationHistogram, ActivationRange, RangeMethod};
pub use melanoma::{evaluate_melanoma, MelanomaCase, MelanomaEvaluation};
pub use reliability::{reliability, Reliability, ReliabilityBin};
pub use roc::{macro_auc, one_vs_rest_auc, one_vs_rest_curves, roc_auc, roc_curve, RocCurve};
pub use temperature::{fit_temperature, nll, softmax, TemperatureFit};
pub use triage::{operating_point, threshold_for_sensitivity, MalignantGroup, OperatingPoint};
