//! Poisson seamless cloning equivalent to OpenCV's `seamlessClone(..., NORMAL_CLONE)`, the
//! merger's `seamless` modes.
//!
//! OpenCV's recipe, reproduced: the mask's outer one-pixel frame is cleared; the region is
//! the bounding box of the mask's non-zero pixels, placed in the destination with its top-left
//! corner at `center - size / 2` (integer division); inside that box the guidance field is the
//! source's forward differences where the mask, eroded three times by a 3x3 square, is set,
//! and the destination's elsewhere; the box's outer ring keeps the destination; the Poisson
//! equation for the inside is solved and truncated to 8 bits.
//!
//! Placement follows OpenCV 4.x (the line DFL shipped with): the box moves with `center`.
//! OpenCV 5.0 gives a different result when `center` moves the box away from where it is in
//! the mask; DFL never does that (its centre keeps the box in place, [`clone_center`]), and
//! there both versions and this code agree.
//!
//! OpenCV solves it exactly with discrete sine transforms; here the same linear system is
//! solved by conjugate gradients preconditioned with a geometric multigrid V-cycle (red-black
//! Gauss-Seidel), from the destination as the starting point, to a relative residual of 1e-6,
//! without forming any matrix.

use crate::error::{ImageError, Result};
use crate::image::{Image, Quantize};
use rayon::prelude::*;

/// DFL's clone centre: `(int(l + w/2), int(t + h/2))` of the bounding box of the mask's
/// non-zero pixels (channel 0 above 0 after 8-bit truncation), or `None` for an empty mask.
/// With OpenCV's placement rule this puts the cloned box exactly where it is in the mask.
pub fn clone_center(mask: &Image) -> Option<(i64, i64)> {
    let (l, t, w, h) = bounding_box(mask, false)?;
    Some((l as i64 + w as i64 / 2, t as i64 + h as i64 / 2))
}

/// Whether mask pixel (x, y) (channel 0) is non-zero after 8-bit truncation.
fn mask_on(mask: &Image, x: usize, y: usize) -> bool {
    // trunc(clamp(v * 255)) > 0  <=>  v * 255 >= 1 (NaN and negatives are off).
    mask.get(x, y, 0) * 255.0 >= 1.0
}

