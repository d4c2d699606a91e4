//! Bench group `faceset`: reading the metadata of many aligned faces, next to a plain JPEG
//! header parse (SOI to SOF dimensions) of the same files.

use super::{Better, Ctx, Figure, median_time};
use crate::progress::Ui;
use anyhow::{Context, Result, bail};
use dfl_faceset::pickle::Value;
use dfl_faceset::{FaceMeta, GrayMask, PolyType, SegPoly, XsegMask, embed_meta, read_meta};
use dfl_geom::{Affine, FaceType};
use image::ImageEncoder;
use std::path::{Path, PathBuf};

/// Files of the full run (the figure); `--quick` uses a tenth.
const FILES: usize = 10_000;

/// The reference: read the file and walk its markers to the frame header, as any image
/// library does to learn the dimensions.
fn jpeg_dimensions(path: &Path) -> Result<(u16, u16)> {
    let b = std::fs::read(path)?;
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            bail!("{}: bad marker", path.display());
        }
        let m = b[i + 1];
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if (0xC0..=0xCF).contains(&m) && !matches!(m, 0xC4 | 0xC8 | 0xCC) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]);
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]);
            return Ok((w, h));
        }
        i += 2 + len;
    }
    bail!("{}: no SOF", path.display())
}

/// A realistic aligned face: 256x256 JPEG (quality 90), all of DFL's keys; every fourth
/// file also carries XSeg polygons and a 256x256 mask, as labelled facesets do.
fn make_faces(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let img = image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([(x ^ y) as u8, (x * 3) as u8, (y * 5) as u8])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).write_image(
        img.as_raw(),
        256,
        256,
        image::ExtendedColorType::Rgb8,
    )?;
    let mut mask = vec![0u8; 256 * 256];
    for y in 40..220 {
        mask[y * 256 + 50..y * 256 + 206].fill(255);
    }
    let mask = XsegMask::encode(&GrayMask {
        width: 256,
        height: 256,
        data: mask,
    })?;
    let mut paths = Vec::with_capacity(n);
    for k in 0..n {
        let f = k as f64 * 0.001;
        let lm: Vec<[f64; 2]> = (0..68)
            .map(|i| [40.0 + i as f64 * 2.5 + f, 60.0 + (i % 17) as f64 * 8.0 - f])
            .collect();
        let labelled = k % 4 == 0;
        let meta = FaceMeta {
            face_type: Some(FaceType::WholeFace),
            landmarks: Some(lm.clone()),
            source_filename: Some(format!("{k:05}.png")),
            source_rect: Some([100, 120, 300, 340]),
            source_landmarks: Some(
                lm.iter()
                    .map(|p| [p[0] * 3.0 + 90.0, p[1] * 3.0 + 70.0])
                    .collect(),
            ),
            image_to_face_mat: Some(Affine::new(0.33, 0.01, -30.0, -0.01, 0.33, -23.0)),
            seg_ie_polys: labelled.then(|| {
                vec![SegPoly {
                    kind: PolyType::Include,
                    pts: (0..24)
                        .map(|i| [i as f32 * 10.0, 128.0 + (i % 5) as f32])
                        .collect(),
                }]
            }),
            xseg_mask: labelled.then(|| mask.clone()),
            eyebrows_expand_mod: None,
            extra: Vec::<(String, Value)>::new(),
        };
        let path = dir.join(format!("{k:05}_0.jpg"));
        std::fs::write(&path, embed_meta(&jpeg, &meta)?)?;
        paths.push(path);
    }
    Ok(paths)
}

pub fn run(ctx: &Ctx, _ui: &Ui) -> Result<Vec<Figure>> {
    let n = if ctx.quick { FILES / 10 } else { FILES };
    let runs = if ctx.quick { 1 } else { 3 };
    let paths = make_faces(&ctx.scratch.join("faceset"), n).context("generating aligned faces")?;

    let ours = median_time(runs, || {
        for p in &paths {
            let m = read_meta(p)?;
            std::hint::black_box(&m);
        }
        Ok(())
    })?;
    let reference = median_time(runs, || {
        for p in &paths {
            std::hint::black_box(jpeg_dimensions(p)?);
        }
        Ok(())
    })?;
    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();

    // Packing: our pak (configs from every file's metadata, streamed write, fsync, read-back
    // check) against concatenating the same bytes into one fsynced file.
    let pack_n = n.min(2000);
    let pack_dir = ctx.scratch.join("faceset-pack");
    std::fs::create_dir_all(&pack_dir)?;
    for p in &paths[..pack_n] {
        if let Some(name) = p.file_name() {
            std::fs::rename(p, pack_dir.join(name))?;
        }
    }
    let opts = dfl_faceset::ops::PackOptions {
        overwrite: true,
        ..Default::default()
    };
    let pack = median_time(runs, || {
        dfl_faceset::ops::pack(&pack_dir, opts, &dfl_core::NoProgress)?;
        Ok(())
    })?;
    let concat_path = ctx.scratch.join("concat.bin");
    let mut packed: Vec<PathBuf> = dfl_faceset::list_aligned(&pack_dir)?;
    packed.sort();
    let concat = median_time(runs, || {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&concat_path)?);
        for p in &packed {
            f.write_all(&std::fs::read(p)?)?;
        }
        f.into_inner()?.sync_all()?;
        Ok(())
    })?;
    Ok(vec![
        Figure {
            name: format!("faceset: metadata read, {n} aligned faces"),
            unit: "files/s",
            ours: rate(ours),
            better: Better::Higher,
            reference: Some(("JPEG header parse (SOI..SOF)".into(), rate(reference))),
            goal: None,
        },
        Figure {
            name: format!("faceset: metadata read, {n} aligned faces (target)"),
            unit: "files/s",
            ours: rate(ours),
            better: Better::Higher,
            reference: None,
            goal: Some(5000.0),
        },
        Figure {
            name: format!("faceset: pack {pack_n} aligned faces into faceset.pak"),
            unit: "ms",
            ours: pack.as_secs_f64() * 1e3,
            better: Better::Lower,
            reference: Some((
                "concatenate the files + fsync".into(),
                concat.as_secs_f64() * 1e3,
            )),
            goal: None,
        },
    ])
}
