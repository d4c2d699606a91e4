//! Landmark masks: DFL's eyebrow extension, convex hulls, and OpenCV-exact polygon filling.
//!
//! DFL builds its "full face" hull mask with `cv2.convexHull` + `cv2.fillConvexPoly` on integer
//! landmarks. We reproduce OpenCV's rasterisation rule exactly (16.16 fixed-point edge walk
//! with half-pixel rounding, plus the 8-connected Bresenham outline that OpenCV draws first),
//! so a mask computed here equals DFL's pixel for pixel; `tools/reference/geom_reference.py`
//! checks that against OpenCV.

use crate::landmarks::check_landmarks;
use crate::{GeomError, Pt};

/// An integer pixel position (x, y), as OpenCV's `Point`.
pub type IPt = [i64; 2];

/// Landmark coordinates are clamped to ±2^24 before integer rasterisation, so hostile
/// metadata cannot overflow the 16.16 fixed-point arithmetic. Real faces are far inside.
const COORD_LIMIT: f64 = (1u64 << 24) as f64;

/// A binary single-channel mask, row-major, values 0 or 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` values, 0 or 1.
    pub data: Vec<u8>,
}

impl Mask {
    /// An all-zero mask.
    pub fn new(width: usize, height: usize) -> Mask {
        Mask {
            width,
            height,
            data: vec![0; width * height],
        }
    }

    /// Value at (x, y), 0 outside.
    pub fn get(&self, x: i64, y: i64) -> u8 {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return 0;
        }
        self.data[y as usize * self.width + x as usize]
    }

    fn set(&mut self, x: i64, y: i64, v: u8) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.data[y as usize * self.width + x as usize] = v;
        }
    }

    fn hline(&mut self, y: i64, x1: i64, x2: i64, v: u8) {
        if y < 0 || y as usize >= self.height || x2 < x1 {
            return;
        }
        let row = y as usize * self.width;
        self.data[row + x1 as usize..=row + x2 as usize].fill(v);
    }

    /// Number of set pixels.
    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }
}

/// Float → int the way numpy's `astype(int)` does (truncation toward zero), clamped.
fn trunc(v: f64) -> i64 {
    v.clamp(-COORD_LIMIT, COORD_LIMIT) as i64
}

/// DFL's `expand_eyebrows`: an integer copy of the landmarks with each eyebrow point pushed
/// away from the eye-line point below it by `0.5 * mod` times their distance. Integer
/// semantics as DFL: truncation to int first, floor-division midpoints, truncating store.
pub fn expand_eyebrows(lm: &[Pt], expand_mod: f64) -> Result<Vec<IPt>, GeomError> {
    check_landmarks(lm)?;
    if !expand_mod.is_finite() {
        return Err(GeomError::NonFinite);
    }
    let mut l: Vec<IPt> = lm.iter().map(|p| [trunc(p[0]), trunc(p[1])]).collect();
    let mid = |a: IPt, b: IPt| [(a[0] + b[0]).div_euclid(2), (a[1] + b[1]).div_euclid(2)];
    let ml = mid(l[36], l[0]);
    let mr = mid(l[16], l[45]);
    let ql = mid(l[36], ml);
    let qr = mid(l[45], mr);
    let bot_l = [ql, l[36], l[37], l[38], l[39]];
    let bot_r = [l[42], l[43], l[44], l[45], qr];
    let push = |top: IPt, bot: IPt| {
        let f = |t: i64, b: i64| trunc(t as f64 + expand_mod * 0.5 * (t - b) as f64);
        [f(top[0], bot[0]), f(top[1], bot[1])]
    };
    for k in 0..5 {
        l[17 + k] = push(l[17 + k], bot_l[k]);
        l[22 + k] = push(l[22 + k], bot_r[k]);
    }
    Ok(l)
}

