//! `dfl bench image`: dfl-image against OpenCV (through Python) on identical inputs, with the
//! same number of threads, timed in the same run.
//!
//! The reference runs `$DFL_BENCH_PYTHON` (default `python3`), which needs numpy and
//! opencv-python(-headless). Without them the figures are printed without a reference.
//!
//! Timing: both sides report the fastest run (on a shared machine the median mostly measures
//! the other processes; the minimum measures the code), and the two sides alternate in short
//! rounds through one long-lived Python process, so both see the same machine load.

use super::{Better, Ctx, Figure};
use crate::progress::Ui;
use anyhow::{Context, Result, anyhow};
use dfl_image::{Affine, Border, Image, Interp};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The OpenCV side. Arguments: scratch dir, threads. Prints `ready`, then for every input line
/// `name seconds` times that operation for about `seconds` (at least 3 runs, after a warm-up)
/// and prints the fastest run in milliseconds.
const PY_SCRIPT: &str = r#"
import sys, time, struct
import numpy as np, cv2
d, threads = sys.argv[1], int(sys.argv[2])
cv2.setNumThreads(threads)
def load(n):
    b = open(f"{d}/{n}.f32", "rb").read()
    w, h, c = struct.unpack("<III", b[4:16])
    return np.frombuffer(b[16:], "<f4").reshape(h, w, c).copy()
frame = load("frame")
m = np.array([float(v) for v in open(f"{d}/warp_m.txt").read().split()]).reshape(2, 3)
face = load("face512")
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
# The merger's seamless step: float -> uint8, seamlessClone, -> float.
paste, cmask = load("clone_src"), load("clone_mask")
cx, cy = [int(v) for v in open(f"{d}/clone_center.txt").read().split()]
def clone():
    out = cv2.seamlessClone((paste * 255).astype(np.uint8), (frame * 255).astype(np.uint8),
                            (cmask[..., 0] * 255).astype(np.uint8), (cx, cy), cv2.NORMAL_CLONE)
    return out.astype(np.float32) / 255.0
ops = {
    "warp": lambda: cv2.warpAffine(frame, m, (1280, 720), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REPLICATE),
    "gauss2": lambda: cv2.GaussianBlur(face, (0, 0), 2),
    "gauss10": lambda: cv2.GaussianBlur(face, (0, 0), 10),
    "rct": rct,
    "clone": clone,
}
print("ready", flush=True)
for line in sys.stdin:
    name, budget = line.split()
    f, budget = ops[name], float(budget)
    f()
    ts, start = [], time.perf_counter()
    while len(ts) < 3 or time.perf_counter() - start < budget:
        s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
    print(min(ts) * 1000.0, flush=True)
"#;

/// Rounds per figure; each side gets `budget / ROUNDS` seconds per round.
const ROUNDS: u32 = 4;

/// Runs the group.
pub fn run(ctx: &Ctx, _ui: &Ui) -> Result<Vec<Figure>> {
    let budget = if ctx.quick { 0.2 } else { 2.0 };
    let threads = dfl_image::threads();
    let frame = smooth_image(1280, 720, 3, 1)?;
    let face = smooth_image(512, 512, 3, 2)?;
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
    let m = warp_matrix();
    for (name, img) in [
        ("frame", &frame),
        ("face512", &face),
        ("rct_t", &rct_t),
        ("rct_s", &rct_s),
        ("rct_m", &rct_m),
        ("clone_src", &clone_src),
        ("clone_mask", &clone_mask),
    ] {
        write_f32(&ctx.scratch.join(format!("{name}.f32")), img)?;
    }
    std::fs::write(
        ctx.scratch.join("warp_m.txt"),
        m.iter()
            .flatten()
            .map(|v| format!("{v:.17e}"))
            .collect::<Vec<_>>()
            .join(" "),
    )?;
    std::fs::write(
        ctx.scratch.join("clone_center.txt"),
        format!("{} {}", centre.0, centre.1),
    )?;

    let mut reference = Reference::start(&ctx.scratch, threads);
    let mut figures = Vec::new();
    let mut figure = |key: &str, name: String, goal: f64, f: &mut dyn FnMut() -> Result<()>| {
        let (ours, theirs) = race(key, budget, &mut reference, f)?;
        figures.push(Figure {
            name,
            unit: "ms",
            ours,
            better: Better::Lower,
            // Goals are ratios to OpenCV; without a reference there is nothing to judge.
            goal: theirs.map(|_| goal),
            reference: theirs.map(|v| (format!("OpenCV {threads} thr"), v)),
        });
        Ok::<(), anyhow::Error>(())
    };

    figure(
        "warp",
        "image: warpAffine bicubic 1280x720x3 f32".into(),
        1.5,
        &mut || {
            dfl_image::warp_affine(&frame, &m, 1280, 720, Interp::Cubic, Border::Replicate)?;
            Ok(())
        },
    )?;
    for (key, sigma) in [("gauss2", 2.0), ("gauss10", 10.0)] {
        figure(
            key,
            format!("image: GaussianBlur sigma={sigma} 512x512x3 f32"),
            1.5,
            &mut || {
                dfl_image::gaussian_blur(&face, 0, sigma)?;
                Ok(())
            },
        )?;
    }
    figure(
        "rct",
        "image: RCT (masked, DFL merger call) 256x256".into(),
        1.5,
        &mut || {
            dfl_image::rct(
                &rct_t,
                &rct_s,
                Some(&rct_m),
                Some(&rct_m),
                dfl_image::MaskStats::DflZeroed,
            )?;
            Ok(())
        },
    )?;
    figure(
        "clone",
        "image: seamless clone 256x256 face into 1280x720".into(),
        2.0,
        &mut || {
            dfl_image::seamless_clone(&clone_src, &frame, &clone_mask, centre)?;
            Ok(())
        },
    )?;
    Ok(figures)
}

