//! DFL's random sample geometry (`imagelib.gen_warp_params` / `warp_by_params`, §6.3): a
//! random grid warp, a random rotation/scale/shift, and a random horizontal flip, drawn once
//! per sample and applied identically to every output of that sample.
//!
//! **Grid-warp aliasing quirk: reproduced.** DFL builds the y map as a transposed *view* of
//! the x map and adds both noise arrays in place, so they land in the same memory: the
//! interior displacements are `dx[i][j] = A[i][j] + B[j][i]` and `dy = dx^T`. Each
//! displacement is the sum of two truncated normals (about `sqrt(2)` times the spread the
//! code seems to intend, at most 0.48 cell) and the y field mirrors the x field. We keep it:
//! every SAEHD model ever trained learned to undo exactly this distortion, the warp strength
//! is what users tuned their expectations (and the "random warp off" phase) against, and a
//! model moved between DFL and dfl-rs keeps seeing the same input statistics.
//!
//! Randomness: DFL draws the affine/flip values and the grid values from two generators
//! seeded with the same per-sample seed (two identical streams); we do the same with our
//! generator (bit-exact parity with numpy's stream is not a goal).

use crate::error::{Result, TrainError};
use dfl_image::{Border, Image, Interp, invert_affine, remap, resize, rotation_matrix_2d};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// DFL's `SampleProcessor.Options` ranges for the random transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarpRanges {
    /// Rotation range in degrees.
    pub rotation: [f64; 2],
    /// Scale range: the scale is drawn in `[1/(1 - s0), 1 + s1]`.
    pub scale: [f64; 2],
    /// Horizontal shift range, as a fraction of the width.
    pub tx: [f64; 2],
    /// Vertical shift range, as a fraction of the height.
    pub ty: [f64; 2],
}

impl WarpRanges {
    /// SAEHD (and AMP): scale range ±0.15, rotation ±10°, shift ±0.05.
    pub const SAEHD: WarpRanges = WarpRanges {
        rotation: [-10.0, 10.0],
        scale: [-0.15, 0.15],
        tx: [-0.05, 0.05],
        ty: [-0.05, 0.05],
    };
    /// DFL's `Options` defaults (Quick96): scale range ±0.05, rotation ±10°, shift ±0.05.
    pub const DEFAULT: WarpRanges = WarpRanges {
        rotation: [-10.0, 10.0],
        scale: [-0.05, 0.05],
        tx: [-0.05, 0.05],
        ty: [-0.05, 0.05],
    };
}

/// The random geometry of one sample.
#[derive(Debug, Clone)]
pub struct WarpParams {
    /// Side the maps and matrix are built for (at least 64).
    pub w: usize,
    /// The real side when it is below 64 (images are resized to 64, processed and resized
    /// back, as DFL does).
    pub rw: Option<usize>,
    /// Grid cell size of the warp (`w/2`, `w/4` or `w/8`).
    pub cell: usize,
    /// `remap` x map (`w x w`, one channel).
    pub mapx: Image,
    /// `remap` y map.
    pub mapy: Image,
    /// The random affine (rotation and scale about the centre, plus the shift), source to
    /// destination like `cv2.warpAffine`'s matrix.
    pub rmat: [[f64; 3]; 2],
    /// Horizontal flip.
    pub flip: bool,
}

/// A standard normal redrawn until it lies in `[-2.5, 2.5]`, divided by 2.5
/// (`randomex.random_normal`).
fn truncated_normal(rng: &mut StdRng) -> f64 {
    loop {
        let v: f64 = StandardNormal.sample(rng);
        if (-2.5..=2.5).contains(&v) {
            return v / 2.5;
        }
    }
}

