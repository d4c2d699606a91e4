//! Image ↔ aligned-face matrices (`get_transform_mat`), point transforms, face rects and yaw.

use crate::landmarks::{alignment_indices, alignment_template, check_landmarks};
use crate::{Affine, FaceType, GeomError, Pt, umeyama};
use nalgebra::{Matrix2, Vector2};

/// Applies `m` to `p`: `M[:, :2] p + M[:, 2]`.
pub fn apply(m: &Affine, p: Pt) -> Pt {
    [
        m[(0, 0)] * p[0] + m[(0, 1)] * p[1] + m[(0, 2)],
        m[(1, 0)] * p[0] + m[(1, 1)] * p[1] + m[(1, 2)],
    ]
}

/// The inverse of an affine map (OpenCV's `invertAffineTransform`).
pub fn invert_affine(m: &Affine) -> Result<Affine, GeomError> {
    let a = Matrix2::new(m[(0, 0)], m[(0, 1)], m[(1, 0)], m[(1, 1)]);
    let inv = a.try_inverse().ok_or(GeomError::Degenerate)?;
    let t = -(inv * Vector2::new(m[(0, 2)], m[(1, 2)]));
    let out = Affine::new(
        inv[(0, 0)],
        inv[(0, 1)],
        t[0],
        inv[(1, 0)],
        inv[(1, 1)],
        t[1],
    );
    if out.iter().all(|v| v.is_finite()) {
        Ok(out)
    } else {
        Err(GeomError::Degenerate)
    }
}

/// Maps `pts` through `m`, or through its inverse when `invert` (DFL's `transform_points`).
pub fn transform_points(pts: &[Pt], m: &Affine, invert: bool) -> Result<Vec<Pt>, GeomError> {
    let m = if invert { invert_affine(m)? } else { *m };
    Ok(pts.iter().map(|&p| apply(&m, p)).collect())
}

/// The affine map taking `src[k]` to `dst[k]` for three point pairs (OpenCV's
/// `getAffineTransform`).
pub fn affine_from_3_points(src: [Pt; 3], dst: [Pt; 3]) -> Result<Affine, GeomError> {
    // Solve for rows (a, b, c) of the map: [x y 1] (a b c)^T = x'.
    let s = nalgebra::Matrix3::new(
        src[0][0], src[0][1], 1.0, src[1][0], src[1][1], 1.0, src[2][0], src[2][1], 1.0,
    );
    let lu = s.lu();
    let bx = nalgebra::Vector3::new(dst[0][0], dst[1][0], dst[2][0]);
    let by = nalgebra::Vector3::new(dst[0][1], dst[1][1], dst[2][1]);
    let rx = lu.solve(&bx).ok_or(GeomError::Degenerate)?;
    let ry = lu.solve(&by).ok_or(GeomError::Degenerate)?;
    let out = Affine::new(rx[0], rx[1], rx[2], ry[0], ry[1], ry[2]);
    if out.iter().all(|v| v.is_finite()) {
        Ok(out)
    } else {
        Err(GeomError::Degenerate)
    }
}

/// The map from image pixels into DFL's unit template square: Umeyama from landmarks
/// 17..49 and 54 onto the 33-point mean face.
pub fn unit_face_mat(lm: &[Pt]) -> Result<Affine, GeomError> {
    check_landmarks(lm)?;
    let src: Vec<Pt> = alignment_indices().map(|i| lm[i]).collect();
    let m = umeyama(&src, &alignment_template(), true)?;
    Ok(m.fixed_view::<2, 3>(0, 0).into_owned())
}

fn sub(a: Pt, b: Pt) -> Pt {
    [a[0] - b[0], a[1] - b[1]]
}

fn add_scaled(a: Pt, v: Pt, k: f64) -> Pt {
    [a[0] + v[0] * k, a[1] + v[1] * k]
}

fn norm(v: Pt) -> f64 {
    v[0].hypot(v[1])
}

fn normalize(v: Pt) -> Result<Pt, GeomError> {
    let n = norm(v);
    if n > 0.0 && n.is_finite() {
        Ok([v[0] / n, v[1] / n])
    } else {
        Err(GeomError::Degenerate)
    }
}

/// Shoelace area of a polygon.
pub fn polygon_area(pts: &[Pt]) -> f64 {
    let n = pts.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (p, q) = (pts[i], pts[(i + 1) % n]);
            p[0] * q[1] - q[0] * p[1]
        })
        .sum();
    0.5 * twice.abs()
}

