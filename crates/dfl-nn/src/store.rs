//! Named host copies of module parameters, and safetensors files of them.
//!
//! A parameter's name is its field path inside the module (`down1.downs.0.conv1.weight`):
//! struct fields and `Vec` indices as burn reports them, `Option` and enum wrappers left out, so
//! the names follow DFL's attribute names (DFL's key `down1/downs_0/conv1/weight:0`, see
//! `docs/checkpoint-format.md`). Values are `f32` in burn's layout.

use crate::error::{NnError, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

/// One named `f32` tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// One tensor of a checkpoint being written, read only when its turn comes: a save then never
/// holds a second copy of the model and its optimizer state (about 1 GB at SAEHD's defaults).
#[derive(Debug, Clone)]
pub enum SaveTensor<'a> {
    /// Values already on the host, borrowed.
    Host {
        /// Shape.
        shape: Vec<usize>,
        /// Values, row-major.
        data: &'a [f32],
    },
    /// A tensor on any device (flattened), copied to the host when written.
    Device {
        /// Shape.
        shape: Vec<usize>,
        /// The values (boxed: a tensor handle is much larger than the other variants).
        tensor: Box<Tensor<1>>,
    },
    /// An owned host tensor.
    Owned(NamedTensor),
}

impl SaveTensor<'_> {
    /// A parameter or state tensor of any rank, copied to the host when written.
    pub fn device<const D: usize>(t: Tensor<D>) -> Self {
        let shape = t.dims().to_vec();
        let n = shape.iter().product::<usize>();
        SaveTensor::Device {
            shape,
            tensor: Box::new(t.reshape([n])),
        }
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            SaveTensor::Host { shape, .. } | SaveTensor::Device { shape, .. } => shape,
            SaveTensor::Owned(t) => &t.shape,
        }
    }

    /// The values as an owned host tensor.
    pub fn into_named(self) -> NamedTensor {
        match self {
            SaveTensor::Host { shape, data } => NamedTensor {
                shape,
                data: data.to_vec(),
            },
            SaveTensor::Device { shape, tensor } => NamedTensor {
                shape,
                data: to_host(*tensor).data,
            },
            SaveTensor::Owned(t) => t,
        }
    }

    /// Calls `f` with the values (copying a device tensor to the host for the call only).
    fn with_values<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        match self {
            SaveTensor::Host { data, .. } => f(data),
            SaveTensor::Owned(t) => f(&t.data),
            SaveTensor::Device { tensor, .. } => f(&to_host((**tensor).clone()).data),
        }
    }
}

/// Tracks the current parameter path while a visitor/mapper walks a module.
#[derive(Debug, Default, Clone)]
pub(crate) struct PathTracker {
    parts: Vec<Option<String>>,
}

impl PathTracker {
    pub(crate) fn enter(&mut self, name: &str, container_type: &str) {
        // Enum variants are transparent: `down1` is a DownscaleBlock or a Downscale, and both
        // keep DFL's name.
        if container_type.starts_with("Enum:") {
            self.parts.push(None);
        } else {
            self.parts.push(Some(name.to_string()));
        }
    }

    pub(crate) fn exit(&mut self) {
        self.parts.pop();
    }

    pub(crate) fn path(&self, prefix: &str) -> String {
        let mut s = prefix.to_string();
        for p in self.parts.iter().flatten() {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(p);
        }
        s
    }
}

/// Host copy of a float tensor (any rank).
pub(crate) fn to_host<const D: usize>(t: Tensor<D>) -> NamedTensor {
    let shape = t.dims().to_vec();
    let data = t
        .inner()
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap_or_default();
    NamedTensor { shape, data }
}

struct HandleCollector<'a, 'b> {
    prefix: &'a str,
    path: PathTracker,
    out: &'a mut BTreeMap<String, SaveTensor<'b>>,
}

impl ModuleVisitor for HandleCollector<'_, '_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out.insert(
            self.path.path(self.prefix),
            SaveTensor::device(param.val().inner()),
        );
    }
}

/// Every parameter of `module`, named `prefix.path`, to be copied to the host only when a
/// checkpoint writes it (see [`SaveTensor`]).
pub fn collect_param_handles<'b, M: Module>(
    module: &M,
    prefix: &str,
    out: &mut BTreeMap<String, SaveTensor<'b>>,
) {
    let mut c = HandleCollector {
        prefix,
        path: PathTracker::default(),
        out,
    };
    module.visit(&mut c);
}

