//! Loading the networks a merge runs: a SAEHD or Quick96 model (face + learned masks) and,
//! for the XSeg mask modes, an XSeg model; batched prediction between dfl-image images and
//! burn tensors.
//!
//! A model folder is what `dfl train` writes: a [`CheckpointDir`] root with numbered
//! generations. `--model` may also name the folder above it when that holds exactly one
//! model. The XSeg model lives in the model folder's `xseg/` sub-folder (DFL keeps
//! `XSeg_256.npy` in the model folder the same way), or wherever the caller points.

use crate::engine::{FaceSpec, Prediction, XSEG_SIZE};
use crate::error::{MergeError, Result};
use burn::tensor::Device;
use dfl_image::Image;
use dfl_nn::checkpoint::STATE_FILE;
use dfl_nn::hostconv::KernelCache;
use dfl_nn::options::FaceType as NnFaceType;
use dfl_nn::xseg_model::XSegModel;
use dfl_nn::{CheckpointDir, DeviceSpec, LearnedMasks, Quick96, Saehd};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the XSeg sub-folder of a model folder.
pub const XSEG_DIR: &str = "xseg";

/// What a merge records about the model it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The checkpoint folder.
    pub path: PathBuf,
    /// `SAEHD` or `Quick96`.
    pub class: String,
    /// Training iterations of the loaded generation.
    pub iteration: u64,
    /// Name of the loaded generation's folder (changes with every save).
    pub generation: String,
    /// Model resolution R.
    pub resolution: usize,
    /// Face type (DFL's short name).
    pub face_type: String,
    /// Architecture (`liae-ud`, `df-ud`...).
    pub archi: String,
}

enum Net {
    Saehd(Box<Saehd>),
    Quick96(Box<Quick96>),
}

/// A face-swap model ready for merging.
pub struct MergeModel {
    net: Net,
    info: ModelInfo,
    spec: FaceSpec,
    device: Device,
    /// Runs on the CPU (batches are then split across worker threads).
    cpu: bool,
    /// Transformed convolution kernels of the fixed weights, made on first use.
    kernels: Arc<KernelCache>,
}

impl std::fmt::Debug for MergeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeModel")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn geom_face_type(ft: NnFaceType) -> dfl_geom::FaceType {
    match ft {
        NnFaceType::Half => dfl_geom::FaceType::Half,
        NnFaceType::MidFull => dfl_geom::FaceType::MidFull,
        NnFaceType::Full => dfl_geom::FaceType::Full,
        NnFaceType::WholeFace => dfl_geom::FaceType::WholeFace,
        NnFaceType::Head => dfl_geom::FaceType::Head,
    }
}

/// Newest complete generation of a checkpoint folder, if any.
fn newest_generation(dir: &Path) -> Option<PathBuf> {
    CheckpointDir::new(dir, 0)
        .complete_generations()
        .ok()
        .and_then(|g| g.into_iter().next())
}

/// The `class` recorded in a generation's `state.json`.
fn class_of(generation: &Path) -> Result<String> {
    let path = generation.join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| MergeError::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| MergeError::model(&path, format!("not valid JSON: {e}")))?;
    v.get("class")
        .and_then(|c| c.as_str())
        .map(str::to_string)
        .ok_or_else(|| MergeError::model(&path, "no model class recorded"))
}

