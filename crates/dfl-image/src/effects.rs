//! DFL's merger and augmentation effects built on the primitives: sharpen/blur
//! (`blursharpen`), linear motion blur, frame denoise, bicubic degrade and the 256-colour
//! palette reduction (`reduce_colors`).

use crate::border::Border;
use crate::error::{ImageError, Result};
use crate::filter::{Kernel, filter2d, gaussian_blur, median_blur};
use crate::image::{Image, Quantize};
use crate::interp::Interp;
use crate::resize::resize;
use crate::warp::{Affine, warp_affine};
use std::collections::HashMap;

/// `cv2.getRotationMatrix2D((cx, cy), angle_deg, scale)`: rotation by `angle_deg`
/// (counter-clockwise in image coordinates shown y-down, like OpenCV) and scale about a centre.
pub fn rotation_matrix_2d(cx: f64, cy: f64, angle_deg: f64, scale: f64) -> Affine {
    let a = angle_deg.to_radians();
    let alpha = a.cos() * scale;
    let beta = a.sin() * scale;
    [
        [alpha, beta, (1.0 - alpha) * cx - beta * cy],
        [-beta, alpha, beta * cx + (1.0 - alpha) * cy],
    ]
}

/// Sharpen mode of DFL's merger (`sharpen_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharpenMode {
    /// No sharpening (blurring with a negative amount still applies).
    None,
    /// Box high-pass: kernel `delta + (delta - box) * amount`.
    Box,
    /// Gaussian unsharp mask: `img * (1 + amount/2) - blur * amount/2`.
    Gaussian,
}

/// DFL's `blursharpen(img, mode, kernel_size, amount)` (merger's blur/sharpen slider, -100..100;
/// augmentation's random sharpen). An even `kernel_size` is made odd (+1).
/// - `amount > 0`, box: `filter2D` with `delta + (delta - box_k) * amount`; amount is the raw
///   value, so 1 already doubles the high-pass (DFL's semantics, kept).
/// - `amount > 0`, gaussian: `img * (1 + 0.5 amount) - GaussianBlur(img, k, sigma from k) *
///   0.5 amount`.
/// - `amount < 0` (any mode): repeated 5x5 medians, 10 units per full pass, the remainder as
///   a partial blend (`n >= 10`: replace; else `lerp(img, median, (n % 10) / 10)`).
///
/// No clipping (DFL clips later).
pub fn blursharpen(
    img: &Image,
    mode: SharpenMode,
    kernel_size: usize,
    amount: i32,
) -> Result<Image> {
    let k = if kernel_size.is_multiple_of(2) {
        kernel_size + 1
    } else {
        kernel_size
    };
    if amount > 0 {
        let a = amount as f32;
        match mode {
            SharpenMode::None => Ok(img.clone()),
            SharpenMode::Box => {
                let n = k * k;
                let mut w = vec![-a / n as f32; n];
                w[n / 2] = 1.0 + a * (1.0 - 1.0 / n as f32);
                filter2d(img, &Kernel::new(k, k, w)?, Border::Reflect101)
            }
            SharpenMode::Gaussian => {
                let blur = gaussian_blur(img, k, 0.0)?;
                let mut out = img.clone();
                let (wa, wb) = (1.0 + 0.5 * a, -(0.5 * a));
                for (o, &b) in out.data_mut().iter_mut().zip(blur.data()) {
                    *o = *o * wa + b * wb;
                }
                Ok(out)
            }
        }
    } else if amount < 0 {
        median_passes(img, i64::from(amount).unsigned_abs(), 10)
    } else {
        Ok(img.clone())
    }
}

/// DFL's median loop: while `n > 0`: `m = medianBlur(img, 5)`; `n >= full` replaces, else
/// blends by `(n % full) / full`; `n -= 10`.
fn median_passes(img: &Image, mut n: u64, full: u64) -> Result<Image> {
    let mut cur = img.clone();
    while n > 0 {
        let m = median_blur(&cur, 5)?;
        if n >= full {
            cur = m;
        } else {
            let p = (n % full) as f32 / full as f32;
            for (c, &mv) in cur.data_mut().iter_mut().zip(m.data()) {
                *c = *c * (1.0 - p) + mv * p;
            }
        }
        n = n.saturating_sub(10);
    }
    Ok(cur)
}

