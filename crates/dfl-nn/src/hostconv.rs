//! Our own CPU 2-D convolution (forward and backward), used for every dense leras convolution
//! when the tensors live on burn's `flex` CPU device.
//!
//! Why: burn-flex runs a 2-D convolution through its general 3-D path (single-threaded
//! NCHW -> NHWC and kernel transposes on every call, each result tile scattered back to NCHW),
//! and the backward pass through burn's generic rules: the input gradient as a transposed
//! convolution and the weight gradient as a convolution whose "kernel" is the whole output
//! gradient, a matrix product only `k * k` columns wide. Here every image is an im2col and
//! well-shaped matrix products written straight into NCHW, with the weight gradient as
//! `dY * cols^T`, and the 3x3 convolutions with enough work use Winograd F(4x4, 3x3) or
//! F(2x2, 3x3) (the `winograd` submodule). burn's convolution stays the reference (tests)
//! and the GPU path.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

mod phase;
mod winograd;

use winograd::Variant;

/// Floats in one im2col tile: output rows are processed in tiles of at most this many column
/// entries, so the scratch memory stays bounded at any resolution.
const TILE_FLOATS: usize = 1 << 20;

/// Maps of fewer output positions than this run im2col over several images at once: one
/// image's columns would make narrow products (64 columns at 8x8) that repack the whole
/// weight matrix per image, and a weight gradient added from 64-long sums per image.
const GROUP_BELOW: usize = 256;

/// A group of images' columns may take this many tiles ([`TILE_FLOATS`]): at 1,024 input
/// channels a single 8x8 image's column matrix is already over half a tile.
const GROUP_TILES: usize = 4;

/// Which convolution runs on the CPU device. The default is the fastest; the others stay
/// selectable so that a benchmark can compare them in one run (`dfl bench train`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuConv {
    /// burn-flex's own convolution and burn's generic backward rules.
    Burn,
    /// Ours, im2col and matrix products only.
    Im2col,
    /// Ours, with Winograd F(2x2, 3x3) only for the 3x3/1/1 convolutions.
    WinogradF2,
    /// Ours, with Winograd F(4x4, 3x3) on large maps and F(2x2, 3x3) on smaller ones (the
    /// default).
    Winograd,
}

static CPU_CONV: AtomicU8 = AtomicU8::new(CpuConv::Winograd as u8);

/// Selects the CPU convolution for the whole process (convolutions already recorded for a
/// backward pass keep the path they were recorded with).
pub fn set_cpu_conv(conv: CpuConv) {
    CPU_CONV.store(conv as u8, Ordering::Relaxed);
}

/// The CPU convolution in use (see [`set_cpu_conv`]).
pub fn cpu_conv() -> CpuConv {
    match CPU_CONV.load(Ordering::Relaxed) {
        0 => CpuConv::Burn,
        1 => CpuConv::Im2col,
        2 => CpuConv::WinogradF2,
        _ => CpuConv::Winograd,
    }
}

/// Winograd-transformed kernels of weights that stay fixed (a model loaded for merging), kept
/// between calls: with the transform paid once, Winograd pays on small maps too (Quick96's
/// 12x12 and 24x24 decoder layers), see [`KernelCache::scope`]. Holds up to
/// [`KernelCache::MAX_ENTRIES`] kernels, each 4x the memory of its 3x3 weights with F(4x4)
/// (36 planes for 9 taps; a phased 5x5 kernel's 144 planes for 25 taps: 5.8x).
#[derive(Default)]
pub struct KernelCache {
    entries: Mutex<HashMap<KernelKey, CachedKernels>>,
}

/// Address and length of a weight buffer, the algorithm's planes, and whether phased.
type KernelKey = (usize, usize, usize, bool);

/// One cached transform and the weight tensor it was made from: holding the tensor keeps its
/// buffer alive and shared (burn-flex copies shared buffers on write), so the buffer's address
/// names the same values for as long as the entry lives.
struct CachedKernels {
    _weight: FlexTensor,
    u: Arc<Vec<f32>>,
}

thread_local! {
    /// The cache of the [`KernelCache::scope`] running on this thread, if any.
    static ACTIVE_CACHE: RefCell<Option<Arc<KernelCache>>> = const { RefCell::new(None) };
}

impl KernelCache {
    /// Most kernels kept: a network whose weights are rebuilt at every call (a concatenated
    /// kernel) stops adding entries here instead of growing without bound.
    pub const MAX_ENTRIES: usize = 256;

    /// Runs `f` with this cache serving the convolutions that run on the calling thread
    /// without autodiff. The caller promises that the weights seen inside `f` are not changed
    /// while the cache lives (burn tensors are immutable values; a trained model's new
    /// weights are new buffers, so this holds for any module that is only read).
    pub fn scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        /// Puts the previous cache back, also when `f` panics.
        struct Restore(Option<Arc<KernelCache>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                ACTIVE_CACHE.set(self.0.take());
            }
        }
        let _restore = Restore(ACTIVE_CACHE.replace(Some(Arc::clone(self))));
        f()
    }

    /// Number of kernels held (tests and diagnostics).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no kernel is held yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The transformed kernels of `weight` (contiguous f32, `[o, c, k, k]` of shape `s`) for
    /// `plan`'s algorithm, computed on first use; `None` when the plan uses none.
    fn kernels(&self, plan: Plan, weight: &FlexTensor, s: &ConvShape) -> Option<Arc<Vec<f32>>> {
        let var = plan.var?;
        let w = weight.as_slice::<f32>()?;
        let key = (w.as_ptr() as usize, w.len(), var.planes(), plan.phased);
        let lock = || self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = lock().get(&key) {
            return Some(Arc::clone(&e.u));
        }
        let u = Arc::new(if plan.phased {
            winograd::kernels(var, &phase::kernel(s, w), s.o, 4 * s.c, false)
        } else {
            winograd::kernels(var, w, s.o, s.c, false)
        });
        let mut entries = lock();
        if entries.len() < Self::MAX_ENTRIES {
            entries.entry(key).or_insert_with(|| CachedKernels {
                _weight: weight.clone(),
                u: Arc::clone(&u),
            });
        }
        Some(u)
    }
}

/// One convolution: NCHW input, `[out, in, k, k]` kernel, stride and zero padding on every
/// side (leras "SAME" is `k / 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConvShape {
    /// Batch size.
    n: usize,
    /// Input channels.
    c: usize,
    /// Input height.
    h: usize,
    /// Input width.
    w: usize,
    /// Output channels.
    o: usize,
    /// Kernel size (square).
    k: usize,
    /// Stride on both axes.
    stride: usize,
    /// Zero padding on every side.
    pad: usize,
}

