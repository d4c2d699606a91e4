//! DFL's colour transfers (`core/imagelib/color_transfer.py`, see shared/design/dfl-merge.md
//! section 8): RCT, LCT, MKL, IDT, SOT, MIX and histogram matching.
//!
//! Naming follows DFL: the first image (`target`) is modified towards the second (`source` /
//! reference). In the merger the predicted face is modified towards the dst face; in training
//! each src sample is modified towards a dst sample. The `-m` variants of the merger are the
//! same functions on images multiplied by the face mask ([`apply_mask`]).
//!
//! Images are BGR float in [0, 1]. IDT and SOT draw from the random generator they are given.

use crate::color::{bgr_to_lab, lab_to_bgr};
use crate::error::{ImageError, Result};
use crate::filter::bilateral_filter;
use crate::image::Image;
use nalgebra::{DMatrix, Matrix3, SymmetricEigen};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

fn check3(op: &'static str, img: &Image) -> Result<()> {
    img.check_channels(op, &[3], "3")?;
    img.check_finite(op)
}

/// `img * mask` per pixel (mask channel 0, broadcast over the image's channels): the input of
/// DFL's `-m` transfer modes. The mask must have the image's size.
pub fn apply_mask(img: &Image, mask: &Image) -> Result<Image> {
    let op = "apply_mask";
    img.check_same_size(op, mask)?;
    let mut out = img.clone();
    let c = img.channels();
    let mc = mask.channels();
    for (px, m) in out
        .data_mut()
        .chunks_exact_mut(c)
        .zip(mask.data().chunks_exact(mc))
    {
        for v in px {
            *v *= m[0];
        }
    }
    Ok(out)
}

/// Which pixels RCT's statistics see when masks are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskStats {
    /// DFL's behaviour, kept by default because it changes the look of merged faces: pixels
    /// with `mask < 0.5` are set to Lab (0, 0, 0) and **still count** in the means and
    /// standard deviations (so a small face area pulls the statistics towards black).
    DflZeroed,
    /// The corrected statistics: only pixels with `mask >= 0.5` count. An empty mask is an
    /// [`ImageError::EmptyMask`].
    MaskedOnly,
}

/// Per-channel mean and population standard deviation of a Lab image under DFL's or the
/// corrected masking.
fn lab_stats(lab: &Image, mask: Option<&Image>, stats: MaskStats) -> Result<[(f64, f64); 3]> {
    let op = "rct";
    if let Some(m) = mask {
        lab.check_same_size(op, m)?;
        m.check_finite(op)?;
    }
    let mc = mask.map_or(1, Image::channels);
    // Per-chunk sums in f64, reduced in parallel: (sum[3], sum of squares[3], count).
    const CHUNK: usize = 4096;
    let (sum, sq, n) = lab
        .data()
        .par_chunks(3 * CHUNK)
        .enumerate()
        .map(|(ci, chunk)| {
            let mut sum = [0f64; 3];
            let mut sq = [0f64; 3];
            let mut n = 0u64;
            for (j, p) in chunk.chunks_exact(3).enumerate() {
                let i = ci * CHUNK + j;
                let keep = mask.is_none_or(|m| m.data()[i * mc] >= 0.5);
                match (keep, stats) {
                    (true, _) => {
                        for k in 0..3 {
                            let v = f64::from(p[k]);
                            sum[k] += v;
                            sq[k] += v * v;
                        }
                        n += 1;
                    }
                    // A zeroed pixel adds 0 to the sums but counts.
                    (false, MaskStats::DflZeroed) => n += 1,
                    (false, MaskStats::MaskedOnly) => {}
                }
            }
            (sum, sq, n)
        })
        .reduce(
            || ([0f64; 3], [0f64; 3], 0u64),
            |a, b| {
                (
                    std::array::from_fn(|k| a.0[k] + b.0[k]),
                    std::array::from_fn(|k| a.1[k] + b.1[k]),
                    a.2 + b.2,
                )
            },
        );
    if n == 0 {
        return Err(ImageError::EmptyMask { op });
    }
    let nf = n as f64;
    Ok(std::array::from_fn(|k| {
        let mean = sum[k] / nf;
        let var = (sq[k] / nf - mean * mean).max(0.0);
        (mean, var.sqrt())
    }))
}

