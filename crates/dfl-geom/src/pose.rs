//! Head pose (pitch, yaw, roll) from aligned landmarks: DFL's `estimate_pitch_yaw_roll`.
//!
//! DFL calls `cv2.solvePnP` (iterative) with the 3-D mean face. We solve the same problem
//! ourselves: a DLT estimate of the camera pose from the 33 correspondences, refined by
//! Levenberg–Marquardt on the reprojection error (the same objective OpenCV minimises), then
//! Rodrigues → rotation matrix → Euler angles exactly as DFL.

use crate::landmarks::{MODEL_3D_68, check_landmarks};
use crate::{GeomError, Pt};
use nalgebra::{DMatrix, Matrix3, SMatrix, SVector, Vector3};

/// Rotation matrix of a Rodrigues vector (axis × angle), as `cv2.Rodrigues`.
pub fn rodrigues(r: &Vector3<f64>) -> Matrix3<f64> {
    let theta = r.norm();
    if theta < 1e-300 {
        return Matrix3::identity();
    }
    let k = r / theta;
    let kx = Matrix3::new(0.0, -k[2], k[1], k[2], 0.0, -k[0], -k[1], k[0], 0.0);
    Matrix3::identity() * theta.cos() + (1.0 - theta.cos()) * (k * k.transpose()) + theta.sin() * kx
}

/// Rodrigues vector of a rotation matrix (the inverse of [`rodrigues`]).
pub fn rotation_to_rodrigues(r: &Matrix3<f64>) -> Vector3<f64> {
    let cos = ((r.trace() - 1.0) / 2.0).clamp(-1.0, 1.0);
    let theta = cos.acos();
    let axis = Vector3::new(
        r[(2, 1)] - r[(1, 2)],
        r[(0, 2)] - r[(2, 0)],
        r[(1, 0)] - r[(0, 1)],
    );
    let s = axis.norm() / 2.0;
    if s > 1e-6 {
        return axis * (theta / (2.0 * s));
    }
    if cos > 0.0 {
        // Near identity: first-order.
        return axis / 2.0;
    }
    // Near 180°: axis from the symmetric part R = 2kk^T - I.
    let b = (r + Matrix3::identity()) / 2.0;
    let mut k = Vector3::new(
        b[(0, 0)].max(0.0).sqrt(),
        b[(1, 1)].max(0.0).sqrt(),
        b[(2, 2)].max(0.0).sqrt(),
    );
    if b[(0, 1)] < 0.0 {
        k[1] = -k[1];
    }
    if b[(0, 2)] < 0.0 {
        k[2] = -k[2];
    }
    if k[0] == 0.0 && b[(1, 2)] < 0.0 {
        k[2] = -k[2];
    }
    k * theta
}

/// Euler angles (x, y, z) of a rotation matrix, DFL's `rotationMatrixToEulerAngles`.
pub fn rotation_to_euler(r: &Matrix3<f64>) -> [f64; 3] {
    let sy = (r[(0, 0)] * r[(0, 0)] + r[(1, 0)] * r[(1, 0)]).sqrt();
    if sy >= 1e-6 {
        [
            r[(2, 1)].atan2(r[(2, 2)]),
            (-r[(2, 0)]).atan2(sy),
            r[(1, 0)].atan2(r[(0, 0)]),
        ]
    } else {
        [(-r[(1, 2)]).atan2(r[(1, 1)]), (-r[(2, 0)]).atan2(sy), 0.0]
    }
}

/// A pinhole camera without distortion.
#[derive(Debug, Clone, Copy)]
pub struct Camera {
    /// Focal length in pixels (same for x and y).
    pub focal: f64,
    /// Principal point x.
    pub cx: f64,
    /// Principal point y.
    pub cy: f64,
}

fn project(cam: &Camera, r: &Matrix3<f64>, t: &Vector3<f64>, x: &[f64; 3]) -> [f64; 2] {
    let p = r * Vector3::new(x[0], x[1], x[2]) + t;
    [
        cam.focal * p[0] / p[2] + cam.cx,
        cam.focal * p[1] / p[2] + cam.cy,
    ]
}

fn residuals(cam: &Camera, params: &SVector<f64, 6>, obj: &[[f64; 3]], img: &[Pt]) -> DMatrix<f64> {
    let r = rodrigues(&Vector3::new(params[0], params[1], params[2]));
    let t = Vector3::new(params[3], params[4], params[5]);
    let mut out = DMatrix::zeros(obj.len() * 2, 1);
    for (i, (x, u)) in obj.iter().zip(img).enumerate() {
        let p = project(cam, &r, &t, x);
        out[2 * i] = p[0] - u[0];
        out[2 * i + 1] = p[1] - u[1];
    }
    out
}

