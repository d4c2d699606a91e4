//! `dfl faceset ...`: DFL's "4.2 util" steps (pack/unpack, metadata save/restore, recover
//! original names, landmark debug images), the faceset resizer, and `info` for one file.

use crate::progress::Ui;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use dfl_core::Shard;
use dfl_faceset::ops::{self, PackOptions, ResizeOptions, RestoreOptions, Skipped, UnpackOptions};
use dfl_faceset::pickle::{NdArray, Value};
use dfl_faceset::{AlignedFace, FaceMeta};
use dfl_geom::FaceType;
use serde_json::{Map, Value as Json, json};
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum FacesetCmd {
    /// Print the metadata of one aligned face as a JSON object with DFL's key names.
    Info(InfoArgs),
    /// Pack the aligned faces of DIR into DIR/faceset.pak (DFL's packed faceset).
    Pack(PackArgs),
    /// Unpack DIR/faceset.pak into DIR, byte for byte.
    Unpack(UnpackArgs),
    /// Resize (or re-crop to another face type) every aligned face of INPUT_DIR into
    /// OUTPUT_DIR, keeping landmarks, masks, polygons and matrices consistent.
    Resize(ResizeArgs),
    /// Save the metadata of every aligned face of DIR to DIR/meta.dat (DFL's format), so the
    /// images can be edited in another program.
    MetadataSave(DirArgs),
    /// Write the metadata saved in DIR/meta.dat back into the (edited) images of DIR;
    /// images whose size changed are resized back first, as DFL does.
    MetadataRestore(RestoreArgs),
    /// Rename aligned faces back to their extractor names (<frame>_<n>.jpg) from metadata.
    RecoverNames(DirArgs),
    /// Draw aligned_debug-style pictures (landmarks, hull, source rect, face-type square) of
    /// the aligned faces of DIR into OUTPUT.
    Debug(DebugArgs),
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// An aligned face (.jpg with DFL metadata).
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct DirArgs {
    /// Folder of aligned faces.
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct PackArgs {
    /// Folder of aligned faces.
    pub dir: PathBuf,
    /// Treat sub-folders as persons (DFL's person faceset): DIR/<person>/*.jpg.
    #[arg(long)]
    pub persons: bool,
    /// Replace an existing faceset.pak.
    #[arg(long)]
    pub overwrite: bool,
    /// Delete the packed .jpg files once the pak is written and verified (DFL deletes them
    /// by default; here you ask for it).
    #[arg(long)]
    pub delete_originals: bool,
}

#[derive(Args, Debug)]
pub struct UnpackArgs {
    /// Folder holding faceset.pak.
    pub dir: PathBuf,
    /// Replace existing files that differ from the packed ones.
    #[arg(long)]
    pub overwrite: bool,
    /// Delete faceset.pak after unpacking (DFL does by default; here you ask for it).
    #[arg(long)]
    pub delete_pak: bool,
}

/// Face type for `resize --face-type`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeFaceType {
    /// Keep each face's own type (plain resize).
    Same,
    /// half_face
    H,
    /// midfull_face
    Mf,
    /// full_face
    F,
    /// whole_face
    Wf,
    /// head
    Head,
}

impl ResizeFaceType {
    fn face_type(self) -> Option<FaceType> {
        match self {
            ResizeFaceType::Same => None,
            ResizeFaceType::H => Some(FaceType::Half),
            ResizeFaceType::Mf => Some(FaceType::MidFull),
            ResizeFaceType::F => Some(FaceType::Full),
            ResizeFaceType::Wf => Some(FaceType::WholeFace),
            ResizeFaceType::Head => Some(FaceType::Head),
        }
    }
}

#[derive(Args, Debug)]
pub struct ResizeArgs {
    /// Folder of aligned faces.
    pub input_dir: PathBuf,
    /// New side length in pixels (DFL offers 128..2048, default 512).
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..=8192))]
    pub size: u32,
    /// Output folder (created if missing; must differ from INPUT_DIR).
    #[arg(long)]
    pub output: PathBuf,
    /// Face type of the output: same keeps each face's type; another type re-crops the
    /// aligned image.
    #[arg(long, value_enum, default_value_t = ResizeFaceType::Same)]
    pub face_type: ResizeFaceType,
    /// Replace files that already exist in the output folder.
    #[arg(long)]
    pub overwrite: bool,
    /// Process only share i of n of the faces (for several processes or machines).
    #[arg(long, default_value_t = Shard::ALL)]
    pub shard: Shard,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Folder of aligned faces holding meta.dat.
    pub dir: PathBuf,
    /// Delete meta.dat after a restore without errors (DFL always deletes it).
    #[arg(long)]
    pub delete_meta: bool,
}