/// The merger's frame denoise (`image_denoise_power`, 0..500): repeated 5x5 medians, a full
/// pass per 100 units over 100 and partial blends below (`n >= 100`: replace; else
/// `lerp(frame, median, (n % 100) / 100)`; `n -= 10` each pass, as DFL).
pub fn denoise(frame: &Image, power: u32) -> Result<Image> {
    median_passes(frame, u64::from(power), 100)
}

/// The merger's bicubic degrade (`bicubic_degrade_power` p, 0..100): bicubic resize to
/// `(int(W s), int(H s))` with `s = 1 - p/101`, then bicubic back to W x H. A side that would
/// shrink to 0 is kept at 1.
pub fn bicubic_degrade(frame: &Image, power: u32) -> Result<Image> {
    if power == 0 {
        return Ok(frame.clone());
    }
    let s = 1.0 - f64::from(power) / 101.0;
    let w = ((frame.width() as f64 * s) as usize).max(1);
    let h = ((frame.height() as f64 * s) as usize).max(1);
    let small = resize(frame, w, h, Interp::Cubic)?;
    resize(&small, frame.width(), frame.height(), Interp::Cubic)
}

/// DFL's `LinearMotionBlur` kernel: a `size x size` kernel whose row `(size - 1) / 2` is
/// ones, rotated by `angle_deg` about `(size/2 - 0.5, size/2 - 0.5)` (bilinear, zero border)
/// and normalised to sum 1. `size` must be at least 1.
pub fn motion_blur_kernel(size: usize, angle_deg: f64) -> Result<Kernel> {
    if size == 0 || size > 4096 {
        return Err(ImageError::Parameter {
            op: "motion_blur_kernel",
            msg: format!("kernel size {size} must be 1..=4096"),
        });
    }
    if !angle_deg.is_finite() {
        return Err(ImageError::NonFinite {
            op: "motion_blur_kernel",
        });
    }
    let mut line = Image::zeros(size, size, 1)?;
    line.row_mut((size - 1) / 2).fill(1.0);
    let c = size as f64 / 2.0 - 0.5;
    let m = rotation_matrix_2d(c, c, angle_deg, 1.0);
    let k = warp_affine(&line, &m, size, size, Interp::Linear, Border::Constant(0.0))?;
    let sum: f32 = k.data().iter().sum();
    let inv = 1.0 / sum;
    Kernel::new(size, size, k.data().iter().map(|v| v * inv).collect())
}

/// DFL's `LinearMotionBlur(img, size, angle)`: `filter2D` with [`motion_blur_kernel`]
/// (anchor at the kernel centre, reflect-101 borders).
pub fn linear_motion_blur(img: &Image, size: usize, angle_deg: f64) -> Result<Image> {
    filter2d(
        img,
        &motion_blur_kernel(size, angle_deg)?,
        Border::Reflect101,
    )
}

