//! Bench group `train`: ms/iteration of SAEHD at DFL's defaults (liae-ud, 128 px, ae 256,
//! e 64, d 64, mask 22, AdaBelief) at batch 4 and 8 and of Quick96, with the data pipeline
//! on (the real trainer on the bundled faces) and off (the same step on one prepared batch),
//! and the share of the trainer's time spent waiting for batches (the direct measure of the
//! pipeline keeping up; on a loaded machine the on/off difference is mostly noise);
//! the trainer's peak RSS and time from launch to the first iteration with a 20,000-face
//! faceset (hard links of the bundled faces in scratch), as a child `dfl train` process;
//! and, at batch 4, the step with each CPU convolution (burn-flex's, our im2col, our
//! Winograd F(2x2) only, our default Winograd with F(4x4)) taking turns in the same run.
//!
//! The reference is DFL 2.0 itself (TensorFlow-cpu 2.21, 2 threads, a 2-core machine like
//! ours), **measured elsewhere** (figures from issue 7, not rerun here: DFL needs Python and
//! TensorFlow). The PyTorch reference of the same SAEHD step is in the `nn` group.

use super::{Better, Ctx, Figure};
use crate::progress::Ui;
use anyhow::{Context, Result, bail};
use dfl_nn::hostconv::{CpuConv, set_cpu_conv};
use dfl_nn::{DeviceSpec, Quick96, Saehd, SaehdOptions};
use dfl_train::pipeline::{Facesets, build_batch, planner};
use dfl_train::trainer::pipeline_config;
use dfl_train::{Faceset, ModelKind, OptionOverrides, TrainEvent, TrainObserver, TrainRequest};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// DFL 2.0's figures (measured elsewhere, see the module doc): ms/iteration and RSS in MB.
const DFL_SAEHD_B4_MS: f64 = 3142.0;
const DFL_SAEHD_B8_MS: f64 = 5556.0;
const DFL_QUICK96_MS: f64 = 1369.0;
const DFL_SAEHD_B4_RSS_MB: f64 = 5210.0;
/// DFL's launch-to-first-iteration time: 15-22 s; the lower end.
const DFL_FIRST_ITER_S: f64 = 15.0;
const DFL: &str = "DFL 2.0 TF-cpu (measured elsewhere)";

fn faces() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dfl-train/tests/data/faces")
}

/// Collects the per-iteration times of a run.
#[derive(Default)]
struct Times(Mutex<Vec<f64>>);

impl TrainObserver for Times {
    fn event(&self, e: &TrainEvent<'_>) {
        if let TrainEvent::Iteration { ms, .. } = e
            && let Ok(mut v) = self.0.lock()
        {
            v.push(*ms);
        }
    }
}

/// The fastest of the timed iterations: on a shared machine the one least disturbed by
/// other load (as the `nn` group does).
fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::NAN, f64::min)
}

fn saehd_defaults(batch: usize) -> OptionOverrides {
    OptionOverrides {
        batch_size: Some(batch),
        ..OptionOverrides::default()
    }
}

