//! Bad-input and property tests across the crate: mismatched sizes, empty masks, flat black
//! or white images and NaN give typed errors or defined finite results, never panics;
//! warping there and back is the identity inside the frame; colour transfers stay finite and
//! in range.

use crate::*;
use proptest::prelude::*;
use rand::SeedableRng;

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(11)
}

fn face(w: usize, h: usize, seed: u32) -> Image {
    Image::from_fn(w, h, 3, |x, y, c| {
        let v = ((x as u32 * 31 + y as u32 * 17 + c as u32 * 7 + seed * 13) % 97) as f32 / 96.0;
        0.2 + 0.6 * v
    })
    .unwrap()
}

fn assert_unit_range(name: &str, img: &Image) {
    assert!(
        img.data()
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
        "{name}: output not finite or outside [0, 1]"
    );
}

#[test]
fn mismatched_sizes_are_typed_errors() {
    let a = face(8, 8, 1);
    let b = face(9, 8, 2);
    let m8 = Image::filled(8, 8, 1, 1.0).unwrap();
    let m9 = Image::filled(9, 8, 1, 1.0).unwrap();
    let size = |r: Result<Image>| matches!(r, Err(ImageError::SizeMismatch { .. }));
    assert!(size(rct(&a, &b, Some(&m9), None, MaskStats::DflZeroed)));
    assert!(size(sot(&a, &b, SotParams::TRAINING, &mut rng())));
    assert!(size(mix(&a, &b, &mut rng())));
    assert!(size(apply_mask(&a, &m9)));
    assert!(size(seamless_clone(&a, &a, &m9, (4, 4))));
    assert!(size(remap(&a, &m8, &m9, Interp::Linear, Border::Replicate)));
    // Channel mismatches are typed too.
    assert!(matches!(lct(&a, &m8), Err(ImageError::Channels { .. })));
    assert!(matches!(bgr_to_lab(&m8), Err(ImageError::Channels { .. })));
    // Different sizes are fine where DFL allows them.
    assert!(rct(&a, &b, Some(&m8), Some(&m9), MaskStats::DflZeroed).is_ok());
    assert!(mkl(&a, &b).is_ok());
    assert!(idt(&a, &b, &mut rng()).is_ok());
    assert!(hist_match(&a, &b, 255.0).is_ok());
}

#[test]
fn empty_masks_have_defined_results() {
    let a = face(10, 10, 1);
    let b = face(10, 10, 2);
    let empty = Image::zeros(10, 10, 1).unwrap();
    assert!(matches!(
        rct(&a, &b, Some(&empty), Some(&empty), MaskStats::MaskedOnly),
        Err(ImageError::EmptyMask { .. })
    ));
    let out = rct(&a, &b, Some(&empty), Some(&empty), MaskStats::DflZeroed).unwrap();
    assert_unit_range("rct empty mask", &out);
    // The -m modes on fully masked-out images: all-black inputs.
    let (am, bm) = (
        apply_mask(&a, &empty).unwrap(),
        apply_mask(&b, &empty).unwrap(),
    );
    assert_unit_range("mkl-m", &mkl(&am, &bm).unwrap());
    assert_unit_range("idt-m", &idt(&am, &bm, &mut rng()).unwrap());
    let mut s = sot(&am, &bm, SotParams::MERGER, &mut rng()).unwrap();
    s.clip(0.0, 1.0);
    assert_unit_range("sot-m", &s);
    assert_unit_range("mix-m", &mix(&am, &bm, &mut rng()).unwrap());
    assert_eq!(clone_center(&empty), None);
    let cloned = seamless_clone(&a, &b, &empty, (5, 5)).unwrap();
    assert_unit_range("seamless empty mask", &cloned);
}