/// Copies every parameter of `module` to the host, named `prefix.path`.
pub fn collect_params<M: Module>(
    module: &M,
    prefix: &str,
    out: &mut BTreeMap<String, NamedTensor>,
) {
    let mut handles = BTreeMap::new();
    collect_param_handles(module, prefix, &mut handles);
    out.extend(handles.into_iter().map(|(k, t)| (k, t.into_named())));
}

/// Names and shapes of every parameter of `module`, without reading any values.
pub fn param_shapes<M: Module>(module: &M, prefix: &str) -> BTreeMap<String, Vec<usize>> {
    struct Shapes<'a> {
        prefix: &'a str,
        path: PathTracker,
        out: BTreeMap<String, Vec<usize>>,
    }
    impl ModuleVisitor for Shapes<'_> {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path.enter(name, container_type);
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out
                .insert(self.path.path(self.prefix), param.lazy_shape().to_vec());
        }
    }
    let mut s = Shapes {
        prefix,
        path: PathTracker::default(),
        out: BTreeMap::new(),
    };
    module.visit(&mut s);
    s.out
}

struct Loader<'a> {
    prefix: &'a str,
    path: PathTracker,
    source: &'a mut HashMap<String, NamedTensor>,
    file: &'a Path,
    error: Option<NnError>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let name = self.path.path(self.prefix);
        let expected = param.lazy_shape().to_vec();
        let Some(t) = self.source.remove(&name) else {
            self.error = Some(NnError::bad_file(
                self.file,
                format!("tensor '{name}' is missing"),
            ));
            return param;
        };
        if t.shape != expected {
            self.error = Some(NnError::bad_file(
                self.file,
                format!(
                    "tensor '{name}' has shape {:?}, the architecture needs {:?}",
                    t.shape, expected
                ),
            ));
            return param;
        }
        let device = param.lazy_device();
        let require_grad = param.is_require_grad();
        let (id, _old, mapper) = param.consume();
        let mut value = Tensor::<D>::from_data(TensorData::new(t.data, expected), &device);
        if require_grad && value.is_autodiff() {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Replaces every parameter of `module` by the tensor named `prefix.path` in `source`
/// (consumed). Missing tensors and wrong shapes are errors naming `file`.
pub fn load_params<M: Module>(
    module: M,
    prefix: &str,
    source: &mut HashMap<String, NamedTensor>,
    file: &Path,
) -> Result<M> {
    let mut l = Loader {
        prefix,
        path: PathTracker::default(),
        source,
        file,
        error: None,
    };
    let m = module.map(&mut l);
    match l.error {
        Some(e) => Err(e),
        None => Ok(m),
    }
}

/// Writes `tensors` as a safetensors file at `path`, one tensor at a time (each copied to
/// the host only while it is written), then fsyncs it. Not atomic on its own: callers write
/// into a fresh folder (see `checkpoint`).
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, SaveTensor<'_>>) -> Result<()> {
    let io = |e| NnError::io(path, e);
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, t) in tensors {
        let bytes = t.shape().iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": t.shape(),
                "data_offsets": [offset, offset + bytes],
            }),
        );
        offset += bytes;
    }
    let mut head = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| NnError::bad_file(path, e.to_string()))?;
    // The data starts 8-byte aligned, as the safetensors writer pads it.
    while (8 + head.len()) % 8 != 0 {
        head.push(b' ');
    }
    let file = fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(&(head.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&head).map_err(io)?;
    let mut buf = Vec::with_capacity(1 << 20);
    for t in tensors.values() {
        t.with_values(|v| -> Result<()> {
            for chunk in v.chunks(1 << 18) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                w.write_all(&buf).map_err(io)?;
            }
            Ok(())
        })?;
    }
    let f = w
        .into_inner()
        .map_err(|e| NnError::io(path, e.into_error()))?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// Reads every `f32` tensor of a safetensors file, one tensor at a time (the file is never
