//! Bench group `merge`: merged frames per second.
//!
//! - 1280x720 frames, one face each, overlay + rct with `learned-prd*learned-dst` masks and
//!   SAEHD at DFL's defaults (liae-ud 128): the whole `merge_folder` run (PNG read, model
//!   inference, merge, PNG write, 2 cores), and the merge alone with the predictions computed
//!   beforehand (prepare, merge, combine, PNG encode, in parallel over frames). The merge
//!   alone is also run through the plain full-frame reference path ([`Region::FullFrame`]) in
//!   the same run.
//! - DFL's own setting: Quick96, 512x512 frames, overlay, `dst` mask, whole run. The
//!   reference is DFL 2.0's merger on a 2-core machine (2 workers): 12.6-14.2 frames/s after
//!   7-8 s of start-up, **measured elsewhere** (issue 8; DFL needs Python and TensorFlow and
//!   is not rerun here); the upper end is used.
//!
//! The models are freshly initialised: inference costs the same as a trained model's. Each
//! model's first prediction (one-time costs: transformed kernels, scratch buffers) is timed
//! on its own before the whole run, as DFL's figure excludes its start-up.

use super::{Better, Ctx, Figure};
use crate::progress::Ui;
use anyhow::{Context, Result};
use dfl_core::Progress;
use dfl_faceset::{FaceMeta, embed_meta};
use dfl_geom::{FaceType, Pt};
use dfl_image::{Image, Quantize};
use dfl_merge::frames::{Layout, bgr_to_rgb_bytes, encode_png};
use dfl_merge::{
    ColorTransfer, MaskMode, MergeModel, MergeOptions, MergerConfig, Mode, PreparedFace, Region,
    combine, merge_face, prepare_face,
};
use dfl_nn::{DeviceSpec, Quick96, Saehd, SaehdOptions};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Frames of the Quick96 whole run: DFL's figure is its merger's steady rate, and in a short
/// clip the first chunk's reads and the last chunk's writes, which nothing overlaps, weigh
/// more (48 frames were only three chunks of 16, one and a half of 32).
const Q96_FRAMES: usize = 144;

/// Faces per network call, the merger's default (`BATCH` overrides it for A/B runs).
fn batch() -> usize {
    std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(dfl_merge::DEFAULT_BATCH)
}

/// DFL 2.0's merger, Quick96, 512x512, overlay, dst mask, 2 workers: 12.6-14.2 frames/s.
const DFL_QUICK96_FPS: f64 = 14.2;
const DFL: &str = "DFL 2.0 merger, 2 workers (measured elsewhere)";

/// 68 landmarks of a frontal face centred at (cx, cy), about `size` pixels tall.
fn landmarks(cx: f64, cy: f64, size: f64) -> Vec<Pt> {
    let s = size / 150.0;
    dfl_geom::landmarks::MODEL_3D_68
        .iter()
        .map(|p| [cx + p[0] * s, cy + p[1] * s])
        .collect()
}

/// A frame with a gradient background and a face-coloured ellipse with eyes under `lm`;
/// `k` shifts the colours so frames differ.
fn frame(w: usize, h: usize, lm: &[Pt], k: usize) -> Result<Image> {
    let (cx, cy) = (lm[30][0], lm[30][1]);
    let (rx, ry) = ((lm[16][0] - lm[0][0]) / 2.0, (lm[8][1] - lm[19][1]) / 1.6);
    let shift = (k % 7) as f64 * 0.02;
    Ok(Image::from_fn(w, h, 3, |x, y, c| {
        let (fx, fy) = (x as f64, y as f64);
        let mut v = [
            0.2 + 0.5 * fx / w as f64,
            0.3 + shift,
            0.6 - 0.4 * fy / h as f64,
        ][c];
        if ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2) <= 1.0 {
            v = [0.45, 0.55, 0.8][c] - shift;
        }
        for eye in [36usize, 42] {
            let ex = (lm[eye][0] + lm[eye + 3][0]) / 2.0;
            if (fx - ex).hypot(fy - lm[eye][1]) < rx * 0.15 {
                v = 0.1;
            }
        }
        v as f32
    })?)
}

/// `n` frames of `w x h` with one face each, written as PNG frames plus aligned files.
struct Clip {
    frames: PathBuf,
    aligned: PathBuf,
    images: Vec<Image>,
    faces: Vec<Vec<Pt>>,
}

