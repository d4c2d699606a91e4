//! Raster operations DFL needs exactly: warps, resizes, blurs, morphology, colour spaces,
//! colour transfer, seamless clone.
//!
//! Everything works on [`Image`] (interleaved `f32`, normally in [0, 1], 1 to 4 channels) and
//! is a pure function that returns a new image or a typed [`ImageError`]; NaN or infinite
//! input is refused rather than spread. Results match OpenCV (the library DFL calls) within
//! tolerances stated next to each function and checked by golden tests against fixtures
//! written by `tools/reference/image_reference.py`. Fast paths (rayon, AVX2+FMA builds chosen
//! at run time, special-cased channel counts) keep a plain version in [`reference`](mod@reference).
//!
//! Where DFL calls what:
//!
//! | DFL / OpenCV | here |
//! |---|---|
//! | `cv2.warpAffine(img, M, (w, h), flags, borderMode)` | [`warp_affine`]; with `WARP_INVERSE_MAP`: [`warp_affine_inverse`] |
//! | `cv2.remap` (trainer's random grid warp) | [`remap`] |
//! | `cv2.resize` | [`resize`] |
//! | `cv2.getRotationMatrix2D` | [`rotation_matrix_2d`] |
//! | `cv2.GaussianBlur`, `cv2.blur`, `cv2.filter2D`, `cv2.medianBlur` | [`gaussian_blur`], [`box_blur`], [`filter2d`], [`median_blur`] |
//! | `cv2.erode` / `cv2.dilate` with `MORPH_ELLIPSE` | [`erode`], [`dilate`], [`StructuringElement::ellipse`] |
//! | `cv2.bilateralFilter` (SOT regulariser) | [`bilateral_filter`] |
//! | `cvtColor` BGR<->Lab / HSV (float), BGR<->Lab (8-bit) | [`bgr_to_lab`], [`lab_to_bgr`], [`bgr_to_hsv`], [`hsv_to_bgr`], [`bgr8_to_lab8`], [`lab8_to_bgr8`] |
//! | `imagelib.blursharpen`, `LinearMotionBlur` | [`blursharpen`], [`linear_motion_blur`] |
//! | merger denoise / bicubic degrade / colour degrade (`reduce_colors`) | [`denoise`], [`bicubic_degrade`], [`color_degrade`], [`reduce_colors`] |
//! | `reinhard_color_transfer` (rct), `linear_color_transfer` (lct) | [`rct`], [`lct`] |
//! | `color_transfer_mkl`, `_idt`, `_sot`, `_mix` (`-m`: [`apply_mask`] first) | [`mkl`], [`idt`], [`sot`], [`mix`] |
//! | `color_hist_match` | [`hist_match`] |
//! | `imagelib.color_transfer(ct_mode, ...)` (trainer) | [`color_transfer`] |
//! | `cv2.seamlessClone(..., NORMAL_CLONE)` and DFL's centre | [`seamless_clone`], [`clone_center`] |
//!
//! DFL quirks: kept where they change what users see (RCT's masked statistics count the
//! zeroed background, [`MaskStats::DflZeroed`]; blursharpen's raw amount; the merger's median
//! loops), fixed where they are plain bugs (IDT's interpolation fill values, RCT's division by
//! a zero spread). Each function's documentation says which.

// Numeric kernels index several small arrays with one channel/tap counter; zipped iterators
// would hide the formulas they transcribe.
#![allow(clippy::needless_range_loop)]

mod border;
mod clone;
mod color;
mod effects;
mod error;
mod filter;
mod image;
mod interp;
mod morph;
pub mod reference;
mod resize;
#[cfg(test)]
mod robustness;
mod simd;
mod transfer;
mod warp;

pub use border::Border;
pub use clone::{clone_center, seamless_clone};
pub use color::{
    bgr_to_hsv, bgr_to_lab, bgr8_to_lab8, hsv_to_bgr, hsv_to_rgb, lab_to_bgr, lab_to_rgb,
    lab8_to_bgr8, rgb_to_hsv, rgb_to_lab,
};
pub use effects::{
    SharpenMode, bicubic_degrade, blursharpen, color_degrade, denoise, linear_motion_blur,
    motion_blur_kernel, reduce_colors, rotation_matrix_2d,
};
pub use error::{ImageError, Result};
pub use filter::{
    Kernel, MAX_KERNEL, bilateral_filter, box_blur, filter2d, gaussian_blur, gaussian_kernel,
    gaussian_ksize_for_sigma, gaussian_sigma_for_ksize, median_blur, sep_filter,
};
pub use image::{Image, MAX_CHANNELS, MAX_SAMPLES, MAX_SIDE, Quantize};
pub use interp::{Interp, cubic_weights, lanczos4_weights};
pub use morph::{MorphShape, StructuringElement, dilate, erode};
pub use resize::resize;
pub use transfer::{
    MaskStats, SotParams, TransferMode, apply_mask, color_transfer, hist_match, idt, lct, mix, mkl,
    rct, sot,
};
pub use warp::{Affine, invert_affine, remap, warp_affine, warp_affine_inverse};

/// Worker threads the parallel operations of this crate use (rayon's global pool; set
/// `RAYON_NUM_THREADS` to change it). Benchmarks give references the same count.
pub fn threads() -> usize {
    rayon::current_num_threads()
}