/// DFL's `reduce_colors(img_bgr, n)` for the merger's colour degrade, on a BGR image: the
/// image as 8-bit (`x * 255` truncated, as DFL), an adaptive palette of at most `n_colors`
/// colours, every pixel replaced by its nearest palette colour, back to float BGR.
///
/// DFL calls PIL's `convert('P', palette=ADAPTIVE)`; this is a re-implementation of PIL's
/// median cut (libImaging `Quant.c`): colours are first coarsened by dropping low bits until
/// at most 65536 distinct remain; the box with the most pixels is split next (single-colour
/// boxes are never split) along the axis with the largest luminance-weighted range
/// (77 R, 150 G, 29 B) where the running pixel count passes half; palette entries are the
/// rounded mean colours of the boxes; each pixel takes the nearest entry, preferring its own
/// box's entry on ties; PIL's heap is reproduced, so equally populated boxes split in PIL's
/// order. What PIL leaves to hash-table order (the order of equal-distance palette entries)
/// is fixed here by index, so a few pixels can land on a different but equally near entry;
/// the golden test bounds the difference.
pub fn reduce_colors(img: &Image, n_colors: usize) -> Result<Image> {
    let op = "reduce_colors";
    img.check_channels(op, &[3], "3")?;
    img.check_finite(op)?;
    if n_colors == 0 || n_colors > 65536 {
        return Err(ImageError::Parameter {
            op,
            msg: format!("colour count {n_colors} must be 1..=65536"),
        });
    }
    let bytes = img.to_u8(Quantize::Truncate);
    // RGB order, as PIL sees DFL's image.
    let pixels: Vec<[u8; 3]> = bytes.chunks_exact(3).map(|p| [p[2], p[1], p[0]]).collect();
    let mut shift = 0u32;
    let mut counts: HashMap<[u8; 3], u64>;
    loop {
        counts = HashMap::new();
        for p in &pixels {
            *counts.entry(p.map(|v| v >> shift)).or_insert(0) += 1;
        }
        if counts.len() <= 65536 || shift >= 7 {
            break;
        }
        shift += 1;
    }
    let mut colours: Vec<([u8; 3], u64)> = counts.into_iter().collect();
    colours.sort_unstable();
    let boxes = median_cut(&mut colours, n_colors);
    // Palette: rounded mean of the original pixels of each leaf box (leaves in tree order).
    let mut leaf_of: HashMap<[u8; 3], usize> = HashMap::with_capacity(colours.len());
    for (li, b) in boxes.iter().enumerate() {
        for (c, _) in &colours[b.start..b.end] {
            leaf_of.insert(*c, li);
        }
    }
    let mut sums = vec![[0u64; 4]; boxes.len()];
    for p in &pixels {
        if let Some(&li) = leaf_of.get(&p.map(|v| v >> shift)) {
            for k in 0..3 {
                sums[li][k] += u64::from(p[k]);
            }
            sums[li][3] += 1;
        }
    }
    let palette: Vec<[i32; 3]> = sums
        .iter()
        .map(|s| {
            std::array::from_fn(|k| {
                if s[3] == 0 {
                    0
                } else {
                    (0.5 + s[k] as f64 / s[3] as f64) as i32
                }
            })
        })
        .collect();
    let dist =
        |a: &[i32; 3], b: &[i32; 3]| -> i64 { (0..3).map(|k| i64::from(a[k] - b[k]).pow(2)).sum() };
    // For each entry, the other entries ordered by distance (PIL's avgDistSortKey).
    let order: Vec<Vec<(i64, usize)>> = palette
        .iter()
        .map(|a| {
            let mut v: Vec<(i64, usize)> = palette
                .iter()
                .enumerate()
                .map(|(j, b)| (dist(a, b), j))
                .collect();
            v.sort_unstable();
            v
        })
        .collect();
    let mut mapped: HashMap<[u8; 3], [i32; 3]> = HashMap::with_capacity(colours.len());
    let mut out = img.zeros_like();
    for (o, p) in out.data_mut().chunks_exact_mut(3).zip(&pixels) {
        let q = *mapped.entry(*p).or_insert_with(|| {
            let pi = p.map(i32::from);
            let Some(&home) = leaf_of.get(&p.map(|v| v >> shift)) else {
                return pi;
            };
            let mut best = home;
            let mut best_d = dist(&palette[home], &pi);
            let limit = best_d * 4;
            for &(d_home, j) in &order[home] {
                if d_home > limit {
                    break;
                }
                let d = dist(&palette[j], &pi);
                if d < best_d {
                    best_d = d;
                    best = j;
                }
            }
            palette[best]
        });
        // Back to BGR.
        o[0] = q[2] as f32 / 255.0;
        o[1] = q[1] as f32 / 255.0;
        o[2] = q[0] as f32 / 255.0;
    }
    Ok(out)
}

/// A box of the median cut: a range of the colour list, its pixel count and its colour
/// bounds.
#[derive(Debug, Clone, Copy)]
struct ColourBox {
    start: usize,
    end: usize,
    pixels: u64,
    min: [u8; 3],
    max: [u8; 3],
}

