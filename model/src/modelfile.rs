//! Opening a model file: the bytes, their signature and their `dermo.*` metadata, checked before
//! anything runs them.

use crate::metadata::{Metadata, MetadataError, KEY_CLASSES, KEY_INPUT};
use crate::signature::{self, SignatureError};
use ed25519_dalek::VerifyingKey;
use prost::Message;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tract_onnx::pb::{GraphProto, ModelProto, ValueInfoProto};

/// Which model files may be opened.
///
/// With trusted keys, a file must carry `<file>.sig` verifying against one of them. With
/// `allow_unsigned` (host tools, tests), a file without a signature is accepted, and a present
/// signature is still checked whenever trusted keys are given.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    pub trusted_keys: Vec<VerifyingKey>,
    pub allow_unsigned: bool,
}

impl TrustPolicy {
    /// Accepts any well-formed file; for host tools working on their own exports.
    pub fn unsigned() -> Self {
        TrustPolicy {
            trusted_keys: Vec::new(),
            allow_unsigned: true,
        }
    }

    /// Requires a signature by one of `keys`.
    pub fn signed_by(keys: Vec<VerifyingKey>) -> Self {
        TrustPolicy {
            trusted_keys: keys,
            allow_unsigned: false,
        }
    }
}

/// A model file that passed the trust policy and carries readable metadata.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub metadata: Metadata,
    /// Hex SHA-256 of the file's bytes, for journals and reports.
    pub sha256: String,
}

/// Why a model file was not opened.
///
/// Each message names the file and its cause once. A cause kept in a field is part of the
/// message and is not also returned by `source()`, so an error chain printed with `{:#}` (anyhow)
/// does not repeat it.
#[derive(Debug)]
pub enum ModelFileError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    NotOnnx {
        path: PathBuf,
        source: prost::DecodeError,
    },
    NoGraph {
        path: PathBuf,
    },
    Signature {
        path: PathBuf,
        source: SignatureError,
    },
    Unsigned {
        path: PathBuf,
        sig: PathBuf,
    },
    NoTrustedKeys {
        path: PathBuf,
    },
    Metadata {
        path: PathBuf,
        source: MetadataError,
    },
    GraphMissing {
        path: PathBuf,
        what: &'static str,
        name: String,
    },
    GraphMismatch {
        path: PathBuf,
        key: &'static str,
        field: &'static str,
        meta: usize,
        tensor: String,
        graph: usize,
    },
}