/// Convex hull of integer points as `cv2.convexHull` returns it for our purposes: the same
/// vertex set (duplicates and collinear points removed), counter-clockwise in image axes.
/// One point for a single distinct point, two for collinear sets.
pub fn convex_hull(points: &[IPt]) -> Vec<IPt> {
    let mut pts = points.to_vec();
    pts.sort_unstable();
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: IPt, a: IPt, b: IPt| {
        (a[0] - o[0]) as i128 * (b[1] - o[1]) as i128
            - (a[1] - o[1]) as i128 * (b[0] - o[0]) as i128
    };
    let mut hull: Vec<IPt> = Vec::with_capacity(pts.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &IPt>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    if hull.len() == 2 && hull[0] == hull[1] {
        hull.truncate(1);
    }
    hull
}

/// OpenCV's `clipLine` for an image of `w` x `h`: clips the segment in place; false when it
/// lies entirely outside.
fn clip_line(w: i64, h: i64, p1: &mut IPt, p2: &mut IPt) -> bool {
    let (right, bottom) = (w - 1, h - 1);
    if w <= 0 || h <= 0 {
        return false;
    }
    let code = |p: &IPt| {
        (p[0] < 0) as i32
            + (p[0] > right) as i32 * 2
            + (p[1] < 0) as i32 * 4
            + (p[1] > bottom) as i32 * 8
    };
    let (mut c1, mut c2) = (code(p1), code(p2));
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            p1[0] += (a - p1[1]) * (p2[0] - p1[0]) / (p2[1] - p1[1]);
            p1[1] = a;
            c1 = (p1[0] < 0) as i32 + (p1[0] > right) as i32 * 2;
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            p2[0] += (a - p2[1]) * (p2[0] - p1[0]) / (p2[1] - p1[1]);
            p2[1] = a;
            c2 = (p2[0] < 0) as i32 + (p2[0] > right) as i32 * 2;
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                p1[1] += (a - p1[0]) * (p2[1] - p1[1]) / (p2[0] - p1[0]);
                p1[0] = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                p2[1] += (a - p2[0]) * (p2[1] - p1[1]) / (p2[0] - p1[0]);
                p2[0] = a;
                c2 = 0;
            }
        }
    }
    (c1 | c2) == 0
}

/// The pixels of OpenCV's 8-connected line from `a` to `b` (`cv2.line`, thickness 1,
/// LINE_8), clipped to a `w` x `h` image, in drawing order.
pub fn line_pixels(w: usize, h: usize, a: IPt, b: IPt) -> Vec<IPt> {
    let (w, h) = (w as i64, h as i64);
    let lim = 1i64 << 24;
    let clamp = |p: IPt| [p[0].clamp(-lim, lim), p[1].clamp(-lim, lim)];
    let (mut p1, mut p2) = (clamp(a), clamp(b));
    let outside = |p: &IPt| p[0] < 0 || p[0] >= w || p[1] < 0 || p[1] >= h;
    if (outside(&p1) || outside(&p2)) && !clip_line(w, h, &mut p1, &mut p2) {
        return Vec::new();
    }
    // Left to right.
    if p2[0] < p1[0] {
        std::mem::swap(&mut p1, &mut p2);
    }
    let mut dx = p2[0] - p1[0];
    let mut dy = p2[1] - p1[1];
    let step_y = if dy < 0 { -1 } else { 1 };
    dy = dy.abs();
    let vert = dy > dx;
    // Major-axis step and minor-axis step as (dx, dy) pixel offsets.
    let (major, minor) = if vert {
        std::mem::swap(&mut dx, &mut dy);
        ([0, step_y], [1, 0])
    } else {
        ([1, 0], [0, step_y])
    };
    let mut err = dx - (dy + dy);
    let (plus_delta, minus_delta) = (dx + dx, -(dy + dy));
    let mut p = p1;
    let mut out = Vec::with_capacity(dx as usize + 1);
    for _ in 0..=dx {
        out.push(p);
        if err < 0 {
            err += plus_delta;
            p = [p[0] + minor[0], p[1] + minor[1]];
        }
        err += minus_delta;
        p = [p[0] + major[0], p[1] + major[1]];
    }
    out
}

/// Draws an OpenCV 8-connected line (thickness 1) into `mask`.
pub fn draw_line(mask: &mut Mask, a: IPt, b: IPt, value: u8) {
    for p in line_pixels(mask.width, mask.height, a, b) {
        mask.set(p[0], p[1], value);
    }
}