fn make_clip(dir: &Path, w: usize, h: usize, face: f64, n: usize) -> Result<Clip> {
    let frames = dir.join("frames");
    let aligned = frames.join("aligned");
    std::fs::create_dir_all(&aligned)?;
    let mut images = Vec::new();
    let mut faces = Vec::new();
    for i in 0..n {
        // A slow drift, like a camera pan.
        let lm = landmarks(
            w as f64 / 2.0 + 3.0 * i as f64,
            h as f64 / 2.0 - face * 0.05,
            face,
        );
        let img = frame(w, h, &lm, i)?;
        let name = format!("{:05}.png", i + 1);
        img.bgr_to_rgb8(Quantize::Round)?
            .save(frames.join(&name))
            .with_context(|| format!("writing bench frame {name}"))?;
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&image::GrayImage::from_pixel(16, 16, image::Luma([128])))?;
        let meta = FaceMeta {
            face_type: Some(FaceType::WholeFace),
            landmarks: Some(lm.clone()),
            source_filename: Some(name.clone()),
            source_landmarks: Some(lm.clone()),
            ..FaceMeta::default()
        };
        std::fs::write(
            aligned.join(format!("{:05}_0.jpg", i + 1)),
            embed_meta(&jpeg, &meta)?,
        )?;
        images.push(img);
        faces.push(lm);
    }
    Ok(Clip {
        frames,
        aligned,
        images,
        faces,
    })
}

/// Frames/s of a whole `merge_folder` run (inference, reading and writing included).
fn whole_run(model: &MergeModel, clip: &Clip, out: &Path, cfg: &MergerConfig) -> Result<f64> {
    let _ = std::fs::remove_dir_all(out);
    let opts = MergeOptions {
        input: clip.frames.clone(),
        aligned: clip.aligned.clone(),
        output: out.to_path_buf(),
        mask_output: None,
        config: Some((cfg.clone(), "bench".into())),
        shard: dfl_core::Shard::ALL,
        batch: batch(),
    };
    let t = Instant::now();
    let r = dfl_merge::merge_folder(model, None, &opts, &dfl_core::NoProgress)?;
    Ok(r.counts.merged as f64 / t.elapsed().as_secs_f64())
}

/// Every frame's face of a clip prepared for the model (the dst crop is the network input).
fn prepared(model: &MergeModel, clip: &Clip) -> Result<Vec<PreparedFace>> {
    let spec = model.face_spec();
    Ok(clip
        .images
        .iter()
        .zip(&clip.faces)
        .map(|(img, lm)| prepare_face(img, lm, spec))
        .collect::<dfl_merge::Result<Vec<_>>>()?)
}

/// Seconds of a fresh model's first prediction (one call's faces): the one-time costs (transformed
/// kernels, scratch buffers) that the timed runs below then no longer pay, as DFL's figure
/// excludes its own start-up.
fn warm_up(model: &MergeModel, clip: &Clip, cfg: &MergerConfig) -> Result<f64> {
    let faces = prepared(model, clip)?;
    let inputs: Vec<&Image> = faces.iter().take(batch()).map(|p| &p.dst_face).collect();
    let t = Instant::now();
    model.predict(&inputs, batch(), cfg.mask_mode.learned_masks())?;
    Ok(t.elapsed().as_secs_f64())
}

/// Faces/s of the model's prediction alone (the merger's batches, face crops prepared beforehand,
/// the learned masks the mask mode uses).
fn inference_only(model: &MergeModel, clip: &Clip, cfg: &MergerConfig) -> Result<f64> {
    let faces = prepared(model, clip)?;
    let inputs: Vec<&Image> = faces.iter().map(|p| &p.dst_face).collect();
    let t = Instant::now();
    let preds = model.predict(&inputs, batch(), cfg.mask_mode.learned_masks())?;
    Ok(preds.len() as f64 / t.elapsed().as_secs_f64())
}

/// Frames/s of the merge alone: predictions computed beforehand, then prepare, merge,
/// combine and PNG encode of every frame in parallel.
fn merge_only(
    model: &MergeModel,
    clip: &Clip,
    cfg: &MergerConfig,
    region: Region,
    rounds: usize,
) -> Result<f64> {
    let spec = model.face_spec();
    let faces = prepared(model, clip)?;
    let inputs: Vec<&Image> = faces.iter().map(|p| &p.dst_face).collect();
    let preds = model.predict(&inputs, batch(), cfg.mask_mode.learned_masks())?;
    let run = || -> Result<()> {
        clip.images
            .par_iter()
            .zip(&clip.faces)
            .zip(&preds)
            .enumerate()
            .try_for_each(|(i, ((img, lm), pred))| -> Result<()> {
                let prep = prepare_face(img, lm, spec)?;
                let r = merge_face(img, &prep, pred, cfg, spec, None, i as u64, region)?;
                let merged = combine(img, &[r])?;
                let png = encode_png(
                    img.width(),
                    img.height(),
                    Layout::Rgb,
                    &bgr_to_rgb_bytes(&merged.image),
                    &[],
                )?;
                std::hint::black_box(png);
                Ok(())
            })
    };
    run()?;
    let t = Instant::now();
    for _ in 0..rounds {
        run()?;
    }
    Ok((rounds * clip.images.len()) as f64 / t.elapsed().as_secs_f64())
}

