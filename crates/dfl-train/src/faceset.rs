//! Training facesets, streamed: only each face's metadata stays in memory (about 0.7 KB per
//! face: landmarks, face type, size, where its bytes are); images are read and decoded on
//! demand by the pipeline's workers, so memory does not grow with the faceset (DFL keeps
//! every sample object, and its pickled masks, in each generator process).
//!
//! Like DFL's `SampleLoader` (§6.1), `faceset.pak` is used when present, else every `.jpg`
//! of the folder. Files without usable metadata are skipped and listed. Faces aligned as
//! `mark_only` cannot be trained on (DFL raises the same way) and are skipped too.

use crate::error::{Result, TrainError};
use dfl_faceset::FaceMeta;
use dfl_faceset::pickle::Value;
use dfl_geom::{FaceType, LANDMARK_COUNT, Pt};
use dfl_image::Image;
use rayon::prelude::*;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where a face's file bytes live.
#[derive(Debug, Clone, PartialEq)]
enum Location {
    /// A loose aligned `.jpg`.
    File(PathBuf),
    /// A byte range of the faceset's `faceset.pak`.
    Pak(Range<u64>),
}

/// What the pipeline keeps of one aligned face between iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleMeta {
    /// File name (for error messages and previews).
    pub name: String,
    /// Face type the face was aligned with.
    pub face_type: FaceType,
    /// Aligned image width in pixels.
    pub width: u32,
    /// Aligned image height in pixels.
    pub height: u32,
    /// The 68 landmarks in aligned-image pixels.
    pub landmarks: Vec<[f32; 2]>,
    /// Eyebrow push of the hull mask (DFL's default 1.0).
    pub eyebrows_expand_mod: f32,
    /// Whether the file carries an applied XSeg mask (used instead of the landmark hull).
    pub has_xseg: bool,
    location: Location,
}

impl SampleMeta {
    /// The landmarks as `f64` points (what dfl-geom takes).
    pub fn landmarks_f64(&self) -> Vec<Pt> {
        self.landmarks
            .iter()
            .map(|p| [f64::from(p[0]), f64::from(p[1])])
            .collect()
    }

    /// A sample with the given metadata and no file behind it (for sampling tests and
    /// synthetic facesets; [`SampleReader::load`] refuses it).
    pub fn synthetic(name: &str, face_type: FaceType, size: u32, landmarks: Vec<[f32; 2]>) -> Self {
        SampleMeta {
            name: name.to_string(),
            face_type,
            width: size,
            height: size,
            landmarks,
            eyebrows_expand_mod: 1.0,
            has_xseg: false,
            location: Location::File(PathBuf::new()),
        }
    }
}

/// A file that was left out of the faceset, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The file (or `faceset.pak` entry).
    pub path: PathBuf,
    /// Why it cannot be used.
    pub reason: String,
}

/// The faces of one side (src, dst or pretraining), metadata only.
#[derive(Debug, Clone)]
pub struct Faceset {
    root: PathBuf,
    pak: Option<PathBuf>,
    samples: Vec<SampleMeta>,
    skipped: Vec<Skipped>,
}

/// An aligned face decoded for processing.
#[derive(Debug, Clone)]
pub struct LoadedFace {
    /// The face, BGR `f32` in [0, 1] (DFL's channel order).
    pub image: Image,
    /// The applied XSeg mask, one channel in [0, 1], at its stored size (usually 256).
    pub xseg: Option<Image>,
}

fn landmarks_f32(lm: &[Pt]) -> Option<Vec<[f32; 2]>> {
    if lm.len() != LANDMARK_COUNT || lm.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    Some(lm.iter().map(|p| [p[0] as f32, p[1] as f32]).collect())
}

