//! The model folder: what the trainer writes next to dfl-nn's checkpoint generations, and
//! the management jobs of `dfl model` (list, info, rename, delete, backup).
//!
//! ```text
//! <model>/00000042/…             checkpoint generations (dfl-nn, crash-safe)
//! <model>/options.toml           the options in effect (DFL names; usable as --config)
//! <model>/train.json             trainer state: option-change markers, LR scale, backups
//! <model>/loss_history.json      [src, dst] per iteration + markers
//! <model>/loss_history.png       the loss plot, markers as grey lines
//! <model>/preview_SAEHD.png      previews (also *_masked.png; Quick96 likewise)
//! <model>/preview_samples.png    the fixed faces previews are made from
//! <model>/history/<preview>/     preview history (with write_preview_history)
//! <model>/autobackups/01..24/    rotating backups (01 newest)
//! ```
//! Every file is written atomically (temp file, fsync, rename), so a crash leaves the old or
//! the new version; the checkpoint is the source of truth, the other files can lag one save.

use crate::error::{Result, TrainError};
use crate::options::OptionChange;
use dfl_nn::checkpoint::{CheckpointDir, STATE_FILE};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// `options.toml`.
pub const OPTIONS_FILE: &str = "options.toml";
/// `train.json`.
pub const TRAIN_STATE_FILE: &str = "train.json";
/// `loss_history.json`.
pub const LOSS_JSON: &str = "loss_history.json";
/// `loss_history.png`.
pub const LOSS_PNG: &str = "loss_history.png";
/// `preview_samples.png`.
pub const PREVIEW_SAMPLES: &str = "preview_samples.png";
/// Preview history folder.
pub const HISTORY_DIR: &str = "history";
/// Rotating backups folder.
pub const BACKUP_DIR: &str = "autobackups";
/// How many rotating backups are kept (DFL: 24).
pub const MAX_BACKUPS: usize = 24;
/// A file that asks a running trainer to write its previews now (deleted when done).
pub const PREVIEW_REQUEST: &str = "preview.request";
/// The lock file a trainer holds while it writes the folder.
pub const LOCK_FILE: &str = ".lock";

/// Where the loss history changed regime: options changed (or a phase was applied) at this
/// iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// Iteration at which the new options took effect.
    pub iteration: u64,
    /// The phase preset applied, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Options that changed.
    pub changes: Vec<OptionChange>,
}

/// `train.json`: what the trainer remembers between runs besides the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainerState {
    /// Option-change markers, oldest first.
    pub markers: Vec<Marker>,
    /// Learning-rate factor left by `--on-nan lower-lr` (1 = DFL's rate).
    pub lr_scale: f32,
    /// Non-finite losses recovered from so far.
    pub nan_recoveries: u32,
    /// Whether GAN was ever on (the automatic backup is made the first time).
    pub gan_was_enabled: bool,
    /// Total seconds spent training, over all runs.
    pub train_seconds: f64,
}

impl Default for TrainerState {
    fn default() -> Self {
        TrainerState {
            markers: Vec::new(),
            lr_scale: 1.0,
            nan_recoveries: 0,
            gan_was_enabled: false,
            train_seconds: 0.0,
        }
    }
}

/// Writes `bytes` to `path` crash-safely.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    dfl_core::atomic_write(path, bytes).map_err(|e| TrainError::io(path, e))
}

impl TrainerState {
    /// Reads `train.json` of `dir` (defaults when absent).
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(TRAIN_STATE_FILE);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| TrainError::bad_file(&p, format!("not a trainer state: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(TrainError::io(&p, e)),
        }
    }

    /// Writes `train.json` of `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join(TRAIN_STATE_FILE);
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| TrainError::bad_file(&p, e.to_string()))?;
        write_atomic(&p, &json)
    }
}

/// What `state.json` of the newest generation says (read without touching the weights).
#[derive(Debug, Clone)]
pub struct StoredState {
    /// The generation folder.
    pub generation: PathBuf,
    /// `SAEHD` or `Quick96`.
    pub class: String,
    /// Completed iterations.
    pub iteration: u64,
    /// The model's seed (fresh weights and sampling derive from it).
    pub seed: u64,
    /// The options object.
    pub options: serde_json::Value,
    /// `[src, dst]` per iteration.
    pub loss_history: Vec<[f32; 2]>,
}