pub fn run(ctx: &Ctx, ui: &Ui) -> Result<Vec<Figure>> {
    let (n_hd, n_q96, rounds) = if ctx.quick {
        (4, 8, 1)
    } else {
        (16, Q96_FRAMES, 3)
    };
    let progress = ui.progress();
    progress.start("merge bench", Some(5));
    let dir = ctx.scratch.join("merge");
    let mut figures = Vec::new();

    // 1280x720, SAEHD at DFL's defaults, overlay + rct, learned masks.
    let saehd = Saehd::new(SaehdOptions::default(), DeviceSpec::Cpu, 0)?;
    let model = MergeModel::from_saehd(saehd, &dir.join("saehd"))?;
    let hd = make_clip(&dir.join("hd"), 1280, 720, 260.0, n_hd)?;
    let cfg = MergerConfig {
        mode: Mode::Overlay,
        mask_mode: MaskMode::LearnedPrdDst,
        color_transfer_mode: ColorTransfer::Rct,
        ..MergerConfig::default()
    };
    progress.inc(1);
    let hd_warm = warm_up(&model, &hd, &cfg)?;
    let with_inference = whole_run(&model, &hd, &dir.join("hd-out"), &cfg)?;
    progress.inc(1);
    let hd_inf = inference_only(&model, &hd, &cfg)?;
    let fast = merge_only(&model, &hd, &cfg, Region::FaceRoi, rounds)?;
    let full = merge_only(&model, &hd, &cfg, Region::FullFrame, rounds)?;
    progress.inc(1);
    let name = "1280x720, SAEHD liae-ud 128, overlay + rct, learned-prd*learned-dst";
    figures.push(Figure {
        name: format!("{name}: whole run, inference included"),
        unit: "frames/s",
        ours: with_inference,
        better: Better::Higher,
        reference: None,
        goal: None,
    });
    figures.push(Figure {
        name: format!(
            "{name}: first prediction of a fresh model, {} faces (not in the runs)",
            batch()
        ),
        unit: "s",
        ours: hd_warm,
        better: Better::Lower,
        reference: None,
        goal: None,
    });
    figures.push(Figure {
        name: format!(
            "{name}: model inference only (the masks the mask mode uses), batches of {}",
            batch()
        ),
        unit: "faces/s",
        ours: hd_inf,
        better: Better::Higher,
        reference: None,
        goal: None,
    });
    figures.push(Figure {
        name: format!("{name}: merge only, inference excluded (goal: >= 15 frames/s)"),
        unit: "frames/s",
        ours: fast,
        better: Better::Higher,
        reference: None,
        goal: Some(15.0),
    });
    figures.push(Figure {
        name: format!("{name}: merge only, face-region fast path vs full-frame reference"),
        unit: "frames/s",
        ours: fast,
        better: Better::Higher,
        reference: Some(("full-frame reference path".into(), full)),
        goal: Some(1.0),
    });

    // DFL's own setting.
    let q96 = MergeModel::from_quick96(Quick96::new(DeviceSpec::Cpu, 0)?, &dir.join("q96"))?;
    let sq = make_clip(&dir.join("q96"), 512, 512, 200.0, n_q96)?;
    let cfg = MergerConfig {
        mode: Mode::Overlay,
        mask_mode: MaskMode::Dst,
        color_transfer_mode: ColorTransfer::None,
        ..MergerConfig::default()
    };
    progress.inc(1);
    let q_warm = warm_up(&q96, &sq, &cfg)?;
    let q = whole_run(&q96, &sq, &dir.join("q96-out"), &cfg)?;
    let q_inf = inference_only(&q96, &sq, &cfg)?;
    let q_merge = merge_only(&q96, &sq, &cfg, Region::FaceRoi, rounds)?;
    progress.inc(1);
    progress.finish();
    figures.push(Figure {
        name: "512x512, Quick96, overlay, dst mask: whole run, inference included (goal: 2x DFL)"
            .into(),
        unit: "frames/s",
        ours: q,
        better: Better::Higher,
        reference: Some((DFL.into(), DFL_QUICK96_FPS)),
        goal: Some(2.0),
    });
    for (what, v, unit, better) in [
        (
            format!(
                "first prediction of a fresh model, {} faces (not in the whole run)",
                batch()
            ),
            q_warm,
            "s",
            Better::Lower,
        ),
        (
            format!(
                "model inference only (the masks the mask mode uses), batches of {}",
                batch()
            ),
            q_inf,
            "faces/s",
            Better::Higher,
        ),
        (
            "merge only, inference excluded".into(),
            q_merge,
            "frames/s",
            Better::Higher,
        ),
    ] {
        figures.push(Figure {
            name: format!("512x512, Quick96, overlay, dst mask: {what}"),
            unit,
            ours: v,
            better,
            reference: None,
            goal: None,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(figures)
}
