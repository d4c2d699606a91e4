//! `dfl`: DeepFaceLab's numbered workflow steps as subcommands.
//!
//! Each subcommand lives in its own module and is a thin layer over a library crate: parse
//! options, draw progress, turn library errors into one clear line.

mod bench;
mod demo;
mod eval;
mod extract;
mod faceset;
mod merge;
mod model;
mod progress;
mod train;
mod video;
mod workspace;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// dfl-rs: DeepFaceLab 2.0 rebuilt in Rust. Swapping a person's face requires that person's
/// consent; every merged output carries a provenance record saying it contains synthetic faces.
#[derive(Parser, Debug)]
#[command(name = "dfl", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output: no progress bars, warnings and errors only (-qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Step 1: create or clear a DFL workspace folder.
    #[command(subcommand)]
    Workspace(workspace::WorkspaceCmd),
    /// Steps 2, 3, 3.optional and 8: extract frames, cut, denoise, build the result video.
    #[command(subcommand)]
    Video(video::VideoCmd),
    /// Steps 4/5: detect faces and 68 landmarks in every frame, write aligned faces.
    Extract(extract::ExtractArgs),
    /// Measure the landmark nets: NME against annotations, jitter on known motion.
    #[command(subcommand)]
    Eval(eval::EvalCmd),
    /// Step 4.2 util: aligned-face tools (info, pack/unpack, metadata save/restore, recover
    /// names, resize, debug pictures).
    #[command(subcommand)]
    Faceset(faceset::FacesetCmd),
    /// Step 7: merge the learned face into every dst frame (PNG frames, masks, provenance).
    Merge(merge::MergeArgs),
    /// Run every step on two bundled photos in a throw-away workspace: sample videos,
    /// frames, faces, a few minutes of training, merge, result.mp4 and a preview.
    Demo(demo::DemoArgs),
    /// Step 6: train a SAEHD or Quick96 model (saves on Ctrl-C/SIGTERM, resumes).
    #[command(subcommand)]
    Train(train::TrainCmd),
    /// Manage model folders (list, info, rename, delete, backup) and describe architectures.
    #[command(subcommand)]
    Model(model::ModelCmd),
    /// Measure dfl-rs against reference implementations timed in the same run.
    Bench(bench::BenchArgs),
}

fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (_, 2..) => "error",
        (_, 1) => "warn",
        (0, 0) => "info",
        (1, 0) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DFL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

/// Keeps freed tensor memory in the process instead of handing it back to the kernel.
///
/// Training and merging free and reallocate the same few hundred MB of tensors every step.
/// With glibc's defaults, blocks above its mmap threshold, trimmed heap tops and the extra
/// per-thread arenas go back to the kernel, and every SAEHD step faulted ~155,000 pages in
/// again (about a tenth of the step). Here the thresholds are out of reach and all threads
/// share one arena (a worker's own arena heap is unmapped whenever it empties): faults per
/// step fall to a few thousand and the peak RSS does not grow (docs/training.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // glibc refuses thresholds above its own maximum (32 MiB on some versions): fall back.
    const LARGE: libc::c_int = libc::c_int::MAX;
    const GLIBC_MMAP_MAX: libc::c_int = 32 << 20;
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE) == 0 {
            libc::mallopt(libc::M_MMAP_THRESHOLD, GLIBC_MMAP_MAX);
        }
        libc::mallopt(libc::M_TRIM_THRESHOLD, LARGE);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Other allocators (macOS, Windows, musl) keep their own defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Hands the memory [`keep_freed_memory`] keeps back to the kernel now (glibc's
/// `malloc_trim`). `dfl bench` calls it before timing a child process: on a VM, pages this
/// process holds on to would reach the child cold (launch 1.8 s instead of 0.3 s behind a
/// parent holding 4 GB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn return_freed_memory() {
    // SAFETY: malloc_trim only releases free heap pages; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Nothing is kept elsewhere.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn return_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let ui = progress::Ui {
        quiet: cli.quiet > 0,
    };
    let result = match cli.command {
        Command::Workspace(cmd) => workspace::run(cmd),
        Command::Video(cmd) => video::run(cmd, &ui),
        Command::Extract(args) => extract::run(args, &ui),
        Command::Eval(cmd) => eval::run(cmd),
        Command::Faceset(cmd) => faceset::run(cmd, &ui),
        Command::Merge(args) => merge::run(args, &ui),
        Command::Demo(args) => demo::run(args, &ui),
        Command::Train(cmd) => train::run(cmd, &ui),
        Command::Model(cmd) => model::run(cmd),
        Command::Bench(args) => bench::run(args, &ui),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the outermost context first, then its causes.
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option of every subcommand has a help text, and every optional option that takes
    /// a value shows its default (clap's `[default: ...]`, or one written in the text).
    #[test]
    fn every_option_is_explained_with_its_default() {
        fn check(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg
                    .get_long_help()
                    .or(arg.get_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if help.trim().is_empty() {
                    problems.push(format!("{path} {id}: no help"));
                }
                let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
                let is_flag = matches!(
                    arg.get_action(),
                    clap::ArgAction::SetTrue | clap::ArgAction::Count
                );
                if takes_value
                    && !is_flag
                    && !arg.is_required_set()
                    && !arg.is_positional()
                    && arg.get_default_values().is_empty()
                    && !help.contains("[default:")
                {
                    problems.push(format!("{path} --{id}: default not stated"));
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), problems);
            }
        }
        let mut problems = Vec::new();
        let mut cli = crate::Cli::command();
        cli.build();
        check(&cli, "dfl", &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