impl ConvShape {
    /// Output height and width, `None` when the kernel does not fit the padded input or the
    /// shape is empty.
    fn out_hw(&self) -> Option<(usize, usize)> {
        let fits = |len: usize| len + 2 * self.pad >= self.k;
        if self.k == 0 || self.stride == 0 || !fits(self.h) || !fits(self.w) {
            return None;
        }
        let out = |len: usize| (len + 2 * self.pad - self.k) / self.stride + 1;
        Some((out(self.h), out(self.w)))
    }

    fn ckk(&self) -> usize {
        self.c * self.k * self.k
    }

    /// A 1x1, stride 1, unpadded convolution reads its input as the column matrix itself.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// Output rows per im2col tile of at most `tile` floats.
    fn tile_rows(&self, oh: usize, ow: usize, tile: usize) -> usize {
        (tile / (self.ckk() * ow).max(1)).clamp(1, oh)
    }

    /// The im2col chunks of `images` images: `(images, rows)` ranges, each one product. Small
    /// maps ([`GROUP_BELOW`]) whose images fit a tile whole go several images per chunk (at
    /// most [`GROUP_TILES`] tiles of columns), others one image and `tile_rows` rows at a time.
    fn chunks(
        &self,
        images: usize,
        (oh, ow): (usize, usize),
        tile: usize,
    ) -> Vec<(Range<usize>, Range<usize>)> {
        let rows = self.tile_rows(oh, ow, tile);
        let per_image = self.ckk() * oh * ow;
        let group = if oh * ow < GROUP_BELOW && rows == oh {
            (GROUP_TILES * tile / per_image.max(1)).clamp(1, images.max(1))
        } else {
            1
        };
        let mut out = Vec::new();
        for i0 in (0..images).step_by(group) {
            for r0 in (0..oh).step_by(rows) {
                out.push((i0..(i0 + group).min(images), r0..(r0 + rows).min(oh)));
            }
        }
        out
    }