/// The checkpoint root `dir` names: `dir` itself, or its only sub-folder holding a model.
pub fn resolve_model_dir(dir: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(dir).map_err(|e| MergeError::io(dir, e))?;
    if !meta.is_dir() {
        return Err(MergeError::model(dir, "is not a folder"));
    }
    if newest_generation(dir).is_some() {
        return Ok(dir.to_path_buf());
    }
    let mut found = Vec::new();
    let mut dfl_files = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| MergeError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| MergeError::io(dir, e))?;
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if p.is_dir() && name != XSEG_DIR && newest_generation(&p).is_some() {
            found.push(p);
        } else if name.ends_with(".npy") || name.ends_with("_data.dat") {
            dfl_files.push(name);
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 if !dfl_files.is_empty() => {
            dfl_files.sort();
            Err(MergeError::model(
                dir,
                format!(
                    "holds DeepFaceLab's own model files ({}); dfl-rs merges models trained \
                     with `dfl train` (importing DFL's .npy models is not implemented yet)",
                    dfl_files.join(", ")
                ),
            ))
        }
        0 => Err(MergeError::model(
            dir,
            "no model found (expected the numbered checkpoint folders `dfl train` writes)",
        )),
        _ => Err(MergeError::model(
            dir,
            format!(
                "holds several models ({}); pass one of them with --model",
                found
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

impl MergeModel {
    /// Loads the newest complete generation of the model in `dir` onto `spec`. A folder that
    /// holds another kind of model (XSeg, DFL's own files) is refused with a message saying
    /// what it holds.
    pub fn open(dir: &Path, spec: DeviceSpec) -> Result<Self> {
        let root = resolve_model_dir(dir)?;
        let generation = newest_generation(&root)
            .ok_or_else(|| MergeError::model(&root, "no complete checkpoint"))?;
        let class = class_of(&generation)?;
        let ckpt = CheckpointDir::new(&root, 0);
        let net = match class.as_str() {
            "SAEHD" => Net::Saehd(Box::new(Saehd::load(&ckpt, spec, None)?)),
            "Quick96" => Net::Quick96(Box::new(Quick96::load(&ckpt, spec)?)),
            "XSeg" => {
                return Err(MergeError::model(
                    &root,
                    "holds an XSeg mask model, not a face-swap model: merge needs a SAEHD or \
                     Quick96 model (an XSeg model goes into the model folder's xseg/ \
                     sub-folder)",
                ));
            }
            other => {
                return Err(MergeError::model(
                    &root,
                    format!("holds a '{other}' model; merge needs a SAEHD or Quick96 model"),
                ));
            }
        };
        let generation = generation
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::build(net, root, class, generation, spec)
    }

    /// Wraps a SAEHD model already in memory (benchmarks, tests, a trainer's live preview).
    /// `path` is recorded as the model's location.
    pub fn from_saehd(model: Saehd, path: &Path) -> Result<Self> {
        let spec = model.device_spec();
        Self::build(
            Net::Saehd(Box::new(model)),
            path.to_path_buf(),
            "SAEHD".into(),
            "in-memory".into(),
            spec,
        )
    }

    /// Wraps a Quick96 model already in memory.
    pub fn from_quick96(model: Quick96, path: &Path) -> Result<Self> {
        let spec = model.as_saehd().device_spec();
        Self::build(
            Net::Quick96(Box::new(model)),
            path.to_path_buf(),
            "Quick96".into(),
            "in-memory".into(),
            spec,
        )
    }

    fn build(
        net: Net,
        path: PathBuf,
        class: String,
        generation: String,
        spec: DeviceSpec,
    ) -> Result<Self> {
        let saehd = match &net {
            Net::Saehd(m) => m.as_ref(),
            Net::Quick96(m) => m.as_saehd(),
        };
        let o = saehd.options();
        let face_spec = FaceSpec {
            resolution: o.resolution,
            face_type: geom_face_type(o.face_type),
        };
        let info = ModelInfo {
            path,
            class,
            iteration: saehd.iteration(),
            generation,
            resolution: o.resolution,
            face_type: serde_json::to_value(o.face_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            archi: o.archi.to_string(),
        };
        Ok(MergeModel {
            net,
            info,
            spec: face_spec,
            device: spec.device()?,
            cpu: matches!(spec, DeviceSpec::Cpu),
            kernels: Arc::default(),
        })
    }

    /// What the model is (recorded in provenance and in each frame's resume key).
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's resolution and face type.
    pub fn face_spec(&self) -> FaceSpec {
        self.spec
    }

    /// Predicts every face of `faces` (each R x R x 3 BGR, the [`crate::PreparedFace`]
    /// crops) in batches of at most `batch`: the swapped face and the learned masks in
    /// `masks`, clipped to [0, 1]. XSeg masks are left empty (see [`XSegMasker`]). On the CPU
    /// the faces are split into one batch per worker thread run side by side, because burn's
    /// CPU backend runs a batch's inference on one core.
    pub fn predict(
        &self,
        faces: &[&Image],
        batch: usize,
        masks: LearnedMasks,
    ) -> Result<Vec<Prediction>> {
        let mut per = batch.max(1);
        if self.cpu {
            let workers = rayon::current_num_threads().max(1);
            per = per.min(faces.len().div_ceil(workers).max(1));
        }
        let parts = faces
            .par_chunks(per)
            .map(|chunk| self.predict_batch(chunk, masks))
            .collect::<Result<Vec<_>>>()?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// Faces that [`Self::predict`] turns into full calls of `batch` faces on every worker:
    /// `batch` times the CPU threads on the CPU, `batch` on a GPU.
    pub fn round_size(&self, batch: usize) -> usize {
        let batch = batch.max(1);
        if self.cpu {
            batch * rayon::current_num_threads().max(1)
        } else {
            batch
        }
    }

    /// One network call for `chunk`.
    fn predict_batch(&self, chunk: &[&Image], masks: LearnedMasks) -> Result<Vec<Prediction>> {
        let r = self.spec.resolution;
        let input = to_nchw(chunk, r, 3)?;
        let t = dfl_nn::host::tensor4(input, [chunk.len(), 3, r, r], &self.device)?;
        let (face, prd_mask, dst_mask) = self.kernels.scope(|| match &self.net {
            Net::Saehd(m) => m.predict(t, masks),
            Net::Quick96(m) => m.predict(t, masks),
        })?;
        let n = chunk.len();
        let faces = from_nchw(dfl_nn::host::values(face), n, 3, r)?;
        let mask = |m: Option<burn::tensor::Tensor<4>>| -> Result<Vec<Option<Image>>> {
            Ok(match m {
                Some(m) => from_nchw(dfl_nn::host::values(m), n, 1, r)?
                    .into_iter()
                    .map(Some)
                    .collect(),
                None => vec![None; n],
            })
        };
        let (prd, dst) = (mask(prd_mask)?, mask(dst_mask)?);
        Ok(faces
            .into_iter()
            .zip(prd)
            .zip(dst)
            .map(|((face, prd_mask), dst_mask)| Prediction {
                face,
                prd_mask,
                dst_mask,
                xseg_prd: None,
                xseg_dst: None,
            })
            .collect())
    }
}

/// Interleaved images (all `r x r x c`) as one NCHW buffer.
fn to_nchw(images: &[&Image], r: usize, c: usize) -> Result<Vec<f32>> {
    let plane = r * r;
    let mut v = vec![0f32; images.len() * c * plane];
    for (img, dst) in images.iter().zip(v.chunks_exact_mut(c * plane)) {
        if img.width() != r || img.height() != r || img.channels() != c {
            return Err(MergeError::Invalid(format!(
                "network input is {}x{}x{}, expected {r}x{r}x{c}",
                img.width(),
                img.height(),
                img.channels()
            )));
        }
        for (i, px) in img.data().chunks_exact(c).enumerate() {
            for (k, &val) in px.iter().enumerate() {
                dst[k * plane + i] = val;
            }
        }
    }
    Ok(v)
}

/// An NCHW buffer of `n` images as interleaved images, clipped to [0, 1].
fn from_nchw(v: Vec<f32>, n: usize, c: usize, r: usize) -> Result<Vec<Image>> {
    let plane = r * r;
    if v.len() != n * c * plane {
        return Err(MergeError::Invalid(format!(
            "network returned {} values for {n} images of {r}x{r}x{c}",
            v.len()
        )));
    }
    v.chunks_exact(c * plane)
        .map(|src| {
            let mut data = vec![0f32; c * plane];
            for (i, px) in data.chunks_exact_mut(c).enumerate() {
                for (k, o) in px.iter_mut().enumerate() {
                    let x = src[k * plane + i];
                    *o = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
                }
            }
            Ok(Image::new(r, r, c, data)?)
        })
        .collect()
}

/// An XSeg model for the XSeg mask modes.
pub struct XSegMasker {
    model: XSegModel,
    path: PathBuf,
    device: Device,
    /// Transformed convolution kernels of the fixed weights, made on first use.
    kernels: Arc<KernelCache>,
}

impl std::fmt::Debug for XSegMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XSegMasker")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl XSegMasker {
    /// Loads the XSeg model whose checkpoint folder is `dir`.
    pub fn open(dir: &Path, spec: DeviceSpec) -> Result<Self> {
        let generation = newest_generation(dir).ok_or_else(|| {
            MergeError::model(
                dir,
                "no XSeg model here (expected the numbered checkpoint folders of a trained \
                 XSeg model)",
            )
        })?;
        let class = class_of(&generation)?;
        if class != "XSeg" {
            return Err(MergeError::model(
                dir,
                format!("holds a {class} model, not an XSeg mask model"),
            ));
        }
        Ok(XSegMasker {
            model: XSegModel::load(&CheckpointDir::new(dir, 0), spec)?,
            path: dir.to_path_buf(),
            device: spec.device()?,
            kernels: Arc::default(),
        })
    }

    /// Wraps an XSeg model already in memory.
    pub fn from_model(model: XSegModel, path: &Path, spec: DeviceSpec) -> Result<Self> {
        Ok(XSegMasker {
            model,
            path: path.to_path_buf(),
            device: spec.device()?,
            kernels: Arc::default(),
        })
    }

    /// Where the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Training iterations of the model.
    pub fn iteration(&self) -> u64 {
        self.model.iteration()
    }

    /// Masks (256 x 256 x 1) of 256 x 256 x 3 BGR images, in batches of `batch`; values
    /// below 0.1 are 0 (DFL's `XSegNet.extract`).
    pub fn extract(&self, images: &[&Image], batch: usize) -> Result<Vec<Image>> {
        let s = XSEG_SIZE;
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(batch.max(1)) {
            let t =
                dfl_nn::host::tensor4(to_nchw(chunk, s, 3)?, [chunk.len(), 3, s, s], &self.device)?;
            let m = self.kernels.scope(|| self.model.extract(t))?;
            out.extend(from_nchw(dfl_nn::host::values(m), chunk.len(), 1, s)?);
        }
        Ok(out)
    }
}

/// The XSeg checkpoint folder of a model folder (`<dir>/xseg`), if one holds a model.
pub fn find_xseg(model_dir: &Path) -> Option<PathBuf> {
    let p = model_dir.join(XSEG_DIR);
    newest_generation(&p).map(|_| p)
}
