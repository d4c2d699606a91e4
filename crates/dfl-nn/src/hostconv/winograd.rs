//! Winograd F(m x m, 3 x 3) for the 3x3, stride 1, padding 1 convolutions (the decoders' upscale
//! and residual convolutions), for their input gradients, which are the same kind of
//! convolution with rotated, transposed kernels, and for their weight gradients.
//!
//! Why: an m x m output tile costs (m + 2)^2 multiplies per input channel instead of 9 m^2, so
//! the matrix products, where a training step spends most of its time, shrink 2.25x with
//! F(2x2, 3x3) and 4x with F(4x4, 3x3). The transforms are those of Lavin & Gray (2016)
//! (points 0, +-1, +-2 and infinity for F(4x4)); F(2x2) keeps float32 results within a few
//! ulp of direct convolution, F(4x4) within ~1e-4 relative (tests compare with im2col).
//!
//! Every transform is a linear combination of whole rows (one value per tile), so the loops
//! are plain slice zips the compiler vectorises. Layout: a transformed quantity of a band of
//! tiles is `[planes][channels][tiles]` with `planes = (m + 2)^2`.

use super::{Mat, matmul};
use dfl_core::simd::madd;
use rayon::prelude::*;

/// One Winograd algorithm F(m x m, 3 x 3): its transform matrices (`n = m + 2` points).
#[derive(Debug)]
pub(super) struct Variant {
    /// Output tile side m.
    m: usize,
    /// Input transform `B^T`, n x n.
    bt: &'static [&'static [f32]],
    /// Output transform `A^T`, m x n.
    at: &'static [&'static [f32]],
    /// Kernel transform `G`, n x 3.
    g: &'static [[f32; 3]],
}

/// F(2x2, 3x3).
pub(super) static F2: Variant = Variant {
    m: 2,
    bt: &[
        &[1.0, 0.0, -1.0, 0.0],
        &[0.0, 1.0, 1.0, 0.0],
        &[0.0, -1.0, 1.0, 0.0],
        &[0.0, 1.0, 0.0, -1.0],
    ],
    at: &[&[1.0, 1.0, 1.0, 0.0], &[0.0, 1.0, -1.0, -1.0]],
    g: &[
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ],
};