/// DFL's `reinhard_color_transfer(target, source, target_mask, source_mask)` (RCT): both
/// images to Lab (OpenCV float), per-channel mean/std (masked per `stats`), then
/// `x' = (x - mean_t) * std_s / std_t + mean_s` on the unmasked target Lab, L clipped to
/// [0, 100], a/b to [-127, 127], back to BGR (clipped to [0, 1] by the conversion).
///
/// Images may differ in size; each mask must match its image. A target channel with zero
/// standard deviation (flat colour) keeps its spread (factor 1) instead of DFL's division by
/// zero, so the output is always finite.
pub fn rct(
    target: &Image,
    source: &Image,
    target_mask: Option<&Image>,
    source_mask: Option<&Image>,
    stats: MaskStats,
) -> Result<Image> {
    let op = "rct";
    check3(op, target)?;
    check3(op, source)?;
    let (lab_t, lab_s) = rayon::join(|| bgr_to_lab(target), || bgr_to_lab(source));
    let (lab_t, lab_s) = (lab_t?, lab_s?);
    let st = lab_stats(&lab_t, target_mask, stats)?;
    let ss = lab_stats(&lab_s, source_mask, stats)?;
    let coef: [(f32, f32, f32); 3] = std::array::from_fn(|k| {
        let (mt, dt) = st[k];
        let (ms, ds) = ss[k];
        let f = if dt > 0.0 { ds / dt } else { 1.0 };
        (mt as f32, f as f32, ms as f32)
    });
    const LIMITS: [(f32, f32); 3] = [(0.0, 100.0), (-127.0, 127.0), (-127.0, 127.0)];
    let mut lab = lab_t;
    lab.data_mut().par_chunks_mut(3 * 4096).for_each(|chunk| {
        for p in chunk.chunks_exact_mut(3) {
            for k in 0..3 {
                let (mt, f, ms) = coef[k];
                p[k] = ((p[k] - mt) * f + ms).clamp(LIMITS[k].0, LIMITS[k].1);
            }
        }
    });
    lab_to_bgr(&lab)
}

/// Pixels as a `channels x n` matrix (f64).
fn pixel_matrix(img: &Image) -> DMatrix<f64> {
    let c = img.channels();
    let n = img.pixel_count();
    DMatrix::from_fn(c, n, |k, i| f64::from(img.data()[i * c + k]))
}

fn channel_means(m: &DMatrix<f64>) -> Vec<f64> {
    let n = m.ncols() as f64;
    m.row_iter().map(|r| r.sum() / n).collect()
}

/// Covariance of the rows of `m` around `mean`, divided by `n - ddof`.
fn covariance(m: &DMatrix<f64>, mean: &[f64], ddof: usize) -> DMatrix<f64> {
    let c = m.nrows();
    let n = m.ncols();
    let mut cov = DMatrix::zeros(c, c);
    for col in m.column_iter() {
        for a in 0..c {
            let da = col[a] - mean[a];
            for b in a..c {
                cov[(a, b)] += da * (col[b] - mean[b]);
            }
        }
    }
    let denom = (n.saturating_sub(ddof)).max(1) as f64;
    for a in 0..c {
        for b in a..c {
            cov[(a, b)] /= denom;
            cov[(b, a)] = cov[(a, b)];
        }
    }
    cov
}

/// Symmetric square root `E diag(sqrt(max(l, floor))) E^T`.
fn sym_sqrt(m: DMatrix<f64>, floor: f64) -> DMatrix<f64> {
    let e = SymmetricEigen::new(m);
    let d = DMatrix::from_diagonal(&e.eigenvalues.map(|l| l.max(floor).sqrt()));
    &e.eigenvectors * d * e.eigenvectors.transpose()
}