    /// For kernel column (or row) `kx`: the output positions `lo..hi` whose input position
    /// `ox * stride + kx - pad` lies inside `0..len`.
    fn valid(&self, kx: usize, out: usize, len: usize) -> (usize, usize) {
        let s = self.stride;
        let lo = if self.pad > kx {
            (self.pad - kx).div_ceil(s)
        } else {
            0
        };
        let hi = if len + self.pad > kx {
            (len + self.pad - kx).div_ceil(s).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// How one convolution is computed.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// The Winograd algorithm, if any (for the phased shape when `phased`).
    var: Option<&'static Variant>,
    /// A 5x5/2/2 convolution run as a 3x3/1/1 one over its input's phases ([`phase`]).
    phased: bool,
}

impl Plan {
    /// The plan of `s` under `conv`; `frozen` when the weights' transforms are cached
    /// ([`KernelCache`]). A 5x5/2/2 convolution is phased when Winograd then applies (with
    /// im2col, 36 taps over four phases would cost more than the 25 of the 5x5 kernel).
    fn of(s: &ConvShape, conv: CpuConv, frozen: bool) -> Plan {
        let pick = |s: &ConvShape| match conv {
            CpuConv::Burn | CpuConv::Im2col => None,
            CpuConv::WinogradF2 | CpuConv::Winograd if frozen => {
                winograd::pick_frozen(s, conv == CpuConv::Winograd)
            }
            CpuConv::WinogradF2 | CpuConv::Winograd => winograd::pick(s, conv == CpuConv::Winograd),
        };
        if let Some(var) = phase::shape(s).as_ref().and_then(pick) {
            return Plan {
                var: Some(var),
                phased: true,
            };
        }
        Plan {
            var: pick(s),
            phased: false,
        }
    }
}

thread_local! {
    /// Per-thread convolution scratch (columns or Winograd transforms, column gradients or
    /// products, and a grouped chunk's product, gathered output gradient or block of kernel
    /// gradients), kept between calls: a fresh multi-megabyte buffer per call would cost an
    /// mmap, page faults and zeroing each time.
    static SCRATCH: Cell<[Vec<f32>; 3]> = const { Cell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Runs `f` with this thread's scratch buffers (re-entrant: a nested call gets empty ones).
fn with_scratch<R>(f: impl FnOnce(&mut [Vec<f32>; 3]) -> R) -> R {
    let mut bufs = SCRATCH.take();
    let r = f(&mut bufs);
    SCRATCH.set(bufs);
    r
}

thread_local! {
    /// The calling thread's buffer for a training call's Winograd kernels (forward, or the
    /// input gradient's), kept between calls for the same reason as [`SCRATCH`].
    static KERNELS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Frees the convolution buffers kept between calls, on this thread and every thread of the
/// pool. A training step calls it after its backward pass: kept, they save page faults from
/// layer to layer, but held into the next forward pass they would add to its peak memory
/// (up to 32 MiB of kernels on the calling thread and 16 MiB of columns per thread).
pub fn release_buffers() {
    drop((KERNELS.take(), SCRATCH.take()));
    rayon::broadcast(|_| drop((KERNELS.take(), SCRATCH.take())));
}

/// Runs `f` with this thread's kernel buffer (re-entrant like [`with_scratch`]).
fn with_kernel_buffer<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    let mut buf = KERNELS.take();
    let r = f(&mut buf);
    KERNELS.set(buf);
    r
}

/// A strided, read-only matrix view for [`matmul`].
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows x cols` with row stride `rs`.
    fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m x n] (+)= a[m x k] * b[k x n]`, `dst` row-major with row stride `dst_rs`; adds to
/// `dst` when `accumulate`, overwrites it otherwise.
fn matmul(dst: &mut [f32], dst_rs: usize, accumulate: bool, a: Mat, b: Mat, par: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let out = Mat::rows(dst, m, n, dst_rs);
    assert!(
        b.rows == k && a.fits() && b.fits() && out.fits(),
        "matmul operands out of bounds ({m}x{k} * {}x{n})",
        b.rows
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..][..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if par {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `fits` above keeps every element the three strided views address inside their
    // slices; `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Visits every (column-matrix row, output row) pair of output rows `r0..r1` of one image
/// whose columns start at `at0` of column-matrix rows `rs` apart: `f(at, x_row, (lo, hi),
/// kx)` with the offset of that output row's `ow` column entries, the offset of the input row
/// they read (`None`: padding) and the valid output columns `lo..hi`.
fn for_each_tap(
    s: &ConvShape,
    ow: usize,
    (r0, r1): (usize, usize),
    (at0, rs): (usize, usize),
    mut f: impl FnMut(usize, Option<usize>, (usize, usize), usize),
) {
    for c in 0..s.c {
        for ky in 0..s.k {
            for kx in 0..s.k {
                let row = at0 + ((c * s.k + ky) * s.k + kx) * rs;
                let range = s.valid(kx, ow, s.w);
                for oy in r0..r1 {
                    let iy = (oy * s.stride + ky).checked_sub(s.pad).filter(|&y| y < s.h);
                    let x_row = iy.map(|y| (c * s.h + y) * s.w);
                    f(row + (oy - r0) * ow, x_row, range, kx);
                }
            }
        }
    }
}

/// im2col of output rows `r0..r1` of one image `x` (`[c, h, w]`):
/// `cols[(c, ky, kx)][(oy, ox)]`, that image's columns at `at0` of rows `rs` apart.
fn im2col(
    s: &ConvShape,
    x: &[f32],
    ow: usize,
    rows: (usize, usize),
    at: (usize, usize),
    cols: &mut [f32],
) {
    let st = s.stride;
    for_each_tap(s, ow, rows, at, |at, x_row, (lo, hi), kx| {
        let dst = &mut cols[at..][..ow];
        let Some(x_row) = x_row else {
            dst.fill(0.0);
            return;
        };
        dst[..lo].fill(0.0);
        dst[hi..].fill(0.0);
        let src = &x[x_row..][..s.w];
        if st == 1 {
            let i0 = lo + kx - s.pad;
            dst[lo..hi].copy_from_slice(&src[i0..i0 + hi - lo]);
        } else {
            for (ox, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
                *d = src[ox * st + kx - s.pad];
            }
        }
    });
}

/// The column matrix `[c*k*k, images * (r1 - r0) * ow]` of output rows `r0..r1` of the
/// images `x` (`[images][c][h][w]`), one image's columns after the other's: the input itself
/// for one image of a 1x1/1/0 convolution, else its [`im2col`] in `cols`.
fn columns<'a>(
    s: &ConvShape,
    x: &'a [f32],
    ow: usize,
    (r0, r1): (usize, usize),
    cols: &'a mut Vec<f32>,
) -> Mat<'a> {
    let t = (r1 - r0) * ow;
    let chw = s.c * s.h * s.w;
    let images = x.len() / chw.max(1);
    if s.pointwise() && images == 1 {
        return Mat::rows(&x[r0 * ow..], s.c, t, s.h * s.w);
    }
    let width = images * t;
    cols.resize(s.ckk() * width, 0.0);
    for (i, x) in x.chunks_exact(chw).enumerate() {
        im2col(s, x, ow, (r0, r1), (i * t, width), cols);
    }
    Mat::rows(cols, s.ckk(), width, width)
}

/// col2im, the adjoint of [`im2col`]: adds the column entries of output rows `r0..r1` of one
/// image (at `at0` of rows `rs` apart) back into its gradient `dx` (`[c, h, w]`).
fn col2im(
    s: &ConvShape,
    cols: &[f32],
    ow: usize,
    rows: (usize, usize),
    at: (usize, usize),
    dx: &mut [f32],
) {
    let st = s.stride;
    for_each_tap(s, ow, rows, at, |at, x_row, (lo, hi), kx| {
        let Some(x_row) = x_row else { return };
        let src = &cols[at..][..ow];
        let dst = &mut dx[x_row..][..s.w];
        if st == 1 {
            let i0 = lo + kx - s.pad;
            for (d, v) in dst[i0..i0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                *d += v;
            }
        } else {
            for (ox, v) in src.iter().enumerate().take(hi).skip(lo) {
                dst[ox * st + kx - s.pad] += v;
            }
        }
    });
}

/// Forward pass on host buffers: `x [n, c, h, w]`, `weight [o, c, k, k]`, `bias [o]` ->
/// `[n, o, oh, ow]`, in im2col tiles of at most `tile` floats, with Winograd where it applies
/// and is allowed. `None` when the shape is invalid or a buffer has the wrong length.
fn forward(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    tile: usize,
    winograd: Option<&Variant>,
    cached: Option<&[f32]>,
) -> Option<Vec<f32>> {
    let (oh, ow) = s.out_hw()?;
    let (chw, ckk, plane) = (s.c * s.h * s.w, s.ckk(), oh * ow);
    let cached = cached.filter(|u| winograd.is_some_and(|v| u.len() == v.planes() * s.o * s.c));
    if x.len() != s.n * chw || bias.len() != s.o || (cached.is_none() && weight.len() != s.o * ckk)
    {
        return None;
    }
    let mut out = vec![0.0f32; s.n * s.o * plane];
    if out.is_empty() {
        return Some(out);
    }
    let threads = rayon::current_num_threads().max(1);
    let par = s.n < threads;
    // The images in one group per thread (for Winograd, their tiles form the products'
    // columns; for im2col, small maps' images share products).
    let per = s.n.div_ceil(threads.min(s.n).max(1));
    if let Some(var) = winograd {
        with_kernel_buffer(|owned| {
            let u = match cached {
                Some(u) => u,
                None => {
                    winograd::kernels_into(var, weight, s.o, s.c, false, owned);
                    &owned[..]
                }
            };
            out.par_chunks_mut(per * s.o * plane)
                .zip(x.par_chunks(per * chw))
                .for_each(|(y, x)| {
                    with_scratch(|[v, m, _]| {
                        let dims = (s.c, s.h, s.w, s.o);
                        winograd::conv_images(var, dims, x, u, Some(bias), y, [v, m], tile, par)
                    })
                });
        });
        return Some(out);
    }
    let w = Mat::rows(weight, s.o, ckk, ckk);
    out.par_chunks_mut(per * s.o * plane)
        .zip(x.par_chunks(per * chw))
        .for_each(|(y, x)| {
            with_scratch(|[cols, _, prod]| {
                for (images, rows) in s.chunks(x.len() / chw, (oh, ow), tile) {
                    let (g, t) = (images.len(), rows.len() * ow);
                    let x = &x[images.start * chw..images.end * chw];
                    let rhs = columns(s, x, ow, (rows.start, rows.end), cols);
                    if g == 1 {
                        let y = &mut y[images.start * s.o * plane..][..s.o * plane];
                        for (o, b) in bias.iter().enumerate() {
                            y[o * plane + rows.start * ow..][..t].fill(*b);
                        }
                        matmul(&mut y[rows.start * ow..], plane, true, w, rhs, par);
                        continue;
                    }
                    // Several whole images: their product, then each image's share.
                    prod.resize(s.o * g * t, 0.0);
                    matmul(prod, g * t, false, w, rhs, par);
                    for (i, y) in y[images.start * s.o * plane..]
                        .chunks_exact_mut(s.o * plane)
                        .take(g)
                        .enumerate()
                    {
                        for ((y, b), p) in y
                            .chunks_exact_mut(plane)
                            .zip(bias)
                            .zip(prod.chunks_exact(g * t))
                        {
                            for (y, p) in y.iter_mut().zip(&p[i * t..][..t]) {
                                *y = p + b;
                            }
                        }
                    }
                }
            });
        });
    Some(out)
}

/// [`forward`] by `plan`: a phased convolution rearranges its input and kernels first (not
/// the kernels when their transform is `cached`); the output needs no rearranging.
fn forward_planned(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    tile: usize,
    plan: Plan,
    cached: Option<&[f32]>,
) -> Option<Vec<f32>> {
    if !plan.phased {
        return forward(s, x, weight, bias, tile, plan.var, cached);
    }
    let p = phase::shape(s)?;
    if x.len() != s.n * s.c * s.h * s.w || (cached.is_none() && weight.len() != s.o * s.ckk()) {
        return None;
    }
    let wp = if cached.is_some() {
        Vec::new()
    } else {
        phase::kernel(s, weight)
    };
    forward(&p, &phase::input(s, x), &wp, bias, tile, plan.var, cached)
}

/// [`backward`] by `plan`: a phased convolution's gradients are those of the phased input and
/// kernels, rearranged back.
fn backward_planned(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    want: [bool; 3],
    tile: usize,
    plan: Plan,
) -> Option<Grads> {
    if !plan.phased {
        return backward(s, x, weight, dy, want, tile, plan.var);
    }
    let p = phase::shape(s)?;
    if x.len() != s.n * s.c * s.h * s.w || weight.len() != s.o * s.ckk() {
        return None;
    }
    let (xp, wp) = (phase::input(s, x), phase::kernel(s, weight));
    let g = backward(&p, &xp, &wp, dy, want, tile, plan.var)?;
    Some(Grads {
        x: g.x.map(|d| phase::input_grad(s, &d)),
        weight: g.weight.map(|d| phase::kernel_grad(s, &d)),
        bias: g.bias,
    })
}

/// Gradients of one convolution (each `None` when not asked for): input `[n, c, h, w]`,
/// weight `[o, c, k, k]`, bias `[o]`.
#[derive(Debug)]
struct Grads {
    x: Option<Vec<f32>>,
    weight: Option<Vec<f32>>,
    bias: Option<Vec<f32>>,
}

/// Backward pass on host buffers from the output gradient `dy [n, o, oh, ow]`; computes the
/// gradients flagged in `want` (input, weight, bias); `tile` and `allow_winograd` as in
/// [`forward`]. `None` when a buffer has the wrong length.
fn backward(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    want: [bool; 3],
    tile: usize,
    winograd: Option<&Variant>,
) -> Option<Grads> {
    let (oh, ow) = s.out_hw()?;
    let (chw, ckk, plane) = (s.c * s.h * s.w, s.ckk(), oh * ow);
    if x.len() != s.n * chw || weight.len() != s.o * ckk || dy.len() != s.n * s.o * plane {
        return None;
    }
    let [want_x, want_w, want_b] = want;
    let threads = rayon::current_num_threads().max(1);
    let groups = threads.min(s.n).max(1);
    let per = s.n.div_ceil(groups);
    let par = groups == 1 && threads > 1;
    let w = Mat::rows(weight, s.o, ckk, ckk);
    // The input gradient of a 3x3/1/1 convolution is one too (rotated, transposed kernels).
    let mut kernel_buf = KERNELS.take();
    let adjoint = winograd.filter(|_| want_x).map(|var| {
        winograd::kernels_into(var, weight, s.o, s.c, true, &mut kernel_buf);
        &kernel_buf[..]
    });

    let mut dx = if want_x {
        crate::host::zeroed(s.n * chw)
    } else {
        Vec::new()
    };
    let mut jobs: Vec<(usize, Option<&mut [f32]>)> = Vec::with_capacity(groups);
    if want_x {
        jobs.extend(
            dx.chunks_mut(per * chw)
                .enumerate()
                .map(|(g, d)| (g, Some(d))),
        );
    } else {
        jobs.extend((0..s.n.div_ceil(per)).map(|g| (g, None)));
    }
    let partials: Vec<(Vec<f32>, Vec<f32>)> = jobs
        .into_par_iter()
        .map(|(g, mut dx)| {
            let mut dw = if want_w {
                crate::host::zeroed(s.o * ckk)
            } else {
                Vec::new()
            };
            let mut db = vec![0.0f32; if want_b { s.o } else { 0 }];
            with_scratch(|[cols, dcols, dyg]| {
                let images = g * per..((g + 1) * per).min(s.n);
                let (first, count) = (images.start, images.len());
                for i in images {
                    let dy = &dy[i * s.o * plane..][..s.o * plane];
                    for (o, db) in db.iter_mut().enumerate() {
                        *db += dy[o * plane..][..plane].iter().sum::<f32>();
                    }
                }
                let im2col_dx = adjoint.is_none() && dx.is_some();
                // im2col unless Winograd computes both below.
                if winograd.is_none() && (want_w || im2col_dx) {
                    for (local, rows) in s.chunks(count, (oh, ow), tile) {
                        let (n, t) = (local.len(), rows.len() * ow);
                        let i0 = first + local.start;
                        // The output gradient of these images and rows, `[o][n * t]`.
                        let dy_t = if n == 1 {
                            Mat::rows(&dy[i0 * s.o * plane + rows.start * ow..], s.o, t, plane)
                        } else {
                            dyg.resize(s.o * n * t, 0.0);
                            for (o, d) in dyg.chunks_exact_mut(n * t).enumerate() {
                                for (j, d) in d.chunks_exact_mut(t).enumerate() {
                                    let at = ((i0 + j) * s.o + o) * plane + rows.start * ow;
                                    d.copy_from_slice(&dy[at..][..t]);
                                }
                            }
                            Mat::rows(dyg, s.o, n * t, n * t)
                        };
                        let r = (rows.start, rows.end);
                        if want_w {
                            let x = &x[i0 * chw..(i0 + n) * chw];
                            let xc = columns(s, x, ow, r, cols);
                            matmul(&mut dw, ckk, true, dy_t, xc.t(), par);
                        }
                        let Some(dx) = dx.as_deref_mut().filter(|_| im2col_dx) else {
                            continue;
                        };
                        let dx = &mut dx[(i0 - first) * chw..][..n * chw];
                        if s.pointwise() && n == 1 {
                            matmul(&mut dx[rows.start * ow..], plane, false, w.t(), dy_t, par);
                        } else {
                            dcols.resize(ckk * n * t, 0.0);
                            matmul(dcols, n * t, false, w.t(), dy_t, par);
                            for (j, dx) in dx.chunks_exact_mut(chw).enumerate() {
                                col2im(s, dcols, ow, r, (j * t, n * t), dx);
                            }
                        }
                    }
                }
                // Winograd weight and input gradients of the whole group at once.
                let dy = &dy[first * s.o * plane..][..count * s.o * plane];
                if let Some(var) = winograd.filter(|_| want_w) {
                    let x = &x[first * chw..][..count * chw];
                    let dims = (s.c, s.h, s.w, s.o);
                    let bufs = [&mut *cols, &mut *dcols];
                    winograd::weight_grad_images(var, dims, x, dy, &mut dw, dyg, bufs, tile, par);
                }
                if let (Some(var), Some(u), Some(dx)) = (winograd, &adjoint, dx.as_deref_mut()) {
                    let dims = (s.o, s.h, s.w, s.c);
                    let bufs = [&mut *cols, &mut *dcols];
                    winograd::conv_images(var, dims, dy, u, None, dx, bufs, tile, par);
                }
            });
            (dw, db)
        })
        .collect();
    KERNELS.set(kernel_buf);
    let (dws, dbs): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    Some(Grads {
        x: want_x.then_some(dx),
        weight: want_w.then(|| sum_all(dws)),
        bias: want_b.then(|| sum_all(dbs)),
    })
}

/// Element-wise sum of equally long vectors (the per-thread weight and bias gradients), into
/// the first.
fn sum_all(parts: Vec<Vec<f32>>) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut acc = parts.next().unwrap_or_default();
    for p in parts {
        for (a, v) in acc.iter_mut().zip(&p) {
            *a += v;
        }
    }
    acc
}

/// 2-D convolution with bias and symmetric padding: ours on the CPU device (with its own
/// backward pass under autodiff), burn's everywhere else.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    if let Some(y) = host_conv2d(&x, &weight, &bias, stride, padding) {
        return y;
    }
    burn_conv2d(
        x,
        weight,
        Some(bias),
        ConvOptions::new([stride, stride], [padding, padding], [1, 1], 1),
    )
}

fn shape_of(x: &Tensor<4>, weight: &Tensor<4>, stride: usize, pad: usize) -> Option<ConvShape> {
    let [n, c, h, w] = x.dims();
    let [o, ci, k, k2] = weight.dims();
    let s = ConvShape {
        n,
        c,
        h,
        w,
        o,
        k,
        stride,
        pad,
    };
    (ci == c && k2 == k && s.out_hw().is_some()).then_some(s)
}

fn host_conv2d(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: &Tensor<1>,
    stride: usize,
    pad: usize,
) -> Option<Tensor<4>> {
    let conv = cpu_conv();
    if conv == CpuConv::Burn {
        return None;
    }
    let device = x.device();
    if device.clone().inner() != Device::flex()
        || weight.device() != device
        || bias.device() != device
        || [x.dtype(), weight.dtype(), bias.dtype()] != [DType::F32; 3]
    {
        return None;
    }
    let s = shape_of(x, weight, stride, pad)?;
    if device.is_autodiff() {
        let plan = Plan::of(&s, conv, false);
        let xa = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let wa = weight.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let ba = bias.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let y = match ConvBackward
            .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([
                xa.node(),
                wa.node(),
                ba.node(),
            ])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let xs = prep.checkpoint(&xa);
                let ws = prep.checkpoint(&wa);
                let y = flex_forward(
                    &s,
                    xa.into_primitive(),
                    wa.into_primitive(),
                    ba.into_primitive(),
                    plan,
                )?;
                prep.finish((xs, ws, s, plan), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(
                &s,
                xa.into_primitive(),
                wa.into_primitive(),
                ba.into_primitive(),
                plan,
            )?),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(y));
    }
    let x = x.clone().try_into_primitive::<Flex>().ok()?.to_contiguous();
    let w = weight
        .clone()
        .try_into_primitive::<Flex>()
        .ok()?
        .to_contiguous();
    let b = bias
        .clone()
        .try_into_primitive::<Flex>()
        .ok()?
        .to_contiguous();
    let (oh, ow) = s.out_hw()?;
    let cache = ACTIVE_CACHE.with_borrow(|c| c.clone());
    let plan = Plan::of(&s, conv, cache.is_some());
    let u = cache.and_then(|c| c.kernels(plan, &w, &s));
    let y = forward_planned(
        &s,
        x.as_slice()?,
        w.as_slice()?,
        b.as_slice()?,
        TILE_FLOATS,
        plan,
        u.as_ref().map(|u| u.as_slice()),
    )?;
    Some(Tensor::from_primitive::<Flex>(flex(y, [s.n, s.o, oh, ow])))
}

fn flex_forward(
    s: &ConvShape,
    x: FlexTensor,
    w: FlexTensor,
    b: FlexTensor,
    plan: Plan,
) -> Option<FlexTensor> {
    let (x, w, b) = (x.to_contiguous(), w.to_contiguous(), b.to_contiguous());
    let y = forward_planned(
        s,
        x.as_slice()?,
        w.as_slice()?,
        b.as_slice()?,
        TILE_FLOATS,
        plan,
        None,
    )?;
    let (oh, ow) = s.out_hw()?;
    Some(flex(y, [s.n, s.o, oh, ow]))
}

fn flex<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The autodiff node of [`conv2d`] on the CPU device.
#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    /// Checkpoints of the input and the kernel, the shape, and how it was computed.
    type State = (NodeId, NodeId, ConvShape, Plan);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, ckpt: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (xs, ws, s, plan) = ops.state;
        let x = ckpt.retrieve_node_output::<FlexTensor>(xs).to_contiguous();
        let w = ckpt.retrieve_node_output::<FlexTensor>(ws).to_contiguous();
        let want = [node_x.is_some(), node_w.is_some(), node_b.is_some()];
        // The forward pass checked the shapes and the f32 dtype, and the checkpointed tensors
        // are those of the forward pass, so the buffers always fit.
        let g = match (x.as_slice(), w.as_slice(), dy.as_slice()) {
            (Some(xv), Some(wv), Some(dyv)) => {
                backward_planned(&s, xv, wv, dyv, want, TILE_FLOATS, plan)
            }
            _ => None,
        };
        let Some(g) = g else {
            unreachable!("convolution backward: buffers do not match {s:?}")
        };
        if let (Some(node), Some(v)) = (node_x, g.x) {
            grads.register::<Flex>(node.id, flex(v, [s.n, s.c, s.h, s.w]));
        }
        if let (Some(node), Some(v)) = (node_w, g.weight) {
            grads.register::<Flex>(node.id, flex(v, [s.o, s.c, s.k, s.k]));
        }
        if let (Some(node), Some(v)) = (node_b, g.bias) {
            grads.register::<Flex>(node.id, flex(v, [s.o]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform values in [-1, 1), the same for the same shape on every run.
    fn random<const D: usize>(shape: [usize; D], dev: &Device) -> Tensor<D> {
        use rand::{RngExt, SeedableRng};
        let n: usize = shape.iter().product();
        let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_data(TensorData::new(v, shape), dev)
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        crate::host::values(t)
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0f32, f32::max);
        assert!(worst <= tol, "{what}: worst relative difference {worst}");
    }

    /// Padding kinds of leras (k/2, also at stride 2 and even k), VALID, 1x1, a batch that does
    /// not split evenly over the threads, one image, two Winograd ones (F(2x2), F(4x4)), and
    /// a 5x5/2/2 one with an odd width that runs phased with F(2x2).
    const SHAPES: [ConvShape; 9] = [
        ConvShape {
            n: 2,
            c: 3,
            h: 9,
            w: 7,
            o: 4,
            k: 3,
            stride: 1,
            pad: 1,
        },
        ConvShape {
            n: 5,
            c: 4,
            h: 10,
            w: 11,
            o: 6,
            k: 5,
            stride: 2,
            pad: 2,
        },
        ConvShape {
            n: 3,
            c: 5,
            h: 6,
            w: 6,
            o: 7,
            k: 1,
            stride: 1,
            pad: 0,
        },
        ConvShape {
            n: 1,
            c: 2,
            h: 8,
            w: 8,
            o: 3,
            k: 4,
            stride: 2,
            pad: 2,
        },
        ConvShape {
            n: 2,
            c: 3,
            h: 9,
            w: 9,
            o: 2,
            k: 3,
            stride: 2,
            pad: 0,
        },
        ConvShape {
            n: 1,
            c: 6,
            h: 5,
            w: 12,
            o: 5,
            k: 3,
            stride: 1,
            pad: 1,
        },
        ConvShape {
            n: 3,
            c: 32,
            h: 33,
            w: 16,
            o: 33,
            k: 3,
            stride: 1,
            pad: 1,
        },
        ConvShape {
            n: 3,
            c: 32,
            h: 34,
            w: 33,
            o: 36,
            k: 3,
            stride: 1,
            pad: 1,
        },
        ConvShape {
            n: 8,
            c: 8,
            h: 32,
            w: 31,
            o: 32,
            k: 5,
            stride: 2,
            pad: 2,
        },
    ];

    /// The algorithm the default [`CpuConv::Winograd`] picks for `s`.
    fn auto(s: &ConvShape) -> Option<&'static Variant> {
        winograd::pick(s, true)
    }

    /// Relative bound for results of `var` against a direct convolution. F(4x4)'s transforms
    /// multiply by up to 8 and divide by 24, so its float32 rounding is ~10x F(2x2)'s: measured
    /// up to 1.1e-4 (forward), 6.6e-5 (input gradient), 1.8e-4 (weight gradient) on these
    /// seeded shapes; a wrong transform gives errors of order 1.
    fn bound(var: Option<&Variant>, direct: f32) -> f32 {
        if var.is_some_and(|v| std::ptr::eq(v, &winograd::F4)) {
            3e-4
        } else {
            direct
        }
    }

    /// Forward pass and all three gradients equal burn's convolution (the reference) under
    /// autodiff, through the public [`conv2d`] on the CPU device.
    #[test]
    fn matches_burn_forward_and_gradients() {
        let dev = Device::flex().autodiff();
        for s in SHAPES {
            let x = random([s.n, s.c, s.h, s.w], &dev).require_grad();
            let w = random([s.o, s.c, s.k, s.k], &dev).require_grad();
            let b = random([s.o], &dev).require_grad();
            assert!(
                host_conv2d(&x, &w, &b, s.stride, s.pad).is_some(),
                "our path taken for {s:?}"
            );
            let ours = conv2d(x.clone(), w.clone(), b.clone(), s.stride, s.pad);
            let expected = match s {
                _ if s == SHAPES[6] || s == SHAPES[8] => Some(&winograd::F2),
                _ if s == SHAPES[7] => Some(&winograd::F4),
                _ => None,
            };
            let plan = Plan::of(&s, CpuConv::Winograd, false);
            assert_eq!(
                plan.var.map(|v| v as *const Variant),
                expected.map(|v| v as *const Variant),
                "{s:?}"
            );
            assert_eq!(plan.phased, s == SHAPES[8], "{s:?}");
            let reference = burn_conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                ConvOptions::new([s.stride; 2], [s.pad; 2], [1, 1], 1),
            );
            assert_eq!(ours.dims(), reference.dims(), "{s:?}");
            let r = random(ours.dims(), &dev);
            let g_ours = (ours.clone() * r.clone()).sum().backward();
            let g_ref = (reference.clone() * r).sum().backward();
            let tol = |direct| bound(plan.var, direct);
            assert_close("forward", &host(ours), &host(reference), tol(1e-5));
            for (name, ours, reference) in [
                ("dx", x.grad(&g_ours), x.grad(&g_ref)),
                (
                    "db",
                    b.grad(&g_ours).map(|t| t.reshape([1, 1, 1, s.o])),
                    b.grad(&g_ref).map(|t| t.reshape([1, 1, 1, s.o])),
                ),
                ("dw", w.grad(&g_ours), w.grad(&g_ref)),
            ] {
                let (Some(o), Some(r)) = (ours, reference) else {
                    panic!("{name} missing for {s:?}")
                };
                assert_close(&format!("{name} {s:?}"), &host(o), &host(r), tol(1e-4));
            }
        }
    }

