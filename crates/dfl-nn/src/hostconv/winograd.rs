//! Winograd F(2x2, 3x3) for the 3x3, stride 1, padding 1 convolutions (the decoders' upscale
//! and residual convolutions, the fused image head) and for their input gradients, which are
//! the same kind of convolution with rotated, transposed kernels.
//!
//! Why: each 2x2 output tile costs 16 multiplies per input channel instead of 36, so the matrix
//! products, where a training step spends most of its time, shrink 2.25x for these layers.
//! The transforms are those of Lavin & Gray (2016); F(2x2, 3x3) keeps float32 results within
//! a few ulp of direct convolution (tests compare with the im2col path).

use super::{Mat, matmul};
use rayon::prelude::*;

/// Whether this module computes a convolution: 3x3/1/1 with at least 32 channels on both
/// sides and at least 384 output tiles (2x2) in the whole batch. Measured against im2col
/// (best of 5, batch 8): 1.4-1.7x faster at 16x16 and larger maps; even at 12x12 (288
/// tiles); slower below, where transforming the kernels (16/9 of the weights, every call)
/// outweighs the smaller products, and with fewer channels (the 128 -> 12 image head).
pub(super) fn applies(s: &super::ConvShape) -> bool {
    let tiles = s.n * s.h.div_ceil(2) * s.w.div_ceil(2);
    s.k == 3 && s.stride == 1 && s.pad == 1 && s.c.min(s.o) >= 32 && tiles >= 384
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
    if u.is_empty() {
        return u;
    }
    // Row r of all 16 transformed planes, written together and in order (16 sequential
    // streams; writing kernel by kernel would scatter 16 stores across the whole buffer).
    let mut per_row: Vec<Vec<&mut [f32]>> = (0..rows).map(|_| Vec::with_capacity(16)).collect();
    for plane in u.chunks_mut(rows * cols) {
        for (r, row) in plane.chunks_mut(cols).enumerate() {
            per_row[r].push(row);
        }
    }
    per_row
        .into_par_iter()
        .enumerate()
        .for_each(|(r, mut outs)| {
            for k in 0..cols {
                let (oo, cc) = if adjoint { (k, r) } else { (r, k) };
                let mut g = [0.0f32; 9];
                g.copy_from_slice(&w[(oo * c + cc) * 9..][..9]);
                if adjoint {
                    g.reverse();
                }
                for (out, v) in outs.iter_mut().zip(kernel_transform(&g)) {
                    out[k] = v;
                }
            }
        });
    u
}

/// Images `x` (`[g][c][h][w]`) convolved with transformed kernels `u` (`[16][o][c]`, from
/// [`kernels`]) into `y` (`[g][o][h][w]`, overwritten), plus `bias` when given. The tiles of
/// all the images form the columns of the products (small maps still give wide products), in
/// bands of tile rows whose transforms take at most `tile` floats of the scratch `bufs`;
/// `par` runs each product on all cores.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_images(
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
    let mut tmp = vec![0.0f32; 6 * tw];
    for_each_band(x, (c, h, w, o), bufs, tile, |band, v, m| {
        let tb = band.len() * tw;
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
        // A^T on the rows (`cols[j]`: one tile row's column j), then A on the columns
        // (`even`/`odd`: output columns 2tx and 2tx+1), interleaved into the output row.
        let (cols, eo) = tmp.split_at_mut(4 * tw);
        let (even, odd) = eo.split_at_mut(tw);
        for oo in 0..o {
            let b = bias.map_or(0.0, |b| b[oo]);
            for row_index in band.clone() {
                let (img, ty) = (row_index / th, row_index % th);
                let plane = &mut y[(img * o + oo) * h * w..][..h * w];
                let at = (row_index - band.start) * tw;
                let mt: [&[f32]; 16] = std::array::from_fn(|e| &m[(e * o + oo) * tb + at..][..tw]);
                for r in 0..2.min(h - 2 * ty) {
                    for (j, col) in cols.chunks_exact_mut(tw).enumerate() {
                        let (a, bb, cc, d) = (mt[j], mt[4 + j], mt[8 + j], mt[12 + j]);
                        let it = col.iter_mut().zip(a).zip(bb).zip(cc).zip(d);
                        if r == 0 {
                            it.for_each(|((((t, a), bb), cc), _)| *t = a + bb + cc);
                        } else {
                            it.for_each(|((((t, _), bb), cc), d)| *t = bb - cc - d);
                        }
                    }
                    let (t0, rest) = cols.split_at(tw);
                    let (t1, rest) = rest.split_at(tw);
                    let (t2, t3) = rest.split_at(tw);
                    for (((e, od), (a, bb)), (cc, d)) in even
                        .iter_mut()
                        .zip(odd.iter_mut())
                        .zip(t0.iter().zip(t1))
                        .zip(t2.iter().zip(t3))
                    {
                        *e = a + bb + cc + b;
                        *od = bb - cc - d + b;
                    }
                    let yrow = &mut plane[(2 * ty + r) * w..][..w];
                    for (pair, (e, od)) in yrow.chunks_mut(2).zip(even.iter().zip(odd.iter())) {
                        pair[0] = *e;
                        if let Some(second) = pair.get_mut(1) {
                            *second = *od;
                        }
                    }
                }
            }
        }
    });
}