/// Writes `cols` (channels x n) back as an image shaped like `like`, clipped to [0, 1].
fn from_matrix_clipped(like: &Image, cols: &DMatrix<f64>) -> Image {
    let mut out = like.zeros_like();
    let c = like.channels();
    for (i, px) in out.data_mut().chunks_exact_mut(c).enumerate() {
        for k in 0..c {
            let v = cols[(k, i)] as f32;
            px[k] = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        }
    }
    out
}

/// DFL's `linear_color_transfer(target, source, mode='pca')` (LCT): match mean and
/// covariance through symmetric square roots, `Qs Qt^-1 (x - mu_t) + mu_s` with
/// `C = X X^T / n + 1e-5 I`, clipped to [0, 1]. Any channel count (MIX uses it on L alone);
/// the images may differ in size but must have the same channel count.
pub fn lct(target: &Image, source: &Image) -> Result<Image> {
    let op = "lct";
    target.check_finite(op)?;
    source.check_finite(op)?;
    if target.channels() != source.channels() {
        return Err(ImageError::Channels {
            op,
            expected: "the target's count",
            got: source.channels(),
        });
    }
    let t = pixel_matrix(target);
    let s = pixel_matrix(source);
    let (mt, ms) = (channel_means(&t), channel_means(&s));
    let c = t.nrows();
    let eye = DMatrix::<f64>::identity(c, c) * 1e-5;
    let ct = covariance(&t, &mt, 0) + &eye;
    let cs = covariance(&s, &ms, 0) + &eye;
    let qt = sym_sqrt(ct, 0.0);
    let qs = sym_sqrt(cs, 0.0);
    let qt_inv = qt.try_inverse().ok_or(ImageError::Singular { op })?;
    let m = qs * qt_inv;
    let mut centred = t;
    for mut col in centred.column_iter_mut() {
        for k in 0..c {
            col[k] -= mt[k];
        }
    }
    let mut res = m * centred;
    for mut col in res.column_iter_mut() {
        for k in 0..c {
            col[k] += ms[k];
        }
    }
    Ok(from_matrix_clipped(target, &res))
}

/// DFL's `color_transfer_mkl(target, source)` (MKL, Monge-Kantorovich linear): with
/// `A = cov(target)`, `B = cov(source)` (unbiased), `A = Ua Da^2 Ua^T`,
/// `C = Da Ua^T B Ua Da = Uc Dc^2 Uc^T`, `T = Ua Da^-1 Uc Dc Uc^T Da^-1 Ua^T`;
/// result `(x - mean_t) T + mean_s`, clipped to [0, 1]. Eigenvalues are floored at the f64
/// epsilon like DFL. 3-channel images, sizes may differ. For `mkl-m` pass masked images.
pub fn mkl(target: &Image, source: &Image) -> Result<Image> {
    let op = "mkl";
    check3(op, target)?;
    check3(op, source)?;
    let eps = f64::EPSILON;
    let t = pixel_matrix(target);
    let s = pixel_matrix(source);
    let (mt, ms) = (channel_means(&t), channel_means(&s));
    let to3 = |m: DMatrix<f64>| Matrix3::from_fn(|r, c| m[(r, c)]);
    let a = to3(covariance(&t, &mt, 1));
    let b = to3(covariance(&s, &ms, 1));
    let ea = SymmetricEigen::new(a);
    let da = ea.eigenvalues.map(|v| v.max(eps).sqrt());
    let ua = ea.eigenvectors;
    let da_m = Matrix3::from_diagonal(&da);
    let da_inv = Matrix3::from_diagonal(&da.map(|v| 1.0 / v));
    let c = da_m * ua.transpose() * b * ua * da_m;
    let ec = SymmetricEigen::new(c);
    let dc = Matrix3::from_diagonal(&ec.eigenvalues.map(|v| v.max(eps).sqrt()));
    let uc = ec.eigenvectors;
    let tr = ua * da_inv * uc * dc * uc.transpose() * da_inv * ua.transpose();
    // Rows are pixels in DFL: (x - mean) . T, i.e. T^T applied to column pixels.
    let tt = tr.transpose();
    let mut out = target.zeros_like();
    for (o, p) in out
        .data_mut()
        .chunks_exact_mut(3)
        .zip(target.data().chunks_exact(3))
    {
        let x = nalgebra::Vector3::new(
            f64::from(p[0]) - mt[0],
            f64::from(p[1]) - mt[1],
            f64::from(p[2]) - mt[2],
        );
        let y = tt * x;
        for k in 0..3 {
            let v = (y[k] + ms[k]) as f32;
            o[k] = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        }
    }
    Ok(out)
}

