//! dfl-image's hot inner loops, compiled for the baseline CPU and for AVX2 + FMA (the
//! machinery is `dfl_core::simd`). The portable build is what every other target runs;
//! `tests` check both agree.

pub(crate) use dfl_core::multiversion;
pub(crate) use dfl_core::simd::{has_avx2_fma, madd};

/// `out[i] (+)= sum_k w[k] * src[i + k * step]` (a row correlation over a padded row; with
/// `add` the sum is added to `out`). `src` must hold at least
/// `out.len() + (w.len() - 1) * step` values.
#[inline(always)]
fn conv_row_body<const FMA: bool>(src: &[f32], w: &[f32], step: usize, add: bool, out: &mut [f32]) {
    // Enough independent accumulators to hide the FMA latency: 8 AVX registers, or 8 SSE
    // registers for the baseline build.
    let done = if FMA {
        conv_row_blocks::<FMA, 64>(src, w, step, add, out, 0)
    } else {
        conv_row_blocks::<FMA, 32>(src, w, step, add, out, 0)
    };
    let done = conv_row_blocks::<FMA, 8>(src, w, step, add, out, done);
    for j in done..out.len() {
        let mut a = if add { out[j] } else { 0.0 };
        for (k, &wk) in w.iter().enumerate() {
            a = madd::<FMA>(a, wk, src[j + k * step]);
        }
        out[j] = a;
    }
}

/// Blocks of `B` outputs starting at `from`; returns where it stopped.
#[inline(always)]
fn conv_row_blocks<const FMA: bool, const B: usize>(
    src: &[f32],
    w: &[f32],
    step: usize,
    add: bool,
    out: &mut [f32],
    from: usize,
) -> usize {
    let n = out.len();
    let mut i = from;
    while i + B <= n {
        let mut acc = [0f32; B];
        if add {
            acc.copy_from_slice(&out[i..i + B]);
        }
        for (k, &wk) in w.iter().enumerate() {
            let s = &src[i + k * step..i + k * step + B];
            for l in 0..B {
                acc[l] = madd::<FMA>(acc[l], wk, s[l]);
            }
        }
        out[i..i + B].copy_from_slice(&acc);
        i += B;
    }
    i
}

multiversion!(
    /// Row correlation: `out[i] (+)= sum_k w[k] * src[i + k * step]`.
    pub(crate) fn conv_row / conv_row_avx2 => conv_row_body(src: &[f32], w: &[f32], step: usize, add: bool, out: &mut [f32])
);

/// `out[i] = sum_k w[k] * rows[k][i]` (a column correlation over whole rows).
#[inline(always)]
fn conv_cols_body<const FMA: bool>(rows: &[&[f32]], w: &[f32], out: &mut [f32]) {
    let done = if FMA {
        conv_cols_blocks::<FMA, 64>(rows, w, out, 0)
    } else {
        conv_cols_blocks::<FMA, 32>(rows, w, out, 0)
    };
    let done = conv_cols_blocks::<FMA, 8>(rows, w, out, done);
    for j in done..out.len() {
        let mut a = 0f32;
        for (r, &wk) in rows.iter().zip(w) {
            a = madd::<FMA>(a, wk, r[j]);
        }
        out[j] = a;
    }
}

/// Blocks of `B` outputs starting at `from`; returns where it stopped.
#[inline(always)]
fn conv_cols_blocks<const FMA: bool, const B: usize>(
    rows: &[&[f32]],
    w: &[f32],
    out: &mut [f32],
    from: usize,
) -> usize {
    let n = out.len();
    let mut i = from;
    while i + B <= n {
        let mut acc = [0f32; B];
        for (r, &wk) in rows.iter().zip(w) {
            let s = &r[i..i + B];
            for l in 0..B {
                acc[l] = madd::<FMA>(acc[l], wk, s[l]);
            }
        }
        out[i..i + B].copy_from_slice(&acc);
        i += B;
    }
    i
}

multiversion!(
    /// Column correlation: `out[i] = sum_k w[k] * rows[k][i]`.
    pub(crate) fn conv_cols / conv_cols_avx2 => conv_cols_body(rows: &[&[f32]], w: &[f32], out: &mut [f32])
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_builds_agree_with_a_plain_sum() {
        let src: Vec<f32> = (0..200).map(|i| ((i * 37) % 19) as f32 / 7.0).collect();
        let w = [0.1f32, -0.4, 0.9, 0.3, 0.05];
        let step = 3;
        let n = 200 - 4 * step;
        let plain: Vec<f32> = (0..n)
            .map(|i| {
                w.iter()
                    .enumerate()
                    .map(|(k, wk)| wk * src[i + k * step])
                    .sum()
            })
            .collect();
        for variant in 0..2 {
            let mut out = vec![0f32; n];
            if variant == 0 {
                conv_row_body::<false>(&src, &w, step, false, &mut out);
            } else {
                conv_row(&src, &w, step, false, &mut out);
            }
            for (a, b) in out.iter().zip(&plain) {
                assert!((a - b).abs() < 1e-5);
            }
            let rows: Vec<&[f32]> = (0..5).map(|k| &src[k * 30..k * 30 + 37]).collect();
            let mut cols = vec![0f32; 37];
            if variant == 0 {
                conv_cols_body::<false>(&rows, &w, &mut cols);
            } else {
                conv_cols(&rows, &w, &mut cols);
            }
            for (i, c) in cols.iter().enumerate() {
                let e: f32 = (0..5).map(|k| w[k] * rows[k][i]).sum();
                assert!((c - e).abs() < 1e-5);
            }
        }
    }
}
