//! DFL's losses (leras `dssim`, `gaussian_blur`, `style_loss`, `total_variation_mse`, and the
//! discriminators' sigmoid cross-entropy), per sample, on NCHW tensors.
//!
//! The Gaussian windows of `dssim` and `gaussian_blur` are separable, so the fast paths filter
//! with two 1-D depthwise passes (`2k` instead of `k^2` multiply-adds per pixel) and run the
//! four `dssim` filterings as one call on channel-stacked maps. The `*_reference` functions
//! are the direct 2-D forms exactly as leras writes them; tests keep both in agreement.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

/// leras' blur kernel size for `sigma`: `max(3, int(4 sigma))`, made odd by adding 1.
pub fn blur_kernel_size(sigma: f32) -> usize {
    let mut k = ((4.0 * sigma) as usize).max(3);
    if k.is_multiple_of(2) {
        k += 1;
    }
    k
}

/// Normalised 1-D Gaussian of leras' `gaussian_blur`: `exp(-(i - floor(k/2))^2 / (2 s^2))`.
pub fn blur_kernel_1d(sigma: f32) -> Vec<f32> {
    let k = blur_kernel_size(sigma);
    let mean = (k / 2) as f64;
    let s = sigma as f64;
    let v: Vec<f64> = (0..k)
        .map(|i| (-(i as f64 - mean).powi(2) / (2.0 * s * s)).exp())
        .collect();
    let sum: f64 = v.iter().sum();
    v.iter().map(|x| (x / sum) as f32).collect()
}

/// Normalised 1-D window of leras' `dssim`: softmax of `-0.5 d^2 / 1.5^2` over
/// `d = i - (size-1)/2`. (The 2-D softmax over `d_y^2 + d_x^2` is its outer product.)
pub fn ssim_kernel_1d(filter_size: usize) -> Vec<f32> {
    let n = filter_size.max(1);
    let c = (n as f64 - 1.0) / 2.0;
    let v: Vec<f64> = (0..n)
        .map(|i| (-0.5 * (i as f64 - c).powi(2) / (1.5f64 * 1.5)).exp())
        .collect();
    let sum: f64 = v.iter().sum();
    v.iter().map(|x| (x / sum) as f32).collect()
}

fn depthwise_kernel(k1: &[f32], channels: usize, vertical: bool, device: &Device) -> Tensor<4> {
    let k = k1.len();
    let mut w = Vec::with_capacity(channels * k);
    for _ in 0..channels {
        w.extend_from_slice(k1);
    }
    let shape = if vertical {
        [channels, 1, k, 1]
    } else {
        [channels, 1, 1, k]
    };
    Tensor::from_data(TensorData::new(w, shape), device)
}

/// Separable depthwise filtering with a 1-D kernel along H then W, zero padding `pad` on
/// both sides of each axis.
pub fn separable_filter(x: Tensor<4>, k1: &[f32], pad: usize) -> Tensor<4> {
    let c = x.dims()[1];
    let device = x.device();
    let kv = depthwise_kernel(k1, c, true, &device);
    let kh = depthwise_kernel(k1, c, false, &device);
    let x = conv2d(
        x,
        kv,
        None,
        ConvOptions::new_with_padding([1, 1], [(pad, pad), (0, 0)], [1, 1], c),
    );
    conv2d(
        x,
        kh,
        None,
        ConvOptions::new_with_padding([1, 1], [(0, 0), (pad, pad)], [1, 1], c),
    )
}

/// Direct 2-D depthwise filtering with the outer product of `k1` (reference path).
pub fn full_filter(x: Tensor<4>, k1: &[f32], pad: usize) -> Tensor<4> {
    let c = x.dims()[1];
    let k = k1.len();
    let mut w = Vec::with_capacity(c * k * k);
    for _ in 0..c {
        for a in k1 {
            for b in k1 {
                w.push(a * b);
            }
        }
    }
    let w = Tensor::<4>::from_data(TensorData::new(w, [c, 1, k, k]), &x.device());
    conv2d(x, w, None, ConvOptions::new([1, 1], [pad, pad], [1, 1], c))
}