    /// Tiles of a few output rows give the same results as whole images, and gradients that
    /// are not asked for are not computed.
    #[test]
    fn tiling_and_partial_gradients() {
        let dev = Device::flex();
        for s in SHAPES {
            let (oh, ow) = s.out_hw().unwrap();
            let x = host(random([s.n, s.c, s.h, s.w], &dev));
            let w = host(random([s.o, s.c, s.k, s.k], &dev));
            let b = host(random([s.o], &dev));
            let dy = host(random([s.n, s.o, oh, ow], &dev));
            let small = s.c * s.k * s.k * ow; // one output row per tile
            let whole = forward(&s, &x, &w, &b, TILE_FLOATS, auto(&s), None).unwrap();
            assert_close(
                "tiled forward",
                &forward(&s, &x, &w, &b, small, auto(&s), None).unwrap(),
                &whole,
                1e-5,
            );
            let all = backward(&s, &x, &w, &dy, [true; 3], TILE_FLOATS, auto(&s)).unwrap();
            let tiled = backward(&s, &x, &w, &dy, [true; 3], small, auto(&s)).unwrap();
            // Weight gradients sum n*h*w products per entry, and Winograd's adds a few
            // transform roundings: the band split moves them by up to ~2e-5.
            for (what, a, b, tol) in [
                ("dx", &tiled.x, &all.x, 1e-5),
                ("dw", &tiled.weight, &all.weight, bound(auto(&s), 1e-4)),
                ("db", &tiled.bias, &all.bias, 1e-5),
            ] {
                assert_close(
                    &format!("tiled {what} {s:?}"),
                    a.as_ref().unwrap(),
                    b.as_ref().unwrap(),
                    tol,
                );
            }
            let only_w =
                backward(&s, &x, &w, &dy, [false, true, false], TILE_FLOATS, auto(&s)).unwrap();
            assert!(only_w.x.is_none() && only_w.bias.is_none());
            assert_close(
                "dw alone",
                only_w.weight.as_ref().unwrap(),
                all.weight.as_ref().unwrap(),
                1e-5,
            );
        }
        let bad = ConvShape {
            h: 1,
            w: 1,
            k: 5,
            pad: 1,
            ..SHAPES[0]
        };
        assert_eq!(bad.out_hw(), None);
        assert!(
            forward(&SHAPES[0], &[0.0; 3], &[], &[], TILE_FLOATS, None, None).is_none(),
            "short buffers are refused"
        );
    }

