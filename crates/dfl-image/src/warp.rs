//! Geometric warps: `warpAffine` (with and without `WARP_INVERSE_MAP`) and `remap`.
//!
//! Coordinates follow OpenCV: pixel centres are at integer positions, a destination pixel
//! (x, y) reads the source at `M * (x, y, 1)` where `M` maps destination to source.
//!
//! Sub-pixel positions match OpenCV 4.11+/5.x float images: nearest, bilinear and bicubic
//! use the exact coordinate (nearest rounds half to even), while Lanczos4 quantises the
//! coordinate to 1/32 pixel and reads its weights from a 32-entry table, as every OpenCV
//! version does. (OpenCV up to 4.10, which DFL shipped with, also quantised bilinear and
//! bicubic to 1/32 pixel; the difference is below 1/64 pixel of position and invisible.)

use crate::border::Border;
use crate::error::{ImageError, Result};
use crate::image::Image;
use crate::interp::{Interp, TAB_SIZE, cubic_weights, lanczos4_table};
use rayon::prelude::*;

/// A 2x3 affine matrix, row-major, as OpenCV's `M` of `warpAffine`.
pub type Affine = [[f64; 3]; 2];

/// Coordinates beyond this are clamped before conversion to integers; they are far outside
/// any image, so the result (border value or wrapped index) is the same.
const COORD_LIMIT: f64 = 1.0e9;

/// Inverse of an affine map (OpenCV's `invertAffineTransform`); `Singular` if its linear part
/// has zero determinant or any entry is not finite.
pub fn invert_affine(m: &Affine) -> Result<Affine> {
    let op = "invert_affine";
    if m.iter().flatten().any(|v| !v.is_finite()) {
        return Err(ImageError::NonFinite { op });
    }
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    if det == 0.0 || !det.is_finite() {
        return Err(ImageError::Singular { op });
    }
    let d = 1.0 / det;
    let a11 = m[1][1] * d;
    let a22 = m[0][0] * d;
    let a12 = -m[0][1] * d;
    let a21 = -m[1][0] * d;
    let b1 = -a11 * m[0][2] - a12 * m[1][2];
    let b2 = -a21 * m[0][2] - a22 * m[1][2];
    let inv = [[a11, a12, b1], [a21, a22, b2]];
    if inv.iter().flatten().any(|v| !v.is_finite()) {
        return Err(ImageError::Singular { op });
    }
    Ok(inv)
}

/// `cv2.warpAffine(src, m, (width, height), flags=interp, borderMode=border)`: `m` maps
/// source pixels to destination pixels (it is inverted internally, like OpenCV).
pub fn warp_affine(
    src: &Image,
    m: &Affine,
    width: usize,
    height: usize,
    interp: Interp,
    border: Border,
) -> Result<Image> {
    let inv = invert_affine(m)?;
    warp_affine_inverse(src, &inv, width, height, interp, border)
}

/// `cv2.warpAffine(..., flags=interp | WARP_INVERSE_MAP)`: `m` maps destination pixels to
/// source pixels (DFL pastes predicted faces back into frames this way).
pub fn warp_affine_inverse(
    src: &Image,
    m: &Affine,
    width: usize,
    height: usize,
    interp: Interp,
    border: Border,
) -> Result<Image> {
    if m.iter().flatten().any(|v| !v.is_finite()) {
        return Err(ImageError::NonFinite { op: "warp_affine" });
    }
    let mut out = Image::zeros(width, height, src.channels())?;
    let sampler = Sampler::new(src, interp, border);
    let row_len = width * src.channels();
    out.data_mut()
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(y, row)| sampler.affine_row(m, y, row));
    Ok(out)
}

/// `cv2.remap(src, map_x, map_y, interp, borderMode=border)`: destination pixel (x, y) reads
/// the source at `(map_x[y, x], map_y[y, x])`. Both maps are 1-channel and of equal size,
/// which is the output size. Non-finite map entries give the border constant (0 unless
/// `Border::Constant` says otherwise).
pub fn remap(
    src: &Image,
    map_x: &Image,
    map_y: &Image,
    interp: Interp,
    border: Border,
) -> Result<Image> {
    let op = "remap";
    map_x.check_channels(op, &[1], "1")?;
    map_y.check_channels(op, &[1], "1")?;
    map_x.check_same_size(op, map_y)?;
    let (w, h, _) = map_x.shape();
    let mut out = Image::zeros(w, h, src.channels())?;
    let sampler = Sampler::new(src, interp, border);
    let row_len = w * src.channels();
    out.data_mut()
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(y, row)| sampler.remap_row(map_x.row(y), map_y.row(y), row));
    Ok(out)
}