/// The image → aligned-face matrix of DFL's `get_transform_mat`: maps frame pixels into an
/// `output_size`² crop of `face_type` (§1.5 of the design notes). `scale > 1` zooms in.
///
/// Includes WHOLE_FACE's 7 % upward shift, HEAD's yaw-dependent horizontal shift and 50 %
/// upward shift, and the axis-aligned square of the `*_NO_ALIGN` types. `MarkOnly` faces are
/// never warped; asking for their matrix gives the FULL crop, as DFL's debug drawing does.
/// DFL mixes float32 into the computation; this is float64 throughout (differences are
/// below 1e-4 px on real faces).
pub fn transform_mat(
    lm: &[Pt],
    output_size: f64,
    face_type: FaceType,
    scale: f64,
) -> Result<Affine, GeomError> {
    if !(scale.is_finite() && scale > 0.0 && output_size.is_finite() && output_size > 0.0) {
        return Err(GeomError::BadParameter("scale and output size must be > 0"));
    }
    let m0 = unit_face_mat(lm)?;
    let inv0 = invert_affine(&m0)?;
    let corners = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.5, 0.5]];
    let [g_tl, g_tr, g_br, g_bl, mut g_c] = corners.map(|p| apply(&inv0, p));

    let tb = normalize(sub(g_br, g_tl))?;
    let bt = normalize(sub(g_tr, g_bl))?;
    let modifier =
        (1.0 / scale) * norm(sub(g_tl, g_br)) * (face_type.padding() * 2f64.sqrt() + 0.5);

    match face_type {
        FaceType::WholeFace => {
            // 7 % of the unit side towards the forehead.
            g_c = add_scaled(g_c, sub(g_tl, g_bl), 0.07);
        }
        FaceType::Head => {
            let unit_lm = transform_points(lm, &m0, false)?;
            let mut yaw = estimate_averaged_yaw(&unit_lm)?;
            let h = sub(g_tl, g_tr);
            let h_len = norm(h);
            let h_dir = normalize(h)?;
            yaw *= (yaw * 2.0).tanh().abs();
            g_c = add_scaled(g_c, h_dir, -(yaw * h_len / 2.0));
            g_c = add_scaled(g_c, sub(g_tl, g_bl), 0.50);
        }
        _ => {}
    }

    let (p0, p1, p2) = if face_type.remove_align() {
        let quad = [
            add_scaled(g_c, tb, -modifier),
            add_scaled(g_c, bt, modifier),
            add_scaled(g_c, tb, modifier),
            add_scaled(g_c, bt, -modifier),
        ];
        let half = polygon_area(&quad).sqrt() / 2.0;
        (
            [g_c[0] - half, g_c[1] - half],
            [g_c[0] + half, g_c[1] - half],
            [g_c[0] + half, g_c[1] + half],
        )
    } else {
        (
            add_scaled(g_c, tb, -modifier),
            add_scaled(g_c, bt, modifier),
            add_scaled(g_c, tb, modifier),
        )
    };
    let s = output_size;
    affine_from_3_points([p0, p1, p2], [[0.0, 0.0], [s, 0.0], [s, s]])
}

/// The face rectangle (l, t, r, b) of DFL's `get_rect_from_landmarks`: the FULL_NO_ALIGN
/// 256 crop's pixels (0,0) and (255,255) mapped back into the image.
pub fn rect_from_landmarks(lm: &[Pt]) -> Result<[f64; 4], GeomError> {
    let m = transform_mat(lm, 256.0, FaceType::FullNoAlign, 1.0)?;
    let p = transform_points(&[[0.0, 0.0], [255.0, 255.0]], &m, true)?;
    Ok([p[0][0], p[0][1], p[1][0], p[1][1]])
}

/// DFL's `estimate_averaged_yaw`: mean horizontal distance nose-bridge→right jaw minus
/// nose-bridge→left jaw over three point pairs, in the landmarks' own unit (HEAD passes
/// unit-square landmarks).
pub fn estimate_averaged_yaw(lm: &[Pt]) -> Result<f64, GeomError> {
    check_landmarks(lm)?;
    let l = (0..3).map(|k| lm[27 + k][0] - lm[k][0]).sum::<f64>() / 3.0;
    let r = (0..3).map(|k| lm[16 - k][0] - lm[27 + k][0]).sum::<f64>() / 3.0;
    Ok(r - l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::MEAN_FACE_2D;

    /// Template-shaped landmarks scaled by 100, shifted by (50, 60); jaw points spread out.
    fn synthetic() -> Vec<Pt> {
        let mut lm: Vec<Pt> = (0..17)
            .map(|i| {
                [
                    i as f64 / 16.0,
                    0.3 + 0.6 * (i as f64 / 16.0 * std::f64::consts::PI).sin(),
                ]
            })
            .collect();
        lm.extend(MEAN_FACE_2D.iter().copied());
        lm.iter()
            .map(|p| [p[0] * 100.0 + 50.0, p[1] * 100.0 + 60.0])
            .collect()
    }

    #[test]
    fn template_landmarks_give_expected_crop_sides() {
        let lm = synthetic();
        // The unit square is 100 px; the crop side is s * (1 + 2 sqrt(2) padding).
        for (t, side) in [
            (FaceType::Half, 1.0),
            (FaceType::MidFull, 1.19092),
            (FaceType::Full, 1.59662),
            (FaceType::WholeFace, 2.13137),
            (FaceType::Head, 2.97990),
        ] {
            let m = transform_mat(&lm, 256.0, t, 1.0).unwrap();
            let back = transform_points(&[[0.0, 0.0], [256.0, 0.0]], &m, true).unwrap();
            let got = norm(sub(back[1], back[0])) / 100.0;
            assert!((got - side).abs() < 1e-4, "{t}: {got} vs {side}");
        }
    }

    #[test]
    fn points_round_trip_and_rect_is_square() {
        let lm = synthetic();
        let m = transform_mat(&lm, 512.0, FaceType::WholeFace, 1.0).unwrap();
        let there = transform_points(&lm, &m, false).unwrap();
        let back = transform_points(&there, &m, true).unwrap();
        for (a, b) in lm.iter().zip(&back) {
            assert!(norm(sub(*a, *b)) < 1e-9);
        }
        let [l, t, r, b] = rect_from_landmarks(&lm).unwrap();
        assert!(((r - l) - (b - t)).abs() < 1e-9 && r > l);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(transform_mat(&synthetic()[..60], 256.0, FaceType::Full, 1.0).is_err());
        assert!(transform_mat(&vec![[3.0, 3.0]; 68], 256.0, FaceType::Full, 1.0).is_err());
        assert!(transform_mat(&synthetic(), 256.0, FaceType::Full, 0.0).is_err());
    }
}