    /// Winograd F(2x2) and F(4x4) (3x3, stride 1, padding 1) equal the im2col path, forward,
    /// input and weight gradients, for sizes that are and are not multiples of the tile, in
    /// one band or in bands of one tile row.
    #[test]
    fn winograd_matches_im2col() {
        let dev = Device::flex();
        for (n, c, h, w, o) in [
            (5, 32, 17, 19, 40),
            (6, 48, 16, 16, 32),
            (3, 32, 1, 256, 33),
            (3, 40, 31, 24, 33),
        ] {
            let s = ConvShape {
                n,
                c,
                h,
                w,
                o,
                k: 3,
                stride: 1,
                pad: 1,
            };
            assert!(auto(&s).is_some());
            let x = host(random([n, c, h, w], &dev));
            let wt = host(random([o, c, 3, 3], &dev));
            let b = host(random([o], &dev));
            let dy = host(random([n, o, h, w], &dev));
            let direct = forward(&s, &x, &wt, &b, TILE_FLOATS, None, None).unwrap();
            let direct_g = backward(&s, &x, &wt, &dy, [true; 3], TILE_FLOATS, None).unwrap();
            for (var, tile) in [
                (&winograd::F2, TILE_FLOATS),
                (&winograd::F4, TILE_FLOATS),
                (&winograd::F2, 1),
                (&winograd::F4, 1),
            ] {
                let wino = forward(&s, &x, &wt, &b, tile, Some(var), None).unwrap();
                let tol = |direct| bound(Some(var), direct);
                assert_close(
                    &format!("winograd forward {s:?}"),
                    &wino,
                    &direct,
                    tol(1e-5),
                );
                let g = backward(&s, &x, &wt, &dy, [true; 3], tile, Some(var)).unwrap();
                assert_close(
                    &format!("winograd dw {s:?}"),
                    g.weight.as_ref().unwrap(),
                    direct_g.weight.as_ref().unwrap(),
                    tol(1e-4),
                );
                assert_close(
                    &format!("winograd dx {s:?}"),
                    g.x.as_ref().unwrap(),
                    direct_g.x.as_ref().unwrap(),
                    tol(1e-5),
                );
            }
        }
    }