/// Bounding box (x, y, w, h) of the non-zero mask pixels, optionally ignoring the outer
/// one-pixel frame (as `seamlessClone` clears it).
fn bounding_box(mask: &Image, skip_frame: bool) -> Option<(usize, usize, usize, usize)> {
    let (w, h) = (mask.width(), mask.height());
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    let m = usize::from(skip_frame);
    for y in m..h.saturating_sub(m) {
        for x in m..w.saturating_sub(m) {
            if mask_on(mask, x, y) {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    (x0 != usize::MAX).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

/// `cv2.seamlessClone(src, dst, mask, center, cv2.NORMAL_CLONE)` as DFL calls it: `src` and
/// `dst` are 3-channel images in [0, 1] and `mask` a 1-channel image of `src`'s size; all three
/// are truncated to 8 bits first (DFL's `astype(np.uint8)`), and the result (dst-sized) holds
/// 8-bit values divided by 255.
///
/// An empty mask returns `dst` (as 8-bit / 255). A region that does not fit in `dst` at
/// `center` is an [`ImageError::OutOfBounds`] (OpenCV throws; DFL then keeps the unblended
/// paste). A region narrower or shorter than 3 pixels has no inside and returns `dst`.
pub fn seamless_clone(src: &Image, dst: &Image, mask: &Image, center: (i64, i64)) -> Result<Image> {
    let op = "seamless_clone";
    src.check_channels(op, &[3], "3")?;
    dst.check_channels(op, &[3], "3")?;
    src.check_same_size(op, mask)?;
    src.check_finite(op)?;
    dst.check_finite(op)?;
    mask.check_finite(op)?;
    // 8-bit truncation as DFL's astype(np.uint8); values kept as f32 integers.
    let q = |v: f32| f32::from(Quantize::Truncate.apply(v));
    let mut out = dst.zeros_like();
    out.data_mut()
        .par_chunks_mut(1 << 14)
        .zip(dst.data().par_chunks(1 << 14))
        .for_each(|(o, d)| {
            for (o, &v) in o.iter_mut().zip(d) {
                *o = q(v) / 255.0;
            }
        });
    let Some((sx, sy, w, h)) = bounding_box(mask, true) else {
        return Ok(out);
    };
    let (dx, dy) = (center.0 - (w / 2) as i64, center.1 - (h / 2) as i64);
    if dx < 0 || dy < 0 || dx as usize + w > dst.width() || dy as usize + h > dst.height() {
        return Err(ImageError::OutOfBounds {
            op,
            x: dx,
            y: dy,
            width: w,
            height: h,
            img_width: dst.width(),
            img_height: dst.height(),
        });
    }
    if w < 3 || h < 3 {
        return Ok(out);
    }
    let (dx, dy) = (dx as usize, dy as usize);
    // Mask ROI as 8-bit values (the cleared outer frame reads 0).
    let (mw, mh) = (mask.width(), mask.height());
    let mut m8 = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (mx, my) = (sx + x, sy + y);
            if mx >= 1 && my >= 1 && mx + 1 < mw && my + 1 < mh {
                m8[y * w + x] = q(mask.get(mx, my, 0));
            }
        }
    }
    let eroded = erode3x3_times3(&m8, w, h);
    let weight: Vec<f32> = eroded.iter().map(|v| v / 255.0).collect();
    let planes: Vec<Vec<f32>> = (0..3)
        .into_par_iter()
        .map(|c| {
            let mut dplane = vec![0f32; w * h];
            let mut pplane = vec![0f32; w * h];
            for y in 0..h {
                let drow = &dst.row(dy + y)[dx * 3..(dx + w) * 3];
                let srow = &src.row(sy + y)[sx * 3..(sx + w) * 3];
                for x in 0..w {
                    dplane[y * w + x] = q(drow[x * 3 + c]);
                    if m8[y * w + x] != 0.0 {
                        pplane[y * w + x] = q(srow[x * 3 + c]);
                    }
                }
            }
            solve_channel(&dplane, &pplane, &weight, w, h)
        })
        .collect();
    for y in 0..h {
        let row = &mut out.row_mut(dy + y)[dx * 3..(dx + w) * 3];
        for x in 0..w {
            for c in 0..3 {
                row[x * 3 + c] = planes[c][y * w + x] / 255.0;
            }
        }
    }
    Ok(out)
}

/// OpenCV's `erode(mask, ones(3, 3), iterations=3)` on the ROI of the mask. OpenCV erodes the
/// ROI as a view into the whole mask, so pixels around the box (zero: the box bounds the
/// mask, and the mask's outer frame is cleared) erode it from its edges too.
fn erode3x3_times3(m: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut cur = m.to_vec();
    for _ in 0..3 {
        let mut next = cur.clone();
        for y in 0..h {
            for x in 0..w {
                let at_edge = x == 0 || y == 0 || x + 1 == w || y + 1 == h;
                let mut v = if at_edge { 0f32 } else { f32::INFINITY };
                for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        v = v.min(cur[yy * w + xx]);
                    }
                }
                next[y * w + x] = v;
            }
        }
        cur = next;
    }
    cur
}

/// The Poisson right-hand side of OpenCV's cloning on a `w x h` ROI: the divergence of the
/// blended guidance field (forward differences, backward divergence, reflect-101 at the ROI
/// edges as OpenCV's `filter2D`), for interior pixels.
pub(crate) fn guidance_divergence(d: &[f32], p: &[f32], m: &[f32], w: usize, h: usize) -> Vec<f32> {
    let refl = |i: i64, n: usize| -> usize {
        if i < 0 {
            (-i) as usize
        } else if i as usize >= n {
            2 * (n - 1) - i as usize
        } else {
            i as usize
        }
    };
    let idx = |x: i64, y: i64| refl(y, h) * w + refl(x, w);
    // Guidance gx(x, y) = m * (P(x+1) - P(x)) + (1 - m) * (D(x+1) - D(x)), same for gy.
    let gx = |x: i64, y: i64| {
        let i = idx(x, y);
        let j = idx(x + 1, y);
        m[i] * (p[j] - p[i]) + (1.0 - m[i]) * (d[j] - d[i])
    };
    let gy = |x: i64, y: i64| {
        let i = idx(x, y);
        let j = idx(x, y + 1);
        m[i] * (p[j] - p[i]) + (1.0 - m[i]) * (d[j] - d[i])
    };
    let mut div = vec![0f32; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let (xi, yi) = (x as i64, y as i64);
            div[y * w + x] = (gx(xi, yi) - gx(xi - 1, yi)) + (gy(xi, yi) - gy(xi, yi - 1));
        }
    }
    div
}

