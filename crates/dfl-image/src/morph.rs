//! Erode and dilate with OpenCV's structuring elements (DFL's mask erode uses the ellipse).
//!
//! Pixels outside the image never win (OpenCV's default morphology border), and each kernel
//! row is processed as one horizontal run: a running min/max over the run (van Herk /
//! Gil-Werman for long runs, a direct vectorised loop for short ones). Cost per pixel is
//! proportional to the kernel height, not its area, so DFL's large erode values stay fast.

use crate::error::{ImageError, Result};
use crate::image::Image;
use rayon::prelude::*;

/// Shape of a structuring element (OpenCV's `MORPH_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MorphShape {
    /// Every cell set (`MORPH_RECT`).
    Rect,
    /// Centre row and column (`MORPH_CROSS`).
    Cross,
    /// OpenCV's digital ellipse inscribed in the box (`MORPH_ELLIPSE`).
    Ellipse,
}

/// A binary structuring element with its anchor (OpenCV's `getStructuringElement`, anchor at
/// the centre `(width / 2, height / 2)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuringElement {
    width: usize,
    height: usize,
    cells: Vec<bool>,
}

impl StructuringElement {
    /// `cv2.getStructuringElement(shape, (width, height))`. A 1x1 element is a rectangle, as in
    /// OpenCV.
    pub fn new(shape: MorphShape, width: usize, height: usize) -> Result<Self> {
        if width == 0 || height == 0 || width > 4096 || height > 4096 {
            return Err(ImageError::Parameter {
                op: "StructuringElement::new",
                msg: format!("element size {width}x{height} must be 1..=4096 per side"),
            });
        }
        let shape = if width == 1 && height == 1 {
            MorphShape::Rect
        } else {
            shape
        };
        let (ax, ay) = (width / 2, height / 2);
        let r = (height / 2) as i64;
        let c = (width / 2) as i64;
        let inv_r2 = if r > 0 { 1.0 / (r * r) as f64 } else { 0.0 };
        let mut cells = vec![false; width * height];
        for i in 0..height {
            let (j1, j2) = match shape {
                MorphShape::Rect => (0, width),
                MorphShape::Cross if i == ay => (0, width),
                MorphShape::Cross => (ax, ax + 1),
                MorphShape::Ellipse => {
                    let dy = i as i64 - r;
                    if dy.abs() <= r {
                        let dx = (c as f64 * (((r * r - dy * dy) as f64) * inv_r2).sqrt())
                            .round_ties_even() as i64;
                        (
                            (c - dx).max(0) as usize,
                            ((c + dx + 1).min(width as i64)) as usize,
                        )
                    } else {
                        (0, 0)
                    }
                }
            };
            for j in j1..j2 {
                cells[i * width + j] = true;
            }
        }
        Ok(StructuringElement {
            width,
            height,
            cells,
        })
    }

    /// `cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, height))`.
    pub fn ellipse(width: usize, height: usize) -> Result<Self> {
        Self::new(MorphShape::Ellipse, width, height)
    }

    /// A full `width x height` rectangle.
    pub fn rect(width: usize, height: usize) -> Result<Self> {
        Self::new(MorphShape::Rect, width, height)
    }

    /// Width in cells.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in cells.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Whether cell (x, y) is set.
    pub fn get(&self, x: usize, y: usize) -> bool {
        self.cells[y * self.width + x]
    }

    /// Horizontal runs of set cells as (dy, lo, hi) offsets from the anchor, `lo..=hi`.
    pub(crate) fn runs(&self) -> Vec<(i64, i64, i64)> {
        let (ax, ay) = ((self.width / 2) as i64, (self.height / 2) as i64);
        let mut out = Vec::new();
        for y in 0..self.height {
            let mut x = 0;
            while x < self.width {
                if self.get(x, y) {
                    let start = x;
                    while x < self.width && self.get(x, y) {
                        x += 1;
                    }
                    out.push((y as i64 - ay, start as i64 - ax, x as i64 - 1 - ax));
                } else {
                    x += 1;
                }
            }
        }
        out
    }
}

/// `cv2.erode(src, element, iterations=iterations)`: per-channel minimum over the element;
/// pixels outside the image are ignored. An empty element or 0 iterations returns a copy.
pub fn erode(src: &Image, element: &StructuringElement, iterations: usize) -> Result<Image> {
    morph::<false>(src, element, iterations, "erode")
}

/// `cv2.dilate(src, element, iterations=iterations)`: per-channel maximum over the element;
/// pixels outside the image are ignored.
pub fn dilate(src: &Image, element: &StructuringElement, iterations: usize) -> Result<Image> {
    morph::<true>(src, element, iterations, "dilate")
}

fn morph<const MAX: bool>(
    src: &Image,
    element: &StructuringElement,
    iterations: usize,
    op: &'static str,
) -> Result<Image> {
    src.check_finite(op)?;
    let runs = element.runs();
    let mut cur = src.clone();
    if runs.is_empty() {
        return Ok(cur);
    }
    for _ in 0..iterations {
        cur = morph_once::<MAX>(&cur, &runs);
    }
    Ok(cur)
}