/// Reads interpolated source pixels at arbitrary positions; shared by warps and remaps.
pub(crate) struct Sampler<'a> {
    data: &'a [f32],
    w: usize,
    h: usize,
    c: usize,
    interp: Interp,
    border: Border,
}

/// A position in the source, already split into what each method needs.
#[derive(Clone, Copy)]
enum Pos {
    /// Exact coordinate (nearest, linear, cubic).
    Exact(f64, f64),
    /// Integer pixel and 1/32 sub-pixel index (Lanczos4).
    Fixed(i64, i64, usize, usize),
    /// Non-finite coordinate: the border constant.
    Outside,
}

impl<'a> Sampler<'a> {
    pub(crate) fn new(src: &'a Image, interp: Interp, border: Border) -> Self {
        Sampler {
            data: src.data(),
            w: src.width(),
            h: src.height(),
            c: src.channels(),
            interp: if interp == Interp::Area {
                Interp::Linear
            } else {
                interp
            },
            border,
        }
    }

    fn affine_row(&self, m: &Affine, y: usize, out: &mut [f32]) {
        if self.interp == Interp::Lanczos4 {
            // OpenCV's fixed-point coordinate path: AB_BITS = 10, INTER_BITS = 5.
            let (x0, y0) = lanczos_row_origin(m, y);
            self.dispatch(out, |x| {
                let (xi, yi) = lanczos_fixed(m, x0, y0, x);
                Pos::Fixed(xi >> 5, yi >> 5, (xi & 31) as usize, (yi & 31) as usize)
            });
        } else {
            self.dispatch(out, |x| {
                let (sx, sy) = exact_coord(m, x, y);
                Pos::Exact(f64::from(sx), f64::from(sy))
            });
        }
    }

    fn remap_row(&self, mx: &[f32], my: &[f32], out: &mut [f32]) {
        if self.interp == Interp::Lanczos4 {
            self.dispatch(out, |x| {
                let (fx, fy) = (f64::from(mx[x]), f64::from(my[x]));
                if !fx.is_finite() || !fy.is_finite() {
                    return Pos::Outside;
                }
                let xi = sat_i32(fx * TAB_SIZE as f64);
                let yi = sat_i32(fy * TAB_SIZE as f64);
                Pos::Fixed(xi >> 5, yi >> 5, (xi & 31) as usize, (yi & 31) as usize)
            });
        } else {
            self.dispatch(out, |x| {
                let (fx, fy) = (f64::from(mx[x]), f64::from(my[x]));
                if fx.is_finite() && fy.is_finite() {
                    Pos::Exact(fx, fy)
                } else {
                    Pos::Outside
                }
            });
        }
    }

    /// Fills one output row, pixel x from `pos(x)`, with the channel count as a constant.
    fn dispatch(&self, out: &mut [f32], pos: impl Fn(usize) -> Pos) {
        match self.c {
            1 => self.fill::<1>(out, pos),
            2 => self.fill::<2>(out, pos),
            3 => self.fill::<3>(out, pos),
            _ => self.fill::<4>(out, pos),
        }
    }

    fn fill<const C: usize>(&self, out: &mut [f32], pos: impl Fn(usize) -> Pos) {
        for (x, px) in out.chunks_exact_mut(C).enumerate() {
            let v: [f32; C] = match pos(x) {
                Pos::Outside => [self.border.constant(); C],
                Pos::Exact(sx, sy) => match self.interp {
                    Interp::Nearest => self.nearest::<C>(sx, sy),
                    Interp::Cubic => {
                        let (ix, fx) = split(sx);
                        let (iy, fy) = split(sy);
                        self.taps::<C, 4>(ix - 1, iy - 1, &cubic_weights(fx), &cubic_weights(fy))
                    }
                    _ => {
                        let (ix, fx) = split(sx);
                        let (iy, fy) = split(sy);
                        self.taps::<C, 2>(ix, iy, &[1.0 - fx, fx], &[1.0 - fy, fy])
                    }
                },
                Pos::Fixed(ix, iy, ax, ay) => {
                    let t = lanczos4_table();
                    self.taps::<C, 8>(ix - 3, iy - 3, &t[ax], &t[ay])
                }
            };
            px.copy_from_slice(&v);
        }
    }

    #[inline(always)]
    fn nearest<const C: usize>(&self, sx: f64, sy: f64) -> [f32; C] {
        let ix = sx.clamp(-COORD_LIMIT, COORD_LIMIT).round_ties_even() as i64;
        let iy = sy.clamp(-COORD_LIMIT, COORD_LIMIT).round_ties_even() as i64;
        match (self.border.index(ix, self.w), self.border.index(iy, self.h)) {
            (Some(x), Some(y)) => {
                let i = (y * self.w + x) * C;
                let mut v = [0f32; C];
                v.copy_from_slice(&self.data[i..i + C]);
                v
            }
            _ => [self.border.constant(); C],
        }
    }