/// The `n x n` control-point maps of DFL's grid warp, with the aliasing quirk (see the
/// module docs): returns `(mapx, mapy)` row-major, `mapy` the transpose of `mapx`.
pub fn control_points(w: usize, cell: usize, warp_rng: &mut StdRng) -> (Vec<f64>, Vec<f64>) {
    let n = w / cell + 1;
    let g: Vec<f64> = (0..n)
        .map(|i| w as f64 * i as f64 / (n - 1) as f64)
        .collect();
    let k = n - 2;
    let amp = cell as f64 * 0.24;
    let a: Vec<f64> = (0..k * k)
        .map(|_| truncated_normal(warp_rng) * amp)
        .collect();
    let b: Vec<f64> = (0..k * k)
        .map(|_| truncated_normal(warp_rng) * amp)
        .collect();
    let mut mapx = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            mapx[i * n + j] = g[j];
        }
    }
    for i in 1..n - 1 {
        for j in 1..n - 1 {
            // A lands at [i][j] of the x view; B at [i][j] of the transposed view, i.e. at
            // [j][i] of the shared memory.
            mapx[i * n + j] += a[(i - 1) * k + (j - 1)] + b[(j - 1) * k + (i - 1)];
        }
    }
    let mut mapy = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            mapy[i * n + j] = mapx[j * n + i];
        }
    }
    (mapx, mapy)
}

/// Resizes control points to `(w + cell)^2` with OpenCV bilinear and crops `cell/2` on
/// every side: the dense `w x w` map.
fn dense_map(points: &[f64], n: usize, w: usize, cell: usize) -> Result<Image> {
    let small = Image::new(n, n, 1, points.iter().map(|&v| v as f32).collect())
        .map_err(|e| TrainError::Pipeline(format!("warp grid: {e}")))?;
    let big = resize(&small, w + cell, w + cell, Interp::Linear)
        .map_err(|e| TrainError::Pipeline(format!("warp grid: {e}")))?;
    big.crop(cell / 2, cell / 2, w, w)
        .map_err(|e| TrainError::Pipeline(format!("warp grid: {e}")))
}

impl WarpParams {
    /// DFL's `gen_warp_params(w, flip, ranges)` from a per-sample seed: rotation, scale, tx,
    /// ty and the 40 % flip from one stream, then the cell size and the grid noise from a
    /// second stream with the same seed.
    pub fn generate(w: usize, flip: bool, ranges: &WarpRanges, seed: u64) -> Result<Self> {
        if w == 0 {
            return Err(TrainError::Pipeline("warp of a 0-pixel image".into()));
        }
        let (w, rw) = if w < 64 { (64, Some(w)) } else { (w, None) };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut warp_rng = StdRng::seed_from_u64(seed);
        let uniform = |rng: &mut StdRng, r: [f64; 2]| {
            if r[1] > r[0] {
                rng.random_range(r[0]..r[1])
            } else {
                r[0]
            }
        };
        let rotation = uniform(&mut rng, ranges.rotation);
        let scale = uniform(
            &mut rng,
            [1.0 / (1.0 - ranges.scale[0]), 1.0 + ranges.scale[1]],
        );
        let tx = uniform(&mut rng, ranges.tx);
        let ty = uniform(&mut rng, ranges.ty);
        let p_flip = flip && rng.random_range(0..10) < 4;

        let cell = w >> warp_rng.random_range(1..4u32);
        let n = w / cell + 1;
        let (px, py) = control_points(w, cell, &mut warp_rng);
        let mapx = dense_map(&px, n, w, cell)?;
        let mapy = dense_map(&py, n, w, cell)?;

        let c = (w / 2) as f64;
        let mut rmat = rotation_matrix_2d(c, c, rotation, scale);
        rmat[0][2] += tx * w as f64;
        rmat[1][2] += ty * w as f64;
        Ok(WarpParams {
            w,
            rw,
            cell,
            mapx,
            mapy,
            rmat,
            flip: p_flip,
        })
    }