    /// Without autodiff (merge-time prediction) the CPU path equals burn's too.
    #[test]
    fn inference_path_matches_burn() {
        let dev = Device::flex();
        let s = SHAPES[1];
        let x = random([s.n, s.c, s.h, s.w], &dev);
        let w = random([s.o, s.c, s.k, s.k], &dev);
        let b = random([s.o], &dev);
        let ours = conv2d(x.clone(), w.clone(), b.clone(), s.stride, s.pad);
        let reference = burn_conv2d(
            x,
            w,
            Some(b),
            ConvOptions::new([s.stride; 2], [s.pad; 2], [1, 1], 1),
        );
        assert_close("inference", &host(ours), &host(reference), 1e-5);
    }
    /// A 5x5/2/2 convolution run over its input's phases gives the direct convolution's
    /// output and gradients, with im2col on the phased shape (a pure rearrangement: 1e-5) and
    /// with both Winograd algorithms; odd and even sizes, and the phased kernels' transform
    /// passed in as the cache would.
    #[test]
    fn phased_matches_direct() {
        let dev = Device::flex();
        for (n, c, h, w, o) in [(2, 3, 9, 8, 5), (3, 8, 13, 16, 33), (1, 9, 20, 17, 32)] {
            let s = ConvShape {
                n,
                c,
                h,
                w,
                o,
                k: 5,
                stride: 2,
                pad: 2,
            };
            let x = host(random([n, c, h, w], &dev));
            let wt = host(random([o, c, 5, 5], &dev));
            let b = host(random([o], &dev));
            let dy_len = {
                let (oh, ow) = s.out_hw().unwrap();
                n * o * oh * ow
            };
            let dy: Vec<f32> = (0..dy_len)
                .map(|i| ((i * 7919) % 13) as f32 / 6.5 - 1.0)
                .collect();
            let direct = forward(&s, &x, &wt, &b, TILE_FLOATS, None, None).unwrap();
            let g = backward(&s, &x, &wt, &dy, [true; 3], TILE_FLOATS, None).unwrap();
            for var in [None, Some(&winograd::F2), Some(&winograd::F4)] {
                let plan = Plan { var, phased: true };
                let what = format!("{s:?} {:?}", var.map(|v| v.planes()));
                let tol = bound(var, 1e-5);
                let y = forward_planned(&s, &x, &wt, &b, TILE_FLOATS, plan, None).unwrap();
                assert_close(&format!("forward {what}"), &y, &direct, tol);
                if let Some(v) = var {
                    let p = phase::shape(&s).unwrap();
                    let u = winograd::kernels(v, &phase::kernel(&s, &wt), o, p.c, false);
                    let y = forward_planned(&s, &x, &[], &b, TILE_FLOATS, plan, Some(&u)).unwrap();
                    assert_close(&format!("cached {what}"), &y, &direct, tol);
                }
                let gp = backward_planned(&s, &x, &wt, &dy, [true; 3], TILE_FLOATS, plan).unwrap();
                for (name, ours, reference) in [
                    ("dx", &gp.x, &g.x),
                    ("dw", &gp.weight, &g.weight),
                    ("db", &gp.bias, &g.bias),
                ] {
                    let (Some(a), Some(r)) = (ours, reference) else {
                        panic!("{name} missing for {what}")
                    };
                    assert_close(&format!("{name} {what}"), a, r, bound(var, 1e-4));
                }
            }
        }
    }

