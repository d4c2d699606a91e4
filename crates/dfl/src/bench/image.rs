//! `dfl bench image`: dfl-image against OpenCV (through Python) on identical inputs, with the
//! same number of threads, timed in the same run.
//!
//! The reference runs `$DFL_BENCH_PYTHON` (default `python3`), which needs numpy and
//! opencv-python(-headless). Without them the figures are printed without a reference.

use super::{Better, Ctx, Figure, median_time};
use crate::progress::Ui;
use anyhow::{Context, Result};
use dfl_image::{Affine, Border, Image, Interp};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Timing script for the OpenCV side. Arguments: scratch dir, threads, runs. Prints one
/// `name milliseconds` line per figure (median of `runs` after a warm-up).
const PY_SCRIPT: &str = r#"
import sys, time, struct
import numpy as np, cv2
d, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cv2.setNumThreads(threads)
def load(n):
    b = open(f"{d}/{n}.f32", "rb").read()
    w, h, c = struct.unpack("<III", b[4:16])
    return np.frombuffer(b[16:], "<f4").reshape(h, w, c).copy()
def t(name, f):
    f(); ts = []
    for _ in range(runs):
        s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
    print(name, sorted(ts)[len(ts) // 2] * 1000.0, flush=True)
frame = load("frame")
m = np.array([float(v) for v in open(f"{d}/warp_m.txt").read().split()]).reshape(2, 3)
t("warp", lambda: cv2.warpAffine(frame, m, (1280, 720), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REPLICATE))
face = load("face512")
t("gauss2", lambda: cv2.GaussianBlur(face, (0, 0), 2))
t("gauss10", lambda: cv2.GaussianBlur(face, (0, 0), 10))
"#;

/// Runs the group.
pub fn run(ctx: &Ctx, _ui: &Ui) -> Result<Vec<Figure>> {
    let runs = if ctx.quick { 3 } else { 15 };
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

    let reference = opencv_reference(&ctx.scratch, threads, runs);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let mut figures = Vec::new();
    let mut push = |key: &str, name: String, ours: f64, goal: f64| {
        figures.push(Figure {
            name,
            unit: "ms",
            ours,
            better: Better::Lower,
            reference: reference
                .as_ref()
                .and_then(|r| r.get(key))
                .map(|&v| (format!("OpenCV {threads} thr"), v)),
            goal: Some(goal),
        });
    };

    let t = median_time(runs, || {
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
        let t = median_time(runs, || {
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
    Ok(figures)
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
fn opencv_reference(dir: &Path, threads: usize, runs: usize) -> Option<HashMap<String, f64>> {
    let python = std::env::var("DFL_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(PY_SCRIPT)
        .arg(dir)
        .arg(threads.to_string())
        .arg(runs.to_string())
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
