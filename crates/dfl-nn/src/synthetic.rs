//! Deterministic face-like training batches for benchmarks and tests, so neither needs a
//! faceset: a skin-toned ellipse with darker eyes and mouth on a gradient background, its
//! ellipse mask and an eyes+mouth mask, jittered per sample.

use crate::saehd::AeBatch;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One synthetic face: BGR image `[3, r, r]`, face mask and eyes+mouth mask `[1, r, r]`,
/// all row-major `f32` in `[0, 1]`.
pub fn face(r: usize, rng: &mut StdRng) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rf = r as f32;
    let cx = rf * (0.5 + rng.random_range(-0.04..0.04));
    let cy = rf * (0.52 + rng.random_range(-0.04..0.04));
    let ax = rf * rng.random_range(0.26..0.32);
    let ay = rf * rng.random_range(0.34..0.40);
    let skin = [
        rng.random_range(0.35..0.6f32),
        rng.random_range(0.45..0.7f32),
        rng.random_range(0.6..0.9f32),
    ];
    let bg0 = [
        rng.random::<f32>(),
        rng.random::<f32>(),
        rng.random::<f32>(),
    ];
    let bg1 = [
        rng.random::<f32>(),
        rng.random::<f32>(),
        rng.random::<f32>(),
    ];
    let eye_dy = ay * 0.25;
    let eye_dx = ax * 0.42;
    let eye_r = rf * 0.05;
    let mouth_y = cy + ay * 0.45;
    let (mw, mh) = (ax * 0.45, rf * 0.03);
    let mut img = vec![0.0f32; 3 * r * r];
    let mut mask = vec![0.0f32; r * r];
    let mut em = vec![0.0f32; r * r];
    for y in 0..r {
        for x in 0..r {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let t = fy / rf;
            let mut px = [0.0f32; 3];
            for c in 0..3 {
                px[c] = bg0[c] * (1.0 - t) + bg1[c] * t;
            }
            let e = ((fx - cx) / ax).powi(2) + ((fy - cy) / ay).powi(2);
            let i = y * r + x;
            if e <= 1.0 {
                mask[i] = 1.0;
                let shade = 1.0 - 0.25 * e;
                for c in 0..3 {
                    px[c] = skin[c] * shade;
                }
                let in_eye = [cx - eye_dx, cx + eye_dx]
                    .iter()
                    .any(|ex| (fx - ex).powi(2) + (fy - (cy - eye_dy)).powi(2) <= eye_r * eye_r);
                let in_mouth = ((fx - cx) / mw).powi(2) + ((fy - mouth_y) / mh).powi(2) <= 1.0;
                if in_eye {
                    px = [0.15, 0.1, 0.1];
                    em[i] = 1.0;
                } else if in_mouth {
                    px = [0.25, 0.2, 0.55];
                    em[i] = 1.0;
                }
            }
            for c in 0..3 {
                img[c * r * r + i] = px[c].clamp(0.0, 1.0);
            }
        }
    }
    (img, mask, em)
}

/// A batch of `b` synthetic src and `b` synthetic dst faces at `r x r` on `device`
/// (warped = target: no augmentation).
pub fn batch(b: usize, r: usize, seed: u64, device: &Device) -> AeBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut side = || {
        let (mut img, mut mask, mut em) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..b {
            let (i, m, e) = face(r, &mut rng);
            img.extend(i);
            mask.extend(m);
            em.extend(e);
        }
        let t = |v: Vec<f32>, c: usize| {
            Tensor::<4>::from_data(TensorData::new(v, [b, c, r, r]), device)
        };
        (t(img, 3), t(mask, 1), t(em, 1))
    };
    let (si, sm, se) = side();
    let (di, dm, de) = side();
    AeBatch {
        warped_src: si.clone(),
        target_src: si,
        target_srcm: sm,
        target_srcm_em: Some(se),
        warped_dst: di.clone(),
        target_dst: di,
        target_dstm: dm,
        target_dstm_em: Some(de),
    }
}
