//! Merging a whole frame folder: DFL step 7 without the interactive window.
//!
//! Every frame of the input folder gets an output PNG (and a mask PNG when asked): frames
//! with aligned faces are merged, frames without are copied (as read, re-encoded as PNG,
//! with an all-zero mask; in raw-predict mode an R x R black picture). Work goes in chunks:
//! frames are read and their faces cut in parallel, the model predicts every face of the
//! chunk in batches, and the faces are merged and written in parallel.
//!
//! Resumable: each output carries the hash of everything that decided its pixels (engine
//! version, model class/iteration/generation, the frame's config, landmarks, motion, the
//! input file's size and time); a frame whose outputs already carry the same key is skipped.
//! Shards (`--shard i/n`) can work on one output folder at the same time. Every check that
//! can fail on bad input runs before the first file is written, and outputs replace their
//! targets atomically, so an error never destroys frames merged earlier.

use crate::alignments::{Alignments, read_alignments};
use crate::config::{MergerConfig, Mode};
use crate::engine::{
    FaceResult, FaceSpec, Merged, Motion, Prediction, PreparedFace, Region, combine, merge_face,
    prepare_face, xseg_dst_input, xseg_prd_input, xseg_to_face_size,
};
use crate::error::{MergeError, Result};
use crate::frames::{
    KEY_CHUNK, Layout, NOTE_CHUNK, as_read, bgr_to_rgb_bytes, encode_png, frame_to_bgr, read_frame,
    stored_key, write_replacing,
};
use crate::model::{MergeModel, XSegMasker};
use crate::motion::motion_vectors;
use crate::provenance::{Counts, Inputs, MergeManifest, NOTICE};
use crate::session::MergerSession;
use dfl_core::{Progress, Shard};
use dfl_geom::Pt;
use dfl_image::{Image, Quantize};
use dfl_nn::LearnedMasks;
use image::DynamicImage;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Version of the merge arithmetic; part of every resume key, bumped whenever the pixels a
/// config produces change, so older outputs are merged again.
pub const ENGINE_VERSION: u32 = 1;

/// Faces per network call by default. 16 rather than 8: on the CPU a call of 8 Quick96
/// faces leaves 72 Winograd tiles at 12 px, 8 past the products' last full 16-row block,
/// and the whole merge measured 5-8 % faster at 16; the frames in flight (16 per CPU
/// worker) stay far under the chunk's memory cap.
pub const DEFAULT_BATCH: usize = 16;

/// What to merge and how.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// The dst frames folder.
    pub input: PathBuf,
    /// The dst aligned faces (`.jpg` files or `faceset.pak`).
    pub aligned: PathBuf,
    /// Where merged frames go (created if missing).
    pub output: PathBuf,
    /// Where merge masks go, if wanted (created if missing).
    pub mask_output: Option<PathBuf>,
    /// The config for frames without their own entry in the output folder's
    /// `merger_session.json`, and where it came from (for messages). `None`: the session's
    /// default if it has one, else [`MergerConfig::default`].
    pub config: Option<(MergerConfig, String)>,
    /// This process's share of the frames.
    pub shard: Shard,
    /// Faces per network call.
    pub batch: usize,
}

/// What a merge did.
#[derive(Debug, Clone, Default)]
pub struct MergeReport {
    /// Frame counts.
    pub counts: Counts,
    /// Frames that had more than one face.
    pub multi_face_frames: usize,
    /// Aligned files ignored because they name no source frame.
    pub ignored_aligned: Vec<String>,
    /// Frames with their own config from the session store.
    pub frames_with_own_config: usize,
    /// The provenance manifest written.
    pub manifest: PathBuf,
}

/// One frame's job.
struct Task<'a> {
    path: &'a Path,
    name: String,
    faces: &'a [Vec<Pt>],
    config: &'a MergerConfig,
    motion: Option<Motion>,
    seed: u64,
    key: String,
    out: PathBuf,
    mask: Option<PathBuf>,
}

/// A frame read and its faces cut.
enum Loaded {
    /// No face: copy the frame as read.
    Copy(DynamicImage),
    /// No face in raw-predict mode: nothing to read.
    RawEmpty,
    /// Faces to merge.
    Faces {
        frame: Image,
        prepared: Vec<PreparedFace>,
        xseg_dst: Vec<Option<Image>>,
    },
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn seed_for(name: &str) -> u64 {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// Same path after resolving links, when it exists.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn create_dir(dir: &Path, what: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        MergeError::bad(
            dir,
            format!("cannot create the {what} folder ({e}); nothing was written"),
        )
    })
}

