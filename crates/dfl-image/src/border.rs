//! Border modes: how pixels outside the image are read (OpenCV's `BORDER_*`).

/// How a coordinate outside the image is mapped back inside, as OpenCV's
/// `borderInterpolate`. `abcdefgh` is a row; `|` marks the image edges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Border {
    /// `vvvvvv|abcdefgh|vvvvvvv`: a fixed value (OpenCV `BORDER_CONSTANT`; DFL always uses 0).
    Constant(f32),
    /// `aaaaaa|abcdefgh|hhhhhhh` (OpenCV `BORDER_REPLICATE`).
    Replicate,
    /// `fedcba|abcdefgh|hgfedcb` (OpenCV `BORDER_REFLECT`, edge pixel repeated).
    Reflect,
    /// `gfedcb|abcdefgh|gfedcba` (OpenCV `BORDER_REFLECT_101` = `BORDER_DEFAULT`, the border of
    /// every OpenCV filter DFL calls and what "reflect" means in DFL's code paths).
    Reflect101,
    /// `cdefgh|abcdefgh|abcdefg` (OpenCV `BORDER_WRAP`).
    Wrap,
}

impl Border {
    /// Index inside `0..len` that coordinate `p` reads, or `None` for a constant border.
    /// Works for any `p` (computed with modular arithmetic, no loops). `len` must be >= 1.
    #[inline]
    pub fn index(self, p: i64, len: usize) -> Option<usize> {
        let n = len as i64;
        if (0..n).contains(&p) {
            return Some(p as usize);
        }
        let i = match self {
            Border::Constant(_) => return None,
            Border::Replicate => p.clamp(0, n - 1),
            Border::Reflect => {
                let period = 2 * n;
                let q = p.rem_euclid(period);
                if q < n { q } else { period - 1 - q }
            }
            Border::Reflect101 => {
                if n == 1 {
                    0
                } else {
                    let period = 2 * (n - 1);
                    let q = p.rem_euclid(period);
                    if q < n { q } else { period - q }
                }
            }
            Border::Wrap => p.rem_euclid(n),
        };
        Some(i as usize)
    }

    /// The value read outside the image for a constant border (0 for the others, which never
    /// read it).
    #[inline]
    pub fn constant(self) -> f32 {
        match self {
            Border::Constant(v) => v,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenCV's `borderInterpolate`, transcribed with its loop, as the reference.
    fn opencv(p: i64, len: i64, b: Border) -> Option<i64> {
        let mut p = p;
        if (0..len).contains(&p) {
            return Some(p);
        }
        match b {
            Border::Constant(_) => None,
            Border::Replicate => Some(if p < 0 { 0 } else { len - 1 }),
            Border::Reflect | Border::Reflect101 => {
                let delta = i64::from(b == Border::Reflect101);
                if len == 1 {
                    return Some(0);
                }
                loop {
                    if p < 0 {
                        p = -p - 1 + delta;
                    } else {
                        p = len - 1 - (p - len) - delta;
                    }
                    if (0..len).contains(&p) {
                        return Some(p);
                    }
                }
            }
            Border::Wrap => {
                if p < 0 {
                    p -= ((p - len + 1) / len) * len;
                }
                if p >= len {
                    p %= len;
                }
                Some(p)
            }
        }
    }

    #[test]
    fn matches_opencv_border_interpolate() {
        for b in [
            Border::Constant(0.0),
            Border::Replicate,
            Border::Reflect,
            Border::Reflect101,
            Border::Wrap,
        ] {
            for len in 1..6i64 {
                for p in -25..25i64 {
                    let got = b.index(p, len as usize).map(|i| i as i64);
                    assert_eq!(got, opencv(p, len, b), "{b:?} p={p} len={len}");
                }
            }
        }
        assert_eq!(Border::Reflect101.index(-1, 8), Some(1));
        assert_eq!(Border::Reflect.index(-1, 8), Some(0));
        assert!(Border::Reflect101.index(i64::MIN / 2, 8).is_some());
    }
}