/// F(4x4, 3x3).
pub(super) static F4: Variant = Variant {
    m: 4,
    bt: &[
        &[4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        &[0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        &[0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        &[0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        &[0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        &[0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ],
    at: &[
        &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        &[0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        &[0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        &[0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ],
    g: &[
        [0.25, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ],
};

impl Variant {
    /// Points n = m + 2 of one side of a transformed tile.
    fn n(&self) -> usize {
        self.m + 2
    }

    /// Transformed positions per tile, (m + 2)^2: the number of matrix products per band.
    pub(super) fn planes(&self) -> usize {
        self.n() * self.n()
    }
}

/// Most transformed kernel values a training convolution may take (32 MiB): the calling
/// thread keeps its largest kernels between calls, and SAEHD's 1,024 -> 2,048 decoder layer
/// with F(2x2) (32 M values, also one whole kernel gradient per thread then) raised the
/// trainer's peak memory by 480 MB for a 10 % faster layer.
const MAX_TRAINING_KERNELS: usize = 1 << 23;

/// Which algorithm computes a convolution, if any: 3x3/1/1 with at least 32 channels on both
/// sides and enough tiles in the whole batch to pay for transforming the kernels at every
/// call (`planes / 9` of the weights). F(4x4) (when `f4`) on maps of 32 px and more with at
/// least 192 tiles of 4x4, else F(2x2) from 128 tiles of 2x2, else none (im2col). Measured
/// (forward + backward, best of 5, the layers taking turns): F(2x2) is 1.1-1.9x faster than
/// im2col from 16x16 maps up, and 1.1-1.5x on Quick96's 12x12 layers at batch 4 (144
/// tiles) and SAEHD's 8x8 ones at 8 images (128 tiles) once its kernel buffers are kept
/// between calls (whole steps 4-5 % faster); F(4x4) a further 1.1-1.3x on the decoders'
/// 32x32 and 64x64 maps but slower at 16x16 (4-tile rows, 36 transformed kernels per call);
/// with fewer channels (the 128 -> 12 image head) or 6x6 maps neither pays. Kernels past
/// [`MAX_TRAINING_KERNELS`] stay on im2col.
pub(super) fn pick(s: &super::ConvShape, f4: bool) -> Option<&'static Variant> {
    if !(s.k == 3 && s.stride == 1 && s.pad == 1 && s.c.min(s.o) >= 32) {
        return None;
    }
    let tiles = |m: usize| s.n * s.h.div_ceil(m) * s.w.div_ceil(m);
    let fits = |v: &Variant| v.planes() * s.c * s.o <= MAX_TRAINING_KERNELS;
    if f4 && s.h.min(s.w) >= 32 && tiles(4) >= 192 && fits(&F4) {
        Some(&F4)
    } else if tiles(2) >= 128 && fits(&F2) {
        Some(&F2)
    } else {
        None
    }
}

/// [`pick`] for frozen weights whose transformed kernels are cached between calls
/// ([`super::KernelCache`]), so the transform costs nothing per call: F(4x4) on maps of 8 px
/// and more, F(2x2) on 6 and 7 px, else none. Measured on one thread at batch 4 and 8 (the
/// merger's per-thread batches), cached kernels against im2col: F(4x4) 1.8-3.1x on Quick96's
/// and SAEHD's 8-48 px decoder layers (F(2x2) 1.2-2.3x there); at 6 px F(2x2) 1.2-2.3x and
/// F(4x4) 0.8-1.5x (most of its 8x8 tiles are padding).
pub(super) fn pick_frozen(s: &super::ConvShape, f4: bool) -> Option<&'static Variant> {
    if !(s.k == 3 && s.stride == 1 && s.pad == 1 && s.c.min(s.o) >= 32) {
        return None;
    }
    match s.h.min(s.w) {
        8.. if f4 => Some(&F4),
        6.. => Some(&F2),
        _ => None,
    }
}

/// A band's transforms (every plane of every input and output channel) may take this many
/// im2col tiles (`tile` floats each) of scratch: F(4x4) holds 36 planes, and at 1,280
/// channels one tile would leave its products 16 columns wide, where they run at a fraction
/// of their speed.
const BAND_TILES: usize = 8;

/// Values per row of the output transform: output channels are transformed together in
/// groups of about this many values (channels x tiles of the band).
const GROUP_FLOATS: usize = 1024;

/// Most points of a side (F(4x4)): the size of the fixed arrays of row slices below.
const MAX_N: usize = 6;

/// `dst = sum_k coef[k] * src[k]`, skipping zero coefficients (every `src` at least as long
/// as `dst`), in one pass over `dst`; compiled for AVX2 + FMA where the CPU has them (every
/// Winograd transform is made of these).
#[inline(always)]
fn combine_body<const FMA: bool>(dst: &mut [f32], coef: &[f32], src: &[&[f32]]) {
    /// Outputs summed in registers at a time: two AVX registers per term.
    const B: usize = 16;
    let len = dst.len();
    let mut terms: [(f32, &[f32]); MAX_N] = [(0.0, &[]); MAX_N];
    let mut count = 0;
    for (&k, s) in coef.iter().zip(src) {
        if k != 0.0 && count < MAX_N {
            terms[count] = (k, &s[..len]);
            count += 1;
        }
    }
    let terms = &terms[..count];
    let full = len / B * B;
    for (i, d) in dst[..full].chunks_exact_mut(B).enumerate() {
        let mut acc = [0.0f32; B];
        for &(k, s) in terms {
            for (a, &v) in acc.iter_mut().zip(&s[i * B..][..B]) {
                *a = madd::<FMA>(*a, k, v);
            }
        }
        d.copy_from_slice(&acc);
    }
    for (j, d) in dst.iter_mut().enumerate().skip(full) {
        *d = terms.iter().fold(0.0, |a, &(k, s)| madd::<FMA>(a, k, s[j]));
    }
}

dfl_core::multiversion!(
    /// See [`combine_body`].
    fn combine / combine_avx2 => combine_body(dst: &mut [f32], coef: &[f32], src: &[&[f32]])
);

/// Column `j` of `A^T` (row `j` of `A`): the coefficients that take a quantity on the output
/// tile back to transformed position `j`.
fn a_row(v: &Variant, j: usize) -> [f32; 4] {
    std::array::from_fn(|r| v.at.get(r).map_or(0.0, |a| a[j]))
}

/// `G` by columns: `g_columns(v)[a][i] = G[i][a]`, the combination of the n points
/// that one kernel tap (row or column `a`) contributes to or receives from.
fn g_columns(v: &Variant) -> [[f32; MAX_N]; 3] {
    std::array::from_fn(|a| std::array::from_fn(|i| v.g.get(i).map_or(0.0, |g| g[a])))
}

/// Transformed kernels `[planes][rows][cols]` of `w` (`[o][c][3][3]`): `rows = o, cols = c`
/// for the forward pass; with `adjoint`, `rows = c, cols = o` and every kernel rotated by 180
/// degrees, the kernels of the input gradient.
pub(super) fn kernels(v: &Variant, w: &[f32], o: usize, c: usize, adjoint: bool) -> Vec<f32> {
    let mut u = Vec::new();
    kernels_into(v, w, o, c, adjoint, &mut u);
    u
}

/// [`kernels`] into `u` (resized; every value is written), so a caller can keep the buffer
/// between calls: at 512 x 1,024 channels the F(2x2) kernels take 32 MiB, past the size
/// from which every allocation is a fresh mapping that faults in page by page.
pub(super) fn kernels_into(
    v: &Variant,
    w: &[f32],
    o: usize,
    c: usize,
    adjoint: bool,
    u: &mut Vec<f32>,
) {
    let (n, planes) = (v.n(), v.planes());
    let (rows, cols) = if adjoint { (c, o) } else { (o, c) };
    u.resize(planes * o * c, 0.0);
    if u.is_empty() {
        return;
    }
    // Row r of all transformed planes, written together and in order (sequential streams;
    // writing kernel by kernel would scatter the stores across the whole buffer).
    let mut per_row: Vec<Vec<&mut [f32]>> = (0..rows).map(|_| Vec::with_capacity(planes)).collect();
    for plane in u.chunks_mut(rows * cols) {
        for (r, row) in plane.chunks_mut(cols).enumerate() {
            per_row[r].push(row);
        }
    }
    per_row
        .into_par_iter()
        .enumerate()
        .for_each(|(r, mut outs)| {
            // The 9 taps of the row's kernels as 9 runs of `cols` values, then G g G^T over
            // all of them at once: `t[i][b] = sum_a G[i][a] tap[a][b]`, `U[i][j] = sum_b
            // t[i][b] G[j][b]`.
            let mut taps = vec![0.0f32; 9 * cols];
            for k in 0..cols {
                let (oo, cc) = if adjoint { (k, r) } else { (r, k) };
                let kernel = &w[(oo * c + cc) * 9..][..9];
                for (t, val) in kernel.iter().enumerate() {
                    let t = if adjoint { 8 - t } else { t };
                    taps[t * cols + k] = *val;
                }
            }
            let mut t = vec![0.0f32; 3 * n * cols];
            for (i, ti) in t.chunks_exact_mut(3 * cols).enumerate() {
                for (b, tib) in ti.chunks_exact_mut(cols).enumerate() {
                    let src: [&[f32]; 3] =
                        std::array::from_fn(|a| &taps[(3 * a + b) * cols..][..cols]);
                    combine(tib, &v.g[i], &src);
                }
            }
            for (e, out) in outs.iter_mut().enumerate() {
                let (i, j) = (e / n, e % n);
                let src: [&[f32]; 3] = std::array::from_fn(|b| &t[(3 * i + b) * cols..][..cols]);
                combine(out, &v.g[j], &src);
            }
        });
}

/// Images `x` (`[g][c][h][w]`) convolved with transformed kernels `u` (`[planes][o][c]`, from
/// [`kernels`]) into `y` (`[g][o][h][w]`, overwritten), plus `bias` when given. The tiles of
/// all the images form the columns of the products (small maps still give wide products), in
/// bands of tile rows whose transforms take at most [`BAND_TILES`] x `tile` floats of the
/// scratch `bufs`; `par` runs each product on all cores.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_images(
    v: &Variant,
    (c, h, w, o): (usize, usize, usize, usize),
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    bufs: [&mut Vec<f32>; 2],
    tile: usize,
    par: bool,
) {
    let (m, n, planes) = (v.m, v.n(), v.planes());
    let (th, tw) = (h.div_ceil(m), w.div_ceil(m));
    // Over all tiles of the band at once (long rows the compiler vectorises): `cols[j]`,
    // column j of A^T M for output row r of every tile; `phase[q]`, output column q.
    let (mut cols, mut phase) = (Vec::new(), Vec::new());
    for_each_band(v, x, (c, h, w, o), bufs, tile, |band, vt, mt| {
        let tb = band.len() * tw;
        for e in 0..planes {
            matmul(
                &mut mt[e * o * tb..][..o * tb],
                tb,
                false,
                Mat::rows(&u[e * o * c..][..o * c], o, c, c),
                Mat::rows(&vt[e * c * tb..][..c * tb], c, tb, tb),
                par,
            );
        }
        // Output channels in groups whose planes are contiguous runs of `len` values in `mt`:
        // long rows for the transforms, few calls, and a working set that stays in cache.
        let group = (GROUP_FLOATS / tb).clamp(1, o);
        cols.resize(n * group * tb, 0.0);
        phase.resize(m * group * tb, 0.0);
        for o0 in (0..o).step_by(group) {
            let gl = group.min(o - o0);
            let len = gl * tb;
            let tiles: [&[f32]; MAX_N * MAX_N] = std::array::from_fn(|e| {
                if e < planes {
                    &mt[(e * o + o0) * tb..][..len]
                } else {
                    &[]
                }
            });
            for (r, a_r) in v.at.iter().enumerate() {
                for (j, col) in cols.chunks_exact_mut(len).take(n).enumerate() {
                    let src: [&[f32]; MAX_N] =
                        std::array::from_fn(|i| tiles[(i * n + j).min(planes - 1)]);
                    combine(col, a_r, &src[..n]);
                }
                let mut src: [&[f32]; MAX_N] = [&[]; MAX_N];
                for (s, col) in src.iter_mut().zip(cols.chunks_exact(len)) {
                    *s = col;
                }
                for (q, ph) in phase.chunks_exact_mut(len).take(m).enumerate() {
                    combine(ph, v.at[q], &src[..n]);
                }
                // Interleave the phases into output row m ty + r of every tile row.
                for gi in 0..gl {
                    let oo = o0 + gi;
                    let b = bias.map_or(0.0, |b| b[oo]);
                    for (bi, row_index) in band.clone().enumerate() {
                        let (img, ty) = (row_index / th, row_index % th);
                        if m * ty + r >= h {
                            continue;
                        }
                        let yrow = &mut y[((img * o + oo) * h + m * ty + r) * w..][..w];
                        let at = gi * tb + bi * tw;
                        interleave(yrow, m, |q| &phase[q * len + at..][..tw], b);
                    }
                }
            }
        }
    });
}

/// The band loop both passes share: splits the tile rows of the images `x` (`[g][c][h][w]`,
/// one image's rows after the other's) into bands whose transforms (`c` inputs, `o` outputs)
/// take at most [`BAND_TILES`] x `tile` floats, and for each band runs `f(band, v, m)` with
/// `v` holding the band's input transform (`[planes][c][tiles]`, [`transform_inputs`]) and
/// `m` sized `[planes][o][tiles]` for the caller's products.
fn for_each_band(
    var: &Variant,
    x: &[f32],
    (c, h, w, o): (usize, usize, usize, usize),
    bufs: [&mut Vec<f32>; 2],
    tile: usize,
    mut f: impl FnMut(std::ops::Range<usize>, &[f32], &mut [f32]),
) {
    let (th, tw) = (h.div_ceil(var.m), w.div_ceil(var.m));
    let planes = var.planes();
    let total = x.len() / (c * h * w).max(1) * th;
    let band = (tile * BAND_TILES / (planes * (c + o) * tw).max(1)).clamp(1, total.max(1));
    let [v, m] = bufs;
    let mut rows = Vec::new();
    for band0 in (0..total).step_by(band) {
        let band1 = (band0 + band).min(total);
        let tb = (band1 - band0) * tw;
        v.resize(planes * c * tb, 0.0);
        m.resize(planes * o * tb, 0.0);
        transform_inputs(var, x, (c, h, w), band0..band1, v, &mut rows);
        f(band0..band1, v, m);
    }
}

/// `B^T d B` of every input tile of the tile rows `band` (counted across the images of `x`,
/// `[g][c][h][w]`) into `v` (`[planes][c][tiles of the band]`); `rows` is scratch.
fn transform_inputs(
    var: &Variant,
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    band: std::ops::Range<usize>,
    v: &mut [f32],
    rows: &mut Vec<f32>,
) {
    let (m, n) = (var.m, var.n());
    let (th, tw) = (h.div_ceil(m), w.div_ceil(m));
    let (nb, tb) = (band.len(), band.len() * tw);
    // Input channels go in groups: slot `s = g * nb + bi` stands for tile row bi of the
    // group's channel g, so the transforms run over long rows with few calls.
    let group = (GROUP_FLOATS / (nb * (tw + 1))).clamp(1, c.max(1));
    // Input row i of every slot, split into m phases: phase k of slot s at `k * run + s *
    // (tw + 1)`, holding columns m t + k - 1 (zero outside the plane), so tile tx reads
    // phases 0..m at tx and phases 0..2 at tx + 1 (never past its slot).
    let run = group * nb * (tw + 1);
    let len = m * run;
    rows.resize(2 * n * len + run, 0.0);
    let (raw, rest) = rows.split_at_mut(n * len);
    let (bt, tmp) = rest.split_at_mut(n * len);
    for c0 in (0..c).step_by(group) {
        let gl = group.min(c - c0);
        let (run, len) = (gl * nb * (tw + 1), m * gl * nb * (tw + 1));
        let (raw, bt) = (&mut raw[..n * len], &mut bt[..n * len]);
        raw.fill(0.0);
        for g in 0..gl {
            for (bi, row_index) in band.clone().enumerate() {
                let (img, ty) = (row_index / th, row_index % th);
                let plane = &x[(img * c + c0 + g) * h * w..][..h * w];
                let slot = (g * nb + bi) * (tw + 1);
                for i in 0..n {
                    if let Some(yy) = (m * ty + i).checked_sub(1).filter(|&yy| yy < h) {
                        split_phases(&plane[yy * w..][..w], m, run, 1, &mut raw[i * len + slot..]);
                    }
                }
            }
        }
        // B^T on the rows, then B on the columns (shifted phase runs), into the planes.
        let mut src: [&[f32]; MAX_N] = [&[]; MAX_N];
        for (s, row) in src.iter_mut().zip(raw.chunks_exact(len)) {
            *s = row;
        }
        for (out, coef) in bt.chunks_exact_mut(len).zip(var.bt) {
            combine(out, coef, &src[..n]);
        }
        for (i, row) in bt.chunks_exact(len).enumerate() {
            let cols: [&[f32]; MAX_N] = std::array::from_fn(|j| {
                let (k, shift) = (j % m, j / m);
                if j < n {
                    &row[k * run + shift..][..run - 1]
                } else {
                    &[]
                }
            });
            for (j, coef) in var.bt.iter().enumerate() {
                combine(&mut tmp[..run - 1], coef, &cols[..n]);
                for g in 0..gl {
                    let dst = &mut v[((i * n + j) * c + c0 + g) * tb..][..tb];
                    let src = &tmp[g * nb * (tw + 1)..];
                    for (d, s) in dst.chunks_exact_mut(tw).zip(src.chunks(tw + 1)) {
                        d.copy_from_slice(&s[..tw]);
                    }
                }
            }
        }
    }
}

/// Adds to `dw` (`[o][c][3][3]`) the weight gradient of images `x` (`[g][c][h][w]`) with
/// output gradients `dy` (`[g][o][h][w]`): per transformed position, `dU = (A dY A^T) *
/// (B^T d B)^T` over all tiles of a band (products as in [`conv_images`]), for blocks of
/// output channels whose `dU` fits `tile` floats of the scratch `du`, each added to `dw` as
/// `G^T dU G` ([`kernel_grads`]): whole, `dU` took 32 MiB per thread at 512 x 1,024 channels
/// with F(2x2), past the size from which every allocation faults in page by page.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_grad_images(
    var: &Variant,
    (c, h, w, o): (usize, usize, usize, usize),
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    du: &mut Vec<f32>,
    bufs: [&mut Vec<f32>; 2],
    tile: usize,
    par: bool,
) {
    let (m, n, planes) = (var.m, var.n(), var.planes());
    let (th, tw) = (h.div_ceil(m), w.div_ceil(m));
    let a: Vec<[f32; 4]> = (0..n).map(|j| a_row(var, j)).collect();
    // Output-gradient row r of every slot, split into m phases (columns m t + q); slot `s =
    // g * nb + bi` is tile row bi of output channel g of a group of channels transformed
    // together (long rows, few calls), phase q of slot s at `q * run + s * tw`; then their
    // product with A.
    let (mut raw, mut ad) = (Vec::new(), Vec::new());
    for_each_band(var, x, (c, h, w, o), bufs, tile, |band, vt, mt| {
        let (nb, tb) = (band.len(), band.len() * tw);
        let group = (GROUP_FLOATS / tb).clamp(1, o.max(1));
        raw.resize(m * m * group * tb, 0.0);
        ad.resize(n * m * group * tb, 0.0);
        for o0 in (0..o).step_by(group) {
            let gl = group.min(o - o0);
            let (run, len) = (gl * tb, m * gl * tb);
            let raw = &mut raw[..m * len];
            raw.fill(0.0);
            for g in 0..gl {
                for (bi, row_index) in band.clone().enumerate() {
                    let (img, ty) = (row_index / th, row_index % th);
                    let plane = &dy[(img * o + o0 + g) * h * w..][..h * w];
                    for r in 0..m.min(h - m * ty) {
                        let out = &mut raw[r * len + (g * nb + bi) * tw..];
                        split_phases(&plane[(m * ty + r) * w..][..w], m, run, 0, out);
                    }
                }
            }
            // A dY A^T: A on the rows (row i = sum_r A^T[r][i] dY_r), then on the columns.
            let mut src: [&[f32]; 4] = [&[]; 4];
            for (s, row) in src.iter_mut().zip(raw.chunks_exact(len)) {
                *s = row;
            }
            for (out, coef) in ad.chunks_exact_mut(len).zip(&a) {
                combine(out, &coef[..m], &src[..m]);
            }
            for (i, row) in ad.chunks_exact(len).take(n).enumerate() {
                let mut ph: [&[f32]; 4] = [&[]; 4];
                for (p, part) in ph.iter_mut().zip(row.chunks_exact(run)) {
                    *p = part;
                }
                for (j, coef) in a.iter().enumerate() {
                    let dst = &mut mt[((i * n + j) * o + o0) * tb..][..run];
                    combine(dst, &coef[..m], &ph[..m]);
                }
            }
        }
        let block = (tile / (planes * c).max(1)).clamp(1, o.max(1));
        for o0 in (0..o).step_by(block) {
            let rows = block.min(o - o0);
            du.resize(planes * rows * c, 0.0);
            for e in 0..planes {
                matmul(
                    &mut du[e * rows * c..][..rows * c],
                    c,
                    false,
                    Mat::rows(&mt[(e * o + o0) * tb..][..rows * tb], rows, tb, tb),
                    Mat::rows(&vt[e * c * tb..][..c * tb], c, tb, tb).t(),
                    par,
                );
            }
            kernel_grads(var, du, rows, c, &mut dw[o0 * c * 9..][..rows * c * 9]);
        }
    });
}

/// Adds `G^T dU G` of every kernel to `dw` (`[o][c][3][3]`): the weight gradient from the
/// gradient of the transformed kernels `du` (`[planes][o][c]`, see [`weight_grad_images`]),
/// for all `c` kernels of an output channel at once (runs of `c` values, not 36 scattered
/// reads each).
fn kernel_grads(var: &Variant, du: &[f32], o: usize, c: usize, dw: &mut [f32]) {
    let (n, planes) = (var.n(), var.planes());
    let g = g_columns(var);
    dw.par_chunks_mut(c * 9).enumerate().for_each(|(oo, row)| {
        let rows: [&[f32]; MAX_N * MAX_N] = std::array::from_fn(|e| {
            if e < planes {
                &du[(e * o + oo) * c..][..c]
            } else {
                &[]
            }
        });
        // Z = G^T dU (`z[a][j]`), then dW = Z G (`out[a][b]`), each a run over the c kernels.
        let mut z = vec![0.0f32; 3 * n * c];
        for (a, za) in z.chunks_exact_mut(n * c).enumerate() {
            for (j, zaj) in za.chunks_exact_mut(c).enumerate() {
                let src: [&[f32]; MAX_N] =
                    std::array::from_fn(|i| rows[(i * n + j).min(planes - 1)]);
                combine(zaj, &g[a][..n], &src[..n]);
            }
        }
        let mut out = vec![0.0f32; 9 * c];
        for (k, ok) in out.chunks_exact_mut(c).enumerate() {
            let (a, b) = (k / 3, k % 3);
            let src: [&[f32]; MAX_N] = std::array::from_fn(|j| {
                if j < n {
                    &z[(a * n + j) * c..][..c]
                } else {
                    &[]
                }
            });
            combine(ok, &g[b][..n], &src[..n]);
        }
        for (cc, kernel) in row.chunks_exact_mut(9).enumerate() {
            for (k, val) in kernel.iter_mut().enumerate() {
                *val += out[k * c + cc];
            }
        }
    });
}

/// Writes `row[m tx + q] = phase(q)[tx] + b`: the m phases of an output row interleaved.
fn interleave<'a>(row: &mut [f32], m: usize, phase: impl Fn(usize) -> &'a [f32], b: f32) {
    match m {
        2 => interleave_fixed::<2>(row, std::array::from_fn(phase), b),
        4 => interleave_fixed::<4>(row, std::array::from_fn(phase), b),
        _ => {
            for (tx, out) in row.chunks_mut(m).enumerate() {
                for (q, val) in out.iter_mut().enumerate() {
                    *val = phase(q)[tx] + b;
                }
            }
        }
    }
}

/// [`interleave`] with `M` known: whole groups of `M` outputs, then the partial last one.
fn interleave_fixed<const M: usize>(row: &mut [f32], phases: [&[f32]; M], b: f32) {
    let last = row.len() / M;
    let mut groups = row.chunks_exact_mut(M);
    for (tx, out) in groups.by_ref().enumerate() {
        for (val, p) in out.iter_mut().zip(&phases) {
            *val = p[tx] + b;
        }
    }
    for (val, p) in groups.into_remainder().iter_mut().zip(&phases) {
        *val = p[last] + b;
    }
}

/// Splits the row `src` into `m` phases `stride` apart in `out` (zeroed by the caller): column
/// `col` goes to phase `(col + shift) % m`, index `(col + shift) / m`.
fn split_phases(src: &[f32], m: usize, stride: usize, shift: usize, out: &mut [f32]) {
    match m {
        2 => split_fixed::<2>(src, stride, shift, out),
        4 => split_fixed::<4>(src, stride, shift, out),
        _ => split_any(src, m, stride, shift, out),
    }
}

/// [`split_phases`] for any `m`, one column at a time.
fn split_any(src: &[f32], m: usize, stride: usize, shift: usize, out: &mut [f32]) {
    let (mut k, mut t) = (shift % m, shift / m);
    for &val in src {
        out[k * stride + t] = val;
        k += 1;
        if k == m {
            k = 0;
            t += 1;
        }
    }
}

/// [`split_phases`] with `M` known: the columns before the first whole group of `M` one by
/// one, then whole groups (one store per phase, no per-column bookkeeping), then the rest.
fn split_fixed<const M: usize>(src: &[f32], stride: usize, shift: usize, out: &mut [f32]) {
    let head = (M - shift % M) % M;
    let head = head.min(src.len());
    split_any(&src[..head], M, stride, shift, out);
    let t0 = (head + shift) / M;
    let body = &src[head..];
    let whole = body.len() / M;
    let mut rest = &mut out[..];
    let phases: [&mut [f32]; M] = std::array::from_fn(|k| {
        let skip = if k == 0 { t0 } else { stride - whole };
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(skip);
        let (run, after) = tail.split_at_mut(whole);
        rest = after;
        run
    });
    let mut phases = phases;
    for (t, group) in body.chunks_exact(M).enumerate() {
        for (p, &v) in phases.iter_mut().zip(group) {
            p[t] = v;
        }
    }
    let tail_from = head + whole * M;
    split_any(&src[tail_from..], M, stride, shift + tail_from, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 + FMA build of [`combine`] (where the CPU runs it) equals the portable one
    /// within float rounding, for every coefficient row of both algorithms, lengths around
    /// the 16-value blocks, and an all-zero row.
    #[test]
    fn combine_builds_agree() {
        let src: Vec<Vec<f32>> = (0..MAX_N)
            .map(|k| {
                (0..53)
                    .map(|i| ((i * 31 + k * 17) % 23) as f32 / 7.0 - 1.5)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = src.iter().map(Vec::as_slice).collect();
        let zero = [0.0f32; MAX_N];
        let rows = F2.bt.iter().chain(F4.bt).chain(F4.at).chain(F2.at).copied();
        for coef in rows.chain([&zero[..]]) {
            for len in [1, 15, 16, 17, 53] {
                let n = coef.len();
                let mut fast = vec![7.0f32; len];
                let mut portable = vec![-7.0f32; len];
                combine(&mut fast, coef, &refs[..n]);
                combine_body::<false>(&mut portable, coef, &refs[..n]);
                for (a, b) in fast.iter().zip(&portable) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{coef:?} {len}: {a} {b}"
                    );
                }
                let direct: Vec<f32> = (0..len)
                    .map(|i| coef.iter().zip(&refs).map(|(k, s)| k * s[i]).sum())
                    .collect();
                for (a, b) in portable.iter().zip(&direct) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{coef:?} {len}: {a} {b}"
                    );
                }
            }
        }
    }
}
