//! Previews and the loss plot.
//!
//! Preview layout is DFL's (§6.4): one row per sample, columns target src, pred src→src,
//! target dst, pred dst→dst, pred src→dst; the masked preview multiplies them by the masks
//! (src·srcm, SS, dst·dstm, DD·DDM, SD·DDM·SDM; for HEAD only SDM). Predictions are made from
//! the unwarped targets. Up to `min(4, batch, 800/R)` rows.
//!
//! The loss plot is DFL's graph: each pixel column spans an equal range of iterations and
//! draws the min..max of each loss there (src in DFL's first hue, dst in its second), the
//! scale tops out at twice the mean of the last 80 % of the history; option-change markers
//! are grey vertical lines.

use crate::error::{Result, TrainError};
use crate::model_dir::write_atomic;
use dfl_image::{Image, Quantize};
use image::{Rgb, RgbImage};
use std::path::Path;

/// The fixed faces previews are computed from: target images and masks, HWC.
#[derive(Debug, Clone)]
pub struct PreviewSamples {
    /// src targets (BGR).
    pub src: Vec<Image>,
    /// src full-face masks (1 channel).
    pub src_mask: Vec<Image>,
    /// dst targets (BGR).
    pub dst: Vec<Image>,
    /// dst full-face masks.
    pub dst_mask: Vec<Image>,
}

/// One row of predictions for a sample, HWC: (image, mask) for src→src, dst→dst, src→dst.
#[derive(Debug, Clone)]
pub struct PredRow {
    /// src→src reconstruction and its mask.
    pub ss: (Image, Image),
    /// dst→dst reconstruction and its mask.
    pub dd: (Image, Image),
    /// src→dst swap and its mask.
    pub sd: (Image, Image),
}

/// DFL's number of preview rows.
pub fn preview_rows(batch: usize, resolution: usize) -> usize {
    4.min(batch).min((800 / resolution.max(1)).max(1))
}

fn err(e: dfl_image::ImageError) -> TrainError {
    TrainError::Pipeline(format!("preview: {e}"))
}

/// CHW slice of sample `i` of a batch buffer as an HWC image.
pub fn chw_to_image(data: &[f32], i: usize, c: usize, r: usize) -> Result<Image> {
    let n = c * r * r;
    let s = data
        .get(i * n..(i + 1) * n)
        .ok_or_else(|| TrainError::Pipeline(format!("preview: sample {i} out of range")))?;
    Image::from_fn(r, r, c, |x, y, ch| s[ch * r * r + y * r + x]).map_err(err)
}

fn mul(a: &Image, m: &Image) -> Image {
    let c = a.channels();
    let mut out = a.clone();
    for (p, &mv) in out.data_mut().chunks_exact_mut(c).zip(m.data()) {
        for v in p {
            *v *= mv;
        }
    }
    out
}

fn mul_masks(a: &Image, b: &Image) -> Image {
    let mut out = a.clone();
    for (v, &w) in out.data_mut().iter_mut().zip(b.data()) {
        *v *= w;
    }
    out
}

/// Lays out rows of equal-size 3-channel tiles into one image.
fn grid(rows: &[Vec<Image>]) -> Result<Image> {
    let r = rows
        .first()
        .and_then(|row| row.first())
        .map(Image::width)
        .ok_or_else(|| TrainError::Pipeline("preview: no rows".into()))?;
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Image::zeros(cols * r, rows.len() * r, 3).map_err(err)?;
    for (y, row) in rows.iter().enumerate() {
        for (x, tile) in row.iter().enumerate() {
            out.paste(tile, x * r, y * r).map_err(err)?;
        }
    }
    Ok(out)
}

