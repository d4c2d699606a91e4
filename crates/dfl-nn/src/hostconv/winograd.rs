//! Winograd F(2x2, 3x3) for the 3x3, stride 1, padding 1 convolutions (the decoders' upscale
//! and residual convolutions, the fused image head) and for their input gradients, which are
//! the same kind of convolution with rotated, transposed kernels.
//!
//! Why: each 2x2 output tile costs 16 multiplies per input channel instead of 36, so the matrix
//! products, where a training step spends most of its time, shrink 2.25x for these layers.
//! The transforms are those of Lavin & Gray (2016); F(2x2, 3x3) keeps float32 results within
//! a few ulp of direct convolution (tests compare with the im2col path).

use super::{Mat, matmul};

/// Whether a convolution of kernel `k`, `stride`, `pad` between `c` and `o` channels on
/// `h x w` maps is one this module computes: 3x3/1/1 with at least 32 channels on both sides
/// and maps of at least 16x16. Measured: with fewer channels (the fused image head,
/// 128 -> 12) the transforms cost more than the smaller products save, and on 8x8 maps
/// (512 -> 2048, the decoders' first upscale) the per-image products are only 16 tiles wide
/// and run 2.7x slower than im2col's.
pub(super) fn applies(s: &super::ConvShape) -> bool {
    s.k == 3 && s.stride == 1 && s.pad == 1 && s.c.min(s.o) >= 32 && s.h * s.w >= 256
}

/// `G g G^T` of one 3x3 kernel (row-major), as 16 values.
fn kernel_transform(g: &[f32; 9]) -> [f32; 16] {
    let mut gg = [[0.0f32; 3]; 4];
    for col in 0..3 {
        let (a, b, c) = (g[col], g[3 + col], g[6 + col]);
        gg[0][col] = a;
        gg[1][col] = 0.5 * (a + b + c);
        gg[2][col] = 0.5 * (a - b + c);
        gg[3][col] = c;
    }
    let mut u = [0.0f32; 16];
    for (r, [a, b, c]) in gg.into_iter().enumerate() {
        u[r * 4] = a;
        u[r * 4 + 1] = 0.5 * (a + b + c);
        u[r * 4 + 2] = 0.5 * (a - b + c);
        u[r * 4 + 3] = c;
    }
    u
}

/// Transformed kernels `[16][rows][cols]` of `w` (`[o][c][3][3]`): `rows = o, cols = c` for
/// the forward pass; with `adjoint`, `rows = c, cols = o` and every kernel rotated by 180
/// degrees, the kernels of the input gradient.
pub(super) fn kernels(w: &[f32], o: usize, c: usize, adjoint: bool) -> Vec<f32> {
    let (rows, cols) = if adjoint { (c, o) } else { (o, c) };
    let mut u = vec![0.0f32; 16 * o * c];
    for (i, g) in w.chunks_exact(9).enumerate() {
        let (oo, cc) = (i / c, i % c);
        let mut k = [0.0f32; 9];
        k.copy_from_slice(g);
        let (r, col) = if adjoint {
            k.reverse();
            (cc, oo)
        } else {
            (oo, cc)
        };
        for (e, v) in kernel_transform(&k).into_iter().enumerate() {
            u[(e * rows + r) * cols + col] = v;
        }
    }
    u
}