#[test]
fn flat_black_and_white_images_give_finite_in_range_output() {
    let black = Image::zeros(12, 10, 3).unwrap();
    let white = Image::filled(12, 10, 3, 1.0).unwrap();
    let a = face(12, 10, 3);
    for (t, s, what) in [
        (&black, &white, "black->white"),
        (&white, &black, "white->black"),
        (&black, &black, "black->black"),
        (&white, &a, "white->face"),
        (&a, &black, "face->black"),
    ] {
        assert_unit_range(what, &rct(t, s, None, None, MaskStats::DflZeroed).unwrap());
        assert_unit_range(what, &lct(t, s).unwrap());
        assert_unit_range(what, &mkl(t, s).unwrap());
        assert_unit_range(what, &idt(t, s, &mut rng()).unwrap());
        let mut o = sot(t, s, SotParams::TRAINING, &mut rng()).unwrap();
        assert!(o.data().iter().all(|v| v.is_finite()), "sot {what}");
        o.clip(0.0, 1.0);
        assert_unit_range(what, &o);
        assert_unit_range(what, &mix(t, s, &mut rng()).unwrap());
        assert_unit_range(what, &hist_match(t, s, 255.0).unwrap());
        assert_unit_range(what, &reduce_colors(t, 256).unwrap());
        let m = Image::filled(12, 10, 1, 1.0).unwrap();
        assert_unit_range(
            what,
            &seamless_clone(t, s, &m, clone_center(&m).unwrap()).unwrap(),
        );
    }
    // Filters of flat images stay flat.
    let g = gaussian_blur(&white, 5, 0.0).unwrap();
    assert!(g.data().iter().all(|v| (v - 1.0).abs() < 1e-6));
    assert_eq!(bilateral_filter(&white, 0, 5.0, 16.0).unwrap(), white);
}

#[test]
fn nan_and_infinity_are_refused() {
    let mut bad = face(8, 8, 4);
    bad.data_mut()[7] = f32::NAN;
    let mut inf = face(8, 8, 4);
    inf.data_mut()[3] = f32::INFINITY;
    let ok = face(8, 8, 5);
    let m = Image::filled(8, 8, 1, 1.0).unwrap();
    let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    for img in [&bad, &inf] {
        let nf = |r: Result<Image>| matches!(r, Err(ImageError::NonFinite { .. }));
        assert!(nf(warp_affine(
            img,
            &id,
            8,
            8,
            Interp::Cubic,
            Border::Replicate
        )));
        assert!(nf(remap(img, &m, &m, Interp::Linear, Border::Replicate)));
        assert!(nf(resize(img, 4, 4, Interp::Area)));
        assert!(nf(gaussian_blur(img, 3, 0.0)));
        assert!(nf(box_blur(img, 3, 3)));
        assert!(nf(median_blur(img, 5)));
        assert!(nf(bilateral_filter(img, 0, 5.0, 16.0)));
        let e = StructuringElement::ellipse(3, 3).unwrap();
        assert!(nf(erode(img, &e, 1)));
        assert!(nf(dilate(img, &e, 1)));
        assert!(nf(bgr_to_lab(img)));
        assert!(nf(lab_to_bgr(img)));
        assert!(nf(bgr_to_hsv(img)));
        assert!(nf(hsv_to_bgr(img)));
        assert!(nf(rct(img, &ok, None, None, MaskStats::DflZeroed)));
        assert!(nf(rct(&ok, img, None, None, MaskStats::DflZeroed)));
        assert!(nf(lct(img, &ok)));
        assert!(nf(mkl(&ok, img)));
        assert!(nf(idt(img, &ok, &mut rng())));
        assert!(nf(sot(img, &ok, SotParams::TRAINING, &mut rng())));
        assert!(nf(mix(&ok, img, &mut rng())));
        assert!(nf(hist_match(img, &ok, 255.0)));
        assert!(nf(seamless_clone(img, &ok, &m, (4, 4))));
        assert!(nf(blursharpen(img, SharpenMode::Gaussian, 3, 10)));
        assert!(nf(linear_motion_blur(img, 5, 30.0)));
        assert!(nf(denoise(img, 50)));
        assert!(nf(bicubic_degrade(img, 50)));
        assert!(nf(reduce_colors(img, 256)));
    }
    // A NaN mask entry in RCT is refused as well.
    let mut bad_mask = m.clone();
    bad_mask.data_mut()[0] = f32::NAN;
    assert!(rct(&ok, &ok, Some(&bad_mask), None, MaskStats::DflZeroed).is_err());
}