/// Direct 2-D filtering with a kernel that is normalised as a whole 2-D array (how leras
/// builds both windows); the reference for the separable paths.
fn full_filter_2d(x: Tensor<4>, k2: &[f32], k: usize, pad: usize) -> Tensor<4> {
    let c = x.dims()[1];
    let mut w = Vec::with_capacity(c * k * k);
    for _ in 0..c {
        w.extend_from_slice(k2);
    }
    let w = Tensor::<4>::from_data(TensorData::new(w, [c, 1, k, k]), &x.device());
    conv2d(x, w, None, ConvOptions::new([1, 1], [pad, pad], [1, 1], c))
}

/// leras `gaussian_blur(x, sigma)`: zero padding `k/2`, so edges darken.
pub fn gaussian_blur(x: Tensor<4>, sigma: f32) -> Tensor<4> {
    let k1 = blur_kernel_1d(sigma);
    let pad = k1.len() / 2;
    separable_filter(x, &k1, pad)
}

/// `gaussian_blur` exactly as leras computes it: outer product in f32, normalised over the
/// 2-D array, one `k x k` depthwise convolution.
pub fn gaussian_blur_reference(x: Tensor<4>, sigma: f32) -> Tensor<4> {
    let k = blur_kernel_size(sigma);
    let mean = (k / 2) as f64;
    let g: Vec<f64> = (0..k)
        .map(|i| (-(i as f64 - mean).powi(2) / (2.0 * (sigma as f64).powi(2))).exp())
        .collect();
    let outer: Vec<f32> = g
        .iter()
        .flat_map(|a| g.iter().map(move |b| (a * b) as f32))
        .collect();
    let sum: f32 = outer.iter().sum();
    let k2: Vec<f32> = outer.iter().map(|v| v / sum).collect();
    full_filter_2d(x, &k2, k, k / 2)
}

fn ssim_terms(mu_a: Tensor<4>, mu_b: Tensor<4>, f_ab: Tensor<4>, f_sq: Tensor<4>) -> Tensor<2> {
    const C1: f32 = 0.01 * 0.01;
    const C2: f32 = 0.03 * 0.03;
    let num0 = mu_a.clone() * mu_b.clone() * 2.0;
    let den0 = mu_a.square() + mu_b.square();
    let lum = (num0.clone() + C1) / (den0.clone() + C1);
    let cs = (f_ab * 2.0 - num0 + C2) / (f_sq - den0 + C2);
    let ssim = lum * cs;
    let [b, c, h, w] = ssim.dims();
    let mean = ssim.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
    (mean.neg() + 1.0) / 2.0
}

/// leras `dssim(a, b, max_val=1, filter_size)`: `(1 - SSIM) / 2` per (sample, channel),
/// shape `[B, C]`; Gaussian window with sigma 1.5, VALID filtering, k1 0.01, k2 0.03.
///
/// The four filterings (`a`, `b`, `a*b`, `a^2 + b^2`) run as one separable depthwise pass
/// over the channel-stacked maps.
pub fn dssim(a: Tensor<4>, b: Tensor<4>, filter_size: usize) -> Tensor<2> {
    let c = a.dims()[1];
    let k1 = ssim_kernel_1d(filter_size);
    let stacked = Tensor::cat(
        vec![
            a.clone(),
            b.clone(),
            a.clone() * b.clone(),
            a.square() + b.square(),
        ],
        1,
    );
    let f = separable_filter(stacked, &k1, 0);
    let part = |i: usize| f.clone().narrow(1, i * c, c);
    ssim_terms(part(0), part(1), part(2), part(3))
}