/// The band loop both passes share: splits the tile rows of the images `x` (`[g][c][h][w]`,
/// one image's rows after the other's) into bands whose transforms (`c` inputs, `o` outputs)
/// take at most `tile` floats, and for each band runs `f(band, v, m)` with `v` holding the
/// band's input transform (`[16][c][tiles]`, [`transform_inputs`]) and `m` sized
/// `[16][o][tiles]` for the caller's products.
fn for_each_band(
    x: &[f32],
    (c, h, w, o): (usize, usize, usize, usize),
    bufs: [&mut Vec<f32>; 2],
    tile: usize,
    mut f: impl FnMut(std::ops::Range<usize>, &[f32], &mut [f32]),
) {
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let total = x.len() / (c * h * w).max(1) * th;
    let band = (tile / (16 * (c + o) * tw).max(1)).clamp(1, total.max(1));
    let [v, m] = bufs;
    let mut rows = vec![0.0f32; 8 * (tw + 1)];
    for band0 in (0..total).step_by(band) {
        let band1 = (band0 + band).min(total);
        let tb = (band1 - band0) * tw;
        v.resize(16 * c * tb, 0.0);
        m.resize(16 * o * tb, 0.0);
        transform_inputs(x, (c, h, w), band0..band1, v, &mut rows);
        f(band0..band1, v, m);
    }
}

/// `B^T d B` of every input tile of the tile rows `band` (counted across the images of `x`,
/// `[g][c][h][w]`) into `v` (`[16][c][tiles of the band]`); `rows` is scratch of
/// `8 * (ceil(w / 2) + 1)` floats.
fn transform_inputs(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    band: std::ops::Range<usize>,
    v: &mut [f32],
    rows: &mut [f32],
) {
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let tb = band.len() * tw;
    // Even and odd columns of the four input rows of a tile row, padded: `[row][even|odd][k]`,
    // even `k` holding column `2k - 1`, odd `k` column `2k`, zero outside the plane.
    let n = tw + 1;
    for ci in 0..c {
        for row_index in band.clone() {
            let (img, ty) = (row_index / th, row_index % th);
            let plane = &x[(img * c + ci) * h * w..][..h * w];
            split_rows(plane, h, w, ty, rows);
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
            let at = (row_index - band.start) * tw;
            for (i, row) in rows.chunks_exact(2 * n).enumerate() {
                let (even, odd) = row.split_at(n);
                let (e0, e1, d0, d1) = (&even[..tw], &even[1..], &odd[..tw], &odd[1..]);
                // One output plane at a time: plain zips the compiler vectorises.
                let combos: [(&[f32], &[f32], f32); 4] = [
                    (e0, e1, -1.0),
                    (d0, e1, 1.0),
                    (e1, d0, -1.0),
                    (d0, d1, -1.0),
                ];
                for (j, (a, b, sign)) in combos.into_iter().enumerate() {
                    let dst = &mut v[((4 * i + j) * c + ci) * tb + at..][..tw];
                    for ((d, a), b) in dst.iter_mut().zip(a).zip(b) {
                        *d = a + sign * b;
                    }
                }
            }
        }
    }
}