#[derive(Args, Debug)]
pub struct DebugArgs {
    /// Folder of aligned faces.
    pub dir: PathBuf,
    /// Folder for the debug pictures (created if missing; must differ from DIR).
    #[arg(long)]
    pub output: PathBuf,
    /// Process only share i of n of the faces (for several processes or machines).
    #[arg(long, default_value_t = Shard::ALL)]
    pub shard: Shard,
}

fn warn_skipped(skipped: &[Skipped]) {
    for s in skipped {
        tracing::warn!("skipped {}: {}", s.path.display(), s.reason);
    }
}

pub fn run(cmd: FacesetCmd, ui: &Ui) -> Result<()> {
    match cmd {
        FacesetCmd::Info(a) => {
            let face = AlignedFace::load(&a.file).context("faceset info")?;
            let text = serde_json::to_string(&info_json(&face.meta)?)?;
            // A closed pipe (`| head`) is not an error worth a panic.
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{text}") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("writing to stdout")?,
            }
        }
        FacesetCmd::Pack(a) => {
            let opts = PackOptions {
                persons: a.persons,
                overwrite: a.overwrite,
                delete_originals: a.delete_originals,
            };
            let r = ops::pack(&a.dir, opts, &ui.progress()).context("faceset pack")?;
            println!(
                "packed {} faces into {} ({} bytes){}",
                r.files,
                r.pak.display(),
                r.bytes,
                if r.deleted > 0 {
                    format!(", deleted {} originals", r.deleted)
                } else {
                    String::new()
                }
            );
        }
        FacesetCmd::Unpack(a) => {
            let opts = UnpackOptions {
                overwrite: a.overwrite,
                delete_pak: a.delete_pak,
            };
            let r = ops::unpack(&a.dir, opts, &ui.progress()).context("faceset unpack")?;
            println!(
                "unpacked {} faces ({} already present){}",
                r.written,
                r.unchanged,
                if r.pak_deleted {
                    ", faceset.pak deleted"
                } else {
                    ""
                }
            );
        }
        FacesetCmd::Resize(a) => {
            let opts = ResizeOptions {
                size: a.size,
                face_type: a.face_type.face_type(),
                overwrite: a.overwrite,
                shard: a.shard,
            };
            let r = ops::resize_faceset(&a.input_dir, &a.output, opts, &ui.progress())
                .context("faceset resize")?;
            warn_skipped(&r.skipped);
            println!(
                "resized {} faces into {} ({} skipped)",
                r.written,
                a.output.display(),
                r.skipped.len()
            );
        }
        FacesetCmd::MetadataSave(a) => {
            let r = ops::metadata_save(&a.dir, &ui.progress()).context("faceset metadata-save")?;
            warn_skipped(&r.skipped);
            println!(
                "saved the metadata of {} faces to {} ({} skipped)",
                r.saved,
                r.path.display(),
                r.skipped.len()
            );
        }
        FacesetCmd::MetadataRestore(a) => {
            let opts = RestoreOptions {
                delete_meta: a.delete_meta,
            };
            let r = ops::metadata_restore(&a.dir, opts, &ui.progress())
                .context("faceset metadata-restore")?;
            warn_skipped(&r.skipped);
            for m in &r.missing {
                tracing::warn!("{m} is in meta.dat but not in {}", a.dir.display());
            }
            println!(
                "restored {} faces ({} resized back, {} already intact, {} skipped, {} missing){}",
                r.restored,
                r.resized,
                r.unchanged,
                r.skipped.len(),
                r.missing.len(),
                if r.meta_deleted {
                    ", meta.dat deleted"
                } else {
                    ""
                }
            );
        }
        FacesetCmd::RecoverNames(a) => {
            let r = ops::recover_names(&a.dir, &ui.progress()).context("faceset recover-names")?;
            warn_skipped(&r.skipped);
            println!("renamed {} faces ({} skipped)", r.renamed, r.skipped.len());
        }
        FacesetCmd::Debug(a) => {
            let r = ops::debug_images(&a.dir, &a.output, a.shard, &ui.progress())
                .context("faceset debug")?;
            warn_skipped(&r.skipped);
            println!(
                "wrote {} debug pictures into {} ({} skipped)",
                r.written,
                a.output.display(),
                r.skipped.len()
            );
        }
    }
    Ok(())
}

