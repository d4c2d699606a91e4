//! Anti-aliased drawing on RGB images for debug pictures: lines, polylines, circles.
//!
//! Coverage-based (distance from the pixel centre to the ideal shape), so a line of width
//! `t` covers the pixels within `t/2` of the segment with a one-pixel soft edge, like
//! OpenCV's `LINE_AA`. These pictures are for eyes, not for golden comparisons.

use dfl_geom::Pt;
use image::{Rgb, RgbImage};

/// An RGB colour.
pub type Color = [u8; 3];

fn blend(img: &mut RgbImage, x: i64, y: i64, color: Color, alpha: f64) {
    if alpha <= 0.0 || x < 0 || y < 0 || x >= i64::from(img.width()) || y >= i64::from(img.height())
    {
        return;
    }
    let a = alpha.min(1.0);
    let p = img.get_pixel_mut(x as u32, y as u32);
    for c in 0..3 {
        let v = f64::from(p[c]) * (1.0 - a) + f64::from(color[c]) * a;
        p[c] = v.round().clamp(0.0, 255.0) as u8;
    }
}

fn finite(p: Pt) -> bool {
    p[0].is_finite() && p[1].is_finite() && p[0].abs() < 1e6 && p[1].abs() < 1e6
}

fn dist_to_segment(p: Pt, a: Pt, b: Pt) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (p[0] - a[0] - t * dx).hypot(p[1] - a[1] - t * dy)
}

/// Draws a segment of width `thickness` pixels.
pub fn line(img: &mut RgbImage, a: Pt, b: Pt, color: Color, thickness: f64) {
    if !finite(a) || !finite(b) {
        return;
    }
    let r = thickness.max(1.0) / 2.0;
    let pad = r + 1.0;
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    // Walk the major axis; visit a band of pixels around the line on the minor axis.
    let steep = (b[1] - a[1]).abs() > (b[0] - a[0]).abs();
    let (a2, b2) = if steep {
        ([a[1], a[0]], [b[1], b[0]])
    } else {
        (a, b)
    };
    let (lo, hi) = if a2[0] <= b2[0] { (a2, b2) } else { (b2, a2) };
    let major_max = if steep { h } else { w };
    let minor_max = if steep { w } else { h };
    let m0 = (lo[0] - pad).floor().max(0.0) as i64;
    let m1 = (hi[0] + pad).ceil().min(major_max - 1.0) as i64;
    let slope = if hi[0] > lo[0] {
        (hi[1] - lo[1]) / (hi[0] - lo[0])
    } else {
        0.0
    };
    let band = pad * (1.0 + slope * slope).sqrt() + 1.0;
    for m in m0..=m1 {
        let mf = m as f64;
        let center = lo[1] + slope * (mf.clamp(lo[0], hi[0]) - lo[0]);
        let n0 = (center - band).floor().max(0.0) as i64;
        let n1 = (center + band).ceil().min(minor_max - 1.0) as i64;
        for n in n0..=n1 {
            let (x, y) = if steep { (n, m) } else { (m, n) };
            let d = dist_to_segment([x as f64, y as f64], a, b);
            blend(img, x, y, color, r + 0.5 - d);
        }
    }
}

/// Draws connected segments through `pts`, closing the loop when `closed`.
pub fn polyline(img: &mut RgbImage, pts: &[Pt], closed: bool, color: Color, thickness: f64) {
    for w in pts.windows(2) {
        line(img, w[0], w[1], color, thickness);
    }
    if closed && pts.len() > 2 {
        line(img, pts[pts.len() - 1], pts[0], color, thickness);
    }
}

/// Draws a circle outline of `radius` with a one-pixel stroke.
pub fn circle(img: &mut RgbImage, c: Pt, radius: f64, color: Color) {
    if !finite(c) {
        return;
    }
    let r = radius + 1.5;
    let (x0, x1) = ((c[0] - r).floor() as i64, (c[0] + r).ceil() as i64);
    let (y0, y1) = ((c[1] - r).floor() as i64, (c[1] + r).ceil() as i64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let d = (x as f64 - c[0]).hypot(y as f64 - c[1]);
            blend(img, x, y, color, 1.0 - (d - radius).abs());
        }
    }
}

/// Multiplies the pixels where `mask` is set by `factor` (DFL darkens the hull to half).
pub fn darken(img: &mut RgbImage, mask: &dfl_geom::Mask, factor: f64) {
    if mask.width != img.width() as usize || mask.height != img.height() as usize {
        return;
    }
    for (i, p) in img.pixels_mut().enumerate() {
        if mask.data[i] != 0 {
            *p = Rgb(p.0.map(|v| (f64::from(v) * factor) as u8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_covers_its_path_and_not_far_pixels() {
        let mut img = RgbImage::new(40, 30);
        line(&mut img, [2.0, 3.0], [35.0, 20.0], [0, 255, 0], 1.0);
        // Points on the segment are drawn, a point 5 px away is not.
        assert!(img.get_pixel(2, 3)[1] > 100);
        assert!(img.get_pixel(35, 20)[1] > 100);
        let mid_y = (3.0 + 17.0 * (18.0 / 33.0)) as u32;
        assert!(img.get_pixel(20, mid_y)[1] > 60 || img.get_pixel(20, mid_y + 1)[1] > 60);
        assert_eq!(img.get_pixel(20, mid_y + 5)[1], 0);
        // Off-image and non-finite input is ignored without panicking.
        line(&mut img, [-100.0, -100.0], [500.0, 900.0], [1, 1, 1], 2.0);
        line(&mut img, [f64::NAN, 0.0], [1.0, 1.0], [1, 1, 1], 2.0);
        circle(&mut img, [39.0, 29.0], 2.0, [255, 0, 0]);
        assert!(img.get_pixel(37, 29)[0] > 100);
    }
}