impl std::fmt::Display for ModelFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ModelFileError::*;
        match self {
            Read { path, source } => {
                write!(f, "cannot read model file {}: {source}", path.display())
            }
            NotOnnx { path, source } => {
                write!(f, "{} is not an ONNX model file: {source}", path.display())
            }
            NoGraph { path } => write!(
                f,
                "{} is not an ONNX model file: it has no graph",
                path.display()
            ),
            Signature { path, source } => {
                write!(f, "model file {} refused: {source}", path.display())
            }
            Unsigned { path, sig } => write!(
                f,
                "model file {} refused: it is not signed ({} is missing) and unsigned models are not allowed",
                path.display(),
                sig.display()
            ),
            NoTrustedKeys { path } => write!(
                f,
                "model file {} refused: no trusted keys are configured to verify its signature",
                path.display()
            ),
            Metadata { path, source } => write!(
                f,
                "model file {} has no usable dermo metadata: {source}",
                path.display()
            ),
            GraphMissing { path, what, name } => write!(
                f,
                "model file {} refused: its graph has no {name:?} {what}",
                path.display()
            ),
            GraphMismatch {
                path,
                key,
                field,
                meta,
                tensor,
                graph,
            } => write!(
                f,
                "model file {} refused: metadata key {key:?} says {field} {meta}, but the graph's {tensor:?} has {graph}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ModelFileError {}

impl ModelFile {
    /// Reads `path`, checks its signature against `trust`, and reads its metadata.
    pub fn open(path: &Path, trust: &TrustPolicy) -> Result<Self, ModelFileError> {
        let bytes = std::fs::read(path).map_err(|source| ModelFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        check_signature(path, &bytes, trust)?;
        Self::from_verified_bytes(path, bytes)
    }

    /// Parses bytes whose origin the caller has already checked (e.g. just written by export).
    pub fn from_verified_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, ModelFileError> {
        let metadata = read_metadata(path, &bytes)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(ModelFile {
            path: path.to_path_buf(),
            bytes,
            metadata,
            sha256,
        })
    }

    /// The input side length `S` of `[1,3,S,S]`.
    pub fn input_size(&self) -> u32 {
        self.metadata.input.preprocess.size
    }

    /// What the ONNX graph declares, for `dermo inspect`.
    pub fn graph_info(&self) -> Result<GraphInfo, ModelFileError> {
        let proto = decode(&self.path, &self.bytes)?;
        let graph = proto.graph.unwrap_or_default();
        let values = |v: &[ValueInfoProto]| v.iter().map(value_info).collect();
        let mut ops = std::collections::BTreeMap::new();
        for n in &graph.node {
            *ops.entry(n.op_type.clone()).or_insert(0) += 1;
        }
        Ok(GraphInfo {
            producer: format!("{} {}", proto.producer_name, proto.producer_version),
            ir_version: proto.ir_version,
            opsets: proto
                .opset_import
                .iter()
                .map(|o| (o.domain.clone(), o.version))
                .collect(),
            inputs: values(&graph.input),
            outputs: values(&graph.output),
            ops,
            initializers: graph.initializer.len(),
            other_props: proto
                .metadata_props
                .into_iter()
                .filter(|p| !p.key.starts_with("dermo."))
                .map(|p| (p.key, p.value))
                .collect(),
        })
    }
}

/// The shape of the ONNX graph in a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphInfo {
    pub producer: String,
    pub ir_version: i64,
    /// `(domain, version)`; the default domain is `""`.
    pub opsets: Vec<(String, i64)>,
    /// `(name, dims)` with symbolic dims by name.
    pub inputs: Vec<(String, Vec<String>)>,
    pub outputs: Vec<(String, Vec<String>)>,
    /// Node count per operator type.
    pub ops: std::collections::BTreeMap<String, usize>,
    pub initializers: usize,
    /// Metadata props outside `dermo.*`.
    pub other_props: Vec<(String, String)>,
}

fn value_info(v: &ValueInfoProto) -> (String, Vec<String>) {
    use tract_onnx::pb::{tensor_shape_proto::dimension::Value, type_proto};
    let dims = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t
            .shape
            .iter()
            .flat_map(|s| &s.dim)
            .map(|d| match &d.value {
                Some(Value::DimValue(n)) => n.to_string(),
                Some(Value::DimParam(p)) => p.clone(),
                None => "?".into(),
            })
            .collect(),
        None => Vec::new(),
    };
    (v.name.clone(), dims)
}

fn check_signature(path: &Path, bytes: &[u8], trust: &TrustPolicy) -> Result<(), ModelFileError> {
    let sig_path = signature::signature_path(path);
    let sig = match signature::read_signature(path) {
        Ok(sig) => sig,
        Err(SignatureError::MissingSignature { .. }) if trust.allow_unsigned => return Ok(()),
        Err(SignatureError::MissingSignature { .. }) => {
            return Err(ModelFileError::Unsigned {
                path: path.to_path_buf(),
                sig: sig_path,
            })
        }
        Err(source) => {
            return Err(ModelFileError::Signature {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if trust.trusted_keys.is_empty() {
        return if trust.allow_unsigned {
            Ok(())
        } else {
            Err(ModelFileError::NoTrustedKeys {
                path: path.to_path_buf(),
            })
        };
    }
    signature::verify(path, bytes, &sig, &trust.trusted_keys)
        .map(|_| ())
        .map_err(|source| ModelFileError::Signature {
            path: path.to_path_buf(),
            source,
        })
}

/// Decodes the protobuf, reads the `dermo.*` metadata props and checks them against the graph.
fn read_metadata(path: &Path, bytes: &[u8]) -> Result<Metadata, ModelFileError> {
    let proto = decode(path, bytes)?;
    let Some(graph) = proto.graph else {
        return Err(ModelFileError::NoGraph {
            path: path.to_path_buf(),
        });
    };
    let props: Vec<(String, String)> = proto
        .metadata_props
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    let metadata = Metadata::from_props(&props).map_err(|source| ModelFileError::Metadata {
        path: path.to_path_buf(),
        source,
    })?;
    check_graph(path, &graph, &metadata)?;
    Ok(metadata)
}

/// The metadata must describe the graph: its input (the runtime's input 0) is `[N, 3, S, S]`
/// with `S` the metadata's input size, and its logits have one value per listed class. A
/// symbolic dimension is left to the runtime.
fn check_graph(path: &Path, graph: &GraphProto, meta: &Metadata) -> Result<(), ModelFileError> {
    let missing = |what, name: &str| ModelFileError::GraphMissing {
        path: path.to_path_buf(),
        what,
        name: name.to_string(),
    };
    let mismatch = |key, field, meta, v: &ValueInfoProto, graph| ModelFileError::GraphMismatch {
        path: path.to_path_buf(),
        key,
        field,
        meta,
        tensor: v.name.clone(),
        graph,
    };
    let input = graph
        .input
        .first()
        .ok_or_else(|| missing("input", crate::onnx::INPUT))?;
    let size = meta.input.preprocess.size as usize;
    for side in fixed_dims(input).into_iter().skip(2).flatten() {
        if side != size {
            return Err(mismatch(KEY_INPUT, "size", size, input, side));
        }
    }
    let logits = graph
        .output
        .iter()
        .find(|o| o.name == crate::onnx::LOGITS)
        .ok_or_else(|| missing("output", crate::onnx::LOGITS))?;
    let classes = meta.classes.len();
    if let Some(Some(width)) = fixed_dims(logits).last() {
        if *width != classes {
            return Err(mismatch(KEY_CLASSES, "classes", classes, logits, *width));
        }
    }
    Ok(())
}

/// The dimensions of a tensor value: `Some(n)` where fixed, `None` where symbolic or unknown.
fn fixed_dims(v: &ValueInfoProto) -> Vec<Option<usize>> {
    use tract_onnx::pb::{tensor_shape_proto::dimension::Value, type_proto};
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t
            .shape
            .iter()
            .flat_map(|s| &s.dim)
            .map(|d| match d.value {
                Some(Value::DimValue(n)) => usize::try_from(n).ok(),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<ModelProto, ModelFileError> {
    ModelProto::decode(bytes).map_err(|source| ModelFileError::NotOnnx {
        path: path.to_path_buf(),
        source,
    })
}