    /// Separable N x N tap sum with top-left tap at (x0, y0).
    #[inline(always)]
    fn taps<const C: usize, const N: usize>(
        &self,
        x0: i64,
        y0: i64,
        wx: &[f32; N],
        wy: &[f32; N],
    ) -> [f32; C] {
        let mut acc = [0f32; C];
        let (w, h) = (self.w as i64, self.h as i64);
        if x0 >= 0 && y0 >= 0 && x0 + (N as i64) <= w && y0 + (N as i64) <= h {
            // Every tap inside: no border lookups.
            let stride = self.w * C;
            let start = (y0 as usize * self.w + x0 as usize) * C;
            for (i, &wyi) in wy.iter().enumerate() {
                let row = &self.data[start + i * stride..start + i * stride + N * C];
                let mut hsum = [0f32; C];
                for (j, &wxj) in wx.iter().enumerate() {
                    for c in 0..C {
                        hsum[c] += wxj * row[j * C + c];
                    }
                }
                for c in 0..C {
                    acc[c] += wyi * hsum[c];
                }
            }
            return acc;
        }
        let cval = self.border.constant();
        let mut xs = [None; N];
        for (j, xi) in xs.iter_mut().enumerate() {
            *xi = self.border.index(x0 + j as i64, self.w);
        }
        for (i, &wyi) in wy.iter().enumerate() {
            let yi = self.border.index(y0 + i as i64, self.h);
            let mut hsum = [0f32; C];
            for (j, &wxj) in wx.iter().enumerate() {
                match (xs[j], yi) {
                    (Some(x), Some(y)) => {
                        let p = (y * self.w + x) * C;
                        for c in 0..C {
                            hsum[c] += wxj * self.data[p + c];
                        }
                    }
                    _ => {
                        for h in &mut hsum {
                            *h += wxj * cval;
                        }
                    }
                }
            }
            for c in 0..C {
                acc[c] += wyi * hsum[c];
            }
        }
        acc
    }
}

/// Integer part (floor, clamped far outside any image) and fraction of a coordinate.
#[inline(always)]
fn split(v: f64) -> (i64, f32) {
    let v = v.clamp(-COORD_LIMIT, COORD_LIMIT);
    let f = v.floor();
    (f as i64, (v - f) as f32)
}

/// OpenCV's `saturate_cast<int>(double)`: round half to even, saturate (NaN -> INT_MIN).
#[inline(always)]
pub(crate) fn sat_i32(v: f64) -> i64 {
    if v.is_nan() {
        return i64::from(i32::MIN);
    }
    v.round_ties_even()
        .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i64
}

