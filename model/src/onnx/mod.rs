//! The ONNX writer: the network graph built from [`ArchSpec`] and [`NamedWeights`], with no Python
//! and no torch (under construction).

use crate::arch::ArchSpec;
use crate::metadata::Metadata;
use crate::weights::{NamedWeights, WeightsError};
use std::collections::BTreeMap;

/// Numeric format of the exported network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    Fp32,
    #[default]
    Int8,
    Int8Full,
}

/// How to write the file.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub precision: Precision,
    pub input_size: u32,
    pub with_features: bool,
    pub activation_ranges: Option<BTreeMap<String, (f32, f32)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("the ONNX writer is under construction")]
    Unfinished,
}

/// Encodes the network as an ONNX `ModelProto`.
pub fn write_onnx(
    _spec: &ArchSpec,
    _w: &NamedWeights,
    _opts: &ExportOptions,
    _meta: &Metadata,
) -> Result<Vec<u8>, OnnxError> {
    Err(OnnxError::Unfinished)
}