/// numpy's `np.interp(x, xp, fp, left, right)` for increasing (possibly repeating) `xp`.
fn np_interp(x: f64, xp: &[f64], fp: &[f64], left: f64, right: f64) -> f64 {
    let n = xp.len();
    if n == 0 || x.is_nan() {
        return left;
    }
    if x < xp[0] {
        return left;
    }
    if x > xp[n - 1] {
        return right;
    }
    if x == xp[n - 1] {
        return fp[n - 1];
    }
    // Largest j with xp[j] <= x (then xp[j + 1] > x).
    let j = xp.partition_point(|&v| v <= x).saturating_sub(1);
    let (x0, x1) = (xp[j], xp[j + 1]);
    let slope = (fp[j + 1] - fp[j]) / (x1 - x0);
    slope * (x - x0) + fp[j]
}

/// A uniformly random 3-D rotation (Haar measure on SO(3), as scipy's `special_ortho_group`):
/// QR of a Gaussian matrix with the signs of R's diagonal folded into Q, determinant fixed to
/// +1.
fn random_rotation<R: Rng + ?Sized>(rng: &mut R) -> Matrix3<f64> {
    loop {
        let g = Matrix3::from_fn(|_, _| StandardNormal.sample(rng));
        let qr = g.qr();
        let (mut q, r) = (qr.q(), qr.r());
        if (0..3).any(|i| r[(i, i)] == 0.0) {
            continue;
        }
        for i in 0..3 {
            if r[(i, i)] < 0.0 {
                let col = -q.column(i);
                q.set_column(i, &col);
            }
        }
        if q.determinant() < 0.0 {
            let col = -q.column(0);
            q.set_column(0, &col);
        }
        return q;
    }
}