#[inline(always)]
fn pick<const MAX: bool>(a: f32, b: f32) -> f32 {
    if MAX { a.max(b) } else { a.min(b) }
}

fn morph_once<const MAX: bool>(src: &Image, runs: &[(i64, i64, i64)]) -> Image {
    let (w, h, c) = src.shape();
    let identity = if MAX {
        f32::NEG_INFINITY
    } else {
        f32::INFINITY
    };
    let mut out = src.zeros_like();
    out.data_mut()
        .par_chunks_mut(w * c)
        .enumerate()
        .for_each_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(pad, g, hh), (y, orow)| {
                orow.fill(identity);
                for &(dy, lo, hi) in runs {
                    let sy = y as i64 + dy;
                    if sy < 0 || sy >= h as i64 {
                        continue;
                    }
                    let row = src.row(sy as usize);
                    let len = (hi - lo + 1) as usize;
                    // pad[t] = row[t + lo] for t in 0..w + len - 1 (identity outside the row).
                    pad.clear();
                    for t in 0..(w + len - 1) as i64 {
                        let sx = t + lo;
                        if sx >= 0 && sx < w as i64 {
                            let s = sx as usize * c;
                            pad.extend_from_slice(&row[s..s + c]);
                        } else {
                            pad.extend(std::iter::repeat_n(identity, c));
                        }
                    }
                    window_extreme::<MAX>(pad, len, c, orow, g, hh);
                }
            },
        );
    out
}

/// `out[i] = pick(out[i], extreme of pad[i + j * c] for j in 0..len)` for every sample.
fn window_extreme<const MAX: bool>(
    pad: &[f32],
    len: usize,
    c: usize,
    out: &mut [f32],
    g: &mut Vec<f32>,
    hh: &mut Vec<f32>,
) {
    let n = out.len();
    if len <= 24 {
        for j in 0..len {
            let s = &pad[j * c..j * c + n];
            for (o, &v) in out.iter_mut().zip(s) {
                *o = pick::<MAX>(*o, v);
            }
        }
        return;
    }
    // van Herk / Gil-Werman: prefix extremes g and suffix extremes h within blocks of `len`
    // pixels; the window starting at pixel p is pick(h[p], g[p + len - 1]).
    let np = pad.len() / c;
    g.clear();
    g.extend_from_slice(pad);
    hh.clear();
    hh.extend_from_slice(pad);
    for p in 0..np {
        if p % len != 0 {
            for ch in 0..c {
                g[p * c + ch] = pick::<MAX>(g[(p - 1) * c + ch], pad[p * c + ch]);
            }
        }
    }
    for p in (0..np.saturating_sub(1)).rev() {
        if (p + 1) % len != 0 {
            for ch in 0..c {
                hh[p * c + ch] = pick::<MAX>(hh[(p + 1) * c + ch], pad[p * c + ch]);
            }
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        let v = pick::<MAX>(hh[i], g[i + (len - 1) * c]);
        *o = pick::<MAX>(*o, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    #[test]
    fn ellipse_matches_opencv_shapes() {
        // cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)) and (4, 3).
        let e = StructuringElement::ellipse(5, 5).unwrap();
        let rows: Vec<String> = (0..5)
            .map(|y| {
                (0..5)
                    .map(|x| if e.get(x, y) { '1' } else { '0' })
                    .collect()
            })
            .collect();
        assert_eq!(rows, ["00100", "11111", "11111", "11111", "00100"]);
        let e = StructuringElement::ellipse(4, 3).unwrap();
        let rows: Vec<String> = (0..3)
            .map(|y| {
                (0..4)
                    .map(|x| if e.get(x, y) { '1' } else { '0' })
                    .collect()
            })
            .collect();
        assert_eq!(rows, ["0010", "1111", "0010"]);
        assert!(StructuringElement::ellipse(0, 3).is_err());
    }

    #[test]
    fn fast_morphology_agrees_with_reference() {
        let src = Image::from_fn(37, 23, 2, |x, y, c| {
            ((x * 13 + y * 7 + c * 3) % 29) as f32 / 28.0
        })
        .unwrap();
        for (w, h) in [(3, 3), (7, 5), (30, 30), (4, 9), (1, 1)] {
            let e = StructuringElement::ellipse(w, h).unwrap();
            for it in [1, 2] {
                let a = erode(&src, &e, it).unwrap();
                assert_eq!(
                    a,
                    reference::erode(&src, &e, it).unwrap(),
                    "erode {w}x{h} x{it}"
                );
                let b = dilate(&src, &e, it).unwrap();
                assert_eq!(
                    b,
                    reference::dilate(&src, &e, it).unwrap(),
                    "dilate {w}x{h}"
                );
            }
        }
    }
}
