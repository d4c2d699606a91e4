//! `dfl bench image`: dfl-image against OpenCV (through Python) on identical inputs, with the
//! same number of threads, timed in the same run.
//!
//! The reference runs `$DFL_BENCH_PYTHON` (default `python3`), which needs numpy and
//! opencv-python(-headless). Without them the figures are printed without a reference.

use super::{Better, Ctx, Figure};
use crate::progress::Ui;
use anyhow::{Context, Result};
use dfl_image::{Affine, Border, Image, Interp};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Timing script for the OpenCV side. Arguments: scratch dir, threads, time budget per figure
/// in seconds. Prints one `name milliseconds` line per figure: the fastest of as many runs as
/// fit the budget (at least 5, at most 301) after a warm-up, the same rule as our side (on a
/// shared machine the median mostly measures the other processes, the minimum the code).
const PY_SCRIPT: &str = r#"
import sys, time, struct
import numpy as np, cv2
d, threads, budget = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
cv2.setNumThreads(threads)
def load(n):
    b = open(f"{d}/{n}.f32", "rb").read()
    w, h, c = struct.unpack("<III", b[4:16])
    return np.frombuffer(b[16:], "<f4").reshape(h, w, c).copy()
def t(name, f):
    s = time.perf_counter(); f(); one = time.perf_counter() - s
    runs = int(min(max(budget / max(one, 1e-6), 5), 301)); ts = []
    for _ in range(runs):
        s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
    print(name, min(ts) * 1000.0, flush=True)
frame = load("frame")
m = np.array([float(v) for v in open(f"{d}/warp_m.txt").read().split()]).reshape(2, 3)
t("warp", lambda: cv2.warpAffine(frame, m, (1280, 720), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REPLICATE))
face = load("face512")
t("gauss2", lambda: cv2.GaussianBlur(face, (0, 0), 2))
t("gauss10", lambda: cv2.GaussianBlur(face, (0, 0), 10))
# DFL's reinhard_color_transfer as the merger calls it (face masks on both sides).
tgt, ref, fmask = load("rct_t"), load("rct_s"), load("rct_m")
def rct():
    s = cv2.cvtColor(ref, cv2.COLOR_BGR2LAB)
    t_ = cv2.cvtColor(tgt, cv2.COLOR_BGR2LAB)
    si = s.copy(); si[fmask[..., 0] < 0.5] = [0, 0, 0]
    ti = t_.copy(); ti[fmask[..., 0] < 0.5] = [0, 0, 0]
    out = []
    for k, (lo, hi) in enumerate(((0, 100), (-127, 127), (-127, 127))):
        x = (t_[..., k] - ti[..., k].mean()) * si[..., k].std() / ti[..., k].std() + si[..., k].mean()
        out.append(np.clip(x, lo, hi))
    return cv2.cvtColor(np.stack(out, -1), cv2.COLOR_LAB2BGR)
t("rct", rct)
# The merger's seamless step: float -> uint8, seamlessClone, -> float.
paste, cmask = load("clone_src"), load("clone_mask")
cx, cy = [int(v) for v in open(f"{d}/clone_center.txt").read().split()]
def clone():
    out = cv2.seamlessClone((paste * 255).astype(np.uint8), (frame * 255).astype(np.uint8),
                            (cmask[..., 0] * 255).astype(np.uint8), (cx, cy), cv2.NORMAL_CLONE)
    return out.astype(np.float32) / 255.0
t("clone", clone)
"#;

/// Runs the group.
pub fn run(ctx: &Ctx, _ui: &Ui) -> Result<Vec<Figure>> {
    // Time budget per figure; short operations get many runs.
    let budget = if ctx.quick { 0.2 } else { 2.0 };
    let threads = dfl_image::threads();
    let frame = smooth_image(1280, 720, 3, 1)?;
    let face = smooth_image(512, 512, 3, 2)?;
    write_f32(&ctx.scratch.join("frame.f32"), &frame)?;
    write_f32(&ctx.scratch.join("face512.f32"), &face)?;
    let m = warp_matrix();
    std::fs::write(
        ctx.scratch.join("warp_m.txt"),
        m.iter()
            .flatten()
            .map(|v| format!("{v:.17e}"))
            .collect::<Vec<_>>()
            .join(" "),
    )?;

    // RCT inputs: a 256x256 face, a colour-cast partner, an elliptical face mask.
    let rct_t = face.crop(128, 128, 256, 256)?;
    let mut rct_s = smooth_image(256, 256, 3, 3)?;
    rct_s.map_inplace(|v| (v * 0.8 + 0.1).min(1.0));
    let rct_m = ellipse_mask(256, 256, (128.0, 136.0), (100.0, 118.0))?;
    // Seamless clone: the face pasted into the frame, an elliptical clone mask inside it.
    let mut clone_src = frame.clone();
    clone_src.paste(&rct_t, 500, 200)?;
    let clone_mask = ellipse_mask(1280, 720, (628.0, 336.0), (100.0, 118.0))?;
    let centre = dfl_image::clone_center(&clone_mask).context("bench clone mask is empty")?;
    for (name, img) in [
        ("rct_t", &rct_t),
        ("rct_s", &rct_s),
        ("rct_m", &rct_m),
        ("clone_src", &clone_src),
        ("clone_mask", &clone_mask),
    ] {
        write_f32(&ctx.scratch.join(format!("{name}.f32")), img)?;
    }
    std::fs::write(
        ctx.scratch.join("clone_center.txt"),
        format!("{} {}", centre.0, centre.1),
    )?;

    let reference = opencv_reference(&ctx.scratch, threads, budget);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let mut figures = Vec::new();
    // Goals are ratios to OpenCV; without a reference there is no goal to judge.
    let mut push = |key: &str, name: String, ours: f64, goal: f64| {
        let reference = reference
            .as_ref()
            .and_then(|r| r.get(key))
            .map(|&v| (format!("OpenCV {threads} thr"), v));
        figures.push(Figure {
            name,
            unit: "ms",
            ours,
            better: Better::Lower,
            goal: reference.as_ref().map(|_| goal),
            reference,
        });
    };

    let t = timed(budget, || {
        dfl_image::warp_affine(&frame, &m, 1280, 720, Interp::Cubic, Border::Replicate)?;
        Ok(())
    })?;
    push(
        "warp",
        "image: warpAffine bicubic 1280x720x3 f32".into(),
        ms(t),
        1.5,
    );
    for (key, sigma) in [("gauss2", 2.0), ("gauss10", 10.0)] {
        let t = timed(budget, || {
            dfl_image::gaussian_blur(&face, 0, sigma)?;
            Ok(())
        })?;
        push(
            key,
            format!("image: GaussianBlur sigma={sigma} 512x512x3 f32"),
            ms(t),
            1.5,
        );
    }
    let t = timed(budget, || {
        dfl_image::rct(
            &rct_t,
            &rct_s,
            Some(&rct_m),
            Some(&rct_m),
            dfl_image::MaskStats::DflZeroed,
        )?;
        Ok(())
    })?;
    push(
        "rct",
        "image: RCT (masked, DFL merger call) 256x256".into(),
        ms(t),
        1.5,
    );
    let t = timed(budget, || {
        dfl_image::seamless_clone(&clone_src, &frame, &clone_mask, centre)?;
        Ok(())
    })?;
    push(
        "clone",
        "image: seamless clone 256x256 face into 1280x720".into(),
        ms(t),
        2.0,
    );
    Ok(figures)
}