/// DFL's `color_transfer_idt(target, source, bins=256, n_rot=20)` (IDT, iterative
/// distribution transfer): 20 times, rotate both pixel clouds by a random rotation, match each
/// rotated axis's 256-bin histogram CDF, and move the target 1/20 of the way back-rotated;
/// clip to [0, 1]. 3-channel images; sizes may differ. For `idt-m` pass masked images.
///
/// DFL quirk fixed: DFL's port maps projections below the first bin edge to 0 and above the
/// last to 256 (`np.interp(..., left=0, right=bins)`, mixing bin counts with values); here
/// they take the end values of the transfer curve, as the original algorithm intends.
pub fn idt<R: Rng + ?Sized>(target: &Image, source: &Image, rng: &mut R) -> Result<Image> {
    let op = "idt";
    check3(op, target)?;
    check3(op, source)?;
    const BINS: usize = 256;
    const N_ROT: usize = 20;
    let relax = 1.0 / N_ROT as f64;
    let n0 = target.pixel_count();
    let mut d0: Vec<[f64; 3]> = target
        .data()
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]].map(f64::from))
        .collect();
    let d1: Vec<[f64; 3]> = source
        .data()
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]].map(f64::from))
        .collect();
    let mut p0 = vec![0f64; n0];
    let mut p1 = vec![0f64; d1.len()];
    let mut delta = vec![[0f64; 3]; n0];
    for _ in 0..N_ROT {
        // DFL casts the rotation to float32.
        let r = random_rotation(rng).map(|v| f64::from(v as f32));
        delta.fill([0.0; 3]);
        for j in 0..3 {
            let row = [r[(j, 0)], r[(j, 1)], r[(j, 2)]];
            let proj = |p: &[f64; 3]| row[0] * p[0] + row[1] * p[1] + row[2] * p[2];
            p0.par_iter_mut().zip(&d0).for_each(|(o, p)| *o = proj(p));
            p1.par_iter_mut().zip(&d1).for_each(|(o, p)| *o = proj(p));
            let lo = p0.iter().chain(&p1).fold(f64::INFINITY, |a, &b| a.min(b));
            let hi = p0
                .iter()
                .chain(&p1)
                .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            if hi <= lo {
                continue;
            }
            let hist = |vals: &[f64]| {
                let mut h = [0u64; BINS];
                let scale = BINS as f64 / (hi - lo);
                for &v in vals {
                    let b = (((v - lo) * scale) as usize).min(BINS - 1);
                    h[b] += 1;
                }
                h
            };
            let cdf = |h: [u64; BINS]| {
                let mut acc = 0u64;
                let total: u64 = h.iter().sum::<u64>().max(1);
                h.map(|v| {
                    acc += v;
                    f64::from(acc as f32 / total as f32)
                })
            };
            let c0 = cdf(hist(&p0));
            let c1 = cdf(hist(&p1));
            let edges: Vec<f64> = (1..=BINS)
                .map(|i| lo + (hi - lo) * i as f64 / BINS as f64)
                .collect();
            let f: Vec<f64> = c0
                .iter()
                .map(|&c| np_interp(c, &c1, &edges, edges[0], edges[BINS - 1]))
                .collect();
            let (first, last) = (f[0], f[BINS - 1]);
            delta.par_iter_mut().zip(&p0).for_each(|(dv, &p)| {
                dv[j] = np_interp(p, &edges, &f, first, last) - p;
            });
        }
        // d0 += relax * r^T (q - p0)   (r is orthogonal: solve(r, .) = r^T .)
        d0.par_iter_mut().zip(&delta).for_each(|(p, dv)| {
            for k in 0..3 {
                p[k] += relax * (r[(0, k)] * dv[0] + r[(1, k)] * dv[1] + r[(2, k)] * dv[2]);
            }
        });
    }
    let mut out = target.zeros_like();
    for (o, p) in out.data_mut().chunks_exact_mut(3).zip(&d0) {
        for k in 0..3 {
            o[k] = (p[k] as f32).clamp(0.0, 1.0);
        }
    }
    Ok(out)
}

/// Parameters of sliced optimal transport ([`sot`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SotParams {
    /// Outer steps (DFL: 10).
    pub steps: usize,
    /// Random directions averaged per step (DFL: 5 in training, 30 in the merger's sot-m).
    pub batch: usize,
    /// Spatial sigma of the bilateral regulariser, 0 disables it (DFL: 16).
    pub reg_sigma_xy: f64,
    /// Range sigma of the bilateral regulariser (DFL: 5).
    pub reg_sigma_v: f64,
}

impl SotParams {
    /// DFL's defaults (training `ct_mode=sot` and MIX): 10 steps, batch 5, sigmas 16 / 5.
    pub const TRAINING: SotParams = SotParams {
        steps: 10,
        batch: 5,
        reg_sigma_xy: 16.0,
        reg_sigma_v: 5.0,
    };
    /// The merger's `sot-m`: 10 steps, batch 30, sigmas 16 / 5.
    pub const MERGER: SotParams = SotParams {
        steps: 10,
        batch: 30,
        reg_sigma_xy: 16.0,
        reg_sigma_v: 5.0,
    };
}