/// Solves one channel: returns the ROI plane with the ring kept from `d` and the inside from
/// the Poisson solution, truncated to 0..=255 integers like OpenCV.
fn solve_channel(d: &[f32], p: &[f32], m: &[f32], w: usize, h: usize) -> Vec<f32> {
    let div = guidance_divergence(d, p, m, w, h);
    let (nx, ny) = (w - 2, h - 2);
    // Interior system: A u = b with A = 4u - sum of 4 neighbours (SPD), b = -div plus the
    // fixed ring values next to the border.
    let mut b = vec![0f32; nx * ny];
    for y in 0..ny {
        for x in 0..nx {
            let (fx, fy) = (x + 1, y + 1);
            let mut v = -div[fy * w + fx];
            if x == 0 {
                v += d[fy * w];
            }
            if x + 1 == nx {
                v += d[fy * w + w - 1];
            }
            if y == 0 {
                v += d[fx];
            }
            if y + 1 == ny {
                v += d[(h - 1) * w + fx];
            }
            b[y * nx + x] = v;
        }
    }
    let x0: Vec<f32> = (0..nx * ny)
        .map(|i| d[(i / nx + 1) * w + i % nx + 1])
        .collect();
    let u = mgpcg(&b, x0, nx, ny, 1e-6, 200);
    let mut out = d.to_vec();
    for y in 0..ny {
        for x in 0..nx {
            let v = u[y * nx + x];
            out[(y + 1) * w + x + 1] = if v.is_nan() || v < 0.0 {
                0.0
            } else if v > 255.0 {
                255.0
            } else {
                v.trunc()
            };
        }
    }
    out
}

/// `out = A u` with `A u = 4u - (sum of the 4 neighbours, 0 outside)` on an `nx x ny` grid.
fn apply_a(u: &[f32], nx: usize, ny: usize, out: &mut [f32]) {
    let zeros = vec![0f32; nx];
    out.par_chunks_mut(nx)
        .with_min_len(8)
        .enumerate()
        .for_each(|(y, row)| {
            let cur = &u[y * nx..(y + 1) * nx];
            let up = if y > 0 {
                &u[(y - 1) * nx..y * nx]
            } else {
                &zeros[..]
            };
            let down = if y + 1 < ny {
                &u[(y + 1) * nx..(y + 2) * nx]
            } else {
                &zeros[..]
            };
            for x in 0..nx {
                row[x] = 4.0 * cur[x] - up[x] - down[x];
            }
            for x in 1..nx {
                row[x] -= cur[x - 1];
                row[x - 1] -= cur[x];
            }
        });
}

/// `y += a * x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.par_chunks_mut(4096)
        .zip(x.par_chunks(4096))
        .for_each(|(yc, xc)| {
            for (yi, xi) in yc.iter_mut().zip(xc) {
                *yi += a * xi;
            }
        });
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.par_chunks(4096)
        .zip(b.par_chunks(4096))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| f64::from(*p) * f64::from(*q))
                .sum::<f64>()
        })
        .sum()
}

/// Conjugate gradients on `A u = b`, preconditioned by one multigrid V-cycle, from `x`; stops
/// at `||r|| <= tol * ||b||` (or `tol` in absolute units for a zero `b`) or `max_iter`.
pub(crate) fn mgpcg(
    b: &[f32],
    mut x: Vec<f32>,
    nx: usize,
    ny: usize,
    tol: f64,
    max_iter: usize,
) -> Vec<f32> {
    let n = nx * ny;
    let mut r = vec![0f32; n];
    apply_a(&x, nx, ny, &mut r);
    for (ri, bi) in r.iter_mut().zip(b) {
        *ri = bi - *ri;
    }
    let bnorm = dot(b, b).sqrt().max(1.0);
    let mut z = v_cycle(&r, nx, ny);
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let mut ap = vec![0f32; n];
    for _ in 0..max_iter {
        if dot(&r, &r).sqrt() <= tol * bnorm {
            break;
        }
        apply_a(&p, nx, ny, &mut ap);
        let pap = dot(&p, &ap);
        if pap <= 0.0 || !pap.is_finite() {
            break;
        }
        let alpha = (rz / pap) as f32;
        axpy(&mut x, alpha, &p);
        axpy(&mut r, -alpha, &ap);
        z = v_cycle(&r, nx, ny);
        let rz_new = dot(&r, &z);
        let beta = (rz_new / rz) as f32;
        rz = rz_new;
        p.par_chunks_mut(4096)
            .zip(z.par_chunks(4096))
            .for_each(|(pc, zc)| {
                for (pi, zi) in pc.iter_mut().zip(zc) {
                    *pi = zi + beta * *pi;
                }
            });
    }
    x
}