impl ColourBox {
    fn new(start: usize, end: usize, colours: &[([u8; 3], u64)]) -> Self {
        let mut min = [255u8; 3];
        let mut max = [0u8; 3];
        let mut pixels = 0;
        for (c, n) in &colours[start..end] {
            pixels += n;
            for k in 0..3 {
                min[k] = min[k].min(c[k]);
                max[k] = max[k].max(c[k]);
            }
        }
        ColourBox {
            start,
            end,
            pixels,
            min,
            max,
        }
    }

    fn single_colour(&self) -> bool {
        self.min == self.max
    }
}

/// PIL's `QuantHeap`: a 1-based binary max-heap on box pixel counts with PIL's exact sift
/// rules, so equally populated boxes come out in PIL's order.
#[derive(Default)]
struct PilHeap {
    /// `slots[0]` is unused, as in PIL.
    slots: Vec<usize>,
}

impl PilHeap {
    fn cmp(nodes: &[ColourBox], a: usize, b: usize) -> i64 {
        nodes[a].pixels as i64 - nodes[b].pixels as i64
    }

    fn add(&mut self, v: usize, nodes: &[ColourBox]) {
        if self.slots.is_empty() {
            self.slots.push(usize::MAX);
        }
        self.slots.push(v);
        let mut k = self.slots.len() - 1;
        while k != 1 {
            if Self::cmp(nodes, v, self.slots[k / 2]) <= 0 {
                break;
            }
            self.slots[k] = self.slots[k / 2];
            k >>= 1;
        }
        self.slots[k] = v;
    }

    fn remove(&mut self, nodes: &[ColourBox]) -> Option<usize> {
        if self.slots.len() < 2 {
            return None;
        }
        let top = self.slots[1];
        let v = self.slots.pop()?;
        let count = self.slots.len() - 1;
        if count == 0 {
            return Some(top);
        }
        let mut k = 1;
        while k * 2 <= count {
            let mut l = k * 2;
            if l < count && Self::cmp(nodes, self.slots[l], self.slots[l + 1]) < 0 {
                l += 1;
            }
            if Self::cmp(nodes, v, self.slots[l]) > 0 {
                break;
            }
            self.slots[k] = self.slots[l];
            k = l;
        }
        self.slots[k] = v;
        Some(top)
    }
}

/// PIL's median cut over `colours` (reordered in place so every box is a range); returns the
/// leaf boxes in tree order (upper half first, as PIL's lists run from high to low values).
fn median_cut(colours: &mut [([u8; 3], u64)], n_colors: usize) -> Vec<ColourBox> {
    // Tree: node -> Some((left, right)) once split.
    let mut nodes = vec![ColourBox::new(0, colours.len(), colours)];
    let mut children: Vec<Option<(usize, usize)>> = vec![None];
    let mut heap = PilHeap::default();
    heap.add(0, &nodes);
    let mut splits_left = n_colors.saturating_sub(1);
    while splits_left > 0 {
        let Some(id) = heap.remove(&nodes) else {
            break;
        };
        let b = nodes[id];
        if b.single_colour() {
            continue;
        }
        const WEIGHT: [i32; 3] = [77, 150, 29];
        let mut axis = 0;
        let mut best = i32::from(b.max[0] - b.min[0]) * WEIGHT[0];
        for k in 1..3 {
            let f = i32::from(b.max[k] - b.min[k]) * WEIGHT[k];
            if best < f {
                best = f;
                axis = k;
            }
        }
        let slice = &mut colours[b.start..b.end];
        // Descending on the axis (PIL's list order), then by colour for determinism.
        slice.sort_unstable_by(|(x, _), (y, _)| y[axis].cmp(&x[axis]).then(x.cmp(y)));
        let mut left = 0u64;
        let mut cut = 0;
        while cut < slice.len() {
            left += slice[cut].1;
            cut += 1;
            if left * 2 > b.pixels {
                break;
            }
        }
        // Equal axis values stay together on the left.
        if cut < slice.len() {
            let v = slice[cut - 1].0[axis];
            while cut < slice.len() && slice[cut].0[axis] == v {
                cut += 1;
            }
        }
        // Nothing left for the right: move the lowest value over.
        if cut == slice.len() {
            let v = slice[slice.len() - 1].0[axis];
            while cut > 0 && slice[cut - 1].0[axis] == v {
                cut -= 1;
            }
        }
        let l = ColourBox::new(b.start, b.start + cut, colours);
        let r = ColourBox::new(b.start + cut, b.end, colours);
        let (li, ri) = (nodes.len(), nodes.len() + 1);
        nodes.push(l);
        nodes.push(r);
        children.push(None);
        children.push(None);
        children[id] = Some((li, ri));
        heap.add(li, &nodes);
        heap.add(ri, &nodes);
        splits_left -= 1;
    }
    // Leaves in depth-first order, left (upper values) first.
    let mut leaves = Vec::new();
    let mut stack = vec![0usize];
    while let Some(id) = stack.pop() {
        match children[id] {
            Some((l, r)) => {
                stack.push(r);
                stack.push(l);
            }
            None if nodes[id].end > nodes[id].start => leaves.push(nodes[id]),
            None => {}
        }
    }
    leaves
}