/// held in memory whole). Other dtypes, a bad header or a truncated file are errors naming
/// `path`.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, NamedTensor>> {
    let io = |e| NnError::io(path, e);
    let bad = |m: String| NnError::bad_file(path, format!("not a valid safetensors file: {m}"));
    let file = fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut n8 = [0u8; 8];
    r.read_exact(&mut n8)
        .map_err(|_| bad(format!("{file_len} bytes, shorter than a header")))?;
    let head_len = u64::from_le_bytes(n8);
    if head_len > file_len.saturating_sub(8) || head_len > 100 << 20 {
        return Err(bad(format!(
            "header of {head_len} bytes in a {file_len}-byte file"
        )));
    }
    let mut head = vec![0u8; head_len as usize];
    r.read_exact(&mut head).map_err(io)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&head).map_err(|e| bad(format!("header: {e}")))?;
    let mut entries = Vec::new();
    for (name, v) in &header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
        if dtype != "F32" {
            return Err(NnError::bad_file(
                path,
                format!("tensor '{name}' is {dtype}, expected F32"),
            ));
        }
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| bad(format!("tensor '{name}' has no shape")))?;
        let offsets: [u64; 2] = v
            .get("data_offsets")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| bad(format!("tensor '{name}' has no data offsets")))?;
        let n = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .filter(|&n| offsets[1].checked_sub(offsets[0]) == n.checked_mul(4))
            .ok_or_else(|| {
                bad(format!(
                    "tensor '{name}': shape {shape:?} does not match offsets {offsets:?}"
                ))
            })?;
        entries.push((offsets[0], n as usize, name.clone(), shape));
    }
    entries.sort_by_key(|e| e.0);
    let data_len = file_len - 8 - head_len;
    let mut at = 0u64;
    let mut out = HashMap::new();
    let mut buf = Vec::new();
    for (start, n, name, shape) in entries {
        if start != at || start + 4 * n as u64 > data_len {
            return Err(bad(format!(
                "tensor '{name}' at byte {start} (expected {at}; {data_len} data bytes)"
            )));
        }
        buf.resize(4 * n, 0u8);
        r.read_exact(&mut buf).map_err(io)?;
        let data = buf
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name, NamedTensor { shape, data });
        at = start + 4 * n as u64;
    }
    if at != data_len {
        return Err(bad(format!(
            "{} bytes after the last tensor",
            data_len - at
        )));
    }
    Ok(out)
}

/// Writes `bytes` to `path` and fsyncs it (for files inside a fresh checkpoint folder).
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| NnError::io(path, e))?;
    f.write_all(bytes).map_err(|e| NnError::io(path, e))?;
    f.sync_all().map_err(|e| NnError::io(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed file parses with the reference `safetensors` reader to the same values, and
    /// reads back with ours; truncation and a foreign dtype are errors naming the file.
    #[test]
    fn streamed_files_match_the_reference_reader() {
        let dir = std::env::temp_dir().join(format!("dfl-nn-st-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.safetensors");
        let host: Vec<f32> = (0..7).map(|i| i as f32 * 0.5 - 1.0).collect();
        let dev = burn::tensor::Device::flex();
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "b.host".to_string(),
            SaveTensor::Host {
                shape: vec![7],
                data: &host,
            },
        );
        let t = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]),
            &dev,
        );
        tensors.insert("a.device".to_string(), SaveTensor::device(t));
        tensors.insert(
            "c.empty".to_string(),
            SaveTensor::Owned(NamedTensor {
                shape: vec![0, 4],
                data: Vec::new(),
            }),
        );
        write_safetensors(&path, &tensors).unwrap();
        let bytes = fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let a = st.tensor("a.device").unwrap();
        assert_eq!(a.shape(), &[2, 3]);
        let vals: Vec<f32> = a
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(vals, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(st.tensor("b.host").unwrap().data().len(), 28);
        let back = read_safetensors(&path).unwrap();
        assert_eq!(back["b.host"].data, host);
        assert_eq!(back["a.device"].shape, vec![2, 3]);
        assert_eq!(back["c.empty"].shape, vec![0, 4]);

        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let e = read_safetensors(&path).unwrap_err().to_string();
        assert!(e.contains("t.safetensors"), "{e}");
        let mut f16 = bytes.clone();
        let at = f16.windows(3).position(|w| w == b"F32").unwrap();
        f16[at..at + 3].copy_from_slice(b"F16");
        fs::write(&path, &f16).unwrap();
        let e = read_safetensors(&path).unwrap_err().to_string();
        assert!(e.contains("expected F32"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}