/// Alternates `ROUNDS` rounds of ours and the reference; returns the fastest run of each in
/// milliseconds (the reference `None` if it is unavailable).
fn race(
    key: &str,
    budget: f64,
    reference: &mut Option<Reference>,
    f: &mut dyn FnMut() -> Result<()>,
) -> Result<(f64, Option<f64>)> {
    let slice = budget / f64::from(ROUNDS);
    f()?;
    let mut ours = Duration::MAX;
    let mut theirs: Option<f64> = None;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut runs = 0;
        while runs < 3 || start.elapsed().as_secs_f64() < slice {
            let t = Instant::now();
            f()?;
            ours = ours.min(t.elapsed());
            runs += 1;
        }
        if let Some(r) = reference.as_mut() {
            match r.time(key, slice) {
                Ok(v) => theirs = Some(theirs.map_or(v, |t| t.min(v))),
                Err(e) => {
                    tracing::warn!("OpenCV reference stopped: {e:#}");
                    *reference = None;
                    theirs = None;
                }
            }
        }
    }
    Ok((ours.as_secs_f64() * 1000.0, theirs))
}

/// The running OpenCV timing process.
struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Reference {
    /// Starts the Python side; `None` (with a warning) if Python, numpy or cv2 is missing.
    fn start(dir: &Path, threads: usize) -> Option<Reference> {
        let python = std::env::var("DFL_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let spawned = Command::new(&python)
            .arg("-c")
            .arg(PY_SCRIPT)
            .arg(dir)
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    "OpenCV reference unavailable (cannot run {python}: {e}); set \
                     DFL_BENCH_PYTHON to a Python with numpy and opencv-python"
                );
                return None;
            }
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return None;
        };
        let mut r = Reference {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let mut line = String::new();
        if r.stdout.read_line(&mut line).is_ok() && line.trim() == "ready" {
            return Some(r);
        }
        let _ = r.child.kill();
        let mut err = String::new();
        if let Some(mut e) = r.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let _ = r.child.wait();
        tracing::warn!(
            "OpenCV reference unavailable ({python} failed: {}); set DFL_BENCH_PYTHON to a \
             Python with numpy and opencv-python",
            err.lines().last().unwrap_or("no message")
        );
        None
    }

    /// Fastest run of `key` over about `seconds`, in milliseconds.
    fn time(&mut self, key: &str, seconds: f64) -> Result<f64> {
        writeln!(self.stdin, "{key} {seconds}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.trim()
            .parse()
            .map_err(|_| anyhow!("unexpected answer {:?} for {key}", line.trim()))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rotation by 10 degrees and scale 1.1 about the frame centre (a typical face paste).
fn warp_matrix() -> Affine {
    dfl_image::rotation_matrix_2d(640.0, 360.0, 10.0, 1.1)
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

/// A binary elliptical mask (1 inside).
fn ellipse_mask(w: usize, h: usize, c: (f32, f32), r: (f32, f32)) -> Result<Image> {
    Ok(Image::from_fn(w, h, 1, |x, y, _| {
        let dx = (x as f32 - c.0) / r.0;
        let dy = (y as f32 - c.1) / r.1;
        if dx * dx + dy * dy <= 1.0 { 1.0 } else { 0.0 }
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
