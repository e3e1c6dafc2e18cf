//! dermo-model: the contract shared by the host workbench and the device.
//!
//! One code path on both halves: file or frame → [`preprocess`] → tensor `[1,3,S,S]` →
//! network (built from [`arch`]) → logits → [`decision`] → display / journal / report; the
//! network's class-activation maps say where it looked ([`maps`]), and [`quality`] says whether
//! an image is worth classifying at all (the device's gate and the host's data check).

pub mod arch;
pub mod atomic;
pub mod bundle;
pub mod decision;
pub mod maps;
pub mod metadata;
pub mod modelfile;
pub mod onnx;
pub mod preprocess;
pub mod profile;
pub mod quality;
pub mod runtime;
pub mod signature;
pub mod taxonomy;
#[cfg(feature = "writer")]
pub mod weights;

pub use decision::{decide, AbstainReason, Decision};
pub use maps::AttentionMaps;
pub use metadata::{CalibrationSpec, ClassInfo, InputSpec, Metadata, OodSpec, Provenance};
pub use modelfile::{GraphInfo, ModelFile, ModelFileError, TrustPolicy};
pub use onnx::Precision;
#[cfg(feature = "writer")]
pub use onnx::{write_onnx, ExportOptions};
pub use preprocess::{
    decode_file, preprocess_file, preprocess_image, PreprocessConfig, PreprocessError, Tensor,
};
pub use profile::{OpKind, Profile, Profiler};
pub use runtime::{
    ActivationProbe, ActivationStats, Arithmetic, ClassMaps, DepthwiseKernel, Output, Runtime,
    RuntimeError, RuntimeOptions,
};
pub use taxonomy::{Class, CLASSES, NUM_CLASSES};
#[cfg(feature = "writer")]
pub use weights::{NamedWeights, WeightTensor, WeightsError};
