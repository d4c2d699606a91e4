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

/// Reference of [`crate::filter2d`] (and of [`crate::sep_filter`] with the outer-product
/// kernel): a direct double sum per sample.
pub fn filter2d(src: &Image, kernel: &crate::Kernel, border: Border) -> Result<Image> {
    let mut out = src.zeros_like();
    let (ax, ay) = ((kernel.width() / 2) as i64, (kernel.height() / 2) as i64);
    for y in 0..src.height() {
        for x in 0..src.width() {
            for c in 0..src.channels() {
                let mut acc = 0.0f64;
                for ky in 0..kernel.height() {
                    for kx in 0..kernel.width() {
                        let wk = f64::from(kernel.weights()[ky * kernel.width() + kx]);
                        let sx = x as i64 + kx as i64 - ax;
                        let sy = y as i64 + ky as i64 - ay;
                        acc += wk * read(src, sx, sy, c, border);
                    }
                }
                out.pixel_mut(x, y)[c] = acc as f32;
            }
        }
    }
    Ok(out)
}

/// Reference of [`crate::median_blur`]: sorts each clamped window.
pub fn median_blur(src: &Image, ksize: usize) -> Result<Image> {
    let mut out = src.zeros_like();
    let r = (ksize / 2) as i64;
    for y in 0..src.height() {
        for x in 0..src.width() {
            for c in 0..src.channels() {
                let mut v = Vec::new();
                for dy in -r..=r {
                    for dx in -r..=r {
                        v.push(read(
                            src,
                            x as i64 + dx,
                            y as i64 + dy,
                            c,
                            Border::Replicate,
                        ));
                    }
                }
                v.sort_by(f64::total_cmp);
                out.pixel_mut(x, y)[c] = v[v.len() / 2] as f32;
            }
        }
    }
    Ok(out)
}

fn morph(src: &Image, e: &crate::StructuringElement, iterations: usize, max: bool) -> Image {
    let mut cur = src.clone();
    let (ax, ay) = ((e.width() / 2) as i64, (e.height() / 2) as i64);
    for _ in 0..iterations {
        let mut out = cur.clone();
        for y in 0..cur.height() {
            for x in 0..cur.width() {
                for c in 0..cur.channels() {
                    let mut best: Option<f32> = None;
                    for ky in 0..e.height() {
                        for kx in 0..e.width() {
                            let sx = x as i64 + kx as i64 - ax;
                            let sy = y as i64 + ky as i64 - ay;
                            let inside = sx >= 0
                                && sy >= 0
                                && (sx as usize) < cur.width()
                                && (sy as usize) < cur.height();
                            if e.get(kx, ky) && inside {
                                let v = cur.get(sx as usize, sy as usize, c);
                                best = Some(match best {
                                    None => v,
                                    Some(b) if max => b.max(v),
                                    Some(b) => b.min(v),
                                });
                            }
                        }
                    }
                    out.pixel_mut(x, y)[c] = best.unwrap_or(if max {
                        f32::NEG_INFINITY
                    } else {
                        f32::INFINITY
                    });
                }
            }
        }
        cur = out;
    }
    cur
}

/// Reference of [`crate::erode`]: minimum over every set cell, cells outside ignored.
pub fn erode(src: &Image, e: &crate::StructuringElement, iterations: usize) -> Result<Image> {
    Ok(morph(src, e, iterations, false))
}

/// Reference of [`crate::dilate`]: maximum over every set cell, cells outside ignored.
pub fn dilate(src: &Image, e: &crate::StructuringElement, iterations: usize) -> Result<Image> {
    Ok(morph(src, e, iterations, true))
}

/// Reference of the seamless-clone solver: plain Gauss-Seidel sweeps on
/// `4u - (sum of the 4 neighbours, 0 outside) = b` over an `nx x ny` grid until the largest
/// update is below `1e-6` (or 100000 sweeps). Slow; for small agreement tests only.
pub fn poisson_gauss_seidel(b: &[f32], nx: usize, ny: usize) -> Vec<f32> {
    let mut u = vec![0f64; nx * ny];
    for _ in 0..100_000 {
        let mut change = 0f64;
        for y in 0..ny {
            for x in 0..nx {
                let i = y * nx + x;
                let mut s = 0f64;
                if x > 0 {
                    s += u[i - 1];
                }
                if x + 1 < nx {
                    s += u[i + 1];
                }
                if y > 0 {
                    s += u[i - nx];
                }
                if y + 1 < ny {
                    s += u[i + nx];
                }
                let v = (f64::from(b[i]) + s) / 4.0;
                change = change.max((v - u[i]).abs());
                u[i] = v;
            }
        }
        if change < 1e-6 {
            break;
        }
    }
    u.into_iter().map(|v| v as f32).collect()
}