/// Fills a convex polygon exactly as OpenCV's `fillConvexPoly` (LINE_8, shift 0): the
/// outline first, then a scanline fill between the two edge chains walked downward from the
/// top vertex in 16.16 fixed point. Vertices must be in hull order (either orientation).
pub fn fill_convex_poly(mask: &mut Mask, v: &[IPt], value: u8) {
    const SHIFT: i64 = 16;
    const ONE: i64 = 1 << SHIFT;
    let npts = v.len();
    if npts == 0 {
        return;
    }
    let v: Vec<IPt> = v
        .iter()
        .map(|p| {
            [
                p[0].clamp(-(1 << 24), 1 << 24),
                p[1].clamp(-(1 << 24), 1 << 24),
            ]
        })
        .collect();
    let (w, h) = (mask.width as i64, mask.height as i64);
    let half = ONE >> 1;

    let mut imin = 0;
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (v[0][0], v[0][0], v[0][1], v[0][1]);
    let mut p0 = v[npts - 1];
    for (i, &p) in v.iter().enumerate() {
        if p[1] < ymin {
            ymin = p[1];
            imin = i;
        }
        ymax = ymax.max(p[1]);
        xmax = xmax.max(p[0]);
        xmin = xmin.min(p[0]);
        draw_line(mask, p0, p, value);
        p0 = p;
    }
    if npts < 3 || xmax < 0 || ymax < 0 || xmin >= w || ymin >= h {
        return;
    }
    let ymax = ymax.min(h - 1);

    struct Edge {
        idx: usize,
        di: usize,
        x: i64,
        dx: i64,
        ye: i64,
    }
    let mut edge = [
        Edge {
            idx: imin,
            di: 1,
            x: -ONE,
            dx: 0,
            ye: ymin,
        },
        Edge {
            idx: imin,
            di: npts - 1,
            x: -ONE,
            dx: 0,
            ye: ymin,
        },
    ];
    let mut edges = npts as i64;
    let mut y = ymin;
    loop {
        for e in edge.iter_mut() {
            if y >= e.ye {
                let mut idx0 = e.idx;
                let mut idx = (idx0 + e.di) % npts;
                loop {
                    let more = edges > 0;
                    edges -= 1;
                    if !more {
                        break;
                    }
                    let ty = v[idx][1];
                    if ty > y {
                        let xs = v[idx0][0] << SHIFT;
                        let xe = v[idx][0] << SHIFT;
                        e.ye = ty;
                        e.dx = ((xe - xs) * 2 + (ty - y)) / (2 * (ty - y));
                        e.x = xs;
                        e.idx = idx;
                        break;
                    }
                    idx0 = idx;
                    idx = (idx + e.di) % npts;
                }
            }
        }
        if edges < 0 {
            break;
        }
        if y >= 0 {
            let (left, right) = if edge[0].x > edge[1].x {
                (1, 0)
            } else {
                (0, 1)
            };
            let mut x1 = (edge[left].x + half) >> SHIFT;
            let mut x2 = (edge[right].x + half) >> SHIFT;
            if x2 >= 0 && x1 < w {
                x1 = x1.max(0);
                x2 = x2.min(w - 1);
                mask.hline(y, x1, x2, value);
            }
        }
        edge[0].x += edge[0].dx;
        edge[1].x += edge[1].dx;
        y += 1;
        if y > ymax {
            break;
        }
    }
}

/// Fills the convex hull of `points` (DFL's `fillConvexPoly(mask, convexHull(points), 1)`).
pub fn fill_hull(mask: &mut Mask, points: &[IPt]) {
    let hull = convex_hull(points);
    fill_convex_poly(mask, &hull, 1);
}

/// Landmark groups whose hulls make up DFL's face hull mask (indices into the
/// eyebrow-expanded landmarks): jaw halves, cheeks, nose ridge, eye regions and nose.
pub const HULL_GROUPS: [&[usize]; 8] = [
    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 17],
    &[8, 9, 10, 11, 12, 13, 14, 15, 16, 26],
    &[17, 18, 19, 8],
    &[24, 25, 26, 8],
    &[19, 20, 21, 22, 23, 24, 8],
    &[17, 18, 19, 20, 21, 27, 31, 32, 33, 34, 35, 8],
    &[22, 23, 24, 25, 26, 27, 31, 32, 33, 34, 35, 8],
    &[27, 28, 29, 30, 31, 32, 33, 34, 35],
];

/// DFL's `get_image_hull_mask`: the union of the convex hulls of [`HULL_GROUPS`] of the
/// eyebrow-expanded landmarks, as a binary `width` x `height` mask.
pub fn hull_mask(
    width: usize,
    height: usize,
    lm: &[Pt],
    expand_mod: f64,
) -> Result<Mask, GeomError> {
    let e = expand_eyebrows(lm, expand_mod)?;
    let mut mask = Mask::new(width, height);
    for group in HULL_GROUPS {
        let pts: Vec<IPt> = group.iter().map(|&i| e[i]).collect();
        fill_hull(&mut mask, &pts);
    }
    Ok(mask)
}

