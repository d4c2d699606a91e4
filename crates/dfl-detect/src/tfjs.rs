//! TF.js "layers" weight files: a JSON manifest listing every tensor (name, shape, dtype,
//! optional quantisation) and one or more `.bin` shards holding them back to back.
//!
//! Quantised tensors store `q` as uint8 (or uint16) and decode as `q * scale + min`; float16
//! quantisation stores IEEE half floats. Integer tensors (`int32`) are decoded to `f32` too:
//! the nets here only read a few shape constants from them.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a TF.js model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TfjsError {
    /// A manifest or shard could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("{path}: not a TF.js weights manifest: {source}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The manifest asks for something this loader does not decode, or the data is short.
    #[error("{path}: tensor '{name}': {what}")]
    Tensor {
        /// The manifest file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// A tensor the net needs is missing or has another shape.
    #[error("{model}: weight '{name}' {what}")]
    Missing {
        /// The model (manifest) name.
        model: String,
        /// The tensor name.
        name: String,
        /// What is wrong.
        what: String,
    },
}

#[derive(Debug, Deserialize)]
struct Group {
    paths: Vec<String>,
    weights: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    #[serde(default)]
    quantization: Option<Quant>,
}

#[derive(Debug, Deserialize)]
struct Quant {
    dtype: String,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    min: Option<f64>,
}

/// One decoded tensor: row-major data in TF's layout (`[kh, kw, in, out]` for convolutions).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    /// Dimensions as stored in the manifest.
    pub shape: Vec<usize>,
    /// Values, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

/// All tensors of one TF.js model, by name.
#[derive(Debug, Clone)]
pub struct WeightMap {
    /// Model name used in error messages (the manifest's file name).
    pub model: String,
    tensors: HashMap<String, WeightTensor>,
}

impl WeightMap {
    /// Reads `manifest` (a `*-weights_manifest.json`) and the shards it names, from the same
    /// folder.
    pub fn load(manifest: &Path) -> Result<Self, TfjsError> {
        let io = |path: &Path| {
            let p = path.to_path_buf();
            move |source| TfjsError::Io { path: p, source }
        };
        let text = std::fs::read(manifest).map_err(io(manifest))?;
        let groups: Vec<Group> =
            serde_json::from_slice(&text).map_err(|source| TfjsError::Manifest {
                path: manifest.to_path_buf(),
                source,
            })?;
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let mut shards = Vec::new();
        for g in &groups {
            let mut bytes = Vec::new();
            for p in &g.paths {
                let path = dir.join(p);
                bytes.extend(std::fs::read(&path).map_err(io(&path))?);
            }
            shards.push(bytes);
        }
        Self::decode(manifest, &groups, &shards)
    }

    /// Builds the map from manifest JSON text and the shard bytes of each group (for callers
    /// that embed the files).
    pub fn from_bytes(name: &str, manifest: &[u8], shards: &[Vec<u8>]) -> Result<Self, TfjsError> {
        let path = PathBuf::from(name);
        let groups: Vec<Group> =
            serde_json::from_slice(manifest).map_err(|source| TfjsError::Manifest {
                path: path.clone(),
                source,
            })?;
        Self::decode(&path, &groups, shards)
    }