/// The plain and the masked preview (DFL's "SAEHD" and "SAEHD masked"). `head` selects
/// DFL's HEAD rule for the swap's mask.
pub fn compose(samples: &PreviewSamples, preds: &[PredRow], head: bool) -> Result<(Image, Image)> {
    let mut plain = Vec::new();
    let mut masked = Vec::new();
    for (i, p) in preds.iter().enumerate() {
        let (s, sm, d, dm) = (
            &samples.src[i],
            &samples.src_mask[i],
            &samples.dst[i],
            &samples.dst_mask[i],
        );
        plain.push(vec![
            s.clone(),
            p.ss.0.clone(),
            d.clone(),
            p.dd.0.clone(),
            p.sd.0.clone(),
        ]);
        let sd_mask = if head {
            p.sd.1.clone()
        } else {
            mul_masks(&p.dd.1, &p.sd.1)
        };
        masked.push(vec![
            mul(s, sm),
            p.ss.0.clone(),
            mul(d, dm),
            mul(&p.dd.0, &p.dd.1),
            mul(&p.sd.0, &sd_mask),
        ]);
    }
    Ok((grid(&plain)?, grid(&masked)?))
}

/// BGR float image to 8-bit RGB.
pub fn to_rgb8(img: &Image) -> Result<RgbImage> {
    let mut c = img.clone();
    c.clip(0.0, 1.0);
    c.bgr_to_rgb8(Quantize::Round).map_err(err)
}

/// Encodes as PNG and writes atomically.
pub fn save_png(path: &Path, img: &RgbImage) -> Result<()> {
    let mut buf = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(|e| TrainError::bad_file(path, format!("PNG encode: {e}")))?;
    write_atomic(path, &buf)
}

/// Encodes as JPEG (quality 95) and writes atomically.
pub fn save_jpeg(path: &Path, img: &RgbImage) -> Result<()> {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95)
        .encode_image(img)
        .map_err(|e| TrainError::bad_file(path, format!("JPEG encode: {e}")))?;
    write_atomic(path, &buf)
}

/// DFL's loss colours: `hsv_to_rgb(i / n, 0.5, 1.0)` for loss i of n (src pink-red, dst
/// cyan).
fn loss_colour(i: usize, n: usize) -> Rgb<u8> {
    let h = i as f32 / n as f32 * 6.0;
    let (s, v) = (0.5f32, 1.0f32);
    let k = |n: f32| {
        let k = (n + h) % 6.0;
        v - v * s * k.min(4.0 - k).clamp(0.0, 1.0)
    };
    let q = |x: f32| (x * 255.0).round() as u8;
    Rgb([q(k(5.0)), q(k(3.0)), q(k(1.0))])
}

/// DFL's loss graph (see the module docs) as a `width x height` RGB image; `markers` are
/// iterations drawn as grey lines.
pub fn loss_graph(history: &[[f32; 2]], markers: &[u64], width: usize, height: usize) -> RgbImage {
    let (w, h) = (width.max(1) as u32, height.max(2) as u32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([25, 25, 25]));
    let n = history.len();
    if n == 0 {
        return img;
    }
    let tail = &history[n / 5..];
    let finite: Vec<f32> = tail
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let mean = if finite.is_empty() {
        1.0
    } else {
        finite.iter().sum::<f32>() / finite.len() as f32
    };
    let top = (2.0 * mean).max(1e-6);
    let y_of = |v: f32| -> u32 {
        let t = (v / top).clamp(0.0, 1.0);
        ((1.0 - t) * (h - 1) as f32).round() as u32
    };
    for &m in markers {
        if (m as usize) < n {
            let x = (m as usize * w as usize / n) as u32;
            for y in (0..h).step_by(2) {
                img.put_pixel(x.min(w - 1), y, Rgb([110, 110, 110]));
            }
        }
    }
    for x in 0..w as usize {
        let a = x * n / w as usize;
        let b = ((x + 1) * n / w as usize).max(a + 1).min(n);
        if a >= n {
            break;
        }
        for k in 0..2 {
            let vals = history[a..b].iter().map(|p| p[k]).filter(|v| v.is_finite());
            let (lo, hi) = vals.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            });
            if !lo.is_finite() {
                continue;
            }
            let (y0, y1) = (y_of(hi), y_of(lo));
            for y in y0..=y1 {
                img.put_pixel(x as u32, y, loss_colour(k, 2));
            }
        }
    }
    img
}