/// DFL's `color_transfer_sot(src, trg, steps, batch_size, reg_sigmaXY, reg_sigmaV)` (SOT,
/// sliced optimal transport): each step averages, over `batch` random unit directions, the
/// rank-matched displacement of the projections; then the displacement field is smoothed by
/// [`bilateral_filter`] (`d = 0`, `reg_sigma_v`, `reg_sigma_xy`). Not clipped (callers clip,
/// as DFL). Both images must have the same size and 1 or 3 channels. Directions of one step
/// are drawn first and the batch is evaluated in parallel; the result depends only on `rng`.
pub fn sot<R: Rng + ?Sized>(
    src: &Image,
    trg: &Image,
    params: SotParams,
    rng: &mut R,
) -> Result<Image> {
    let op = "sot";
    src.check_channels(op, &[1, 3], "1 or 3")?;
    src.check_same_size(op, trg)?;
    if src.channels() != trg.channels() {
        return Err(ImageError::Channels {
            op,
            expected: "the source's count",
            got: trg.channels(),
        });
    }
    src.check_finite(op)?;
    trg.check_finite(op)?;
    if params.batch == 0 {
        return Err(ImageError::Parameter {
            op,
            msg: "batch must be at least 1".into(),
        });
    }
    let c = src.channels();
    let n = src.pixel_count();
    let mut cur = src.clone();
    for _ in 0..params.steps {
        let dirs: Vec<Vec<f32>> = (0..params.batch)
            .map(|_| {
                // DFL draws in float64, casts to float32, then normalises.
                let mut d: Vec<f32> = (0..c)
                    .map(|_| {
                        let v: f64 = StandardNormal.sample(rng);
                        v as f32
                    })
                    .collect();
                let norm = d.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > 0.0 {
                    for v in &mut d {
                        *v /= norm;
                    }
                }
                d
            })
            .collect();
        let cur_ref = &cur;
        let advects: Vec<Vec<f32>> = dirs
            .par_iter()
            .map(|dir| {
                let proj = |img: &Image| -> Vec<(f32, u32)> {
                    img.data()
                        .chunks_exact(c)
                        .enumerate()
                        .map(|(i, p)| {
                            let mut s = 0f32;
                            for k in 0..c {
                                s += p[k] * dir[k];
                            }
                            (s, i as u32)
                        })
                        .collect()
                };
                let mut ps = proj(cur_ref);
                let mut pt = proj(trg);
                ps.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                pt.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                let mut adv = vec![0f32; n * c];
                for (s, t) in ps.iter().zip(&pt) {
                    let a = t.0 - s.0;
                    let i = s.1 as usize * c;
                    for k in 0..c {
                        adv[i + k] += a * dir[k];
                    }
                }
                adv
            })
            .collect();
        let inv = 1.0 / params.batch as f32;
        for adv in &advects {
            for (v, a) in cur.data_mut().iter_mut().zip(adv) {
                *v += a * inv;
            }
        }
    }
    if params.reg_sigma_xy != 0.0 {
        let mut diff = cur.clone();
        for (d, s) in diff.data_mut().iter_mut().zip(src.data()) {
            *d -= s;
        }
        let filt = bilateral_filter(&diff, 0, params.reg_sigma_v, params.reg_sigma_xy)?;
        for ((o, s), f) in cur.data_mut().iter_mut().zip(src.data()).zip(filt.data()) {
            *o = s + f;
        }
    }
    Ok(cur)
}

/// DFL's `color_hist_match(src, ref, threshold)` (`hist-match` merge modes): for each of the
/// first three channels, the sorted distinct values of `src` are mapped to the reference values
/// at the same cumulative share, with the src quantiles scaled by `threshold / 255` (255 = a
/// plain CDF match; lower values map to darker reference values). Extra channels are copied.
/// Images may differ in size; both need at least 3 channels.
pub fn hist_match(src: &Image, reference: &Image, threshold: f32) -> Result<Image> {
    let op = "hist_match";
    src.check_channels(op, &[3, 4], "3 or 4")?;
    reference.check_channels(op, &[3, 4], "3 or 4")?;
    src.check_finite(op)?;
    reference.check_finite(op)?;
    if !threshold.is_finite() {
        return Err(ImageError::NonFinite { op });
    }
    let mut out = src.clone();
    let (cs, cr) = (src.channels(), reference.channels());
    for ch in 0..3 {
        let sv: Vec<f32> = src.data().iter().skip(ch).step_by(cs).copied().collect();
        let rv: Vec<f32> = reference
            .data()
            .iter()
            .skip(ch)
            .step_by(cr)
            .copied()
            .collect();
        let (s_vals, s_counts) = unique_counts(&sv);
        let (t_vals, t_counts) = unique_counts(&rv);
        let quantiles = |counts: &[u64], scale: f64| -> Vec<f64> {
            let total = counts.iter().sum::<u64>() as f64;
            let mut acc = 0u64;
            counts
                .iter()
                .map(|&c| {
                    acc += c;
                    scale * acc as f64 / total
                })
                .collect()
        };
        let sq = quantiles(&s_counts, f64::from(threshold));
        let tq = quantiles(&t_counts, 255.0);
        let tvals: Vec<f64> = t_vals.iter().map(|&v| f64::from(v)).collect();
        let (first, last) = (tvals[0], tvals[tvals.len() - 1]);
        let mapped: Vec<f32> = sq
            .iter()
            .map(|&q| np_interp(q, &tq, &tvals, first, last) as f32)
            .collect();
        for (i, px) in out.data_mut().chunks_exact_mut(cs).enumerate() {
            let v = sv[i];
            // s_vals is sorted and contains v.
            let k = s_vals.partition_point(|&u| u < v);
            px[ch] = mapped[k.min(mapped.len() - 1)];
        }
    }
    Ok(out)
}

