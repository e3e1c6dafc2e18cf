//! Named float tensors in state-dict naming (`_blocks.3._bn1.running_var`, `_fc.weight`, ...): the
//! interchange between the trainer (which saves safetensors) and the ONNX writer.

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl WeightTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, WeightsError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(WeightsError::ShapeMismatch {
                name: String::new(),
                shape,
                len: data.len(),
            });
        }
        Ok(WeightTensor { shape, data })
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// A state dict: tensor name → tensor, ordered by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedWeights(pub BTreeMap<String, WeightTensor>);

/// What can go wrong reading, writing or looking up weights.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write weights file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file: {source}")]
    Format {
        path: PathBuf,
        source: SafeTensorError,
    },
    #[error(
        "{path}: tensor {name:?} has dtype {dtype:?}; only floating-point weights are supported"
    )]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: Dtype,
    },
    #[error("cannot serialize weights to safetensors: {0}")]
    Serialize(SafeTensorError),
    #[error("weight tensor {0:?} is missing")]
    Missing(String),
    #[error("weight tensor {name:?} has shape {shape:?} but {len} values")]
    ShapeMismatch {
        name: String,
        shape: Vec<usize>,
        len: usize,
    },
    #[error("weight tensor {name:?} has shape {actual:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        actual: Vec<usize>,
        expected: Vec<usize>,
    },
}

impl NamedWeights {
    /// Reads every floating-point tensor of a safetensors file as f32. Integer tensors (such as
    /// BatchNorm's `num_batches_tracked`) carry no weights and are skipped.
    pub fn load_safetensors(path: &Path) -> Result<Self, WeightsError> {
        let bytes = std::fs::read(path).map_err(|source| WeightsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|source| WeightsError::Format {
            path: path.to_path_buf(),
            source,
        })?;
        let mut map = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data = match view.dtype() {
                Dtype::F32 => decode(view.data(), |b: &[u8; 4]| {
                    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
                }),
                Dtype::F64 => decode(view.data(), |b: &[u8; 8]| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                }),
                Dtype::BF16 => decode(view.data(), |b: &[u8; 2]| {
                    f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
                }),
                Dtype::F16 => decode(view.data(), |b: &[u8; 2]| {
                    f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
                }),
                Dtype::I64 | Dtype::I32 | Dtype::U8 | Dtype::BOOL => continue,
                dtype => {
                    return Err(WeightsError::Dtype {
                        path: path.to_path_buf(),
                        name,
                        dtype,
                    })
                }
            };
            map.insert(
                name,
                WeightTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(NamedWeights(map))
    }

    /// Writes all tensors as little-endian f32 safetensors.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), WeightsError> {
        let bytes = self.to_safetensors_bytes()?;
        std::fs::write(path, bytes).map_err(|source| WeightsError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The safetensors encoding of all tensors (f32).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>, WeightsError> {
        let raw: Vec<(&String, &WeightTensor, Vec<u8>)> = self
            .0
            .iter()
            .map(|(n, t)| (n, t, t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
            .collect();
        let views = raw
            .iter()
            .map(|(n, t, bytes)| {
                TensorView::new(Dtype::F32, t.shape.clone(), bytes)
                    .map(|v| (n.as_str(), v))
                    .map_err(WeightsError::Serialize)
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, None).map_err(WeightsError::Serialize)
    }

    /// The tensor called `name`; the error names the missing tensor.
    pub fn get(&self, name: &str) -> Result<&WeightTensor, WeightsError> {
        self.0
            .get(name)
            .ok_or_else(|| WeightsError::Missing(name.to_string()))
    }

    /// The tensor called `name`, checked against the shape the architecture expects.
    pub fn get_shaped(
        &self,
        name: &str,
        expected: &[usize],
    ) -> Result<&WeightTensor, WeightsError> {
        let t = self.get(name)?;
        if t.shape != expected {
            return Err(WeightsError::WrongShape {
                name: name.to_string(),
                actual: t.shape.clone(),
                expected: expected.to_vec(),
            });
        }
        Ok(t)
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: WeightTensor) {
        self.0.insert(name.into(), tensor);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn decode<const N: usize>(bytes: &[u8], f: impl Fn(&[u8; N]) -> f32) -> Vec<f32> {
    bytes
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks_exact yields N bytes")))
        .collect()
}

/// IEEE half → single; exact for every half value.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal half: normalise into a single-precision normal.
            let mut e = 127 - 15 + 1;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_decodes_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn safetensors_round_trip_and_missing_names() {
        let mut w = NamedWeights::default();
        w.insert(
            "a.weight",
            WeightTensor::new(vec![2, 3], (0..6).map(|i| i as f32 * 0.5).collect()).unwrap(),
        );
        w.insert("b", WeightTensor::new(vec![1], vec![-1.25]).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        w.save_safetensors(&p).unwrap();
        let back = NamedWeights::load_safetensors(&p).unwrap();
        assert_eq!(back, w);
        let err = back.get("_fc.weight").unwrap_err().to_string();
        assert!(err.contains("_fc.weight"), "{err}");
        assert!(back.get_shaped("b", &[2]).is_err());
    }

    #[test]
    fn garbage_is_a_format_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.safetensors");
        std::fs::write(&p, b"not a safetensors file at all").unwrap();
        let err = NamedWeights::load_safetensors(&p).unwrap_err().to_string();
        assert!(err.contains("junk.safetensors"), "{err}");
    }
}