/// A smooth random test image: a sum of two low-frequency waves per channel (period >= 12.5 px),
/// values in [0.2, 0.8].
fn smooth(w: usize, h: usize, p: [f32; 6]) -> Image {
    Image::from_fn(w, h, 3, |x, y, c| {
        let (x, y, c) = (x as f32, y as f32, c as f32);
        0.5 + 0.15 * (x * p[0] + y * p[1] + p[2] + c).sin()
            + 0.15 * (x * p[3] - y * p[4] + p[5] * c).cos()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// warpAffine forward then back with the inverse matrix is the identity inside the frame
    /// (pixels whose path stays at least 3 px from every edge): within 0.02 for bicubic and
    /// 0.05 for bilinear (two interpolations, one of them after shrinking by up to 15 %, of
    /// waves of amplitude 0.15 and period >= 12.5 px; measured worst cases about half that).
    #[test]
    fn warp_then_inverse_warp_is_identity_inside(
        angle in -30.0f64..30.0,
        scale in 0.85f64..1.2,
        tx in -2.0f64..2.0,
        ty in -2.0f64..2.0,
        p in prop::array::uniform6(0.05f32..0.5),
    ) {
        let (w, h) = (32usize, 28usize);
        let src = smooth(w, h, p);
        let mut m = rotation_matrix_2d(15.5, 13.5, angle, scale);
        m[0][2] += tx;
        m[1][2] += ty;
        let inv = invert_affine(&m).unwrap();
        for (interp, tol) in [(Interp::Cubic, 0.02f32), (Interp::Linear, 0.05)] {
            let fwd = warp_affine(&src, &m, w, h, interp, Border::Replicate).unwrap();
            let back = warp_affine(&fwd, &inv, w, h, interp, Border::Replicate).unwrap();
            for y in 0..h {
                for x in 0..w {
                    let (xf, yf) = (x as f64, y as f64);
                    let fx = m[0][0] * xf + m[0][1] * yf + m[0][2];
                    let fy = m[1][0] * xf + m[1][1] * yf + m[1][2];
                    let inside = |a: f64, b: f64| {
                        a >= 3.0 && b >= 3.0 && a <= w as f64 - 4.0 && b <= h as f64 - 4.0
                    };
                    if !inside(xf, yf) || !inside(fx, fy) {
                        continue;
                    }
                    for c in 0..3 {
                        let d = (back.get(x, y, c) - src.get(x, y, c)).abs();
                        prop_assert!(d <= tol, "{interp:?} ({x},{y},{c}): {d}");
                    }
                }
            }
        }
    }

    /// Every colour transfer gives finite output in [0, 1] (SOT after DFL's clip) on random
    /// images that include pure black and white pixels.
    #[test]
    fn colour_transfers_are_finite_and_in_range(
        a in prop::collection::vec(prop_oneof![Just(0.0f32), Just(1.0f32), 0.0f32..1.0], 12 * 10 * 3),
        b in prop::collection::vec(prop_oneof![Just(0.0f32), Just(1.0f32), 0.0f32..1.0], 12 * 10 * 3),
        m in prop::collection::vec(0.0f32..1.0, 12 * 10),
        seed in any::<u64>(),
    ) {
        let t = Image::new(12, 10, 3, a).unwrap();
        let s = Image::new(12, 10, 3, b).unwrap();
        let mask = Image::new(12, 10, 1, m).unwrap();
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        let outs = [
            rct(&t, &s, None, None, MaskStats::DflZeroed).unwrap(),
            rct(&t, &s, Some(&mask), Some(&mask), MaskStats::DflZeroed).unwrap(),
            lct(&t, &s).unwrap(),
            mkl(&t, &s).unwrap(),
            mkl(&apply_mask(&t, &mask).unwrap(), &apply_mask(&s, &mask).unwrap()).unwrap(),
            idt(&t, &s, &mut r).unwrap(),
            color_transfer(TransferMode::Sot, &t, &s, &mut r).unwrap(),
            mix(&t, &s, &mut r).unwrap(),
            hist_match(&t, &s, 238.0).unwrap(),
        ];
        for (i, o) in outs.iter().enumerate() {
            prop_assert!(o.data().iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)), "transfer {i}");
        }
    }
}