/// `dssim` exactly as leras computes it: 2-D softmax window, four separate `k x k`
/// depthwise convolutions.
pub fn dssim_reference(a: Tensor<4>, b: Tensor<4>, filter_size: usize) -> Tensor<2> {
    let n = filter_size.max(1);
    let c = (n as f32 - 1.0) / 2.0;
    let d: Vec<f32> = (0..n)
        .map(|i| (i as f32 - c).powi(2) * (-0.5 / (1.5 * 1.5)))
        .collect();
    let logits: Vec<f32> = d
        .iter()
        .flat_map(|y| d.iter().map(move |x| y + x))
        .collect();
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let s: f32 = e.iter().sum();
    let k2: Vec<f32> = e.iter().map(|v| v / s).collect();
    let f = |x: Tensor<4>| full_filter_2d(x, &k2, n, 0);
    let mu_a = f(a.clone());
    let mu_b = f(b.clone());
    let f_ab = f(a.clone() * b.clone());
    let f_sq = f(a.square() + b.square());
    ssim_terms(mu_a, mu_b, f_ab, f_sq)
}

/// Per-sample mean over (C, H, W): `[B, C, H, W] -> [B]`.
pub fn mean_per_sample(x: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c * h * w]).mean_dim(1).reshape([b])
}

/// Per-sample sum over (C, H, W): `[B, C, H, W] -> [B]`.
pub fn sum_per_sample(x: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c * h * w]).sum_dim(1).reshape([b])
}

/// Per-sample mean squared error `[B]`.
pub fn mse(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    mean_per_sample((a - b).square())
}

/// Per-sample mean absolute error `[B]`.
pub fn mae(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    mean_per_sample((a - b).abs())
}

/// leras `style_loss(target, style, blur_radius, weight)` per sample `[B]`: optional blur of
/// both, then `(sum_c (mean_t - mean_s)^2 + sum_c (std_t - std_s)^2) * weight / C` with
/// `std = sqrt(var + 1e-5)` (population variance over H, W).
pub fn style_loss(target: Tensor<4>, style: Tensor<4>, blur_radius: f32, weight: f32) -> Tensor<1> {
    let (target, style) = if blur_radius > 0.0 {
        (
            gaussian_blur(target, blur_radius),
            gaussian_blur(style, blur_radius),
        )
    } else {
        (target, style)
    };
    let [b, c, h, w] = target.dims();
    let moments = |x: Tensor<4>| {
        let x = x.reshape([b, c, h * w]);
        let mean = x.clone().mean_dim(2);
        let var = (x - mean.clone()).square().mean_dim(2);
        (mean.reshape([b, c]), (var + 1e-5).sqrt().reshape([b, c]))
    };
    let (tm, ts) = moments(target);
    let (sm, ss) = moments(style);
    let l = (tm - sm).square().sum_dim(1) + (ts - ss).square().sum_dim(1);
    l.reshape([b]) * (weight / c as f32)
}

/// leras `total_variation_mse` per sample `[B]`: sum of squared vertical plus horizontal
/// neighbour differences.
///
/// DFL quirk not reproduced: leras differences tensor axes 1 and 2, which on the GPU's NCHW
/// layout are channel and vertical instead of vertical and horizontal. We always use the
/// spatial meaning (DFL's CPU behaviour). The term has weight 1e-6 in SAEHD.
pub fn total_variation_mse(x: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = x.dims();
    let dv =
        x.clone().slice([0..b, 0..c, 1..h, 0..w]) - x.clone().slice([0..b, 0..c, 0..h - 1, 0..w]);
    let dh = x.clone().slice([0..b, 0..c, 0..h, 1..w]) - x.slice([0..b, 0..c, 0..h, 0..w - 1]);
    sum_per_sample(dv.square()) + sum_per_sample(dh.square())
}

