//! Motion vectors for the merger's motion blur (design notes §7.1 step 6).

use crate::engine::Motion;
use crate::error::Result;
use dfl_geom::{FaceType, Pt};

/// The frame-space point DFL tracks: local (127, 127) of the face's FULL 256 crop.
fn face_point(lm: &[Pt]) -> Result<Pt> {
    let m = dfl_geom::transform_mat(lm, 256.0, FaceType::Full, 1.0)?;
    let inv = dfl_geom::invert_affine(&m)?;
    Ok(dfl_geom::apply(&inv, [127.0, 127.0]))
}

/// DFL's motion vectors for a whole, ordered frame list: `faces[i]` holds the landmarks of
/// frame i's faces. Frame i gets a motion when it and both neighbours i-1 and i+1 (clamped at
/// the ends) have a face: `v = p(i+1) - p(i-1)` of each first face's tracked point, power
/// `|v|`, angle `-atan2(v.y, v.x)` in degrees. When any frame has several faces DFL computes
/// no motion at all, and neither does this.
pub fn motion_vectors(faces: &[Option<&[Vec<Pt>]>]) -> Result<Vec<Option<Motion>>> {
    let n = faces.len();
    let mut out = vec![None; n];
    if faces.iter().flatten().any(|f| f.len() > 1) {
        return Ok(out);
    }
    let first = |i: usize| faces[i].and_then(|f| f.first());
    for (i, slot) in out.iter_mut().enumerate() {
        let (prev, next) = (i.saturating_sub(1), (i + 1).min(n - 1));
        let (Some(_), Some(lp), Some(ln)) = (first(i), first(prev), first(next)) else {
            continue;
        };
        let (pp, pn) = (face_point(lp)?, face_point(ln)?);
        let v = [pn[0] - pp[0], pn[1] - pp[1]];
        let power = v[0].hypot(v[1]);
        let (ux, uy) = if power != 0.0 {
            (v[0] / power, v[1] / power)
        } else {
            (0.0, 0.0)
        };
        *slot = Some(Motion {
            power,
            deg: -uy.atan2(ux).to_degrees(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face_at(dx: f64, dy: f64) -> Vec<Pt> {
        dfl_geom::landmarks::MODEL_3D_68
            .iter()
            .map(|p| [p[0] * 0.6 + 200.0 + dx, p[1] * 0.6 + 150.0 + dy])
            .collect()
    }

    #[test]
    fn motion_follows_known_translation() {
        let a = face_at(0.0, 0.0);
        let b = face_at(3.0, 4.0);
        let c = face_at(6.0, 8.0);
        let frames = [Some(vec![a]), Some(vec![b]), Some(vec![c]), None];
        let refs: Vec<Option<&[Vec<Pt>]>> = frames.iter().map(|f| f.as_deref()).collect();
        let m = motion_vectors(&refs).unwrap();
        // Middle frame: from (0,0) to (6,8): length 10, pointing down-right: -atan2(0.8, 0.6).
        let mid = m[1].unwrap();
        assert!((mid.power - 10.0).abs() < 1e-6, "{mid:?}");
        assert!((mid.deg - (-(0.8f64).atan2(0.6).to_degrees())).abs() < 1e-6);
        // First frame: prev clamps to itself, next is frame 1: length 5.
        assert!((m[0].unwrap().power - 5.0).abs() < 1e-6);
        // Frame 2's next neighbour has no face; frame 3 has none itself.
        assert!(m[2].is_none() && m[3].is_none());
        // Several faces in a frame switch motion off everywhere.
        let two = [
            Some(vec![face_at(0.0, 0.0)]),
            Some(vec![face_at(1.0, 0.0), face_at(90.0, 0.0)]),
        ];
        let refs: Vec<Option<&[Vec<Pt>]>> = two.iter().map(|f| f.as_deref()).collect();
        assert!(motion_vectors(&refs).unwrap().iter().all(Option::is_none));
    }
}