/// The filled hulls of both eyes (landmarks 36..42 and 42..48), before the dilate and blur
/// DFL applies (see [`eye_mouth_dilate_blur`]).
pub fn eyes_hull_mask(width: usize, height: usize, lm: &[Pt]) -> Result<Mask, GeomError> {
    check_landmarks(lm)?;
    let mut mask = Mask::new(width, height);
    for r in [crate::landmarks::RIGHT_EYE, crate::landmarks::LEFT_EYE] {
        let pts: Vec<IPt> = lm[r].iter().map(|p| [trunc(p[0]), trunc(p[1])]).collect();
        fill_hull(&mut mask, &pts);
    }
    Ok(mask)
}

/// The filled hull of the inner lips (60..68), before DFL's dilate and blur.
pub fn mouth_hull_mask(width: usize, height: usize, lm: &[Pt]) -> Result<Mask, GeomError> {
    check_landmarks(lm)?;
    let mut mask = Mask::new(width, height);
    let pts: Vec<IPt> = lm[crate::landmarks::INNER_MOUTH]
        .iter()
        .map(|p| [trunc(p[0]), trunc(p[1])])
        .collect();
    fill_hull(&mut mask, &pts);
    Ok(mask)
}

/// Elliptic dilate kernel size (`H // 32`) and odd Gaussian kernel size (`H // 16`, +1 when
/// even) that DFL applies to the eye and mouth hulls of an image of height `height`.
pub fn eye_mouth_dilate_blur(height: usize) -> (usize, usize) {
    let blur = height / 16;
    (height / 32, blur + (1 - blur % 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_drops_duplicates_and_collinear_points() {
        let pts = [
            [0, 0],
            [5, 0],
            [10, 0],
            [10, 10],
            [0, 10],
            [5, 5],
            [0, 5],
            [10, 10],
        ];
        let mut h = convex_hull(&pts);
        h.sort();
        assert_eq!(h, vec![[0, 0], [0, 10], [10, 0], [10, 10]]);
        assert_eq!(convex_hull(&[[3, 3], [3, 3]]), vec![[3, 3]]);
        assert_eq!(convex_hull(&[[0, 0], [2, 2], [4, 4], [1, 1]]).len(), 2);
    }

    #[test]
    fn filled_square_covers_its_closed_extent() {
        let mut m = Mask::new(20, 20);
        fill_convex_poly(&mut m, &[[2, 3], [12, 3], [12, 9], [2, 9]], 1);
        assert_eq!(m.count(), 11 * 7);
        assert_eq!(m.get(2, 3), 1);
        assert_eq!(m.get(12, 9), 1);
        assert_eq!(m.get(13, 9), 0);
    }

    #[test]
    fn lines_are_symmetric_and_clipped() {
        let a = line_pixels(50, 50, [3, 4], [20, 11]);
        let mut b = line_pixels(50, 50, [20, 11], [3, 4]);
        b.sort();
        let mut a2 = a.clone();
        a2.sort();
        assert_eq!(a2, b);
        assert_eq!(a.len(), 18);
        assert!(line_pixels(10, 10, [-5, -5], [-1, 30]).is_empty());
        assert!(
            line_pixels(10, 10, [-5, 5], [20, 5])
                .iter()
                .all(|p| (0..10).contains(&p[0]))
        );
    }

    #[test]
    fn eyebrow_expansion_uses_integer_semantics() {
        let mut lm = vec![[0.0, 0.0]; 68];
        lm[0] = [-3.7, 10.0];
        lm[36] = [10.9, 10.0];
        lm[17] = [5.0, 0.0];
        let e = expand_eyebrows(&lm, 1.0).unwrap();
        // lm0 -> -3, lm36 -> 10; ml = floor(7/2) = 3; ql = floor(13/2) = 6;
        // x17 = 5 + 0.5 * (5 - 6) = 4.5 -> 4; y17 = 0 + 0.5 * (0 - 10) = -5.
        assert_eq!(e[17], [4, -5]);
        assert_eq!(e[0], [-3, 10]);
    }
}