    /// Inside a [`KernelCache`] scope, a small map with frozen weights takes F(4x4) with the
    /// kernels transformed once (the default pick would run im2col there), and the result
    /// still equals burn's convolution.
    #[test]
    fn cached_kernels_match_burn() {
        let dev = Device::flex();
        let s = ConvShape {
            n: 2,
            c: 32,
            h: 12,
            w: 10,
            o: 40,
            k: 3,
            stride: 1,
            pad: 1,
        };
        assert!(auto(&s).is_none());
        assert!(winograd::pick_frozen(&s, true).is_some_and(|v| std::ptr::eq(v, &winograd::F4)));
        let x = random([s.n, s.c, s.h, s.w], &dev);
        let w = random([s.o, s.c, s.k, s.k], &dev);
        let b = random([s.o], &dev);
        let reference = host(burn_conv2d(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        ));
        let cache = Arc::new(KernelCache::default());
        for round in 0..2 {
            let y = cache.scope(|| conv2d(x.clone(), w.clone(), b.clone(), 1, 1));
            assert_close(
                "cached F(4x4)",
                &host(y),
                &reference,
                bound(Some(&winograd::F4), 0.0),
            );
            assert_eq!(cache.len(), 1, "one kernel cached, reused in round {round}");
        }
        // Outside the scope nothing is cached and the default pick runs.
        let y = conv2d(x, w, b, 1, 1);
        assert_close("uncached", &host(y), &reference, 1e-5);
        assert_eq!(cache.len(), 1);
    }