/// Sorted distinct values and their counts (numpy's `unique(return_counts=True)`).
fn unique_counts(v: &[f32]) -> (Vec<f32>, Vec<u64>) {
    let mut s = v.to_vec();
    s.sort_unstable_by(f32::total_cmp);
    let mut vals: Vec<f32> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    for x in s {
        match vals.last() {
            Some(&l) if l == x => {
                if let Some(c) = counts.last_mut() {
                    *c += 1;
                }
            }
            _ => {
                vals.push(x);
                counts.push(1);
            }
        }
    }
    (vals, counts)
}

/// DFL's `color_transfer_mix(src, trg)` (the merger's `mix-m`, on masked images): lightness by
/// [`lct`] on the 8-bit Lab L channels, chroma by [`sot`] (training defaults, in 0..255 units
/// as DFL) between the two images with L set to 100, recombined in 8-bit Lab.
pub fn mix<R: Rng + ?Sized>(src: &Image, trg: &Image, rng: &mut R) -> Result<Image> {
    let op = "mix";
    check3(op, src)?;
    check3(op, trg)?;
    src.check_same_size(op, trg)?;
    let to8 = |img: &Image| -> Vec<u8> {
        img.data()
            .iter()
            .map(|&v| (v * 255.0).clamp(0.0, 255.0) as u8)
            .collect()
    };
    let (w, h, _) = src.shape();
    let mut src_lab = crate::color::bgr8_to_lab8(&to8(src));
    let mut trg_lab = crate::color::bgr8_to_lab8(&to8(trg));
    let plane = |lab: &[u8]| -> Result<Image> {
        Image::new(
            w,
            h,
            1,
            lab.chunks_exact(3)
                .map(|p| f32::from(p[0]) / 255.0)
                .collect(),
        )
    };
    let light = lct(&plane(&src_lab)?, &plane(&trg_lab)?)?;
    let light8: Vec<u8> = light
        .data()
        .iter()
        .map(|&v| (v * 255.0).clamp(0.0, 255.0) as u8)
        .collect();
    for p in src_lab
        .chunks_exact_mut(3)
        .chain(trg_lab.chunks_exact_mut(3))
    {
        p[0] = 100;
    }
    let as_float = |bgr: Vec<u8>| -> Result<Image> {
        Image::new(w, h, 3, bgr.into_iter().map(f32::from).collect())
    };
    let src_chroma = as_float(crate::color::lab8_to_bgr8(&src_lab))?;
    let trg_chroma = as_float(crate::color::lab8_to_bgr8(&trg_lab))?;
    let moved = sot(&src_chroma, &trg_chroma, SotParams::TRAINING, rng)?;
    let moved8: Vec<u8> = moved
        .data()
        .iter()
        .map(|&v| {
            if v.is_nan() {
                0
            } else {
                v.clamp(0.0, 255.0) as u8
            }
        })
        .collect();
    let mut lab = crate::color::bgr8_to_lab8(&moved8);
    for (p, &l) in lab.chunks_exact_mut(3).zip(&light8) {
        p[0] = l;
    }
    let bgr = crate::color::lab8_to_bgr8(&lab);
    Image::new(w, h, 3, bgr.iter().map(|&v| f32::from(v) / 255.0).collect())
}

