//! `dfl train` and `dfl model` end to end on the bundled training faces
//! (`crates/dfl-train/tests/data/faces`): options from flags and TOML, creation-only
//! refusal, `model info --json`, model management, SIGTERM saves, SIGKILL never breaks the
//! model.

mod common;

use common::{Scratch, dfl, ok};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn faces() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dfl-train/tests/data/faces")
        .to_str()
        .unwrap()
        .to_string()
}

/// The smallest SAEHD the option ranges allow at resolution 64.
const TINY: [&str; 12] = [
    "--resolution",
    "64",
    "--ae-dims",
    "32",
    "--e-dims",
    "16",
    "--d-dims",
    "16",
    "--d-mask-dims",
    "16",
    "--batch-size",
    "2",
];

fn train_args<'a>(model: &'a str, faces: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train", "saehd", "--model", model, "--src", faces, "--dst", faces,
    ];
    v.extend_from_slice(extra);
    v
}

fn info(model: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&dfl(&["model", "info", model, "--json"]))).unwrap()
}

/// Flags and a TOML config make a new model (stored in options.toml); `model info --json`
/// reports it; a creation-only change is refused by name and leaves the model as it was;
/// an allowed change continues the counter and is marked in the loss history.
#[test]
fn train_resume_refuse_and_describe() {
    let s = Scratch::new("train-resume");
    let model = s.path("m");
    let f = faces();
    // A device this build cannot open is refused before the new model folder exists.
    let refused = dfl(&train_args(&model, &f, &["--device", "rocm:0"]));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("rocm:0"), "{err}");
    assert!(!Path::new(&model).exists());
    let config = s.path("opts.toml");
    std::fs::write(&config, "archi = \"df\"\nrandom_src_flip = true\n").unwrap();
    let mut args = train_args(&model, &f, &TINY);
    args.extend([
        "--config",
        &config,
        "--iterations",
        "3",
        "--lr-dropout",
        "y",
    ]);
    let out = ok(&dfl(&args));
    assert!(out.contains("new SAEHD model"), "{out}");

    let i = info(&model);
    assert_eq!(i["model"], "saehd");
    assert_eq!(i["iteration"], 3);
    assert_eq!(i["options"]["archi"], "df");
    assert_eq!(i["options"]["resolution"], 64);
    assert_eq!(i["options"]["random_src_flip"], true);
    assert_eq!(i["options"]["lr_dropout"], "y");
    let h = i["loss_history"].as_array().unwrap();
    assert_eq!(h.len(), 3);
    assert!(h.iter().all(|p| p[0].as_f64().unwrap() > 0.0));
    let stored = std::fs::read_to_string(Path::new(&model).join("options.toml")).unwrap();
    assert!(stored.contains("archi = \"df\""), "{stored}");
    for f in [
        "preview_SAEHD.png",
        "preview_SAEHD_masked.png",
        "loss_history.png",
    ] {
        let p = Path::new(&model).join(f);
        assert!(image::open(&p).is_ok(), "{}", p.display());
    }

    // Creation-only options are refused by name; nothing changes.
    for (flag, value, name) in [
        ("--resolution", "96", "resolution"),
        ("--archi", "liae", "archi"),
    ] {
        let o = dfl(&train_args(&model, &f, &[flag, value, "--iterations", "1"]));
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(name), "{err}");
    }
    assert_eq!(info(&model)["iteration"], 3);

    // An allowed change (and the stored options reused without repeating them).
    let out = ok(&dfl(&train_args(
        &model,
        &f,
        &["--random-warp", "n", "--iterations", "2"],
    )));
    assert!(out.contains("random_warp true -> false"), "{out}");
    let i = info(&model);
    assert_eq!(i["iteration"], 5);
    assert_eq!(i["options"]["random_warp"], false);
    assert_eq!(i["options"]["ae_dims"], 32);
    assert_eq!(i["loss_history"].as_array().unwrap().len(), 5);
    assert_eq!(i["markers"][0]["iteration"], 3);

    // A phase preset: printed, marked, and GAN's first use is preceded by a backup.
    let out = ok(&dfl(&train_args(
        &model,
        &f,
        &["--phase", "gan", "--iterations", "1"],
    )));
    assert!(
        out.contains("phase gan:") && out.contains("gan_power=0.1"),
        "{out}"
    );
    assert!(
        out.contains("backup (before GAN is first enabled)"),
        "{out}"
    );
    let i = info(&model);
    assert_eq!(i["iteration"], 6);
    assert_eq!(i["markers"][1]["phase"], "gan");
    assert_eq!(i["options"]["lr_dropout"], "y");
    assert_eq!(i["backups"][0], "01");

    // Model management.
    let listed: serde_json::Value = serde_json::from_str(&ok(&dfl(&[
        "model",
        "list",
        s.0.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(listed[0]["name"], "m");
    ok(&dfl(&["model", "backup", &model]));
    assert!(Path::new(&model).join("autobackups/02").is_dir());
    assert_eq!(info(&model)["backups"], serde_json::json!(["01", "02"]));
    let renamed = s.path("m2");
    ok(&dfl(&["model", "rename", &model, "m2"]));
    assert_eq!(info(&renamed)["iteration"], 6);
    assert!(!dfl(&["model", "delete", &renamed]).status.success());
    ok(&dfl(&["model", "delete", &renamed, "--yes"]));
    assert!(!Path::new(&renamed).exists());
    assert!(!dfl(&["model", "info", &renamed, "--json"]).status.success());
}

/// A model saved by a killed trainer always loads (weights, optimizer state and options),
/// whatever moment the kill hits; SIGTERM stops with a save and exit status 0.
#[test]
fn sigkill_never_breaks_the_model_and_sigterm_saves() {
    let s = Scratch::new("train-kill");
    let model = s.path("m");
    let f = faces();
    // Saves after every iteration, so kills land inside saves as often as not.
    let mut args = train_args(&model, &f, &TINY);
    args.extend(["--save-every", "0", "--archi", "liae"]);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_dfl"))
            .args(&args)
            .env("DFL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // A fixed pseudo-random sequence of kill delays (0.3 .. 3.3 s).
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut last_iteration = 0;
    let mut loaded = 0;
    for round in 0..20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(300 + x % 3000);
        let mut child = spawn();
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        let Some(st) = dfl_train::model_dir::stored_state(Path::new(&model)).unwrap() else {
            // Killed before the first save: nothing to load yet.
            continue;
        };
        let ckpt = dfl_nn::checkpoint::CheckpointDir::load_generation(&st.generation)
            .unwrap_or_else(|e| panic!("round {round} ({delay:?}): {e}"));
        let m = dfl_nn::Saehd::from_loaded(ckpt, dfl_nn::DeviceSpec::Cpu, None)
            .unwrap_or_else(|e| panic!("round {round} ({delay:?}): {e}"));
        assert!(m.iteration() >= last_iteration, "round {round}");
        assert_eq!(m.loss_history().len() as u64, m.iteration());
        last_iteration = m.iteration();
        loaded += 1;
    }
    eprintln!("{loaded} of 20 kills left a checkpoint; iteration {last_iteration}");
    assert!(
        loaded >= 10 && last_iteration > 0,
        "{loaded} {last_iteration}"
    );

    // SIGTERM: save and exit 0.
    let mut child = spawn();
    let start = Instant::now();
    let before = last_iteration;
    // (Read while the trainer writes: a generation may vanish between listing and reading.)
    let now = || {
        dfl_train::model_dir::stored_state(Path::new(&model))
            .ok()
            .flatten()
            .map_or(0, |s| s.iteration)
    };
    while now() < before + 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    ok(&Command::new("kill").args(["-TERM", &pid]).output().unwrap());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(info(&model)["iteration"].as_u64().unwrap() >= before + 2);
}

/// Quick96 trains with its fixed settings and refuses SAEHD options in a TOML-free way:
/// it has no such flags, and an existing SAEHD model is not trained as Quick96.
#[test]
fn quick96_trains_and_keeps_its_class() {
    let s = Scratch::new("train-q96");
    let model = s.path("q");
    let f = faces();
    ok(&dfl(&[
        "train",
        "quick96",
        "--model",
        &model,
        "--src",
        &f,
        "--dst",
        &f,
        "--iterations",
        "1",
    ]));
    let i = info(&model);
    assert_eq!(i["model"], "quick96");
    assert_eq!(i["iteration"], 1);
    assert_eq!(i["options"]["resolution"], 96);
    let o = dfl(&train_args(&model, &f, &["--iterations", "1"]));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Quick96"), "{err}");
}

/// Pretraining trains both sides on --pretrain-faceset; switching pretrain off restarts the
/// iteration counter and the loss history (DFL's `set_iter(0)`), marked as a change.
#[test]
fn pretrain_off_restarts_the_counter() {
    let s = Scratch::new("train-pretrain");
    let model = s.path("p");
    let f = faces();
    let mut args = vec![
        "train",
        "saehd",
        "--model",
        &model,
        "--pretrain",
        "true",
        "--pretrain-faceset",
        &f,
        "--iterations",
        "2",
    ];
    args.extend_from_slice(&TINY);
    ok(&dfl(&args));
    let i = info(&model);
    assert_eq!(
        (i["iteration"].as_u64(), &i["options"]["pretrain"]),
        (Some(2), &serde_json::json!(true))
    );
    // Without --pretrain-faceset a pretraining model cannot go on.
    let o = dfl(&["train", "saehd", "--model", &model, "--iterations", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pretrain-faceset"));
    ok(&dfl(&train_args(
        &model,
        &f,
        &["--pretrain", "false", "--iterations", "1"],
    )));
    let i = info(&model);
    assert_eq!(i["iteration"], 1);
    assert_eq!(i["options"]["pretrain"], false);
    assert_eq!(i["loss_history"].as_array().unwrap().len(), 1);
    assert_eq!(i["markers"][0]["changes"][0]["option"], "pretrain");
}