/// Reads the newest complete generation's `state.json`; `None` when the folder holds no
/// checkpoint.
pub fn stored_state(dir: &Path) -> Result<Option<StoredState>> {
    let gens = CheckpointDir::new(dir, 0).complete_generations()?;
    let Some(newest) = gens.into_iter().next() else {
        return Ok(None);
    };
    let p = newest.join(STATE_FILE);
    let bytes = fs::read(&p).map_err(|e| TrainError::io(&p, e))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| TrainError::bad_file(&p, e.to_string()))?;
    let class = v
        .get("class")
        .and_then(|c| c.as_str())
        .ok_or_else(|| TrainError::bad_file(&p, "no model class"))?
        .to_string();
    let iteration = v
        .get("iteration")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| TrainError::bad_file(&p, "no iteration"))?;
    let loss_history: Vec<[f32; 2]> = match v.get("loss_history") {
        Some(h) => serde_json::from_value(h.clone())
            .map_err(|e| TrainError::bad_file(&p, format!("loss_history: {e}")))?,
        None => Vec::new(),
    };
    Ok(Some(StoredState {
        generation: newest,
        class,
        iteration,
        seed: v
            .get("seed")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        options: v.get("options").cloned().unwrap_or_default(),
        loss_history,
    }))
}

/// The loss history reduced to at most `max_points` entries by averaging equal windows
/// (`step` iterations per entry); the whole history when it is shorter.
pub fn sampled_history(h: &[[f32; 2]], max_points: usize) -> (usize, Vec<[f32; 2]>) {
    let max_points = max_points.max(1);
    if h.len() <= max_points {
        return (1, h.to_vec());
    }
    let step = h.len().div_ceil(max_points);
    let v = h
        .chunks(step)
        .map(|c| {
            let n = c.len() as f32;
            [
                c.iter().map(|p| p[0]).sum::<f32>() / n,
                c.iter().map(|p| p[1]).sum::<f32>() / n,
            ]
        })
        .collect();
    (step, v)
}

/// What `dfl model info DIR --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// `saehd` or `quick96`.
    pub model: String,
    /// The model folder.
    pub path: PathBuf,
    /// Completed iterations.
    pub iteration: u64,
    /// Options in effect at the last save (DFL's names).
    pub options: serde_json::Value,
    /// `[src_loss, dst_loss]` per iteration, or per `loss_history_step` iterations (window
    /// means) when the history is long.
    pub loss_history: Vec<[f32; 2]>,
    /// Iterations per `loss_history` entry.
    pub loss_history_step: usize,
    /// Option-change markers.
    pub markers: Vec<Marker>,
    /// Checkpoint generations present (newest first).
    pub generations: Vec<String>,
    /// Seconds since the Unix epoch of the newest save.
    pub saved_unix: Option<u64>,
    /// Bytes of the newest generation (weights + optimizer + state).
    pub checkpoint_bytes: u64,
    /// Backups in `autobackups/` (01 newest).
    pub backups: Vec<String>,
    /// Total training time over all runs, seconds.
    pub train_seconds: f64,
}

fn dir_size(p: &Path) -> u64 {
    fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Backups present, oldest last (`01`, `02`, …).
pub fn backups(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join(BACKUP_DIR))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Describes the model in `dir` (reads `state.json` and `train.json` only).
pub fn model_info(dir: &Path, max_points: usize) -> Result<ModelInfo> {
    let st = stored_state(dir)?
        .ok_or_else(|| TrainError::Refused(format!("{}: no trained model here", dir.display())))?;
    let trainer = TrainerState::load(dir)?;
    let (step, loss_history) = sampled_history(&st.loss_history, max_points);
    let generations = CheckpointDir::new(dir, 0)
        .complete_generations()?
        .iter()
        .filter_map(|g| g.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let saved_unix = fs::metadata(st.generation.join(STATE_FILE))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    Ok(ModelInfo {
        model: st.class.to_ascii_lowercase(),
        path: dir.to_path_buf(),
        iteration: st.iteration,
        options: st.options,
        loss_history,
        loss_history_step: step,
        markers: trainer.markers,
        generations,
        saved_unix,
        checkpoint_bytes: dir_size(&st.generation),
        backups: backups(dir),
        train_seconds: trainer.train_seconds,
    })
}

/// One line of `dfl model list`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Folder name.
    pub name: String,
    /// The folder.
    pub path: PathBuf,
    /// `saehd` or `quick96`.
    pub model: String,
    /// Completed iterations.
    pub iteration: u64,
    /// Seconds since the Unix epoch of the newest save.
    pub saved_unix: Option<u64>,
}

/// The models in the sub-folders of `parent` (and `parent` itself if it is one), newest
/// save first, as DFL lists models by modification time.
pub fn list_models(parent: &Path) -> Result<Vec<ModelSummary>> {
    let mut dirs = vec![parent.to_path_buf()];
    let rd = fs::read_dir(parent).map_err(|e| TrainError::io(parent, e))?;
    for e in rd {
        let e = e.map_err(|e| TrainError::io(parent, e))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            dirs.push(e.path());
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        // Unreadable folders are not models; a broken model is reported by `model info`.
        if let Ok(info) = model_info(&d, 1) {
            out.push(ModelSummary {
                name: d
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: d,
                model: info.model,
                iteration: info.iteration,
                saved_unix: info.saved_unix,
            });
        }
    }
    out.sort_by(|a, b| b.saved_unix.cmp(&a.saved_unix).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// Hard-links (or, where that fails, copies) the files of `from` into the new folder `to`.
fn link_or_copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| TrainError::io(to, e))?;
    for e in fs::read_dir(from).map_err(|e| TrainError::io(from, e))? {
        let e = e.map_err(|e| TrainError::io(from, e))?;
        let src = e.path();
        let dst = to.join(e.file_name());
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) && fs::hard_link(&src, &dst).is_err()
        {
            fs::copy(&src, &dst).map_err(|err| TrainError::io(&dst, err))?;
        }
    }
    Ok(())
}

