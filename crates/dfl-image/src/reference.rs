//! Plain scalar versions of the fast paths: one pixel at a time, every tap through the
//! border rule, `f64` accumulation, no threads and no special cases. They define what the
//! fast functions compute; tests check that both agree.

use crate::border::Border;
use crate::error::{ImageError, Result};
use crate::image::Image;
use crate::interp::{Interp, cubic_weights, lanczos4_table};
use crate::warp::{Affine, exact_coord, lanczos_fixed, lanczos_row_origin, sat_i32};

/// Reads sample (x, y, c) through the border rule.
fn read(src: &Image, x: i64, y: i64, c: usize, border: Border) -> f64 {
    match (border.index(x, src.width()), border.index(y, src.height())) {
        (Some(x), Some(y)) => f64::from(src.get(x, y, c)),
        _ => f64::from(border.constant()),
    }
}

/// Separable tap sum with top-left tap at (x0, y0), every tap through the border rule.
fn tap_sum(src: &Image, x0: i64, y0: i64, wx: &[f32], wy: &[f32], c: usize, b: Border) -> f64 {
    let mut acc = 0.0;
    for (i, &a) in wy.iter().enumerate() {
        for (j, &w) in wx.iter().enumerate() {
            let v = read(src, x0 + j as i64, y0 + i as i64, c, b);
            acc += f64::from(a) * f64::from(w) * v;
        }
    }
    acc
}

/// Interpolated sample at source position (sx, sy) (exact coordinates; Lanczos4 goes
/// through [`sample_fixed`]).
fn sample(src: &Image, sx: f64, sy: f64, c: usize, interp: Interp, border: Border) -> f64 {
    if !sx.is_finite() || !sy.is_finite() {
        return f64::from(border.constant());
    }
    let (sx, sy) = (sx.clamp(-1e9, 1e9), sy.clamp(-1e9, 1e9));
    let (x0, y0) = (sx.floor(), sy.floor());
    let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
    let (x0, y0) = (x0 as i64, y0 as i64);
    match interp {
        Interp::Nearest => read(
            src,
            sx.round_ties_even() as i64,
            sy.round_ties_even() as i64,
            c,
            border,
        ),
        Interp::Cubic => tap_sum(
            src,
            x0 - 1,
            y0 - 1,
            &cubic_weights(fx),
            &cubic_weights(fy),
            c,
            border,
        ),
        Interp::Linear | Interp::Area | Interp::Lanczos4 => {
            tap_sum(src, x0, y0, &[1.0 - fx, fx], &[1.0 - fy, fy], c, border)
        }
    }
}

/// Lanczos4 sample at a fixed-point position given in 1/32 pixel units.
fn sample_fixed(src: &Image, xi: i64, yi: i64, c: usize, border: Border) -> f64 {
    let t = lanczos4_table();
    let wx = t[(xi & 31) as usize];
    let wy = t[(yi & 31) as usize];
    tap_sum(src, (xi >> 5) - 3, (yi >> 5) - 3, &wx, &wy, c, border)
}

/// Reference of [`crate::warp_affine_inverse`].
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
    for y in 0..height {
        let (x0, y0) = lanczos_row_origin(m, y);
        for x in 0..width {
            for c in 0..src.channels() {
                let v = if interp == Interp::Lanczos4 {
                    let (xi, yi) = lanczos_fixed(m, x0, y0, x);
                    sample_fixed(src, xi, yi, c, border)
                } else {
                    let (sx, sy) = exact_coord(m, x, y);
                    sample(src, f64::from(sx), f64::from(sy), c, interp, border)
                };
                out.pixel_mut(x, y)[c] = v as f32;
            }
        }
    }
    Ok(out)
}

/// Reference of [`crate::remap`].
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
    let mut out = Image::zeros(map_x.width(), map_x.height(), src.channels())?;
    for y in 0..map_x.height() {
        for x in 0..map_x.width() {
            let (sx, sy) = (f64::from(map_x.get(x, y, 0)), f64::from(map_y.get(x, y, 0)));
            for c in 0..src.channels() {
                let v = if interp == Interp::Lanczos4 {
                    if sx.is_finite() && sy.is_finite() {
                        sample_fixed(src, sat_i32(sx * 32.0), sat_i32(sy * 32.0), c, border)
                    } else {
                        f64::from(border.constant())
                    }
                } else {
                    sample(src, sx, sy, c, interp, border)
                };
                out.pixel_mut(x, y)[c] = v as f32;
            }
        }
    }
    Ok(out)
}

/// Reference of [`crate::resize`]: the same per-axis taps applied as one 2-D sum per pixel.
pub fn resize(src: &Image, width: usize, height: usize, interp: Interp) -> Result<Image> {
    let mut out = Image::zeros(width, height, src.channels())?;
    if src.width() == width && src.height() == height {
        out.data_mut().copy_from_slice(src.data());
        return Ok(out);
    }
    let (tx, ty) = crate::resize::resize_taps(src.width(), src.height(), width, height, interp);
    for y in 0..height {
        let (iy, wy) = ty.of(y);
        for x in 0..width {
            let (ix, wx) = tx.of(x);
            for c in 0..src.channels() {
                let mut acc = 0.0f64;
                for (&sy, &a) in iy.iter().zip(wy) {
                    for (&sx, &b) in ix.iter().zip(wx) {
                        acc += f64::from(a) * f64::from(b) * f64::from(src.get(sx, sy, c));
                    }
                }
                out.pixel_mut(x, y)[c] = acc as f32;
            }
        }
    }
    Ok(out)
}