fn points(p: &[[f64; 2]]) -> Json {
    json!(p)
}

/// The metadata as one JSON object with DFL's key names (`faceset info`). Absent keys are
/// null, except `face_type`, which shows DFL's default (`full_face`) when absent.
pub fn info_json(m: &FaceMeta) -> Result<Json> {
    let mut o = Map::new();
    o.insert("face_type".into(), json!(m.face_type_or_default().as_str()));
    o.insert(
        "landmarks".into(),
        m.landmarks.as_deref().map_or(Json::Null, points),
    );
    o.insert("source_filename".into(), json!(m.source_filename));
    o.insert("source_rect".into(), json!(m.source_rect));
    o.insert(
        "source_landmarks".into(),
        m.source_landmarks.as_deref().map_or(Json::Null, points),
    );
    o.insert(
        "image_to_face_mat".into(),
        m.image_to_face_mat.map_or(Json::Null, |a| {
            json!([
                [a[(0, 0)], a[(0, 1)], a[(0, 2)]],
                [a[(1, 0)], a[(1, 1)], a[(1, 2)]]
            ])
        }),
    );
    o.insert(
        "seg_ie_polys".into(),
        match &m.seg_ie_polys {
            None => Json::Null,
            Some(polys) => json!({
                "polys": polys
                    .iter()
                    .map(|p| json!({
                        "type": p.kind.code(),
                        "pts": p.pts.iter().map(|q| [f64::from(q[0]), f64::from(q[1])]).collect::<Vec<_>>(),
                    }))
                    .collect::<Vec<_>>()
            }),
        },
    );
    o.insert(
        "xseg_mask".into(),
        match &m.xseg_mask {
            None => Json::Null,
            Some(x) => {
                let (w, h) = x.dimensions().context("xseg_mask")?;
                json!({ "width": w, "height": h, "encoding": x.encoding()?.as_str() })
            }
        },
    );
    o.insert("eyebrows_expand_mod".into(), json!(m.eyebrows_expand_mod));
    for (k, v) in &m.extra {
        o.insert(k.clone(), value_json(v));
    }
    Ok(Json::Object(o))
}

fn array_json(a: &NdArray) -> Json {
    let flat: Vec<Json> = match a.to_i64() {
        Some(v) => v.into_iter().map(Json::from).collect(),
        None => a.to_f64().into_iter().map(Json::from).collect(),
    };
    // Nest by the shape, last axis innermost.
    let mut items = flat;
    for &d in a.shape.iter().skip(1).rev() {
        if d == 0 {
            break;
        }
        items = items.chunks(d).map(|c| Json::Array(c.to_vec())).collect();
    }
    if a.shape.is_empty() {
        items.into_iter().next().unwrap_or(Json::Null)
    } else {
        Json::Array(items)
    }
}

/// A pickled value of an unknown key, as JSON (numpy arrays as nested lists).
fn value_json(v: &Value) -> Json {
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(s),
        Value::Bytes(b) => json!(b.len()),
        Value::List(items) | Value::Tuple(items) => {
            Json::Array(items.iter().map(value_json).collect())
        }
        Value::Dict(items) => Json::Object(
            items
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Str(s) => s.clone(),
                        other => value_json(other).to_string(),
                    };
                    (key, value_json(v))
                })
                .collect(),
        ),
        Value::Array(a) | Value::NumpyScalar(a) => array_json(a),
        Value::Enum(_, i) => json!(i),
    }
}
