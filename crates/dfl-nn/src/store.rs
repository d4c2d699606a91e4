//! Named host copies of module parameters, and safetensors files of them.
//!
//! A parameter's name is its field path inside the module (`down1.downs.0.conv1.weight`):
//! struct fields and `Vec` indices as burn reports them, `Option` and enum wrappers left out, so
//! the names follow DFL's attribute names (DFL's key `down1/downs_0/conv1/weight:0`, see
//! `docs/checkpoint-format.md`). Values are `f32` in burn's layout.

use crate::error::{NnError, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::Path;

/// One named `f32` tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

impl View for &NamedTensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let mut out = Vec::with_capacity(self.data.len() * 4);
        for v in &self.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        Cow::Owned(out)
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
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

struct Collector<'a> {
    prefix: &'a str,
    path: PathTracker,
    out: &'a mut BTreeMap<String, NamedTensor>,
}

impl ModuleVisitor for Collector<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out
            .insert(self.path.path(self.prefix), to_host(param.val()));
    }
}

/// Copies every parameter of `module` to the host, named `prefix.path`.
pub fn collect_params<M: Module>(
    module: &M,
    prefix: &str,
    out: &mut BTreeMap<String, NamedTensor>,
) {
    let mut c = Collector {
        prefix,
        path: PathTracker::default(),
        out,
    };
    module.visit(&mut c);
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

/// Writes `tensors` as a safetensors file at `path` (streamed, then fsync'ed). Not atomic on
/// its own: callers write into a fresh folder (see `checkpoint`).
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, NamedTensor>) -> Result<()> {
    safetensors::serialize_to_file(tensors.iter(), None, path)
        .map_err(|e| NnError::bad_file(path, format!("cannot write safetensors: {e}")))?;
    let f = fs::File::open(path).map_err(|e| NnError::io(path, e))?;
    f.sync_all().map_err(|e| NnError::io(path, e))?;
    Ok(())
}

/// Reads every `f32` tensor of a safetensors file. Other dtypes, a bad header or a truncated
/// file are errors naming `path`.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, NamedTensor>> {
    let bytes = fs::read(path).map_err(|e| NnError::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| NnError::bad_file(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(NnError::bad_file(
                path,
                format!("tensor '{name}' is {:?}, expected F32", view.dtype()),
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(
            name.to_string(),
            NamedTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
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