    /// DFL's `warp_by_params`: grid warp (if `warp`; constant-0 border), then the affine (if
    /// `transform`; replicated border for images, constant 0 for masks), then the flip (if
    /// `flip` and drawn), all with `interp`. Images below 64 px are processed at 64.
    pub fn apply(
        &self,
        img: &Image,
        warp: bool,
        transform: bool,
        flip: bool,
        replicate_border: bool,
        interp: Interp,
    ) -> Result<Image> {
        let err = |e: dfl_image::ImageError| TrainError::Pipeline(format!("sample warp: {e}"));
        let resized = (warp || transform) && self.rw.is_some();
        let mut out = if resized {
            resize(img, self.w, self.w, interp).map_err(err)?
        } else {
            img.clone()
        };
        if warp {
            out =
                remap(&out, &self.mapx, &self.mapy, interp, Border::Constant(0.0)).map_err(err)?;
        }
        if transform {
            let border = if replicate_border {
                Border::Replicate
            } else {
                Border::Constant(0.0)
            };
            out = dfl_image::warp_affine(&out, &self.rmat, self.w, self.w, interp, border)
                .map_err(err)?;
        }
        if let (true, Some(rw)) = (resized, self.rw) {
            out = resize(&out, rw, rw, interp).map_err(err)?;
        }
        if flip && self.flip {
            flip_horizontal(&mut out);
        }
        Ok(out)
    }

    /// Where a point of the (unwarped) input lands in the output of
    /// [`Self::apply`]`(.., warp, transform=true, flip=true, ..)`: the grid warp is inverted
    /// numerically (the output pixel whose map value is the point), then the affine and the
    /// flip are applied. For checks and landmark bookkeeping; `None` if the point leaves the
    /// grid.
    pub fn map_point(&self, p: [f64; 2], warp: bool) -> Option<[f64; 2]> {
        let q = if warp { self.invert_grid(p)? } else { p };
        let m = &self.rmat;
        let mut x = m[0][0] * q[0] + m[0][1] * q[1] + m[0][2];
        let y = m[1][0] * q[0] + m[1][1] * q[1] + m[1][2];
        if self.flip {
            x = (self.w - 1) as f64 - x;
        }
        Some([x, y])
    }

    /// Bilinear value of a map at a (fractional) output position.
    fn map_at(map: &Image, x: f64, y: f64) -> f64 {
        let w = map.width();
        let xc = x.clamp(0.0, (w - 1) as f64);
        let yc = y.clamp(0.0, (w - 1) as f64);
        let (x0, y0) = (xc.floor() as usize, yc.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(w - 1));
        let (fx, fy) = (xc - x0 as f64, yc - y0 as f64);
        let v = |x, y| f64::from(map.get(x, y, 0));
        (v(x0, y0) * (1.0 - fx) + v(x1, y0) * fx) * (1.0 - fy)
            + (v(x0, y1) * (1.0 - fx) + v(x1, y1) * fx) * fy
    }

    /// The output position whose grid-map value is `p` (Newton's method on the bilinear
    /// map, starting at `p`: the warp moves points by less than half a cell).
    fn invert_grid(&self, p: [f64; 2]) -> Option<[f64; 2]> {
        let mut q = p;
        for _ in 0..50 {
            let fx = Self::map_at(&self.mapx, q[0], q[1]) - p[0];
            let fy = Self::map_at(&self.mapy, q[0], q[1]) - p[1];
            if fx.abs() < 1e-4 && fy.abs() < 1e-4 {
                return Some(q);
            }
            let h = 0.5;
            let dxx = (Self::map_at(&self.mapx, q[0] + h, q[1])
                - Self::map_at(&self.mapx, q[0] - h, q[1]))
                / (2.0 * h);
            let dxy = (Self::map_at(&self.mapx, q[0], q[1] + h)
                - Self::map_at(&self.mapx, q[0], q[1] - h))
                / (2.0 * h);
            let dyx = (Self::map_at(&self.mapy, q[0] + h, q[1])
                - Self::map_at(&self.mapy, q[0] - h, q[1]))
                / (2.0 * h);
            let dyy = (Self::map_at(&self.mapy, q[0], q[1] + h)
                - Self::map_at(&self.mapy, q[0], q[1] - h))
                / (2.0 * h);
            let inv = invert_affine(&[[dxx, dxy, 0.0], [dyx, dyy, 0.0]]).ok()?;
            q = [
                q[0] - (inv[0][0] * fx + inv[0][1] * fy),
                q[1] - (inv[1][0] * fx + inv[1][1] * fy),
            ];
            if !q[0].is_finite() || !q[1].is_finite() {
                return None;
            }
        }
        None
    }
}