/// `graph` on top of `preview` (DFL's preview-history image).
pub fn stack(graph: &RgbImage, preview: &RgbImage) -> RgbImage {
    let w = graph.width().max(preview.width());
    let mut out = RgbImage::new(w, graph.height() + preview.height());
    for (x, y, p) in graph.enumerate_pixels() {
        out.put_pixel(x, y, *p);
    }
    for (x, y, p) in preview.enumerate_pixels() {
        out.put_pixel(x, y + graph.height(), *p);
    }
    out
}

/// Stores preview samples as one PNG: per row, src target, src mask, dst target, dst mask.
pub fn save_samples(path: &Path, s: &PreviewSamples) -> Result<()> {
    let grey = |m: &Image| -> Result<Image> {
        Image::from_channels(&[m.clone(), m.clone(), m.clone()]).map_err(err)
    };
    let mut rows = Vec::new();
    for i in 0..s.src.len() {
        rows.push(vec![
            s.src[i].clone(),
            grey(&s.src_mask[i])?,
            s.dst[i].clone(),
            grey(&s.dst_mask[i])?,
        ]);
    }
    save_png(path, &to_rgb8(&grid(&rows)?)?)
}

/// Reads samples written by [`save_samples`]; `None` when absent or not of `resolution`.
pub fn load_samples(path: &Path, resolution: usize) -> Result<Option<PreviewSamples>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    let rgb = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| TrainError::bad_file(path, format!("not a PNG: {e}")))?
        .into_rgb8();
    let r = resolution;
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if r == 0 || w != 4 * r || h % r != 0 || h == 0 {
        return Ok(None);
    }
    let all = Image::bgr_from_rgb8(&rgb).map_err(err)?;
    let tile = |col: usize, row: usize| all.crop(col * r, row * r, r, r).map_err(err);
    let mut s = PreviewSamples {
        src: Vec::new(),
        src_mask: Vec::new(),
        dst: Vec::new(),
        dst_mask: Vec::new(),
    };
    for row in 0..h / r {
        s.src.push(tile(0, row)?);
        s.src_mask.push(tile(1, row)?.channel(0).map_err(err)?);
        s.dst.push(tile(2, row)?);
        s.dst_mask.push(tile(3, row)?.channel(0).map_err(err)?);
    }
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_graph_scales_and_marks() {
        let h: Vec<[f32; 2]> = (0..200)
            .map(|i| [1.0 - i as f32 / 400.0, 0.8 - i as f32 / 500.0])
            .collect();
        let g = loss_graph(&h, &[100], 100, 50);
        assert_eq!((g.width(), g.height()), (100, 50));
        // The marker column is grey at even rows.
        assert_eq!(g.get_pixel(50, 0), &Rgb([110, 110, 110]));
        // The first column shows src loss ~1.0 below the top (scale = 2 x mean ~ 1.4).
        let lit = (0..50)
            .find(|&y| g.get_pixel(0, y) == &loss_colour(0, 2))
            .unwrap();
        assert!((10..25).contains(&lit), "{lit}");
        assert_eq!(loss_colour(0, 2), Rgb([255, 128, 128]));
        assert_eq!(loss_colour(1, 2), Rgb([128, 255, 255]));
    }

    #[test]
    fn samples_roundtrip_through_png() {
        let r = 8;
        let img = |v: f32| Image::filled(r, r, 3, v).unwrap();
        let m = |v: f32| Image::filled(r, r, 1, v).unwrap();
        let s = PreviewSamples {
            src: vec![img(0.2), img(0.4)],
            src_mask: vec![m(1.0), m(0.0)],
            dst: vec![img(0.6), img(0.8)],
            dst_mask: vec![m(0.0), m(1.0)],
        };
        let p = std::env::temp_dir().join(format!("dfl-train-ps-{}.png", std::process::id()));
        save_samples(&p, &s).unwrap();
        let back = load_samples(&p, r).unwrap().unwrap();
        assert_eq!(back.src.len(), 2);
        assert!((back.dst[1].get(3, 3, 1) - 0.8).abs() < 1.0 / 255.0);
        assert_eq!(back.dst_mask[1].get(0, 0, 0), 1.0);
        assert!(load_samples(&p, 16).unwrap().is_none());
        std::fs::remove_file(&p).unwrap();
    }
}