/// The resume key of a frame: SHA-256 over everything that decides its output pixels.
#[allow(clippy::too_many_arguments)]
fn frame_key(
    model: &MergeModel,
    xseg: Option<&XSegMasker>,
    cfg: &MergerConfig,
    path: &Path,
    faces: &[Vec<Pt>],
    motion: Option<Motion>,
    with_mask: bool,
) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| MergeError::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let uses_xseg = cfg.mask_mode.needs_xseg();
    let value = serde_json::json!({
        "engine": ENGINE_VERSION,
        "model": model.info(),
        "xseg": if uses_xseg { xseg.map(|x| (x.path().display().to_string(), x.iteration())) } else { None },
        "config": cfg,
        "faces": faces,
        "motion": if cfg.motion_blur_power != 0 { motion.map(|m| [m.power, m.deg]) } else { None },
        "frame": [file_name(path), meta.len().to_string(), mtime.to_string()],
        "mask": with_mask,
    });
    let text =
        serde_json::to_vec(&value).map_err(|e| MergeError::Invalid(format!("resume key: {e}")))?;
    Ok(Sha256::digest(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Merges the frames of `opts.input` with `model` (and `xseg` for the XSeg mask modes),
/// reporting progress per frame. See the module documentation for what is written.
pub fn merge_folder(
    model: &MergeModel,
    xseg: Option<&XSegMasker>,
    opts: &MergeOptions,
    progress: &dyn Progress,
) -> Result<MergeReport> {
    // --- Checks that need no writing.
    let frames = dfl_core::list_images(&opts.input).map_err(|e| MergeError::io(&opts.input, e))?;
    if frames.is_empty() {
        return Err(MergeError::bad(
            &opts.input,
            "no frames (jpg, jpeg, png, tif, tiff) in this folder",
        ));
    }
    for (dir, what) in [
        (Some(&opts.output), "--output"),
        (opts.mask_output.as_ref(), "--mask-output"),
    ] {
        if let Some(d) = dir
            && same_dir(d, &opts.input)
        {
            return Err(MergeError::bad(
                d,
                format!("{what} is the input frames folder; merged frames would overwrite them"),
            ));
        }
    }
    if let Some(m) = &opts.mask_output
        && (m == &opts.output || same_dir(m, &opts.output))
    {
        return Err(MergeError::bad(
            m,
            "--mask-output must differ from --output (masks and frames share file names)",
        ));
    }
    let align: Alignments = read_alignments(&opts.aligned)?;
    let stems: BTreeSet<String> = frames.iter().map(|p| file_stem(p)).collect();
    let missing: Vec<&String> = align
        .frames
        .keys()
        .filter(|s| !stems.contains(*s))
        .collect();
    if let Some(first) = missing.first() {
        let file = align.first_file.get(*first).cloned().unwrap_or_default();
        return Err(MergeError::bad(
            &opts.aligned,
            format!(
                "{} aligned frame(s) name frames that are not in {} (first: frame '{first}' \
                 of {file}); is --input the folder these faces were extracted from?",
                missing.len(),
                opts.input.display()
            ),
        ));
    }
    let session = if opts.output.is_dir() {
        MergerSession::load(&opts.output)?
    } else {
        None
    };
    let (base, base_origin) = match (
        &opts.config,
        session.as_ref().and_then(|s| s.default.clone()),
    ) {
        (Some((c, origin)), _) => (c.clone(), origin.clone()),
        (None, Some(c)) => (
            c,
            MergerSession::path_in(&opts.output).display().to_string(),
        ),
        (None, None) => (MergerConfig::default(), "the default config".to_string()),
    };
    base.validate().map_err(|source| MergeError::Config {
        origin: base_origin.clone(),
        source,
    })?;
    let mut own_configs = 0;
    if let Some(s) = &session {
        for (stem, c) in &s.frames {
            c.validate().map_err(|source| MergeError::Config {
                origin: format!(
                    "{} (frame {stem})",
                    MergerSession::path_in(&opts.output).display()
                ),
                source,
            })?;
            own_configs += usize::from(stems.contains(stem));
        }
    }
    let config_of = |stem: &str| -> &MergerConfig {
        match &session {
            Some(s) => s.config_for(stem, &base),
            None => &base,
        }
    };
    let with_faces = |p: &PathBuf| {
        align
            .frames
            .get(&file_stem(p))
            .is_some_and(|f| !f.is_empty())
    };
    if xseg.is_none()
        && let Some(p) = frames
            .iter()
            .find(|p| with_faces(p) && config_of(&file_stem(p)).mask_mode.needs_xseg())
    {
        return Err(MergeError::model(
            &model.info().path,
            format!(
                "mask mode {} (frame {}) needs an XSeg model, and there is none in the \
                 model folder's xseg/ sub-folder",
                config_of(&file_stem(p)).mask_mode,
                file_name(p)
            ),
        ));
    }

    // --- Per-frame jobs.
    let face_lists: Vec<Option<&[Vec<Pt>]>> = frames
        .iter()
        .map(|p| align.frames.get(&file_stem(p)).map(Vec::as_slice))
        .collect();
    let motions = motion_vectors(&face_lists)?;
    let mut tasks = Vec::new();
    for (pos, path) in frames.iter().enumerate() {
        if !opts.shard.owns(pos) {
            continue;
        }
        let stem = file_stem(path);
        let cfg = config_of(&stem);
        let faces = face_lists[pos].unwrap_or(&[]);
        let key = frame_key(
            model,
            xseg,
            cfg,
            path,
            faces,
            motions[pos],
            opts.mask_output.is_some(),
        )?;
        tasks.push(Task {
            path,
            name: file_name(path),
            faces,
            config: cfg,
            motion: motions[pos],
            seed: seed_for(&file_name(path)),
            key,
            out: opts.output.join(format!("{stem}.png")),
            mask: opts
                .mask_output
                .as_ref()
                .map(|d| d.join(format!("{stem}.png"))),
        });
    }

    // --- Outputs.
    create_dir(&opts.output, "output")?;
    if let Some(m) = &opts.mask_output {
        create_dir(m, "mask output")?;
    }
    let mut counts = Counts {
        frames: frames.len(),
        in_shard: tasks.len(),
        ..Counts::default()
    };
    let manifest = |status: &'static str, counts: &Counts| MergeManifest {
        tool: "dfl-rs",
        version: env!("CARGO_PKG_VERSION"),
        step: "merge",
        created_utc: dfl_video::rfc3339_utc(std::time::SystemTime::now()),
        synthetic_faces: true,
        notice: NOTICE,
        status,
        model: model.info().clone(),
        xseg_model: xseg.map(|x| x.path().display().to_string()),
        inputs: Inputs {
            dst_frames: opts.input.display().to_string(),
            dst_aligned: opts.aligned.display().to_string(),
            source_identity: format!(
                "learned by the {} model in {}",
                model.info().class,
                model.info().path.display()
            ),
        },
        output: opts.output.display().to_string(),
        mask_output: opts.mask_output.as_ref().map(|m| m.display().to_string()),
        config: base.clone(),
        frames_with_own_config: own_configs,
        shard: format!("{}/{}", opts.shard.index, opts.shard.count),
        counts: counts.clone(),
    };
    let write_manifests = |m: &MergeManifest| -> Result<()> {
        m.write_into(&opts.output)?;
        if let Some(d) = &opts.mask_output {
            m.write_into(d)?;
        }
        Ok(())
    };
    write_manifests(&manifest("in progress", &counts))?;

    // --- Resume: skip frames whose outputs carry the same key.
    let done: Vec<bool> = tasks
        .par_iter()
        .map(|t| {
            stored_key(&t.out).as_deref() == Some(t.key.as_str())
                && t.mask
                    .as_ref()
                    .is_none_or(|m| stored_key(m).as_deref() == Some(t.key.as_str()))
        })
        .collect();
    counts.resumed = done.iter().filter(|d| **d).count();
    let todo: Vec<&Task> = tasks
        .iter()
        .zip(&done)
        .filter(|(_, d)| !**d)
        .map(|(t, _)| t)
        .collect();

    let spec = model.face_spec();
    let chunk = chunk_size(model, &todo, opts.batch);
    progress.start("merge frames", Some(todo.len() as u64));
    let result = (|| -> Result<()> {
        for group in todo.chunks(chunk) {
            let (merged, copied, faces) =
                run_chunk(model, xseg, group, spec, opts.batch, progress)?;
            counts.merged += merged;
            counts.copied += copied;
            counts.faces += faces;
        }
        Ok(())
    })();
    progress.finish();
    result?;
    let m = manifest("complete", &counts);
    write_manifests(&m)?;
    Ok(MergeReport {
        counts,
        multi_face_frames: align.frames.values().filter(|f| f.len() > 1).count(),
        ignored_aligned: align.ignored.clone(),
        frames_with_own_config: own_configs,
        manifest: opts.output.join(crate::provenance::MANIFEST_FILE),
    })
}

/// Decoded frames a chunk may hold (each frame is 12 bytes per pixel as read).
const CHUNK_BYTES: usize = 1 << 30;

/// Frames per chunk: one round of full network calls ([`MergeModel::round_size`]: `batch`
/// faces on every CPU worker; with 4 faces per call instead of 8, Quick96 predicted ~20 %
/// fewer faces per second), and at least two frames per thread for the parallel reading and
/// merging, but no more than [`CHUNK_BYTES`] of frames the size of the first one.
fn chunk_size(model: &MergeModel, todo: &[&Task], batch: usize) -> usize {
    let floor = 2 * rayon::current_num_threads();
    let frame_bytes = todo
        .first()
        .and_then(|t| image::image_dimensions(t.path).ok())
        .map_or(usize::MAX, |(w, h)| (w as usize * h as usize * 12).max(1));
    model
        .round_size(batch)
        .min(CHUNK_BYTES / frame_bytes)
        .max(floor)
}

/// Reads, predicts, merges and writes one chunk of frames; returns (merged, copied, faces).
fn run_chunk(
    model: &MergeModel,
    xseg: Option<&XSegMasker>,
    group: &[&Task],
    spec: FaceSpec,
    batch: usize,
    progress: &dyn Progress,
) -> Result<(usize, usize, usize)> {
    // A. Read frames and cut faces, in parallel.
    let loaded: Vec<Loaded> = group
        .par_iter()
        .map(|t| load(t, spec).map_err(|e| e.in_frame(&t.name)))
        .collect::<Result<_>>()?;

    // B. Predict every face of the chunk.
    let mut inputs: Vec<&Image> = Vec::new();
    for l in &loaded {
        if let Loaded::Faces { prepared, .. } = l {
            inputs.extend(prepared.iter().map(|p| &p.dst_face));
        }
    }
    // Only the learned masks that some frame's mask mode uses (each is a mask decoder).
    let masks = group
        .iter()
        .filter(|t| !t.faces.is_empty())
        .map(|t| t.config.mask_mode.learned_masks())
        .fold(LearnedMasks::NONE, LearnedMasks::union);
    let mut preds = if inputs.is_empty() {
        Vec::new()
    } else {
        model.predict(&inputs, batch, masks)?
    };
    if let Some(x) = xseg {
        add_xseg(x, group, &loaded, &mut preds, spec.resolution, batch)?;
    }

    // C. Merge and write, in parallel.
    let mut offsets = Vec::with_capacity(group.len());
    let mut at = 0;
    for l in &loaded {
        offsets.push(at);
        if let Loaded::Faces { prepared, .. } = l {
            at += prepared.len();
        }
    }
    let results: Vec<(usize, usize, usize)> = group
        .par_iter()
        .zip(loaded.par_iter())
        .zip(offsets.par_iter())
        .map(|((t, l), &off)| {
            let r = finish(t, l, &preds, off, spec).map_err(|e| e.in_frame(&t.name));
            progress.inc(1);
            r
        })
        .collect::<Result<_>>()?;
    Ok(results
        .into_iter()
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2)))
}