/// Fastest ms/iteration of the real trainer (pipeline on), after the first iteration, and
/// the share (%) of the run's time after the first batch that the engine waited for data.
fn with_pipeline(
    ctx: &Ctx,
    kind: ModelKind,
    overrides: OptionOverrides,
    iters: u64,
) -> Result<(f64, f64)> {
    let dir = ctx.scratch.join(format!("train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut req = TrainRequest::new(kind, &dir);
    req.src = Some(faces());
    req.dst = Some(faces());
    req.overrides = overrides;
    req.iterations = Some(iters + 1);
    req.save_interval = Duration::from_secs(24 * 3600);
    let times = Times::default();
    let report = dfl_train::train(&req, &times, &dfl_core::NoProgress, &AtomicBool::new(false))?;
    let _ = std::fs::remove_dir_all(&dir);
    let v = times.0.into_inner().unwrap_or_default();
    let after_first: f64 = v.iter().skip(1).sum();
    let wait_pct = if after_first > 0.0 {
        100.0 * report.data_wait_ms / after_first
    } else {
        0.0
    };
    Ok((best(v.into_iter().skip(1).collect()), wait_pct))
}

/// A model and one prepared batch of the bundled faces: the step without the data pipeline.
struct Prepared {
    model: Model,
    batch: dfl_nn::AeBatch,
}

enum Model {
    Saehd(Box<Saehd>),
    Quick96(Box<Quick96>),
}

impl Prepared {
    /// Builds the model and the batch and runs one untimed step (lazy weight init).
    fn new(kind: ModelKind, options: &SaehdOptions) -> Result<Self> {
        let set = Arc::new(Faceset::open(&faces())?);
        let sets = Facesets {
            src: set.clone(),
            dst: set,
        };
        let cfg = pipeline_config(kind, options, options.batch_size, 1, 1, 0);
        let plan = planner(&sets, &cfg)
            .plan(0)
            .context("no faces to plan a batch from")?;
        let device = burn::tensor::Device::flex();
        let batch = build_batch(&sets, &cfg, &plan)?.to_ae_batch(&device)?;
        let model = match kind {
            ModelKind::Saehd => {
                Model::Saehd(Box::new(Saehd::new(options.clone(), DeviceSpec::Cpu, 0)?))
            }
            ModelKind::Quick96 => Model::Quick96(Box::new(Quick96::new(DeviceSpec::Cpu, 0)?)),
        };
        let mut p = Self { model, batch };
        p.step_ms()?;
        Ok(p)
    }

    /// One timed training step, ms.
    fn step_ms(&mut self) -> Result<f64> {
        let model: &mut Saehd = match &mut self.model {
            Model::Saehd(s) => s,
            Model::Quick96(q) => q.as_saehd_mut(),
        };
        let t = Instant::now();
        model.train_step(&self.batch)?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }
}

/// Fastest ms of the same model's step on one prepared batch (pipeline off).
fn without_pipeline(kind: ModelKind, options: &SaehdOptions, iters: u64) -> Result<f64> {
    let mut p = Prepared::new(kind, options)?;
    let v = (0..iters)
        .map(|_| p.step_ms())
        .collect::<Result<Vec<_>>>()?;
    Ok(best(v))
}

/// Fastest step ms (pipeline off) with each CPU convolution (burn-flex's, our im2col, our
/// Winograd F(2x2) only, our default Winograd with F(4x4) on large maps), the four taking
/// turns step by step so that all see the same machine load.
fn conv_paths(kind: ModelKind, options: &SaehdOptions, iters: u64) -> Result<[f64; 4]> {
    let paths = [
        CpuConv::Burn,
        CpuConv::Im2col,
        CpuConv::WinogradF2,
        CpuConv::Winograd,
    ];
    let mut p = Prepared::new(kind, options)?;
    let mut best_ms = [f64::INFINITY; 4];
    let result = (|| {
        for _ in 0..iters {
            for (i, path) in paths.into_iter().enumerate() {
                set_cpu_conv(path);
                best_ms[i] = best_ms[i].min(p.step_ms()?);
            }
        }
        Ok(best_ms)
    })();
    set_cpu_conv(CpuConv::Winograd);
    result
}

/// Peak RSS (MB), launch-to-training-start and launch-to-end-of-first-iteration times (s) of
/// `dfl train saehd` at DFL's defaults, batch 4, on `n` faces.
fn big_faceset_run(ctx: &Ctx, n: usize) -> Result<(f64, f64, f64)> {
    let src = faces();
    let names: Vec<PathBuf> = std::fs::read_dir(&src)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    if names.is_empty() {
        bail!("no faces in {}", src.display());
    }
    let big = ctx.scratch.join("faces-big");
    std::fs::create_dir_all(&big)?;
    for i in 0..n {
        let from = &names[i % names.len()];
        let to = big.join(format!("{i:06}.jpg"));
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to)?;
        }
    }
    let model = ctx.scratch.join("model-big");
    let _ = std::fs::remove_dir_all(&model);
    crate::return_freed_memory();
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["train", "saehd", "--batch-size", "4", "--iterations", "2"])
        .arg("--model")
        .arg(&model)
        .arg("--src")
        .arg(&big)
        .arg("--dst")
        .arg(&big)
        .env("DFL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak_kb = 0u64;
    while child.try_wait()?.is_none() {
        peak_kb = peak_kb.max(vm_hwm_kb(&status_file).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("dfl train on {n} faces failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let seconds = |after: &str| {
        text.split(after)
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|s| s.parse::<f64>().ok())
            .with_context(|| format!("no '{after}' time in the trainer's output"))
    };
    let started = seconds("training started ")?;
    let first = seconds("first iteration done ")?;
    let _ = std::fs::remove_dir_all(&big);
    let _ = std::fs::remove_dir_all(&model);
    Ok((peak_kb as f64 / 1024.0, started, first))
}

/// `VmHWM` (peak resident set) of a live process, kB.
fn vm_hwm_kb(status: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn run(ctx: &Ctx, ui: &Ui) -> Result<Vec<Figure>> {
    let iters = if ctx.quick { 1 } else { 3 };
    let configs: Vec<(String, ModelKind, usize, f64)> = if ctx.quick {
        vec![("Quick96".into(), ModelKind::Quick96, 4, DFL_QUICK96_MS)]
    } else {
        vec![
            (
                "SAEHD defaults batch 4".into(),
                ModelKind::Saehd,
                4,
                DFL_SAEHD_B4_MS,
            ),
            (
                "SAEHD defaults batch 8".into(),
                ModelKind::Saehd,
                8,
                DFL_SAEHD_B8_MS,
            ),
            ("Quick96".into(), ModelKind::Quick96, 4, DFL_QUICK96_MS),
        ]
    };
    let progress = ui.progress();
    dfl_core::Progress::start(&progress, "train bench", Some(configs.len() as u64 + 1));
    // The launch run first, while this process is small: on a VM, gigabytes held by the
    // parent make the child's first page faults slow, and a user's `dfl train` does not
    // start behind a benchmark that has just trained three models.
    let n = if ctx.quick { 2_000 } else { 20_000 };
    let (rss_mb, started_s, first_s) = big_faceset_run(ctx, n)?;
    dfl_core::Progress::inc(&progress, 1);
    let mut figures = Vec::new();
    for (name, kind, batch, dfl_ms) in configs {
        let (overrides, options) = match kind {
            ModelKind::Saehd => {
                let o = saehd_defaults(batch);
                let opts = o.new_model_options()?;
                (o, opts)
            }
            ModelKind::Quick96 => (OptionOverrides::default(), Quick96::options()),
        };
        let (on, wait_pct) = with_pipeline(ctx, kind, overrides, iters)?;
        let off = without_pipeline(kind, &options, iters)?;
        figures.push(Figure {
            name: format!("{name}: ms/iteration, data pipeline on"),
            unit: "ms",
            ours: on,
            better: Better::Lower,
            reference: Some((DFL.to_string(), dfl_ms)),
            goal: Some(1.0),
        });
        figures.push(Figure {
            name: format!("{name}: ms/iteration, data pipeline off"),
            unit: "ms",
            ours: off,
            better: Better::Lower,
            reference: Some((DFL.to_string(), dfl_ms)),
            goal: Some(1.0),
        });
        figures.push(Figure {
            name: format!("{name}: pipeline on / off (goal: < 5 % cost)"),
            unit: "ratio",
            ours: on / off,
            better: Better::Lower,
            reference: None,
            goal: Some(1.05),
        });
        figures.push(Figure {
            name: format!("{name}: engine waiting for data"),
            unit: "%",
            ours: wait_pct,
            better: Better::Lower,
            reference: None,
            goal: Some(5.0),
        });
        if batch == 4 {
            let [burn_ms, im2col_ms, f2_ms, winograd_ms] = conv_paths(kind, &options, iters)?;
            figures.push(Figure {
                name: format!("{name}: ms/iteration, our im2col convolution"),
                unit: "ms",
                ours: im2col_ms,
                better: Better::Lower,
                reference: Some(("burn-flex's convolution, same run".into(), burn_ms)),
                goal: None,
            });
            figures.push(Figure {
                name: format!("{name}: ms/iteration, our Winograd F(2x2) convolution"),
                unit: "ms",
                ours: f2_ms,
                better: Better::Lower,
                reference: Some(("our im2col convolution, same run".into(), im2col_ms)),
                goal: None,
            });
            figures.push(Figure {
                name: format!("{name}: ms/iteration, our Winograd F(4x4)+F(2x2) (default)"),
                unit: "ms",
                ours: winograd_ms,
                better: Better::Lower,
                reference: Some(("our Winograd F(2x2) only, same run".into(), f2_ms)),
                goal: None,
            });
        }
        dfl_core::Progress::inc(&progress, 1);
    }
    figures.push(Figure {
        name: format!("SAEHD defaults batch 4, {n} faces: peak RSS"),
        unit: "MB",
        ours: rss_mb,
        better: Better::Lower,
        reference: Some((DFL.to_string(), DFL_SAEHD_B4_RSS_MB)),
        goal: Some(0.33),
    });
    figures.push(Figure {
        name: format!("SAEHD defaults batch 4, {n} faces: launch to training start (goal 3 s)"),
        unit: "s",
        ours: started_s,
        better: Better::Lower,
        reference: Some((DFL.to_string(), DFL_FIRST_ITER_S)),
        goal: Some(3.0 / DFL_FIRST_ITER_S),
    });
    figures.push(Figure {
        name: format!("SAEHD defaults batch 4, {n} faces: launch to end of 1st iteration"),
        unit: "s",
        ours: first_s,
        better: Better::Lower,
        reference: Some((DFL.to_string(), DFL_FIRST_ITER_S)),
        goal: None,
    });
    dfl_core::Progress::finish(&progress);
    Ok(figures)
}
