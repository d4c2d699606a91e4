//! `dfl`: DeepFaceLab's numbered workflow steps as subcommands.
//!
//! Each subcommand lives in its own module and is a thin layer over a library crate: parse
//! options, draw progress, turn library errors into one clear line.

mod bench;
mod model;
mod progress;
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
    /// Describe model architectures (parameter counts per part).
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let ui = progress::Ui {
        quiet: cli.quiet > 0,
    };
    let result = match cli.command {
        Command::Workspace(cmd) => workspace::run(cmd),
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