fn meta_sample(name: String, meta: &FaceMeta, w: u32, h: u32, loc: Location) -> Result<SampleMeta> {
    let face_type = meta.face_type_or_default();
    if face_type == FaceType::MarkOnly {
        return Err(TrainError::Refused(
            "a mark_only face (the frame itself) cannot be trained on".into(),
        ));
    }
    let landmarks = meta
        .landmarks
        .as_deref()
        .and_then(landmarks_f32)
        .ok_or_else(|| TrainError::Refused("no valid 68-point landmarks".into()))?;
    if w == 0 || h == 0 {
        return Err(TrainError::Refused("zero-sized image".into()));
    }
    Ok(SampleMeta {
        name,
        face_type,
        width: w,
        height: h,
        landmarks,
        eyebrows_expand_mod: meta.eyebrows_expand_mod_or_default() as f32,
        has_xseg: meta.xseg_mask.is_some(),
        location: loc,
    })
}

/// The fields of a pak sample-config dict the trainer needs.
fn pak_sample(cfg: &Value, range: Range<u64>, name: &str) -> Result<SampleMeta> {
    let face_type = match cfg.get("face_type").and_then(Value::as_i64) {
        Some(code) => {
            FaceType::from_code(code).map_err(|e| TrainError::Refused(format!("face_type: {e}")))?
        }
        None => FaceType::Full,
    };
    let shape = cfg
        .get("shape")
        .and_then(Value::as_seq)
        .ok_or_else(|| TrainError::Refused("no shape".into()))?;
    let dim = |i: usize| {
        shape
            .get(i)
            .and_then(Value::as_i64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| TrainError::Refused("shape is not (H, W, C)".into()))
    };
    let (h, w) = (dim(0)?, dim(1)?);
    // Reuse dfl-faceset's landmark parser by wrapping the value in a metadata dict.
    let lm_value = cfg
        .get("landmarks")
        .cloned()
        .ok_or_else(|| TrainError::Refused("no landmarks".into()))?;
    let mut meta = FaceMeta::from_value(&Value::Dict(vec![(
        Value::Str("landmarks".into()),
        lm_value,
    )]))?;
    meta.face_type = Some(face_type);
    meta.eyebrows_expand_mod = cfg.get("eyebrows_expand_mod").and_then(Value::as_f64);
    let mut s = meta_sample(name.to_string(), &meta, w, h, Location::Pak(range))?;
    s.has_xseg = !matches!(cfg.get("xseg_mask_compressed"), None | Some(Value::None));
    Ok(s)
}

impl Faceset {
    /// Opens the faceset in `dir`: its `faceset.pak` if there is one, else its `.jpg` files
    /// (metadata read in parallel). Errors if the folder is missing or no face is usable.
    pub fn open(dir: &Path) -> Result<Faceset> {
        if !dir.is_dir() {
            return Err(TrainError::Refused(format!(
                "{}: faceset folder not found",
                dir.display()
            )));
        }
        let pak = dir.join(dfl_faceset::ops::PAK_NAME);
        let set = if pak.is_file() {
            Self::open_pak(dir, &pak)?
        } else {
            Self::open_folder(dir)?
        };
        if set.samples.is_empty() {
            let detail = match set.skipped.first() {
                Some(s) => format!(
                    " ({} files skipped; first: {}: {})",
                    set.skipped.len(),
                    s.path.display(),
                    s.reason
                ),
                None => String::new(),
            };
            return Err(TrainError::EmptyFaceset {
                path: dir.to_path_buf(),
                detail,
            });
        }
        Ok(set)
    }

    fn open_folder(dir: &Path) -> Result<Faceset> {
        let files = dfl_faceset::list_aligned(dir)?;
        let results: Vec<std::result::Result<SampleMeta, Skipped>> = files
            .par_iter()
            .map(|path| {
                let skip = |reason: String| Skipped {
                    path: path.clone(),
                    reason,
                };
                let (meta, w, h) =
                    dfl_faceset::scan_meta(path).map_err(|e| skip(error_chain(&e)))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                meta_sample(name, &meta, w, h, Location::File(path.clone()))
                    .map_err(|e| skip(e.to_string()))
            })
            .collect();
        let mut samples = Vec::new();
        let mut skipped = Vec::new();
        for r in results {
            match r {
                Ok(s) => samples.push(s),
                Err(s) => skipped.push(s),
            }
        }
        Ok(Faceset {
            root: dir.to_path_buf(),
            pak: None,
            samples,
            skipped,
        })
    }