/// Mirrors an image left-right in place (`img[:, ::-1]`).
pub fn flip_horizontal(img: &mut Image) {
    let (w, h, c) = img.shape();
    for y in 0..h {
        let row = img.row_mut(y);
        for x in 0..w / 2 {
            for k in 0..c {
                row.swap(x * c + k, (w - 1 - x) * c + k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_noise_aliases_like_dfl() {
        let mut rng = StdRng::seed_from_u64(4);
        let (w, cell) = (64, 16);
        let n = w / cell + 1;
        let (mx, my) = control_points(w, cell, &mut rng);
        // Replay the two noise arrays to check dx = A + B^T and dy = dx^T.
        let mut rng = StdRng::seed_from_u64(4);
        let k = n - 2;
        let amp = cell as f64 * 0.24;
        let a: Vec<f64> = (0..k * k)
            .map(|_| truncated_normal(&mut rng) * amp)
            .collect();
        let b: Vec<f64> = (0..k * k)
            .map(|_| truncated_normal(&mut rng) * amp)
            .collect();
        let g = |j: usize| w as f64 * j as f64 / (n - 1) as f64;
        for i in 0..n {
            for j in 0..n {
                let inner = (1..n - 1).contains(&i) && (1..n - 1).contains(&j);
                let dx = mx[i * n + j] - g(j);
                let dy = my[i * n + j] - g(i);
                if inner {
                    let want = a[(i - 1) * k + j - 1] + b[(j - 1) * k + i - 1];
                    assert!((dx - want).abs() < 1e-12);
                    assert!(dx.abs() <= 0.48 * cell as f64 + 1e-9);
                } else {
                    assert_eq!((dx, dy), (0.0, 0.0), "the border ring stays put");
                }
                assert_eq!(my[i * n + j] - g(i), mx[j * n + i] - g(i));
            }
        }
    }

    #[test]
    fn same_seed_same_params_and_ranges_hold() {
        let a = WarpParams::generate(128, true, &WarpRanges::SAEHD, 77).unwrap();
        let b = WarpParams::generate(128, true, &WarpRanges::SAEHD, 77).unwrap();
        assert_eq!(a.mapx.data(), b.mapx.data());
        assert_eq!(a.rmat, b.rmat);
        assert_eq!(a.flip, b.flip);
        let mut flips = 0;
        for seed in 0..400 {
            let p = WarpParams::generate(64, true, &WarpRanges::SAEHD, seed).unwrap();
            flips += usize::from(p.flip);
            assert!([32, 16, 8].contains(&p.cell));
            // scale = |first column| of the rotation-scale matrix.
            let s = (p.rmat[0][0].powi(2) + p.rmat[1][0].powi(2)).sqrt();
            assert!((1.0 / 1.15 - 1e-9..=1.15 + 1e-9).contains(&s), "{s}");
            let angle = p.rmat[0][1].atan2(p.rmat[0][0]).to_degrees();
            assert!(angle.abs() <= 10.0 + 1e-9);
        }
        // 40 % flips: 160 expected of 400, binomial sd ~ 9.8.
        assert!((120..=200).contains(&flips), "{flips}");
    }

    #[test]
    fn map_point_inverts_the_remap() {
        let p = WarpParams::generate(96, true, &WarpRanges::SAEHD, 5).unwrap();
        for src in [[30.0, 40.0], [50.5, 60.25], [70.0, 20.0]] {
            let out = p.map_point(src, true).unwrap();
            // Undo flip and affine, then read the map at that output position.
            let mut x = out[0];
            if p.flip {
                x = (p.w - 1) as f64 - x;
            }
            let inv = invert_affine(&p.rmat).unwrap();
            let q = [
                inv[0][0] * x + inv[0][1] * out[1] + inv[0][2],
                inv[1][0] * x + inv[1][1] * out[1] + inv[1][2],
            ];
            let back = [
                WarpParams::map_at(&p.mapx, q[0], q[1]),
                WarpParams::map_at(&p.mapy, q[0], q[1]),
            ];
            assert!((back[0] - src[0]).abs() < 1e-3 && (back[1] - src[1]).abs() < 1e-3);
        }
    }
}