/// Pose initialisation by the direct linear transform on normalised image coordinates (the
/// object points are centred and scaled first for conditioning).
fn dlt(
    cam: &Camera,
    obj: &[[f64; 3]],
    img: &[Pt],
) -> Result<(Matrix3<f64>, Vector3<f64>), GeomError> {
    let n = obj.len() as f64;
    let mean = obj.iter().fold(Vector3::zeros(), |a: Vector3<f64>, p| {
        a + Vector3::new(p[0], p[1], p[2])
    }) / n;
    let spread = obj
        .iter()
        .map(|p| (Vector3::new(p[0], p[1], p[2]) - mean).norm())
        .sum::<f64>()
        / n;
    if spread <= 0.0 {
        return Err(GeomError::Degenerate);
    }
    let mut ata = SMatrix::<f64, 12, 12>::zeros();
    for (p, q) in obj.iter().zip(img) {
        let x = (Vector3::new(p[0], p[1], p[2]) - mean) / spread;
        let u = (q[0] - cam.cx) / cam.focal;
        let v = (q[1] - cam.cy) / cam.focal;
        let r1 = SVector::<f64, 12>::from_column_slice(&[
            x[0],
            x[1],
            x[2],
            1.0,
            0.0,
            0.0,
            0.0,
            0.0,
            -u * x[0],
            -u * x[1],
            -u * x[2],
            -u,
        ]);
        let r2 = SVector::<f64, 12>::from_column_slice(&[
            0.0,
            0.0,
            0.0,
            0.0,
            x[0],
            x[1],
            x[2],
            1.0,
            -v * x[0],
            -v * x[1],
            -v * x[2],
            -v,
        ]);
        ata += r1 * r1.transpose() + r2 * r2.transpose();
    }
    let eig = ata.symmetric_eigen();
    let (k, _) = eig
        .eigenvalues
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .ok_or(GeomError::Degenerate)?;
    let p = eig.eigenvectors.column(k);
    // P = [M | m] for the normalised object points.
    let mut m = Matrix3::new(p[0], p[1], p[2], p[4], p[5], p[6], p[8], p[9], p[10]);
    let mut m4 = Vector3::new(p[3], p[7], p[11]);
    if m.determinant() < 0.0 {
        m = -m;
        m4 = -m4;
    }
    let svd = m.svd(true, true);
    let (u, vt) = match (svd.u, svd.v_t) {
        (Some(u), Some(vt)) => (u, vt),
        _ => return Err(GeomError::Degenerate),
    };
    let lambda = svd.singular_values.sum() / 3.0;
    if lambda.is_nan() || lambda <= 0.0 {
        return Err(GeomError::Degenerate);
    }
    let r = u * vt;
    // Camera coordinates of X are proportional to R (X - mean) / spread + m4 / λ, i.e. (after
    // scaling by `spread`) R X + (spread m4 / λ - R mean).
    Ok((r, spread * m4 / lambda - r * mean))
}