    fn decode(path: &Path, groups: &[Group], shards: &[Vec<u8>]) -> Result<Self, TfjsError> {
        let mut tensors = HashMap::new();
        for (gi, g) in groups.iter().enumerate() {
            let bytes = shards.get(gi).map(Vec::as_slice).unwrap_or(&[]);
            let mut off = 0usize;
            for e in &g.weights {
                let err = |what: String| TfjsError::Tensor {
                    path: path.to_path_buf(),
                    name: e.name.clone(),
                    what,
                };
                let n: usize = e
                    .shape
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .ok_or_else(|| err("shape overflows".into()))?;
                let (elem, kind) = match &e.quantization {
                    Some(q) => match q.dtype.as_str() {
                        "uint8" => (1, Kind::Affine),
                        "uint16" => (2, Kind::Affine),
                        "float16" => (2, Kind::Half),
                        other => return Err(err(format!("unsupported quantisation {other}"))),
                    },
                    None => match e.dtype.as_str() {
                        "float32" => (4, Kind::F32),
                        "int32" => (4, Kind::I32),
                        other => return Err(err(format!("unsupported dtype {other}"))),
                    },
                };
                let len = n
                    .checked_mul(elem)
                    .ok_or_else(|| err("size overflows".into()))?;
                let raw = bytes.get(off..off.saturating_add(len)).ok_or_else(|| {
                    err(format!(
                        "data ends at byte {} of {}",
                        bytes.len(),
                        off + len
                    ))
                })?;
                off += len;
                let data: Vec<f32> = match kind {
                    Kind::Affine => {
                        let q = e
                            .quantization
                            .as_ref()
                            .ok_or_else(|| err("no quantisation".into()))?;
                        let scale = q
                            .scale
                            .ok_or_else(|| err("quantisation without scale".into()))?;
                        let min = q
                            .min
                            .ok_or_else(|| err("quantisation without min".into()))?;
                        if elem == 1 {
                            raw.iter()
                                .map(|&v| (f64::from(v) * scale + min) as f32)
                                .collect()
                        } else {
                            raw.chunks_exact(2)
                                .map(|c| {
                                    (f64::from(u16::from_le_bytes([c[0], c[1]])) * scale + min)
                                        as f32
                                })
                                .collect()
                        }
                    }
                    Kind::Half => raw
                        .chunks_exact(2)
                        .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                        .collect(),
                    Kind::F32 => raw
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                    Kind::I32 => raw
                        .chunks_exact(4)
                        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                        .collect(),
                };
                tensors.insert(
                    e.name.clone(),
                    WeightTensor {
                        shape: e.shape.clone(),
                        data,
                    },
                );
            }
        }
        let model = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self { model, tensors })
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the map holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&WeightTensor, TfjsError> {
        let t = self.tensors.get(name).ok_or_else(|| TfjsError::Missing {
            model: self.model.clone(),
            name: name.into(),
            what: "is missing".into(),
        })?;
        if t.shape != shape {
            return Err(TfjsError::Missing {
                model: self.model.clone(),
                name: name.into(),
                what: format!("has shape {:?}, expected {:?}", t.shape, shape),
            });
        }
        Ok(t)
    }

    /// The shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Affine,
    Half,
    F32,
    I32,
}

/// IEEE 754 binary16 to f32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            let v = m as f32 * f32::powi(2.0, -24);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_supported_encoding() {
        let manifest = br#"[{"paths":["a.bin"],"weights":[
            {"name":"q8","shape":[3],"dtype":"float32","quantization":{"dtype":"uint8","scale":0.5,"min":-1.0}},
            {"name":"q16","shape":[1],"dtype":"float32","quantization":{"dtype":"uint16","scale":2.0,"min":1.0}},
            {"name":"h","shape":[2],"dtype":"float32","quantization":{"dtype":"float16"}},
            {"name":"f","shape":[1,1],"dtype":"float32"},
            {"name":"i","shape":[],"dtype":"int32"}]}]"#;
        let mut bin = vec![0u8, 2, 255];
        bin.extend(300u16.to_le_bytes());
        bin.extend(0x3c00u16.to_le_bytes()); // 1.0
        bin.extend(0xc000u16.to_le_bytes()); // -2.0
        bin.extend(1.25f32.to_le_bytes());
        bin.extend((-7i32).to_le_bytes());
        let m = WeightMap::from_bytes("t.json", manifest, &[bin]).unwrap();
        assert_eq!(m.get("q8", &[3]).unwrap().data, vec![-1.0, 0.0, 126.5]);
        assert_eq!(m.get("q16", &[1]).unwrap().data, vec![601.0]);
        assert_eq!(m.get("h", &[2]).unwrap().data, vec![1.0, -2.0]);
        assert_eq!(m.get("f", &[1, 1]).unwrap().data, vec![1.25]);
        assert_eq!(m.get("i", &[]).unwrap().data, vec![-7.0]);
        assert!(m.get("f", &[1]).is_err());
        assert!(m.get("nope", &[1]).is_err());
    }

    #[test]
    fn short_data_is_an_error_naming_the_tensor() {
        let manifest =
            br#"[{"paths":["a.bin"],"weights":[{"name":"w","shape":[4],"dtype":"float32"}]}]"#;
        let e = WeightMap::from_bytes("m.json", manifest, &[vec![0u8; 7]]).unwrap_err();
        assert!(e.to_string().contains("'w'"), "{e}");
    }
}
