//! Golden tests: dfl-image against OpenCV/numpy outputs written by
//! `tools/reference/image_reference.py` into `tests/fixtures/`.
//!
//! Tolerances are stated per test. Run with `-- --nocapture` to see the measured errors.

use dfl_image::*;
use std::path::PathBuf;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Reads a `.f32` fixture (b"F32I", u32 LE width, height, channels, LE f32 samples).
fn load(name: &str) -> Image {
    let bytes = std::fs::read(fixture_path(&format!("{name}.f32")))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    assert_eq!(&bytes[..4], b"F32I", "fixture {name}: bad magic");
    let word = |i: usize| u32::from_le_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap());
    let (w, h, c) = (word(0) as usize, word(1) as usize, word(2) as usize);
    let data: Vec<f32> = bytes[16..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Image::new(w, h, c, data).unwrap()
}

fn max_abs(a: &Image, b: &Image) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shape");
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts max |got - expected| <= tol and prints the measured error.
fn check(name: &str, got: &Image, tol: f32) -> f32 {
    let expected = load(name);
    let err = max_abs(got, &expected);
    eprintln!("{name:<40} max abs err {err:.2e} (tol {tol:.1e})");
    assert!(err <= tol, "{name}: max abs error {err} > {tol}");
    err
}

fn interp_named(name: &str) -> Interp {
    match name {
        "nearest" => Interp::Nearest,
        "linear" => Interp::Linear,
        "cubic" => Interp::Cubic,
        "area" => Interp::Area,
        _ => Interp::Lanczos4,
    }
}

const WARP_M: Affine = [[0.83, 0.31, -2.6], [-0.27, 0.91, 3.4]];

/// warpAffine, every interpolation x border (inverse map) on noise, and the forward map on a
/// face. Tolerance 1e-5 (float rounding) — noise input makes any sub-pixel rule difference
/// show up at the 1e-2 level.
#[test]
fn warp_affine_matches_opencv() {
    let noise = load("in_noise");
    let face = load("in_face_a");
    for iname in ["nearest", "linear", "cubic", "lanczos4"] {
        let interp = interp_named(iname);
        for (bname, border) in [
            ("constant", Border::Constant(0.25)),
            ("replicate", Border::Replicate),
            ("reflect", Border::Reflect),
            ("reflect101", Border::Reflect101),
        ] {
            let out = warp_affine_inverse(&noise, &WARP_M, 30, 22, interp, border).unwrap();
            check(&format!("warp_inv_{iname}_{bname}"), &out, 1e-5);
        }
        let out = warp_affine(&face, &WARP_M, 48, 40, interp, Border::Replicate).unwrap();
        check(&format!("warp_fwd_{iname}"), &out, 1e-5);
    }
}

/// remap with float maps (the trainer's grid warp), replicate border. Tolerance 1e-5.
#[test]
fn remap_matches_opencv() {
    let noise = load("in_noise");
    let (mx, my) = (load("remap_mapx"), load("remap_mapy"));
    for iname in ["nearest", "linear", "cubic", "lanczos4"] {
        let out = remap(&noise, &mx, &my, interp_named(iname), Border::Replicate).unwrap();
        check(&format!("remap_{iname}"), &out, 1e-5);
    }
}

/// resize, every interpolation, shrinking, enlarging and mixed. Tolerance 1e-5.
#[test]
fn resize_matches_opencv() {
    let noise = load("in_noise");
    for iname in ["nearest", "linear", "cubic", "area", "lanczos4"] {
        for (w, h) in [(11, 7), (50, 39), (17, 25), (37, 9), (12, 9)] {
            let out = resize(&noise, w, h, interp_named(iname)).unwrap();
            check(&format!("resize_{iname}_{w}x{h}"), &out, 1e-5);
        }
    }
}