/// The colour-transfer modes of DFL's trainer (`ct_mode`) and merger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Reinhard in Lab, no masks (training `rct`).
    Rct,
    /// Linear (PCA) transfer.
    Lct,
    /// Monge-Kantorovich linear.
    Mkl,
    /// Iterative distribution transfer.
    Idt,
    /// Sliced optimal transport with training parameters, clipped.
    Sot,
}

/// DFL's training dispatcher `color_transfer(ct_mode, src, trg)`: `src` modified towards
/// `trg`; SOT is clipped to [0, 1] afterwards, the others clip themselves.
pub fn color_transfer<R: Rng + ?Sized>(
    mode: TransferMode,
    src: &Image,
    trg: &Image,
    rng: &mut R,
) -> Result<Image> {
    match mode {
        TransferMode::Rct => rct(src, trg, None, None, MaskStats::DflZeroed),
        TransferMode::Lct => lct(src, trg),
        TransferMode::Mkl => mkl(src, trg),
        TransferMode::Idt => idt(src, trg, rng),
        TransferMode::Sot => {
            let mut out = sot(src, trg, SotParams::TRAINING, rng)?;
            out.clip(0.0, 1.0);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn np_interp_matches_numpy_rules() {
        let xp = [0.0, 1.0, 1.0, 2.0];
        let fp = [0.0, 10.0, 20.0, 30.0];
        assert_eq!(np_interp(-1.0, &xp, &fp, -5.0, 99.0), -5.0);
        assert_eq!(np_interp(3.0, &xp, &fp, -5.0, 99.0), 99.0);
        assert_eq!(np_interp(2.0, &xp, &fp, -5.0, 99.0), 30.0);
        // On a repeated xp value numpy takes the last of the run.
        assert_eq!(np_interp(1.0, &xp, &fp, -5.0, 99.0), 20.0);
        assert_eq!(np_interp(0.5, &xp, &fp, -5.0, 99.0), 5.0);
        assert_eq!(np_interp(1.5, &xp, &fp, -5.0, 99.0), 25.0);
    }

    #[test]
    fn random_rotation_is_a_rotation() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..20 {
            let r = random_rotation(&mut rng);
            assert!((r.determinant() - 1.0).abs() < 1e-9);
            assert!((r * r.transpose() - Matrix3::identity()).norm() < 1e-9);
        }
    }

    #[test]
    fn rct_masked_only_differs_from_dfl_and_refuses_empty_mask() {
        let t = Image::from_fn(8, 8, 3, |x, y, c| 0.2 + 0.05 * ((x + y + c) % 5) as f32).unwrap();
        let s = Image::from_fn(8, 8, 3, |x, _, c| 0.5 + 0.04 * ((x * 3 + c) % 4) as f32).unwrap();
        let m = Image::from_fn(8, 8, 1, |x, _, _| if x < 4 { 1.0 } else { 0.0 }).unwrap();
        let a = rct(&t, &s, Some(&m), Some(&m), MaskStats::DflZeroed).unwrap();
        let b = rct(&t, &s, Some(&m), Some(&m), MaskStats::MaskedOnly).unwrap();
        assert!(
            a.data()
                .iter()
                .zip(b.data())
                .any(|(x, y)| (x - y).abs() > 1e-3)
        );
        let empty = Image::zeros(8, 8, 1).unwrap();
        assert!(matches!(
            rct(&t, &s, Some(&empty), Some(&m), MaskStats::MaskedOnly),
            Err(ImageError::EmptyMask { .. })
        ));
        // DFL's statistics over an empty mask are all-zero: defined, finite output.
        let z = rct(&t, &s, Some(&empty), Some(&empty), MaskStats::DflZeroed).unwrap();
        assert!(z.data().iter().all(|v| v.is_finite()));
    }
}