    fn open_pak(dir: &Path, pak: &Path) -> Result<Faceset> {
        let entries = read_pak_index(pak)?;
        let mut samples = Vec::with_capacity(entries.len());
        let mut skipped = Vec::new();
        for e in entries {
            let range = e.range.start as u64..e.range.end as u64;
            match pak_sample(&e.config, range, &e.filename) {
                Ok(s) => samples.push(s),
                Err(err) => skipped.push(Skipped {
                    path: pak.join(e.relative_path()),
                    reason: err.to_string(),
                }),
            }
        }
        Ok(Faceset {
            root: dir.to_path_buf(),
            pak: Some(pak.to_path_buf()),
            samples,
            skipped,
        })
    }

    /// A faceset of the given samples, rooted at `root` (tests, synthetic sets).
    pub fn from_samples(root: &Path, samples: Vec<SampleMeta>) -> Faceset {
        Faceset {
            root: root.to_path_buf(),
            pak: None,
            samples,
            skipped: Vec::new(),
        }
    }

    /// The folder this faceset was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `faceset.pak` in use, if the faces come from one.
    pub fn pak(&self) -> Option<&Path> {
        self.pak.as_deref()
    }

    /// Number of usable faces.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there is no usable face.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The usable faces, in file-name (or pak) order.
    pub fn samples(&self) -> &[SampleMeta] {
        &self.samples
    }

    /// Files left out, with the reason.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The path naming sample `i` in messages (`dir/name.jpg` or `dir/faceset.pak/name.jpg`).
    pub fn sample_path(&self, i: usize) -> PathBuf {
        match self.samples.get(i).map(|s| &s.location) {
            Some(Location::File(p)) => p.clone(),
            Some(Location::Pak(_)) => self
                .pak
                .clone()
                .unwrap_or_default()
                .join(&self.samples[i].name),
            None => self.root.join(format!("#{i}")),
        }
    }

    /// DFL's `-yaw` per face (§1.8 pose on the aligned landmarks with the image width), the
    /// value uniform-yaw sampling bins by. Computed on demand (a solvePnP per face), in
    /// parallel. A face whose pose cannot be estimated gets 0.
    pub fn neg_yaws(&self) -> Vec<f32> {
        self.samples
            .par_iter()
            .map(|s| {
                dfl_geom::estimate_pitch_yaw_roll(&s.landmarks_f64(), f64::from(s.width))
                    .map(|[_, yaw, _]| -yaw as f32)
                    .unwrap_or(0.0)
            })
            .collect()
    }

    /// A reader for one worker (holds its own handle on the pak).
    pub fn reader(&self) -> SampleReader<'_> {
        SampleReader {
            set: self,
            pak: None,
        }
    }
}

