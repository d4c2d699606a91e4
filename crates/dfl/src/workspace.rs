//! `dfl workspace init|clear` (DFL step 1 "clear workspace", and the folder layout of §10.2).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::fs;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Folders of a DFL workspace, created by `init` (parents first).
pub const LAYOUT: [&str; 5] = [
    "data_src",
    "data_src/aligned",
    "data_dst",
    "data_dst/aligned",
    "model",
];

#[derive(Subcommand, Debug)]
pub enum WorkspaceCmd {
    /// Create DFL's layout (data_src/, data_src/aligned/, data_dst/, data_dst/aligned/, model/)
    /// in DIR. Existing folders and files are kept untouched.
    Init(InitArgs),
    /// Delete the work products in DIR (frames, aligned faces, merged frames, models, results)
    /// and recreate the empty layout. The source videos data_src.* and data_dst.* and any
    /// other files of yours are kept. Asks for confirmation unless --yes.
    Clear(ClearArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Workspace folder (created if missing) [default: workspace]
    #[arg(default_value = "workspace")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct ClearArgs {
    /// Workspace folder to clear.
    pub dir: PathBuf,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
}

pub fn run(cmd: WorkspaceCmd) -> Result<()> {
    match cmd {
        WorkspaceCmd::Init(a) => {
            init(&a.dir)?;
            println!("workspace ready at {}", a.dir.display());
            Ok(())
        }
        WorkspaceCmd::Clear(a) => clear(&a.dir, a.yes),
    }
}

/// Creates the layout under `dir`; never removes anything.
pub fn init(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("{} exists and is not a folder", dir.display());
    }
    for sub in LAYOUT {
        let p = dir.join(sub);
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    Ok(())
}

/// Entries of the workspace that `clear` removes: the layout folders and DFL's result videos.
fn clear_targets(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for top in ["data_src", "data_dst", "model"] {
        let p = dir.join(top);
        if p.symlink_metadata().is_ok() {
            out.push(p);
        }
    }
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with("result.") || name.starts_with("result_mask."))
            && entry.file_type()?.is_file()
        {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn is_workspace(dir: &Path) -> bool {
    ["data_src", "data_dst", "model"]
        .iter()
        .any(|d| dir.join(d).is_dir())
}

fn clear(dir: &Path, yes: bool) -> Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    if !is_workspace(dir) {
        bail!(
            "{} does not look like a DFL workspace (no data_src/, data_dst/ or model/); nothing deleted",
            dir.display()
        );
    }
    let targets = clear_targets(dir)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to clear {} without confirmation: pass --yes",
                dir.display()
            );
        }
        eprint!(
            "Delete {} and recreate an empty layout in {}? [y/N] ",
            targets
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", "),
            dir.display()
        );
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not confirmed; nothing deleted");
        }
    }
    for t in &targets {
        // symlink_metadata: a link is removed as a link, never followed out of the workspace.
        let meta = t.symlink_metadata()?;
        if meta.is_dir() {
            fs::remove_dir_all(t)
        } else {
            fs::remove_file(t)
        }
        .with_context(|| format!("cannot delete {}", t.display()))?;
    }
    init(dir)?;
    println!("workspace {} cleared", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dfl-ws-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn init_creates_layout_and_keeps_files() {
        let d = tmp("init");
        fs::create_dir_all(d.join("data_src")).unwrap();
        fs::write(d.join("data_src/00001.png"), b"frame").unwrap();
        init(&d).unwrap();
        for sub in LAYOUT {
            assert!(d.join(sub).is_dir(), "{sub}");
        }
        assert_eq!(fs::read(d.join("data_src/00001.png")).unwrap(), b"frame");
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn clear_keeps_videos_and_never_follows_links() {
        let d = tmp("clear");
        let outside = tmp("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("precious.txt"), b"keep").unwrap();
        init(&d).unwrap();
        fs::write(d.join("data_src.mp4"), b"video").unwrap();
        fs::write(d.join("data_dst/00001.png"), b"frame").unwrap();
        fs::write(d.join("result.mp4"), b"out").unwrap();
        std::os::unix::fs::symlink(&outside, d.join("model/linked")).unwrap();
        clear(&d, true).unwrap();
        assert_eq!(fs::read(d.join("data_src.mp4")).unwrap(), b"video");
        assert!(!d.join("data_dst/00001.png").exists());
        assert!(!d.join("result.mp4").exists());
        assert!(d.join("model").is_dir());
        assert_eq!(fs::read(outside.join("precious.txt")).unwrap(), b"keep");
        fs::remove_dir_all(&d).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn clear_refuses_non_workspace() {
        let d = tmp("notws");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("thesis.pdf"), b"x").unwrap();
        assert!(clear(&d, true).is_err());
        assert!(d.join("thesis.pdf").exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
