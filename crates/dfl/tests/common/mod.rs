//! Helpers shared by the CLI test binaries: running the built `dfl`, checking its exit, and
//! a scratch folder removed on drop. Each test binary uses a subset of them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `dfl` binary under test with `args` (warnings-only logging).
pub fn dfl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dfl"))
        .args(args)
        .env("DFL_LOG", "warn")
        .output()
        .unwrap()
}

/// Asserts the run succeeded (showing its stderr if not) and returns its stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// An empty folder in the temp dir, unique per test binary and tag, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("dfl-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    /// The folder as a command-line argument.
    pub fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// `name` inside the folder, as a command-line argument.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
