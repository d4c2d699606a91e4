//! Umeyama (1991) least-squares similarity transform, exactly as DFL (scikit-image's port) computes it.

use crate::{GeomError, Pt};
use nalgebra::{Matrix2, Matrix3, Vector2};

/// The similarity transform (rotation, uniform scale if `estimate_scale`, translation) that
/// maps `src` onto `dst` in the least-squares sense, as a 3x3 homogeneous matrix.
///
/// Follows DFL's `umeyama` step by step, including its handling of reflections (`det(A) < 0`)
/// and of rank-deficient covariance. DFL returns an all-NaN matrix for rank 0; this returns
/// [`GeomError::Degenerate`] instead.
pub fn umeyama(src: &[Pt], dst: &[Pt], estimate_scale: bool) -> Result<Matrix3<f64>, GeomError> {
    if src.len() != dst.len() || src.is_empty() {
        return Err(GeomError::PointCount {
            expected: src.len(),
            got: dst.len(),
        });
    }
    if src.iter().chain(dst).flatten().any(|v| !v.is_finite()) {
        return Err(GeomError::NonFinite);
    }
    let n = src.len() as f64;
    let mean = |pts: &[Pt]| {
        pts.iter().fold(Vector2::zeros(), |acc: Vector2<f64>, p| {
            acc + Vector2::new(p[0], p[1])
        }) / n
    };
    let mu_s = mean(src);
    let mu_d = mean(dst);

    // A = D^T S / n, and the summed per-column population variance of S.
    let mut a = Matrix2::zeros();
    let mut var_s = 0.0;
    for (s, d) in src.iter().zip(dst) {
        let sc = Vector2::new(s[0], s[1]) - mu_s;
        let dc = Vector2::new(d[0], d[1]) - mu_d;
        a += dc * sc.transpose();
        var_s += sc.norm_squared();
    }
    a /= n;
    var_s /= n;

    let mut d = Vector2::new(1.0, 1.0);
    if a.determinant() < 0.0 {
        d[1] = -1.0;
    }
    let svd = a.svd(true, true);
    let (u, v) = match (svd.u, svd.v_t) {
        (Some(u), Some(v)) => (u, v),
        _ => return Err(GeomError::Degenerate),
    };
    let sig = svd.singular_values;
    // numpy's matrix_rank tolerance: S.max() * max(M, N) * eps.
    let tol = sig.max() * 2.0 * f64::EPSILON;
    let rank = sig.iter().filter(|&&s| s > tol).count();
    let r = match rank {
        0 => return Err(GeomError::Degenerate),
        1 => {
            if u.determinant() * v.determinant() > 0.0 {
                u * v
            } else {
                u * Matrix2::from_diagonal(&Vector2::new(1.0, -1.0)) * v
            }
        }
        _ => u * Matrix2::from_diagonal(&d) * v,
    };
    let scale = if estimate_scale {
        if var_s <= 0.0 {
            return Err(GeomError::Degenerate);
        }
        sig.dot(&d) / var_s
    } else {
        1.0
    };
    let t = mu_d - scale * (r * mu_s);
    let mut out = Matrix3::identity();
    out.fixed_view_mut::<2, 2>(0, 0).copy_from(&(r * scale));
    out[(0, 2)] = t[0];
    out[(1, 2)] = t[1];
    if out.iter().any(|v| !v.is_finite()) {
        return Err(GeomError::Degenerate);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        let (s, th, tx, ty) = (2.5_f64, 0.3_f64, 10.0, -4.0);
        let src: Vec<Pt> = vec![[0.0, 0.0], [1.0, 0.0], [0.3, 2.0], [-1.0, 0.7], [4.0, 1.0]];
        let dst: Vec<Pt> = src
            .iter()
            .map(|p| {
                [
                    s * (th.cos() * p[0] - th.sin() * p[1]) + tx,
                    s * (th.sin() * p[0] + th.cos() * p[1]) + ty,
                ]
            })
            .collect();
        let m = umeyama(&src, &dst, true).unwrap();
        assert!((m[(0, 0)] - s * th.cos()).abs() < 1e-12);
        assert!((m[(1, 0)] - s * th.sin()).abs() < 1e-12);
        assert!((m[(0, 2)] - tx).abs() < 1e-12 && (m[(1, 2)] - ty).abs() < 1e-12);
        let unscaled = umeyama(&src, &dst, false).unwrap();
        assert!((unscaled[(0, 0)] - th.cos()).abs() < 1e-12);
    }

    #[test]
    fn refuses_degenerate_input() {
        let same = vec![[1.0, 1.0]; 4];
        assert!(matches!(
            umeyama(&same, &same, true),
            Err(GeomError::Degenerate)
        ));
        assert!(umeyama(&same, &same[..3], true).is_err());
        assert!(umeyama(&[[f64::NAN, 0.0]], &[[0.0, 0.0]], true).is_err());
    }
}