/// One red-black Gauss-Seidel half sweep of `A u = b` (scaled by `1/scale` for coarse
/// levels: `A_c = A / scale`), colour `parity` = (x + y) % 2.
fn rb_sweep(u: &mut [f32], b: &[f32], nx: usize, ny: usize, scale: f32, parity: usize) {
    let zeros = vec![0f32; nx];
    for y in 0..ny {
        let start = (y + parity) % 2;
        // Neighbour rows (the other colour, not written in this half sweep).
        let (before, rest) = u.split_at_mut(y * nx);
        let (cur, after) = rest.split_at_mut(nx);
        let up = if y > 0 {
            &before[(y - 1) * nx..]
        } else {
            &zeros[..]
        };
        let down = if y + 1 < ny { &after[..nx] } else { &zeros[..] };
        let brow = &b[y * nx..(y + 1) * nx];
        let mut x = start;
        while x < nx {
            let left = if x > 0 { cur[x - 1] } else { 0.0 };
            let right = if x + 1 < nx { cur[x + 1] } else { 0.0 };
            cur[x] = (brow[x] * scale + left + right + up[x] + down[x]) * 0.25;
            x += 2;
        }
    }
}

/// Symmetric multigrid V-cycle approximating `A^-1 r` (zero initial guess): red-black GS
/// before, black-red after, full-weighting restriction, bilinear prolongation, coarse
/// operator `A / 4` per level.
fn v_cycle(r: &[f32], nx: usize, ny: usize) -> Vec<f32> {
    let mut e = vec![0f32; nx * ny];
    v_cycle_level(r, &mut e, nx, ny, 1.0);
    e
}