/// Mean over (C, H, W) of `sigmoid_cross_entropy_with_logits(labels = target, logits)`, per
/// sample `[B]`, in the stable form `max(x, 0) - x*z + log(1 + exp(-|x|))`.
pub fn bce_with_logits(logits: Tensor<4>, target: f32) -> Tensor<1> {
    let l = logits.clone().clamp_min(0.0) - logits.clone() * target
        + (logits.abs().neg().exp() + 1.0).log();
    mean_per_sample(l)
}

/// Like [`bce_with_logits`] with a target map (XSeg's masks) instead of a constant.
pub fn bce_with_logits_map(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let l = logits.clone().clamp_min(0.0) - logits.clone() * target
        + (logits.abs().neg().exp() + 1.0).log();
    mean_per_sample(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    fn rand4(shape: [usize; 4], seed: u64) -> Tensor<4> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn separable_paths_agree_with_leras_forms() {
        let a = rand4([2, 3, 40, 40], 1);
        let b = rand4([2, 3, 40, 40], 2);
        for fs in [3usize, 8, 11] {
            let d = max_abs_diff(
                dssim(a.clone(), b.clone(), fs),
                dssim_reference(a.clone(), b.clone(), fs),
            );
            assert!(d < 1e-6, "dssim filter {fs}: {d}");
        }
        for s in [1.0f32, 2.0, 4.0] {
            let d = max_abs_diff(
                gaussian_blur(a.clone(), s),
                gaussian_blur_reference(a.clone(), s),
            );
            assert!(d < 1e-6, "blur sigma {s}: {d}");
        }
    }

    #[test]
    fn dssim_of_identical_images_is_zero_and_bounded() {
        let a = rand4([1, 3, 24, 24], 3);
        let z: Vec<f32> = dssim(a.clone(), a.clone(), 11)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(z.iter().all(|v| v.abs() < 1e-6), "{z:?}");
        let o: Vec<f32> = dssim(a.clone(), a.neg() + 1.0, 11)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(o.iter().all(|v| *v > 0.3 && *v <= 1.0), "{o:?}");
    }

    #[test]
    fn blur_kernel_rules() {
        assert_eq!(blur_kernel_size(1.0), 5);
        assert_eq!(blur_kernel_size(4.0), 17);
        assert_eq!(blur_kernel_size(0.5), 3);
        assert_eq!(blur_kernel_size(16.0), 65);
        let k = blur_kernel_1d(3.0);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // A constant image keeps its value in the interior and darkens at the edge.
        let x = Tensor::<4>::ones([1, 1, 20, 20], &Device::flex());
        let y: Vec<f32> = gaussian_blur(x, 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!((y[10 * 20 + 10] - 1.0).abs() < 1e-6);
        assert!(y[0] < 0.5);
    }

    #[test]
    fn bce_and_tv_and_style_values() {
        let dev = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 2.0, -3.0, 50.0], [1, 1, 2, 2]),
            &dev,
        );
        let got: f32 = bce_with_logits(x.clone(), 1.0).into_scalar();
        let want = [0.0f64, 2.0, -3.0, 50.0]
            .iter()
            .map(|&v: &f64| (1.0 + (-v).exp()).ln())
            .sum::<f64>()
            / 4.0;
        assert!((got as f64 - want).abs() < 1e-6, "{got} {want}");
        let tv: f32 = total_variation_mse(x).into_scalar();
        // vertical: (-3-0)^2 + (50-2)^2; horizontal: (2-0)^2 + (50+3)^2
        assert!((tv - (9.0 + 2304.0 + 4.0 + 2809.0)).abs() < 1e-3, "{tv}");
        let a = rand4([2, 3, 8, 8], 5);
        let s: Vec<f32> = style_loss(a.clone(), a.clone(), 0.0, 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(s.iter().all(|v| v.abs() < 1e-9));
        let s: Vec<f32> = style_loss(a.clone(), a + 0.5, 0.0, 3.0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // mean shift 0.5 on 3 channels: 3 * 0.25 * 3 / 3 = 0.75
        assert!(s.iter().all(|v| (v - 0.75).abs() < 1e-5), "{s:?}");
    }
}