    /// Best of `rounds` timed runs of `f` after one warm-up run, in ms (the timing probes).
    fn best_ms(rounds: usize, f: impl Fn()) -> f64 {
        f();
        (0..rounds)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::MAX, f64::min)
    }

    /// A square convolution as the networks use them: 3x3/1/1, or leras' 5x5/2/2 `Downscale`.
    fn square(n: usize, c: usize, o: usize, hw: usize, k: usize) -> ConvShape {
        let (stride, pad) = if k == 5 { (2, 2) } else { (1, 1) };
        ConvShape {
            n,
            c,
            h: hw,
            w: hw,
            o,
            k,
            stride,
            pad,
        }
    }

    /// Timing probe (ignored): forward + all gradients at training batch sizes, both threads:
    /// 3x3 layers with im2col, F(2x2) and F(4x4) (kernels transformed at every call), and the
    /// encoders' 5x5/2/2 layers direct and as the default plan picks them (phased).
    #[test]
    #[ignore]
    fn profile_training_shapes() {
        let direct = Plan {
            var: None,
            phased: false,
        };
        let wino = |var| Plan {
            var: Some(var),
            phased: false,
        };
        let three = [
            (4, 512, 512, 12),
            (4, 512, 1024, 12),
            (8, 512, 512, 12),
            (4, 256, 256, 24),
            (8, 512, 512, 8),
            (8, 512, 2048, 8),
            (4, 128, 2048, 6),
        ]
        .map(|(n, c, o, hw)| {
            let plans = vec![direct, wino(&winograd::F2), wino(&winograd::F4)];
            (square(n, c, o, hw, 3), plans)
        });
        let five = [
            (8, 64, 128, 64),
            (8, 128, 256, 32),
            (16, 64, 128, 64),
            (16, 128, 256, 32),
            (4, 64, 128, 48),
            (8, 64, 128, 48),
            (8, 128, 256, 24),
        ]
        .map(|(n, c, o, hw)| {
            let s = square(n, c, o, hw, 5);
            (s, vec![direct, Plan::of(&s, CpuConv::Winograd, false)])
        });
        for (s, plans) in three.into_iter().chain(five) {
            let dev = Device::flex();
            let (oh, ow) = s.out_hw().unwrap();
            let x = host(random([s.n, s.c, s.h, s.w], &dev));
            let w = host(random([s.o, s.c, s.k, s.k], &dev));
            let b = vec![0.0f32; s.o];
            let dy = host(random([s.n, s.o, oh, ow], &dev));
            let auto = Plan::of(&s, CpuConv::Winograd, false);
            let mut line = format!(
                "n{} {}->{} @{} k{} (picked {:?}, phased {}):",
                s.n,
                s.c,
                s.o,
                s.h,
                s.k,
                auto.var.map(|v| v.planes()),
                auto.phased
            );
            for p in plans {
                let f = best_ms(3, || {
                    forward_planned(&s, &x, &w, &b, TILE_FLOATS, p, None);
                });
                let bw = best_ms(3, || {
                    backward_planned(&s, &x, &w, &dy, [true; 3], TILE_FLOATS, p);
                });
                let what = format!(
                    "{:?}{}",
                    p.var.map(|v| v.planes()),
                    ["", " phased"][usize::from(p.phased)]
                );
                line += &format!(" [{what} {f:.1}+{bw:.1}]");
            }
            eprintln!("{line}");
        }
    }

    /// Timing probe (ignored): forward of Quick96's decoder shapes on one thread, im2col
    /// against F(2x2) and F(4x4) with the kernels transformed beforehand.
    #[test]
    #[ignore]
    fn profile_inference_shapes() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| {
            for n in [4, 8] {
                for (c, o, hw) in [
                    (512, 512, 12),
                    (512, 1024, 12),
                    (256, 256, 24),
                    (256, 512, 24),
                    (128, 128, 48),
                    (128, 2048, 6),
                    (256, 2048, 6),
                    (128, 256, 12),
                    (128, 512, 6),
                    (64, 128, 24),
                    (512, 512, 8),
                    (256, 256, 16),
                    (128, 128, 32),
                ] {
                    let s = square(n, c, o, hw, 3);
                    let dev = Device::flex();
                    let x = host(random([n, c, hw, hw], &dev));
                    let w = host(random([o, c, 3, 3], &dev));
                    let b = vec![0.0f32; o];
                    let im = best_ms(5, || {
                        forward(&s, &x, &w, &b, TILE_FLOATS, None, None);
                    });
                    let mut line = format!("n{n} {c}->{o} @{hw}: im2col {im:.2} ms");
                    for (name, v) in [("F2", &winograd::F2), ("F4", &winograd::F4)] {
                        let u = winograd::kernels(v, &w, o, c, false);
                        let all = best_ms(5, || {
                            forward(&s, &x, &w, &b, TILE_FLOATS, Some(v), Some(&u));
                        });
                        line += &format!(", {name} {all:.2} ({:.2}x)", im / all);
                    }
                    eprintln!("{line}");
                }
            }
        });
    }
}