/// A binary elliptical mask (1 inside).
fn ellipse_mask(w: usize, h: usize, c: (f32, f32), r: (f32, f32)) -> Result<Image> {
    Ok(Image::from_fn(w, h, 1, |x, y, _| {
        let dx = (x as f32 - c.0) / r.0;
        let dy = (y as f32 - c.1) / r.1;
        if dx * dx + dy * dy <= 1.0 { 1.0 } else { 0.0 }
    })?)
}

/// Fastest of as many runs of `f` as fit `budget` seconds (5 to 301), after one measured
/// warm-up call (the minimum, not the median: on a shared machine the median measures the
/// other processes).
fn timed(budget: f64, mut f: impl FnMut() -> Result<()>) -> Result<std::time::Duration> {
    let start = std::time::Instant::now();
    f()?;
    let one = start.elapsed().as_secs_f64().max(1e-6);
    let runs = (budget / one).clamp(5.0, 301.0) as usize;
    let mut best = std::time::Duration::MAX;
    for _ in 0..runs {
        let t = std::time::Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

/// Rotation by 10 degrees and scale 1.1 about the frame centre (a typical face paste).
fn warp_matrix() -> Affine {
    let (a, s) = (10f64.to_radians(), 1.1);
    let (c, n) = (a.cos() * s, a.sin() * s);
    let (cx, cy) = (640.0, 360.0);
    [
        [c, n, (1.0 - c) * cx - n * cy],
        [-n, c, n * cx + (1.0 - c) * cy],
    ]
}

/// A deterministic smooth-plus-texture test image in [0, 1].
fn smooth_image(w: usize, h: usize, c: usize, seed: u32) -> Result<Image> {
    let s = seed as f32;
    Ok(Image::from_fn(w, h, c, |x, y, ch| {
        let (xf, yf) = (x as f32, y as f32);
        let hash = ((x as u32).wrapping_mul(73856093) ^ (y as u32).wrapping_mul(19349663))
            .wrapping_add(seed.wrapping_mul(83492791) + ch as u32 * 2654435761);
        let noise = (hash % 1000) as f32 / 1000.0;
        0.5 + 0.3 * ((xf * 0.013 * (ch as f32 + s)).sin() * (yf * 0.021).cos())
            + 0.2 * (noise - 0.5)
    })?)
}

/// Writes the fixture format the Python side reads (b"F32I", w, h, c, LE f32 samples).
fn write_f32(path: &Path, img: &Image) -> Result<()> {
    let mut bytes = Vec::with_capacity(16 + img.data().len() * 4);
    bytes.extend_from_slice(b"F32I");
    for v in [img.width(), img.height(), img.channels()] {
        bytes.extend_from_slice(&(v as u32).to_le_bytes());
    }
    for v in img.data() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Runs the OpenCV timing script; `None` (with a note on stderr) if Python or cv2 is missing.
fn opencv_reference(dir: &Path, threads: usize, budget: f64) -> Option<HashMap<String, f64>> {
    let python = std::env::var("DFL_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(PY_SCRIPT)
        .arg(dir)
        .arg(threads.to_string())
        .arg(budget.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_string(), v.trim().parse().ok()?))
                })
                .collect(),
        ),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            tracing::warn!(
                "OpenCV reference unavailable ({python} failed: {}); set DFL_BENCH_PYTHON to a \
                 Python with numpy and opencv-python",
                err.lines().last().unwrap_or("no message")
            );
            None
        }
        Err(e) => {
            tracing::warn!(
                "OpenCV reference unavailable (cannot run {python}: {e}); set DFL_BENCH_PYTHON"
            );
            None
        }
    }
}
