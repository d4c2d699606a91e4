//! `dfl bench`: every speed figure of dfl-rs next to a reference measured in the same run.
//!
//! Each group (one module per stage) returns [`Figure`]s. A figure carries our number, the
//! reference's number (ffmpeg, OpenCV, PyTorch… run on this machine, now) and the goal, so
//! the printed ratio is meaningful on whatever machine runs it. Speed targets live here, never
//! in timed tests.

mod extract;
mod faceset;
mod image;
mod merge;
mod nn;
mod train;
mod video;

use crate::progress::Ui;
use anyhow::{Result, bail};
use clap::Args;
use dfl_nn::DeviceSpec;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of `dfl bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Groups to run (default: all). Known groups are listed by --list.
    pub groups: Vec<String>,
    /// List the groups and exit.
    #[arg(long)]
    pub list: bool,
    /// Fewer repetitions and smaller inputs: a smoke run, not a measurement.
    #[arg(long)]
    pub quick: bool,
    /// Also write the figures as JSON to this file [default: none].
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where the `nn` group's steps run: cpu, or a GPU this build supports (cuda:N, ...);
    /// the PyTorch reference then runs on the same kind of device. Other groups use the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
}

/// Context handed to every group.
pub struct Ctx {
    /// `--quick` was given.
    pub quick: bool,
    /// Scratch folder for generated inputs, removed at the end.
    pub scratch: PathBuf,
    /// `--device`: where the `nn` group runs.
    pub device: DeviceSpec,
}

/// Which direction is better for a figure's unit.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughputs (frames/s, files/s).
    Higher,
    /// Times (ms per step).
    Lower,
}

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured, with the input size.
    pub name: String,
    /// Unit of `ours` and `reference`.
    pub unit: &'static str,
    /// Our measurement.
    pub ours: f64,
    /// Which direction is better.
    pub better: Better,
    /// Name of the reference implementation, and its measurement in the same run.
    pub reference: Option<(String, f64)>,
    /// Goal on the ratio ours/reference (for `Higher`: at least; for `Lower`: at most), or,
    /// without a reference, on `ours` itself.
    pub goal: Option<f64>,
}

impl Figure {
    /// ours / reference.
    pub fn ratio(&self) -> Option<f64> {
        self.reference
            .as_ref()
            .filter(|(_, r)| *r > 0.0)
            .map(|(_, r)| self.ours / r)
    }

    /// Whether the goal is met (`None` when there is no goal).
    pub fn meets_goal(&self) -> Option<bool> {
        let value = self.ratio().unwrap_or(self.ours);
        self.goal.map(|g| match self.better {
            Better::Higher => value >= g,
            Better::Lower => value <= g,
        })
    }
}

type Group = fn(&Ctx, &Ui) -> Result<Vec<Figure>>;

/// Every bench group, in pipeline order.
fn groups() -> Vec<(&'static str, Group)> {
    vec![
        ("video", video::run),
        ("extract", extract::run),
        ("faceset", faceset::run),
        ("image", image::run),
        ("nn", nn::run),
        ("train", train::run),
        ("merge", merge::run),
    ]
}

/// Median wall time of `runs` calls of `f` (after one warm-up call).
pub fn median_time(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    f()?;
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

pub fn run(args: BenchArgs, ui: &Ui) -> Result<()> {
    let all = groups();
    if args.list {
        for (name, _) in &all {
            println!("{name}");
        }
        return Ok(());
    }
    for g in &args.groups {
        if !all.iter().any(|(n, _)| n == g) {
            let names: Vec<_> = all.iter().map(|(n, _)| *n).collect();
            bail!("unknown bench group '{g}' (known: {})", names.join(", "));
        }
    }
    let scratch = std::env::temp_dir().join(format!("dfl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let ctx = Ctx {
        quick: args.quick,
        scratch: scratch.clone(),
        device: args.device,
    };
    let mut figures = Vec::new();
    for (name, group) in &all {
        if !args.groups.is_empty() && !args.groups.iter().any(|g| g == name) {
            continue;
        }
        tracing::info!("bench group {name}");
        let got = group(&ctx, ui);
        match got {
            Ok(f) => {
                for fig in &f {
                    print_figure(fig);
                }
                figures.extend(f);
            }
            Err(e) => eprintln!("bench group {name} failed: {e:#}"),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&figures)?)?;
    }
    Ok(())
}

fn print_figure(f: &Figure) {
    let reference = match &f.reference {
        Some((name, v)) => format!("{name}: {v:.2} {}", f.unit),
        None => "-".to_string(),
    };
    let ratio = f.ratio().map(|r| format!("{r:.2}x")).unwrap_or_default();
    let goal = match (f.goal, f.better, f.reference.is_some()) {
        (Some(g), Better::Higher, true) => format!("goal ratio >= {g}"),
        (Some(g), Better::Lower, true) => format!("goal ratio <= {g}"),
        (Some(g), Better::Higher, false) => format!("goal >= {g} {}", f.unit),
        (Some(g), Better::Lower, false) => format!("goal <= {g} {}", f.unit),
        (None, _, _) => String::new(),
    };
    let verdict = match f.meets_goal() {
        Some(true) => "ok",
        Some(false) => "MISSED",
        None => "",
    };
    println!(
        "{:<55} {:>10.2} {:<9} | {:<32} {:>7} {} {}",
        f.name, f.ours, f.unit, reference, ratio, goal, verdict
    );
}