fn load(t: &Task, spec: FaceSpec) -> Result<Loaded> {
    if t.faces.is_empty() {
        if t.config.mode == Mode::RawPredict {
            return Ok(Loaded::RawEmpty);
        }
        return Ok(Loaded::Copy(read_frame(t.path)?));
    }
    let frame = frame_to_bgr(&read_frame(t.path)?)?;
    let prepared = t
        .faces
        .iter()
        .map(|lm| prepare_face(&frame, lm, spec))
        .collect::<Result<Vec<_>>>()?;
    let xseg_dst = t
        .faces
        .iter()
        .map(|lm| {
            t.config
                .mask_mode
                .needs_xseg_dst()
                .then(|| xseg_dst_input(&frame, lm, spec))
                .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Loaded::Faces {
        frame,
        prepared,
        xseg_dst,
    })
}

/// Runs XSeg on the faces whose mask mode needs it and stores the masks in `preds`.
fn add_xseg(
    x: &XSegMasker,
    group: &[&Task],
    loaded: &[Loaded],
    preds: &mut [Prediction],
    r: usize,
    batch: usize,
) -> Result<()> {
    let mut dst_in: Vec<(usize, &Image)> = Vec::new();
    let mut prd_idx: Vec<usize> = Vec::new();
    let mut i = 0;
    for (t, l) in group.iter().zip(loaded) {
        if let Loaded::Faces { xseg_dst, .. } = l {
            for xd in xseg_dst {
                if let Some(img) = xd {
                    dst_in.push((i, img));
                }
                if t.config.mask_mode.needs_xseg_prd() {
                    prd_idx.push(i);
                }
                i += 1;
            }
        }
    }
    if !dst_in.is_empty() {
        let imgs: Vec<&Image> = dst_in.iter().map(|(_, img)| *img).collect();
        let masks = x.extract(&imgs, batch)?;
        for ((k, _), m) in dst_in.iter().zip(masks) {
            if let Some(p) = preds.get_mut(*k) {
                p.xseg_dst = Some(xseg_to_face_size(&m, r)?);
            }
        }
    }
    if !prd_idx.is_empty() {
        let inputs = prd_idx
            .iter()
            .filter_map(|&k| preds.get(k))
            .map(|p| xseg_prd_input(&p.face))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Image> = inputs.iter().collect();
        let masks = x.extract(&refs, batch)?;
        for (&k, m) in prd_idx.iter().zip(masks) {
            if let Some(p) = preds.get_mut(k) {
                p.xseg_prd = Some(xseg_to_face_size(&m, r)?);
            }
        }
    }
    Ok(())
}

/// Merges one loaded frame and writes its outputs; returns (merged, copied, faces).
fn finish(
    t: &Task,
    l: &Loaded,
    preds: &[Prediction],
    off: usize,
    spec: FaceSpec,
) -> Result<(usize, usize, usize)> {
    let software = format!("dfl-rs {} merge", env!("CARGO_PKG_VERSION"));
    let write = |w: usize, h: usize, layout: Layout, px: &[u8], mask: Option<&[u8]>, note: &str| {
        let texts = [
            ("Software", software.as_str()),
            (NOTE_CHUNK, note),
            (KEY_CHUNK, t.key.as_str()),
        ];
        if let (Some(mp), Some(mask)) = (&t.mask, mask) {
            write_replacing(mp, &encode_png(w, h, Layout::Gray, mask, &texts)?)?;
        }
        write_replacing(&t.out, &encode_png(w, h, layout, px, &texts)?)
    };
    let copied_note = "Frame without a face, copied unchanged by dfl-rs merge";
    match l {
        Loaded::RawEmpty => {
            let r = spec.resolution;
            let zeros = vec![0u8; r * r];
            write(
                r,
                r,
                Layout::Rgb,
                &vec![0u8; r * r * 3],
                Some(&zeros),
                copied_note,
            )?;
            Ok((0, 1, 0))
        }
        Loaded::Copy(img) => {
            let (layout, px) = as_read(img);
            let (w, h) = (img.width() as usize, img.height() as usize);
            write(w, h, layout, &px, Some(&vec![0u8; w * h]), copied_note)?;
            Ok((0, 1, 0))
        }
        Loaded::Faces {
            frame, prepared, ..
        } => {
            let results = prepared
                .iter()
                .enumerate()
                .map(|(k, prep)| {
                    let pred = preds.get(off + k).ok_or_else(|| {
                        MergeError::Invalid("the model returned fewer faces than given".into())
                    })?;
                    merge_face(
                        frame,
                        prep,
                        pred,
                        t.config,
                        spec,
                        t.motion,
                        t.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        Region::FaceRoi,
                    )
                })
                .collect::<Result<Vec<FaceResult>>>()?;
            let Merged { image, mask } = combine(frame, &results)?;
            write(
                image.width(),
                image.height(),
                Layout::Rgb,
                &bgr_to_rgb_bytes(&image),
                Some(&mask.to_u8(Quantize::Round)),
                "Contains a synthetic face made with dfl-rs (face swap); see provenance.json",
            )?;
            Ok((1, 0, prepared.len()))
        }
    }
}