/// The merger's colour degrade (`color_degrade_power` c, 0..100): `reduce_colors(img, 256)`,
/// blended `lerp(img, reduced, c / 100)` (`c = 100` returns the reduced image).
pub fn color_degrade(img: &Image, power: u32) -> Result<Image> {
    if power == 0 {
        return Ok(img.clone());
    }
    let q = reduce_colors(img, 256)?;
    if power >= 100 {
        return Ok(q);
    }
    let p = power as f32 / 100.0;
    let mut out = img.clone();
    for (o, &v) in out.data_mut().iter_mut().zip(q.data()) {
        *o = *o * (1.0 - p) + v * p;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motion_kernel_is_normalised_and_horizontal_at_zero() {
        let k = motion_blur_kernel(5, 0.0).unwrap();
        let s: f32 = k.weights().iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        for x in 0..5 {
            assert!((k.weights()[2 * 5 + x] - 0.2).abs() < 1e-6);
        }
        let k = motion_blur_kernel(4, 90.0).unwrap();
        assert!((k.weights().iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(motion_blur_kernel(0, 0.0).is_err());
        assert!(motion_blur_kernel(3, f64::NAN).is_err());
    }

    #[test]
    fn reduce_colors_keeps_few_colours_exactly_and_limits_many() {
        // Four colours survive a 256-colour palette exactly.
        let img = Image::from_fn(8, 8, 3, |x, y, c| {
            [0.0, 1.0, 0.5, 0.25][(x / 4 + 2 * (y / 4)) % 4] * (c as f32 + 1.0) / 3.0
        })
        .unwrap();
        let q = reduce_colors(&img, 256).unwrap();
        let exact = Image::from_u8(8, 8, 3, &img.to_u8(Quantize::Truncate)).unwrap();
        assert_eq!(q, exact);
        // A gradient with many colours is reduced to at most 16.
        let g = Image::from_fn(64, 64, 3, |x, y, c| {
            ((x * 4 + y * 3 * c) % 256) as f32 / 255.0
        })
        .unwrap();
        let q = reduce_colors(&g, 16).unwrap();
        let mut set = std::collections::HashSet::new();
        for p in q.to_u8(Quantize::Round).chunks(3) {
            set.insert([p[0], p[1], p[2]]);
        }
        assert!(set.len() <= 16, "{} colours", set.len());
        assert!(reduce_colors(&g, 0).is_err());
    }

    #[test]
    fn blursharpen_zero_amount_and_none_mode_are_identity() {
        let img = Image::from_fn(9, 7, 3, |x, y, c| ((x + y + c) % 5) as f32 / 4.0).unwrap();
        assert_eq!(blursharpen(&img, SharpenMode::Box, 3, 0).unwrap(), img);
        assert_eq!(blursharpen(&img, SharpenMode::None, 3, 50).unwrap(), img);
        // Box sharpen of a flat image is the same flat image.
        let flat = Image::filled(6, 6, 1, 0.3).unwrap();
        let s = blursharpen(&flat, SharpenMode::Box, 3, 40).unwrap();
        assert!(s.data().iter().all(|v| (v - 0.3).abs() < 1e-4));
    }
}
