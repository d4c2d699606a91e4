//! dfl-geom against numbers computed independently by `tools/reference/geom_reference.py`
//! (numpy for the algebra, OpenCV for hull filling and solvePnP, as DFL uses them).

use dfl_geom::mask::{IPt, Mask, convex_hull, fill_convex_poly};
use dfl_geom::{
    Affine, FaceType, Pt, estimate_averaged_yaw, estimate_pitch_yaw_roll, expand_eyebrows,
    hull_mask, rect_from_landmarks, transform_mat, transform_points, unit_face_mat,
};
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/geom_golden.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn points(v: &Value) -> Vec<Pt> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
        .collect()
}

fn ipoints(v: &Value) -> Vec<IPt> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_i64().unwrap(), p[1].as_i64().unwrap()])
        .collect()
}

fn assert_mat(got: &Affine, want: &Value, tol: f64, what: &str) {
    for r in 0..2 {
        for c in 0..3 {
            let w = want[r][c].as_f64().unwrap();
            let d = (got[(r, c)] - w).abs();
            assert!(
                d <= tol,
                "{what}: [{r}][{c}] {} vs {w} (diff {d:e})",
                got[(r, c)]
            );
        }
    }
}

fn from_rle(w: usize, h: usize, runs: &Value) -> Mask {
    let mut m = Mask::new(w, h);
    for run in runs.as_array().unwrap() {
        let (y, x0, x1) = (
            run[0].as_u64().unwrap() as usize,
            run[1].as_u64().unwrap() as usize,
            run[2].as_u64().unwrap() as usize,
        );
        m.data[y * w + x0..=y * w + x1].fill(1);
    }
    m
}

fn assert_mask_eq(got: &Mask, want: &Mask, what: &str) {
    let diff = got
        .data
        .iter()
        .zip(&want.data)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        diff,
        0,
        "{what}: {diff} pixels differ ({} vs {} set)",
        got.count(),
        want.count()
    );
}

#[test]
fn matrices_of_every_face_type_match_the_reference() {
    let g = golden();
    let mut checked = 0;
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let lm = points(&case["landmarks"]);
        assert_mat(&unit_face_mat(&lm).unwrap(), &case["unit_mat"], 1e-9, name);
        for (ft, want) in case["mats_256"].as_object().unwrap() {
            let t: FaceType = ft.parse().unwrap();
            let m = transform_mat(&lm, 256.0, t, 1.0).unwrap();
            assert_mat(&m, want, 1e-6, &format!("{name} {ft}"));
            checked += 1;
        }
        let m = transform_mat(&lm, 512.0, FaceType::Full, 1.25).unwrap();
        assert_mat(&m, &case["mat_full_512_scale_1_25"], 1e-6, name);

        let rect = rect_from_landmarks(&lm).unwrap();
        for k in 0..4 {
            assert!(
                (rect[k] - case["rect"][k].as_f64().unwrap()).abs() < 1e-6,
                "{name} rect"
            );
        }
        let unit = transform_points(&lm, &unit_face_mat(&lm).unwrap(), false).unwrap();
        let yaw = estimate_averaged_yaw(&unit).unwrap();
        assert!((yaw - case["averaged_yaw_unit"].as_f64().unwrap()).abs() < 1e-9);
    }
    assert_eq!(checked, 6 * 7);
}

#[test]
fn eyebrow_expansion_and_hull_masks_match_opencv_exactly() {
    let g = golden();
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let lm = points(&case["landmarks"]);
        assert_eq!(
            expand_eyebrows(&lm, 1.0).unwrap(),
            ipoints(&case["expanded_eyebrows"]),
            "{name}"
        );
        assert_eq!(
            expand_eyebrows(&lm, 2.5).unwrap(),
            ipoints(&case["expanded_eyebrows_mod_2_5"]),
            "{name}"
        );
        let (w, h) = (
            case["frame_size"][0].as_u64().unwrap() as usize,
            case["frame_size"][1].as_u64().unwrap() as usize,
        );
        let want = from_rle(w, h, &case["hull_mask_rle"]);
        assert!(
            want.count() > 1000,
            "{name}: reference mask is too small to mean anything"
        );
        assert_mask_eq(&hull_mask(w, h, &lm, 1.0).unwrap(), &want, name);

        let aligned = points(&case["aligned_256_whole_face"]);
        let want = from_rle(256, 256, &case["aligned_hull_mask_rle"]);
        assert_mask_eq(&hull_mask(256, 256, &aligned, 1.0).unwrap(), &want, name);
    }
}

#[test]
fn random_convex_fills_match_opencv_exactly() {
    let g = golden();
    let polys = g["random_polys"].as_array().unwrap();
    assert!(polys.len() >= 100);
    for (i, p) in polys.iter().enumerate() {
        let (w, h) = (
            p["size"][0].as_u64().unwrap() as usize,
            p["size"][1].as_u64().unwrap() as usize,
        );
        let pts = ipoints(&p["points"]);
        let mut hull = convex_hull(&pts);
        let mut want_hull = ipoints(&p["hull"]);
        let mut m = Mask::new(w, h);
        fill_convex_poly(&mut m, &hull, 1);
        assert_mask_eq(&m, &from_rle(w, h, &p["rle"]), &format!("poly {i} {pts:?}"));
        hull.sort();
        want_hull.sort();
        assert_eq!(hull, want_hull, "hull {i}");
    }
}

#[test]
fn pose_matches_opencv_solvepnp() {
    // OpenCV's iterative solvePnP stops after at most 20 Levenberg–Marquardt steps; ours runs
    // to convergence. Both minimise the same reprojection error, so angles agree closely.
    let g = golden();
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let aligned = points(&case["aligned_256_whole_face"]);
        let got = estimate_pitch_yaw_roll(&aligned, 256.0).unwrap();
        for k in 0..3 {
            let want = case["pitch_yaw_roll"][k].as_f64().unwrap();
            assert!(
                (got[k] - want).abs() < 1e-4,
                "{name} angle {k}: {} vs {want}",
                got[k]
            );
        }
    }
}