/// Reads a pak's index (header pickle and offset table) without its file data.
fn read_pak_index(path: &Path) -> Result<Vec<dfl_faceset::pak::PakSample>> {
    use std::io::Read;
    let mut f = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let len = f.metadata().map_err(|e| TrainError::io(path, e))?.len();
    let bad = |m: &str| TrainError::bad_file(path, m);
    let mut head = [0u8; 16];
    f.read_exact(&mut head)
        .map_err(|_| bad("shorter than its 16-byte header"))?;
    let mut meta_len = [0u8; 8];
    meta_len.copy_from_slice(&head[8..16]);
    let meta_len = u64::from_le_bytes(meta_len);
    if meta_len > len.saturating_sub(16) {
        return Err(bad("header length runs past the end of the file"));
    }
    let mut index = head.to_vec();
    (&mut f)
        .take(meta_len)
        .read_to_end(&mut index)
        .map_err(|e| TrainError::io(path, e))?;
    let n = match dfl_faceset::pickle::loads(&index[16..]) {
        Ok(Value::List(v)) => v.len() as u64,
        Ok(_) => return Err(bad("header is not a list of samples")),
        Err(e) => return Err(dfl_faceset::Error::from(e).at(path).into()),
    };
    let table = (n + 1) * 8;
    if 16 + meta_len + table > len {
        return Err(bad("offset table runs past the end of the file"));
    }
    let start = index.len();
    index.resize(start + table as usize, 0);
    f.read_exact(&mut index[start..])
        .map_err(|e| TrainError::io(path, e))?;
    dfl_faceset::pak::read_pak_index(&index, len).map_err(|e| e.at(path).into())
}

/// "cause: cause: cause" of a faceset error, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Reads and decodes faces of one faceset; one per worker thread.
#[derive(Debug)]
pub struct SampleReader<'a> {
    set: &'a Faceset,
    pak: Option<File>,
}

impl SampleReader<'_> {
    /// The file bytes of sample `i`.
    pub fn bytes(&mut self, i: usize) -> Result<Vec<u8>> {
        let s = self
            .set
            .samples
            .get(i)
            .ok_or_else(|| TrainError::Pipeline(format!("sample {i} is out of range")))?;
        match &s.location {
            Location::File(p) if p.as_os_str().is_empty() => Err(TrainError::sample(
                &s.name,
                "synthetic sample without an image file",
            )),
            Location::File(p) => std::fs::read(p).map_err(|e| TrainError::io(p, e)),
            Location::Pak(range) => {
                use std::io::{Read, Seek, SeekFrom};
                let pak = self.set.pak.clone().unwrap_or_default();
                if self.pak.is_none() {
                    self.pak = Some(File::open(&pak).map_err(|e| TrainError::io(&pak, e))?);
                }
                let f = self
                    .pak
                    .as_mut()
                    .ok_or_else(|| TrainError::Pipeline("pak not open".into()))?;
                let len = (range.end - range.start) as usize;
                f.seek(SeekFrom::Start(range.start))
                    .map_err(|e| TrainError::io(&pak, e))?;
                let mut buf = vec![0u8; len];
                f.read_exact(&mut buf)
                    .map_err(|e| TrainError::io(pak.join(&s.name), e))?;
                Ok(buf)
            }
        }
    }

    /// Reads and decodes sample `i`: the BGR image and, when the file has one, its XSeg mask.
    pub fn load(&mut self, i: usize) -> Result<LoadedFace> {
        let bytes = self.bytes(i)?;
        let path = self.set.sample_path(i);
        let rgb = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
            .map_err(|e| TrainError::sample(&path, format!("JPEG decode: {e}")))?
            .into_rgb8();
        let image = Image::bgr_from_rgb8(&rgb).map_err(|e| TrainError::sample(&path, e))?;
        let meta = &self.set.samples[i];
        if (image.width(), image.height()) != (meta.width as usize, meta.height as usize) {
            return Err(TrainError::sample(
                &path,
                format!(
                    "image is {}x{}, its metadata says {}x{}",
                    image.width(),
                    image.height(),
                    meta.width,
                    meta.height
                ),
            ));
        }
        let xseg = if meta.has_xseg {
            let m = dfl_faceset::read_meta_bytes(&bytes).map_err(|e| e.at(&path))?;
            match m.xseg_mask {
                Some(x) => {
                    let g = x.decode().map_err(|e| e.at(&path))?;
                    Some(
                        Image::from_u8(g.width as usize, g.height as usize, 1, &g.data)
                            .map_err(|e| TrainError::sample(&path, e))?,
                    )
                }
                None => None,
            }
        } else {
            None
        };
        Ok(LoadedFace { image, xseg })
    }
}