fn v_cycle_level(b: &[f32], u: &mut [f32], nx: usize, ny: usize, scale: f32) {
    if nx < 3 || ny < 3 {
        for _ in 0..8 {
            rb_sweep(u, b, nx, ny, scale, 0);
            rb_sweep(u, b, nx, ny, scale, 1);
        }
        for _ in 0..8 {
            rb_sweep(u, b, nx, ny, scale, 1);
            rb_sweep(u, b, nx, ny, scale, 0);
        }
        return;
    }
    // Pre-smoothing.
    for _ in 0..2 {
        rb_sweep(u, b, nx, ny, scale, 0);
        rb_sweep(u, b, nx, ny, scale, 1);
    }
    // Residual with the level's operator A / scale.
    let mut res = vec![0f32; nx * ny];
    apply_a(u, nx, ny, &mut res);
    let inv = 1.0 / scale;
    for (ri, bi) in res.iter_mut().zip(b) {
        *ri = bi - *ri * inv;
    }
    // Coarse grid: fine interior index 2I + 1 (full positions 2(I + 1)).
    let (cx, cy) = (nx / 2, ny / 2);
    let get = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x as usize >= nx || y as usize >= ny {
            0.0
        } else {
            res[y as usize * nx + x as usize]
        }
    };
    let mut rc = vec![0f32; cx * cy];
    for j in 0..cy {
        for i in 0..cx {
            let (x, y) = (2 * i as i64 + 1, 2 * j as i64 + 1);
            let v = 4.0 * get(x, y)
                + 2.0 * (get(x - 1, y) + get(x + 1, y) + get(x, y - 1) + get(x, y + 1))
                + get(x - 1, y - 1)
                + get(x + 1, y - 1)
                + get(x - 1, y + 1)
                + get(x + 1, y + 1);
            rc[j * cx + i] = v / 16.0;
        }
    }
    let mut ec = vec![0f32; cx * cy];
    v_cycle_level(&rc, &mut ec, cx, cy, scale * 4.0);
    // Bilinear prolongation: fine full position f = i + 1; coarse full positions are even.
    let cget = |i: i64, j: i64| -> f32 {
        if i < 0 || j < 0 || i as usize >= cx || j as usize >= cy {
            0.0
        } else {
            ec[j as usize * cx + i as usize]
        }
    };
    let axis = |f: usize| -> [(i64, f32); 2] {
        // Fine full position f: even -> coarse node f/2 - 1; odd -> between (f-1)/2 - 1 and (f+1)/2 - 1.
        if f.is_multiple_of(2) {
            [((f / 2) as i64 - 1, 1.0), (0, 0.0)]
        } else {
            [
                (((f - 1) / 2) as i64 - 1, 0.5),
                (f.div_ceil(2) as i64 - 1, 0.5),
            ]
        }
    };
    u.par_chunks_mut(nx).enumerate().for_each(|(y, row)| {
        let ay = axis(y + 1);
        for (x, v) in row.iter_mut().enumerate() {
            let ax = axis(x + 1);
            let mut s = 0f32;
            for &(j, wy) in &ay {
                if wy == 0.0 {
                    continue;
                }
                for &(i, wx) in &ax {
                    if wx != 0.0 {
                        s += wx * wy * cget(i, j);
                    }
                }
            }
            *v += s;
        }
    });
    // Post-smoothing in the reverse colour order (keeps the cycle symmetric).
    for _ in 0..2 {
        rb_sweep(u, b, nx, ny, scale, 1);
        rb_sweep(u, b, nx, ny, scale, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mgpcg_solves_poisson_to_tolerance() {
        for (nx, ny) in [(1, 1), (2, 7), (17, 9), (64, 33), (100, 3)] {
            let n = nx * ny;
            let b: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let u = mgpcg(&b, vec![0.0; n], nx, ny, 1e-6, 200);
            let mut au = vec![0f32; n];
            apply_a(&u, nx, ny, &mut au);
            let err: f64 = au
                .iter()
                .zip(&b)
                .map(|(a, c)| f64::from(a - c).powi(2))
                .sum::<f64>()
                .sqrt();
            let bn = dot(&b, &b).sqrt();
            assert!(
                err <= 1e-5 * bn.max(1.0),
                "{nx}x{ny}: residual {err} of {bn}"
            );
        }
    }

    #[test]
    fn mgpcg_agrees_with_plain_gauss_seidel() {
        let (nx, ny) = (23, 14);
        let b: Vec<f32> = (0..nx * ny)
            .map(|i| ((i * 13) % 7) as f32 * 3.0 - 9.0)
            .collect();
        let fast = mgpcg(&b, vec![0.0; nx * ny], nx, ny, 1e-7, 200);
        let slow = crate::reference::poisson_gauss_seidel(&b, nx, ny);
        let d = fast
            .iter()
            .zip(&slow)
            .map(|(a, c)| (a - c).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-3, "max difference {d}");
    }

    #[test]
    fn moving_the_centre_moves_the_box() {
        // OpenCV 4.x semantics: cloning at a shifted centre equals cloning inputs that were
        // moved so the box sits where the centre puts it.
        let dst = Image::from_fn(40, 30, 3, |x, y, c| {
            ((x * 5 + y * 3 + c * 40) % 200) as f32 / 255.0
        })
        .unwrap();
        let src = Image::from_fn(40, 30, 3, |x, y, c| {
            ((x * 11 + y * 7 + c * 13) % 170) as f32 / 255.0
        })
        .unwrap();
        let inside = |x: usize, y: usize| (8..20).contains(&x) && (6..18).contains(&y);
        let mask = Image::from_fn(40, 30, 1, |x, y, _| f32::from(u8::from(inside(x, y)))).unwrap();
        let (cx, cy) = clone_center(&mask).unwrap();
        let (sx, sy) = (9usize, 4usize);
        let shifted = seamless_clone(&src, &dst, &mask, (cx + sx as i64, cy + sy as i64)).unwrap();
        let moved_src = Image::from_fn(40, 30, 3, |x, y, c| {
            if x >= sx && y >= sy {
                src.get(x - sx, y - sy, c)
            } else {
                0.0
            }
        })
        .unwrap();
        let moved_mask = Image::from_fn(40, 30, 1, |x, y, _| {
            f32::from(u8::from(x >= sx && y >= sy && inside(x - sx, y - sy)))
        })
        .unwrap();
        let c2 = clone_center(&moved_mask).unwrap();
        let in_place = seamless_clone(&moved_src, &dst, &moved_mask, c2).unwrap();
        assert_eq!(shifted, in_place);
    }

    #[test]
    fn centre_and_bad_placement() {
        let mask = Image::from_fn(20, 10, 1, |x, y, _| {
            if (4..11).contains(&x) && (2..8).contains(&y) {
                1.0
            } else {
                0.0
            }
        })
        .unwrap();
        // l=4, w=7 -> 4 + 3 = 7; t=2, h=6 -> 2 + 3 = 5.
        assert_eq!(clone_center(&mask), Some((7, 5)));
        assert_eq!(clone_center(&Image::zeros(4, 4, 1).unwrap()), None);
        let img = Image::filled(20, 10, 3, 0.5).unwrap();
        assert!(matches!(
            seamless_clone(&img, &img, &mask, (1, 1)),
            Err(ImageError::OutOfBounds { .. })
        ));
        // Empty mask: dst unchanged.
        let out = seamless_clone(&img, &img, &Image::zeros(20, 10, 1).unwrap(), (5, 5)).unwrap();
        assert_eq!(out, Image::filled(20, 10, 3, 127.0 / 255.0).unwrap());
    }
}