/// Integer addition saturated to `i32`, as OpenCV's fixed-point warp sums behave for all
/// coordinates that matter.
#[inline(always)]
fn sat_add(a: i64, b: i64) -> i64 {
    (a + b).clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

/// Row origin of OpenCV's fixed-point warp (`AB_BITS` = 10, plus the rounding delta of
/// half an `INTER_TAB_SIZE` step), from the row terms `m01*y + m02`, `m11*y + m12`.
#[inline]
pub(crate) fn lanczos_row_origin(m: &Affine, y: usize) -> (i64, i64) {
    let yf = y as f64;
    (
        sat_i32((m[0][1] * yf + m[0][2]) * 1024.0) + 16,
        sat_i32((m[1][1] * yf + m[1][2]) * 1024.0) + 16,
    )
}

/// Source position of destination pixel (x, y) for the exact-coordinate methods, computed in
/// `f32` exactly as OpenCV 5's float kernels do (`m00*x + (m01*y + m02)`): this decides which
/// way nearest rounds at exact half-pixel positions.
#[inline(always)]
pub(crate) fn exact_coord(m: &Affine, x: usize, y: usize) -> (f32, f32) {
    let (xf, yf) = (x as f32, y as f32);
    let f = |v: f64| v as f32;
    (
        f(m[0][0]) * xf + (f(m[0][1]) * yf + f(m[0][2])),
        f(m[1][0]) * xf + (f(m[1][1]) * yf + f(m[1][2])),
    )
}

/// Source position of destination column `x` in 1/32 pixel units (OpenCV's
/// `(X0 + adelta[x]) >> (AB_BITS - INTER_BITS)`).
#[inline(always)]
pub(crate) fn lanczos_fixed(m: &Affine, x0: i64, y0: i64, x: usize) -> (i64, i64) {
    let xf = x as f64;
    (
        sat_add(x0, sat_i32(m[0][0] * xf * 1024.0)) >> 5,
        sat_add(y0, sat_i32(m[1][0] * xf * 1024.0)) >> 5,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    fn test_image(w: usize, h: usize, c: usize) -> Image {
        Image::from_fn(w, h, c, |x, y, ch| {
            let v = ((x * 37 + y * 91 + ch * 53) % 101) as f32 / 100.0;
            0.5 * v + 0.25 * ((x as f32 * 0.3).sin() + 1.0) * (ch as f32 * 0.2 + 0.5)
        })
        .unwrap()
    }

    const ALL_INTERP: [Interp; 4] = [
        Interp::Nearest,
        Interp::Linear,
        Interp::Cubic,
        Interp::Lanczos4,
    ];
    const ALL_BORDERS: [Border; 5] = [
        Border::Constant(0.25),
        Border::Replicate,
        Border::Reflect,
        Border::Reflect101,
        Border::Wrap,
    ];

    #[test]
    fn fast_warp_agrees_with_reference() {
        let m = [[0.93, 0.17, 3.3], [-0.21, 1.07, -2.7]];
        for c in 1..=4 {
            let src = test_image(23, 17, c);
            for interp in ALL_INTERP {
                for border in ALL_BORDERS {
                    let fast = warp_affine_inverse(&src, &m, 29, 21, interp, border).unwrap();
                    let slow =
                        reference::warp_affine_inverse(&src, &m, 29, 21, interp, border).unwrap();
                    let d = max_diff(&fast, &slow);
                    assert!(d < 2e-6, "{interp:?} {border:?} c={c}: {d}");
                }
            }
        }
    }

    #[test]
    fn fast_remap_agrees_with_reference() {
        let src = test_image(19, 15, 3);
        let mx = Image::from_fn(24, 20, 1, |x, y, _| {
            x as f32 * 0.9 - 2.3 + (y as f32 * 0.7).sin() * 3.0
        })
        .unwrap();
        let my = Image::from_fn(24, 20, 1, |x, y, _| {
            y as f32 * 0.8 - 1.6 + (x as f32 * 0.5).cos() * 2.0
        })
        .unwrap();
        for interp in ALL_INTERP {
            for border in ALL_BORDERS {
                let fast = remap(&src, &mx, &my, interp, border).unwrap();
                let slow = reference::remap(&src, &mx, &my, interp, border).unwrap();
                let d = max_diff(&fast, &slow);
                assert!(d < 2e-6, "{interp:?} {border:?}: {d}");
            }
        }
    }

    #[test]
    fn identity_warp_is_exact_and_bad_matrices_are_refused() {
        let src = test_image(8, 6, 3);
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        for interp in ALL_INTERP {
            let out = warp_affine(&src, &id, 8, 6, interp, Border::Replicate).unwrap();
            assert!(max_diff(&out, &src) < 1e-6, "{interp:?}");
        }
        let singular = [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]];
        assert!(matches!(
            warp_affine(&src, &singular, 8, 6, Interp::Linear, Border::Replicate),
            Err(ImageError::Singular { .. })
        ));
        let nan = [[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0]];
        assert!(matches!(
            warp_affine_inverse(&src, &nan, 8, 6, Interp::Linear, Border::Replicate),
            Err(ImageError::NonFinite { .. })
        ));
        assert!(warp_affine(&src, &id, 0, 6, Interp::Linear, Border::Replicate).is_err());
        // Far-away coordinates are the border value, not a panic.
        let far = [[1.0, 0.0, 1e300], [0.0, 1.0, -1e300]];
        let out =
            warp_affine_inverse(&src, &far, 4, 4, Interp::Cubic, Border::Constant(0.5)).unwrap();
        assert!(out.data().iter().all(|&v| v == 0.5));
        let out = warp_affine_inverse(&src, &far, 4, 4, Interp::Lanczos4, Border::Wrap).unwrap();
        assert!(out.data().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn nan_map_entries_give_the_border_value() {
        let src = test_image(8, 6, 1);
        let mx = Image::new(2, 1, 1, vec![f32::NAN, 1.0]).unwrap();
        let my = Image::new(2, 1, 1, vec![0.0, f32::INFINITY]).unwrap();
        for interp in ALL_INTERP {
            let out = remap(&src, &mx, &my, interp, Border::Replicate).unwrap();
            assert_eq!(out.data(), &[0.0, 0.0]);
        }
    }

    pub(crate) fn max_diff(a: &Image, b: &Image) -> f32 {
        assert_eq!(a.shape(), b.shape());
        a.data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }
}