/// Camera pose (Rodrigues rotation, translation) that best projects `obj` onto `img`
/// (pixels): DLT initialisation, then Levenberg–Marquardt on the squared reprojection error,
/// the objective of OpenCV's iterative `solvePnP`. Needs at least 6 non-coplanar points.
pub fn solve_pnp(
    cam: &Camera,
    obj: &[[f64; 3]],
    img: &[Pt],
) -> Result<(Vector3<f64>, Vector3<f64>), GeomError> {
    if obj.len() != img.len() || obj.len() < 6 {
        return Err(GeomError::PointCount {
            expected: obj.len().max(6),
            got: img.len(),
        });
    }
    if obj
        .iter()
        .flatten()
        .chain(img.iter().flatten())
        .any(|v| !v.is_finite())
    {
        return Err(GeomError::NonFinite);
    }
    let (r0, t0) = dlt(cam, obj, img)?;
    let rv = rotation_to_rodrigues(&r0);
    let mut params =
        SVector::<f64, 6>::from_column_slice(&[rv[0], rv[1], rv[2], t0[0], t0[1], t0[2]]);
    let mut res = residuals(cam, &params, obj, img);
    let mut cost = res.norm_squared();
    let mut lambda = 1e-3;
    for _ in 0..200 {
        // Central-difference Jacobian (2N x 6).
        let mut jac = DMatrix::zeros(res.nrows(), 6);
        for j in 0..6 {
            let h = 1e-6 * params[j].abs().max(1e-2);
            let mut plus = params;
            let mut minus = params;
            plus[j] += h;
            minus[j] -= h;
            let d =
                (residuals(cam, &plus, obj, img) - residuals(cam, &minus, obj, img)) / (2.0 * h);
            jac.set_column(j, &d.column(0));
        }
        let jtj = jac.transpose() * &jac;
        let jtr = jac.transpose() * &res;
        let mut improved = false;
        for _ in 0..20 {
            let mut a = jtj.clone();
            for d in 0..6 {
                a[(d, d)] += lambda * jtj[(d, d)].max(1e-12);
            }
            let Some(step) = a.lu().solve(&(-&jtr)) else {
                lambda *= 10.0;
                continue;
            };
            let cand = params + SVector::<f64, 6>::from_iterator(step.iter().copied());
            let cand_res = residuals(cam, &cand, obj, img);
            let cand_cost = cand_res.norm_squared();
            if cand_cost.is_finite() && cand_cost < cost {
                let rel = (cost - cand_cost) / cost.max(1e-300);
                params = cand;
                res = cand_res;
                cost = cand_cost;
                lambda = (lambda / 10.0).max(1e-12);
                improved = rel > 1e-14;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    if !cost.is_finite() {
        return Err(GeomError::Degenerate);
    }
    Ok((
        Vector3::new(params[0], params[1], params[2]),
        Vector3::new(params[3], params[4], params[5]),
    ))
}

/// Landmark indices DFL's pose estimate uses: jaw and brows (0..27) and lower nose (30..36).
pub fn pose_indices() -> impl Iterator<Item = usize> {
    (0..27).chain(30..36)
}

/// DFL's `estimate_pitch_yaw_roll(aligned_landmarks, size)`: returns (pitch, yaw, roll) in
/// radians, each clipped to ±π/2, with DFL's sign convention (pitch negated).
///
/// `size` is the aligned image width (the camera has focal = size and its centre in the
/// middle). Inputs are rounded to float32 first, as DFL passes float32 arrays to OpenCV.
pub fn estimate_pitch_yaw_roll(aligned_lm: &[Pt], size: f64) -> Result<[f64; 3], GeomError> {
    check_landmarks(aligned_lm)?;
    let cam = Camera {
        focal: size,
        cx: size / 2.0,
        cy: size / 2.0,
    };
    let f32r = |v: f64| v as f32 as f64;
    let obj: Vec<[f64; 3]> = pose_indices().map(|i| MODEL_3D_68[i].map(f32r)).collect();
    let img: Vec<Pt> = pose_indices().map(|i| aligned_lm[i].map(f32r)).collect();
    let (rv, _) = solve_pnp(&cam, &obj, &img)?;
    let [pitch, yaw, roll] = rotation_to_euler(&rodrigues(&rv));
    let half_pi = std::f64::consts::FRAC_PI_2;
    let c = |v: f64| v.clamp(-half_pi, half_pi);
    Ok([-c(pitch), c(yaw), c(roll)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rodrigues_round_trips() {
        for r in [
            Vector3::new(0.1, -0.2, 0.3),
            Vector3::new(0.0, 0.0, 0.0),
            Vector3::new(3.0, 0.1, 0.0),
            Vector3::new(0.0, -3.1, 0.2),
        ] {
            let back = rotation_to_rodrigues(&rodrigues(&r));
            assert!(
                (rodrigues(&back) - rodrigues(&r)).norm() < 1e-9,
                "{r:?} -> {back:?}"
            );
        }
    }

    #[test]
    fn solve_pnp_recovers_a_synthetic_pose() {
        let cam = Camera {
            focal: 256.0,
            cx: 128.0,
            cy: 128.0,
        };
        let rv = Vector3::new(0.2, -0.4, 0.1);
        let t = Vector3::new(5.0, -3.0, 400.0);
        let obj: Vec<[f64; 3]> = pose_indices().map(|i| MODEL_3D_68[i]).collect();
        let r = rodrigues(&rv);
        let img: Vec<Pt> = obj.iter().map(|x| project(&cam, &r, &t, x)).collect();
        let (rv2, t2) = solve_pnp(&cam, &obj, &img).unwrap();
        assert!((rv2 - rv).norm() < 1e-8, "{rv2:?}");
        assert!((t2 - t).norm() < 1e-6, "{t2:?}");
    }
}