/// Accumulates into `du` (`[16][o][c]`, the gradient of the transformed kernels) the weight
/// gradient of images `x` (`[g][c][h][w]`) with output gradients `dy` (`[g][o][h][w]`):
/// per transformed position, `du += (A dY A^T) * (B^T d B)^T` over all tiles, one product
/// per band as in [`conv_images`]. [`kernel_grads`] turns the sum into `[o][c][3][3]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_grad_images(
    (c, h, w, o): (usize, usize, usize, usize),
    x: &[f32],
    dy: &[f32],
    du: &mut [f32],
    bufs: [&mut Vec<f32>; 2],
    tile: usize,
    par: bool,
) {
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    // Even and odd columns of the two output-gradient rows of a tile row.
    let mut eo = vec![0.0f32; 4 * tw];
    for_each_band(x, (c, h, w, o), bufs, tile, |band, v, m| {
        let tb = band.len() * tw;
        for oo in 0..o {
            for row_index in band.clone() {
                let (img, ty) = (row_index / th, row_index % th);
                let plane = &dy[(img * o + oo) * h * w..][..h * w];
                eo.fill(0.0);
                let (top, bottom) = eo.split_at_mut(2 * tw);
                for (r, half) in [top, bottom].into_iter().enumerate() {
                    if 2 * ty + r < h {
                        let (even, odd) = half.split_at_mut(tw);
                        deinterleave(&plane[(2 * ty + r) * w..][..w], even, odd);
                    }
                }
                // A dY A^T of the tile [[p, q], [r, s]]: rows [p, q], [p + r, q + s],
                // [p - r, q - s], [-r, -s]; each row [a, b] -> [a, a + b, a - b, -b].
                let (pq, rs) = eo.split_at(2 * tw);
                let (p, q) = pq.split_at(tw);
                let (r, s) = rs.split_at(tw);
                let at = (row_index - band.start) * tw;
                for i in 0..4 {
                    for j in 0..4 {
                        let dst = &mut m[((4 * i + j) * o + oo) * tb + at..][..tw];
                        for (tx, d) in dst.iter_mut().enumerate() {
                            let (a, b) = match i {
                                0 => (p[tx], q[tx]),
                                1 => (p[tx] + r[tx], q[tx] + s[tx]),
                                2 => (p[tx] - r[tx], q[tx] - s[tx]),
                                _ => (-r[tx], -s[tx]),
                            };
                            *d = match j {
                                0 => a,
                                1 => a + b,
                                2 => a - b,
                                _ => -b,
                            };
                        }
                    }
                }
            }
        }
        for e in 0..16 {
            matmul(
                &mut du[e * o * c..][..o * c],
                c,
                true,
                Mat::rows(&m[e * o * tb..][..o * tb], o, tb, tb),
                Mat::rows(&v[e * c * tb..][..c * tb], c, tb, tb).t(),
                par,
            );
        }
    });
}

/// `G^T dU G` of every kernel: the weight gradient `[o][c][3][3]` from the gradient of the
/// transformed kernels `du` (`[16][o][c]`, see [`weight_grad_images`]).
pub(super) fn kernel_grads(du: &[f32], o: usize, c: usize) -> Vec<f32> {
    let mut dw = vec![0.0f32; o * c * 9];
    dw.par_chunks_mut(c * 9).enumerate().for_each(|(oo, row)| {
        for (cc, g) in row.chunks_exact_mut(9).enumerate() {
            let d = |e: usize| du[(e * o + oo) * c + cc];
            // Z = G^T dU (3x4), column by column, then Z G (3x3).
            let cols: [[f32; 3]; 4] = std::array::from_fn(|j| {
                let (d0, d1, d2, d3) = (d(j), d(4 + j), d(8 + j), d(12 + j));
                [d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3]
            });
            let z: [[f32; 4]; 3] = std::array::from_fn(|a| std::array::from_fn(|j| cols[j][a]));
            for (a, [z0, z1, z2, z3]) in z.into_iter().enumerate() {
                g[3 * a] = z0 + 0.5 * (z1 + z2);
                g[3 * a + 1] = 0.5 * (z1 - z2);
                g[3 * a + 2] = 0.5 * (z1 + z2) + z3;
            }
        }
    });
    dw
}

/// Splits the four input rows `2ty - 1 .. 2ty + 3` of tile row `ty` into even and odd
/// columns (see [`conv_image`]), zero where they leave the plane.
fn split_rows(plane: &[f32], h: usize, w: usize, ty: usize, rows: &mut [f32]) {
    let n = rows.len() / 8;
    for (i, row) in rows.chunks_exact_mut(2 * n).enumerate() {
        let (even, odd) = row.split_at_mut(n);
        even.fill(0.0);
        odd.fill(0.0);
        let Some(src) = (2 * ty + i)
            .checked_sub(1)
            .filter(|&yy| yy < h)
            .map(|yy| &plane[yy * w..][..w])
        else {
            continue;
        };
        // Column 2k - 1 goes to even[k], column 2k to odd[k]; the rest stays zero.
        deinterleave(src, odd, &mut even[1..]);
    }
}

/// Columns `2k` of `src` into `first[k]` and columns `2k + 1` into `second[k]`.
fn deinterleave(src: &[f32], first: &mut [f32], second: &mut [f32]) {
    for (k, pair) in src.chunks(2).enumerate() {
        first[k] = pair[0];
        if let Some(&v) = pair.get(1) {
            second[k] = v;
        }
    }
}