/// One image `x` (`[c][h][w]`) convolved with transformed kernels `u` (`[16][o][c]`, from
/// [`kernels`]) into `y` (`[o][h][w]`, overwritten), plus `bias` when given, in bands of
/// tile rows whose transforms take at most `tile` floats of the scratch `bufs`; `par` runs
/// each product on all cores.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_image(
    (c, h, w, o): (usize, usize, usize, usize),
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    bufs: [&mut Vec<f32>; 2],
    tile: usize,
    par: bool,
) {
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let band = (tile / (16 * (c + o) * tw).max(1)).clamp(1, th);
    let [v, m] = bufs;
    // Even and odd columns of the four input rows of a tile row, padded: `[row][even|odd][k]`,
    // even `k` holding column `2k - 1`, odd `k` column `2k`, zero outside the plane.
    let n = tw + 1;
    let mut rows = vec![0.0f32; 8 * n];
    for ty0 in (0..th).step_by(band) {
        let ty1 = (ty0 + band).min(th);
        let tb = (ty1 - ty0) * tw;
        v.resize(16 * c * tb, 0.0);
        m.resize(16 * o * tb, 0.0);
        for (ci, plane) in x.chunks_exact(h * w).enumerate() {
            for ty in ty0..ty1 {
                split_rows(plane, h, w, ty, &mut rows);
                // B^T on the rows: r0 - r2, r1 + r2, r2 - r1, r1 - r3, in place of r0..r3.
                let (r01, r23) = rows.split_at_mut(4 * n);
                let (r0, r1) = r01.split_at_mut(2 * n);
                let (r2, r3) = r23.split_at_mut(2 * n);
                for (((a, b), cc), d) in r0
                    .iter_mut()
                    .zip(r1.iter_mut())
                    .zip(r2.iter_mut())
                    .zip(r3.iter_mut())
                {
                    let (x0, x1, x2, x3) = (*a, *b, *cc, *d);
                    *a = x0 - x2;
                    *b = x1 + x2;
                    *cc = x2 - x1;
                    *d = x1 - x3;
                }
                // ... then B on the columns, tile by tile (tile tx reads even tx, tx+1 and
                // odd tx, tx+1), into the 16 transformed planes.
                let at = (ty - ty0) * tw;
                for (i, row) in rows.chunks_exact(2 * n).enumerate() {
                    let (even, odd) = row.split_at(n);
                    let out = |e: usize| (e * c + ci) * tb + at;
                    let [o0, o1, o2, o3] =
                        [out(4 * i), out(4 * i + 1), out(4 * i + 2), out(4 * i + 3)];
                    for tx in 0..tw {
                        let (e0, e1, d0, d1) = (even[tx], even[tx + 1], odd[tx], odd[tx + 1]);
                        v[o0 + tx] = e0 - e1;
                        v[o1 + tx] = d0 + e1;
                        v[o2 + tx] = e1 - d0;
                        v[o3 + tx] = d0 - d1;
                    }
                }
            }
        }
        for e in 0..16 {
            matmul(
                &mut m[e * o * tb..][..o * tb],
                tb,
                false,
                Mat::rows(&u[e * o * c..][..o * c], o, c, c),
                Mat::rows(&v[e * c * tb..][..c * tb], c, tb, tb),
                par,
            );
        }
        for oo in 0..o {
            let b = bias.map_or(0.0, |b| b[oo]);
            let plane = &mut y[oo * h * w..][..h * w];
            for ty in ty0..ty1 {
                let at = (ty - ty0) * tw;
                let mt: [&[f32]; 16] = std::array::from_fn(|e| &m[(e * o + oo) * tb + at..][..tw]);
                for r in 0..2.min(h - 2 * ty) {
                    let yrow = &mut plane[(2 * ty + r) * w..][..w];
                    for tx in 0..tw {
                        // A^T on the rows, then A on the columns.
                        let col = |j: usize| {
                            let (a, bb, cc, d) =
                                (mt[j][tx], mt[4 + j][tx], mt[8 + j][tx], mt[12 + j][tx]);
                            if r == 0 { a + bb + cc } else { bb - cc - d }
                        };
                        let (t0, t1, t2, t3) = (col(0), col(1), col(2), col(3));
                        yrow[2 * tx] = t0 + t1 + t2 + b;
                        if 2 * tx + 1 < w {
                            yrow[2 * tx + 1] = t1 - t2 - t3 + b;
                        }
                    }
                }
            }
        }
    }
}

/// Splits the four input rows `2ty - 1 .. 2ty + 3` of tile row `ty` into even and odd
/// columns (see [`conv_image`]), zero where they leave the plane.
fn split_rows(plane: &[f32], h: usize, w: usize, ty: usize, rows: &mut [f32]) {
    let n = rows.len() / 8;
    for (i, row) in rows.chunks_exact_mut(2 * n).enumerate() {
        let (even, odd) = row.split_at_mut(n);
        let Some(src) = (2 * ty + i)
            .checked_sub(1)
            .filter(|&yy| yy < h)
            .map(|yy| &plane[yy * w..][..w])
        else {
            even.fill(0.0);
            odd.fill(0.0);
            continue;
        };
        for (k, e) in even.iter_mut().enumerate() {
            *e = (2 * k)
                .checked_sub(1)
                .and_then(|x| src.get(x))
                .copied()
                .unwrap_or(0.0);
        }
        for (k, d) in odd.iter_mut().enumerate() {
            *d = src.get(2 * k).copied().unwrap_or(0.0);
        }
    }
}