/// Copies the newest checkpoint generation (hard links: generations are never modified)
/// plus `options.toml`, `train.json`, the loss files and previews into
/// `autobackups/01`, after rotating `01..23` to `02..24` (the 24th is dropped), as DFL's
/// autobackup does. Returns the backup folder. The rotation renames whole folders, so a
/// crash leaves every backup complete (at worst one slot is missing).
pub fn backup_now(dir: &Path) -> Result<PathBuf> {
    let st = stored_state(dir)?.ok_or_else(|| {
        TrainError::Refused(format!("{}: no trained model to back up", dir.display()))
    })?;
    let root = dir.join(BACKUP_DIR);
    fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
    let slot = |i: usize| root.join(format!("{i:02}"));
    if slot(MAX_BACKUPS).exists() {
        fs::remove_dir_all(slot(MAX_BACKUPS)).map_err(|e| TrainError::io(slot(MAX_BACKUPS), e))?;
    }
    for i in (1..MAX_BACKUPS).rev() {
        if slot(i).exists() {
            fs::rename(slot(i), slot(i + 1)).map_err(|e| TrainError::io(slot(i), e))?;
        }
    }
    let tmp = root.join("01.partial");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    let gen_name = st
        .generation
        .file_name()
        .ok_or_else(|| TrainError::Refused("generation without a name".into()))?;
    link_or_copy_dir(&st.generation, &tmp.join(gen_name))?;
    for e in fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
        let e = e.map_err(|e| TrainError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let wanted = name == OPTIONS_FILE
            || name == TRAIN_STATE_FILE
            || name == LOSS_JSON
            || name == LOSS_PNG
            || name == PREVIEW_SAMPLES
            || (name.starts_with("preview_") && name.ends_with(".png"));
        if wanted && e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            fs::copy(e.path(), tmp.join(&name)).map_err(|err| TrainError::io(e.path(), err))?;
        }
    }
    let fin = slot(1);
    fs::rename(&tmp, &fin).map_err(|e| TrainError::io(&fin, e))?;
    Ok(fin)
}

/// Renames the model folder `dir` to `new_name` in the same parent folder.
pub fn rename_model(dir: &Path, new_name: &str) -> Result<PathBuf> {
    if new_name.is_empty() || new_name.contains(['/', '\\']) || new_name == "." || new_name == ".."
    {
        return Err(TrainError::Refused(format!(
            "'{new_name}' is not a plain folder name"
        )));
    }
    stored_state(dir)?
        .ok_or_else(|| TrainError::Refused(format!("{}: no trained model here", dir.display())))?;
    let target = dir
        .parent()
        .map(|p| p.join(new_name))
        .unwrap_or_else(|| PathBuf::from(new_name));
    if target.exists() {
        return Err(TrainError::Refused(format!(
            "{} already exists",
            target.display()
        )));
    }
    fs::rename(dir, &target).map_err(|e| TrainError::io(dir, e))?;
    Ok(target)
}

/// Deletes the model folder `dir` (refused unless it holds a model, so a mistyped path
/// cannot delete something else).
pub fn delete_model(dir: &Path) -> Result<()> {
    stored_state(dir)?.ok_or_else(|| {
        TrainError::Refused(format!(
            "{}: no trained model here (nothing deleted)",
            dir.display()
        ))
    })?;
    fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_sampling_averages_windows() {
        let h: Vec<[f32; 2]> = (0..10).map(|i| [i as f32, 2.0 * i as f32]).collect();
        assert_eq!(sampled_history(&h, 20), (1, h.clone()));
        let (step, s) = sampled_history(&h, 4);
        assert_eq!(step, 3);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], [1.0, 2.0]);
        assert_eq!(s[3], [9.0, 18.0]);
    }

    #[test]
    fn trainer_state_defaults_and_roundtrips() {
        let dir = std::env::temp_dir().join(format!("dfl-train-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(TrainerState::load(&dir).unwrap(), TrainerState::default());
        let s = TrainerState {
            lr_scale: 0.5,
            markers: vec![Marker {
                iteration: 7,
                phase: Some("lrd".into()),
                changes: vec![],
            }],
            ..TrainerState::default()
        };
        s.save(&dir).unwrap();
        assert_eq!(TrainerState::load(&dir).unwrap(), s);
        fs::write(dir.join(TRAIN_STATE_FILE), b"{oops").unwrap();
        let e = TrainerState::load(&dir).unwrap_err().to_string();
        assert!(e.contains(TRAIN_STATE_FILE), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
