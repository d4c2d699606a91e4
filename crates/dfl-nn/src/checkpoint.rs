//! Crash-safe checkpoint folders: safetensors for weights and optimizer state, JSON for
//! everything else, N rotating previous generations.
//!
//! Layout (see `docs/checkpoint-format.md`):
//!
//! ```text
//! <root>/00000041/weights.safetensors
//!                 optimizer.safetensors
//!                 state.json          (written last; records the byte size of the other two)
//! <root>/00000042/...                 (newest)
//! ```
//!
//! A save writes generation `N+1` into `<root>/<N+1>.partial/`, fsyncs every file and the
//! folder, renames the folder to its final name (atomic) and fsyncs `<root>`; only then are
//! generations beyond `keep` and stale `.partial` folders removed. A crash at any moment leaves
//! the previous generation untouched, and a half-written generation never has its final name.

use crate::error::{NnError, Result};
use crate::store::{NamedTensor, SaveTensor, read_safetensors, write_safetensors, write_synced};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// File names inside a generation folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Optimizer state file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// JSON state file, written last.
pub const STATE_FILE: &str = "state.json";
const PARTIAL_SUFFIX: &str = ".partial";

/// A folder of checkpoint generations.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
    keep: usize,
}

/// What a checkpoint holds, ready to write.
#[derive(Debug, Clone, Default)]
pub struct CheckpointData<'a> {
    /// Network weights by name.
    pub weights: BTreeMap<String, SaveTensor<'a>>,
    /// Optimizer state by name.
    pub optimizer: BTreeMap<String, SaveTensor<'a>>,
    /// Options, counters, loss history… (a JSON object).
    pub state: Value,
}

/// A checkpoint read back from disk.
#[derive(Debug, Clone)]
pub struct LoadedCheckpoint {
    /// The generation folder it came from.
    pub dir: PathBuf,
    /// Network weights by name.
    pub weights: HashMap<String, NamedTensor>,
    /// Optimizer state by name.
    pub optimizer: HashMap<String, NamedTensor>,
    /// The JSON state (without the bookkeeping `files` entry).
    pub state: Value,
}

fn generation_of(name: &str) -> Option<(u64, bool)> {
    let (digits, partial) = match name.strip_suffix(PARTIAL_SUFFIX) {
        Some(d) => (d, true),
        None => (name, false),
    };
    if digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok().map(|g| (g, partial))
    } else {
        None
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| NnError::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl CheckpointDir {
    /// Generations live in `root`; a save keeps the newest `1 + backups` complete ones.
    pub fn new(root: impl Into<PathBuf>, backups: usize) -> Self {
        CheckpointDir {
            root: root.into(),
            keep: backups + 1,
        }
    }

    /// The folder holding the generations.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All generation folders: (number, is_partial, path), sorted by number.
    fn entries(&self) -> Result<Vec<(u64, bool, PathBuf)>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NnError::io(&self.root, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| NnError::io(&self.root, e))?;
            let name = entry.file_name();
            if let Some((g, partial)) = name.to_str().and_then(generation_of) {
                out.push((g, partial, entry.path()));
            }
        }
        out.sort_by_key(|(g, p, _)| (*g, *p));
        Ok(out)
    }

    /// Complete generations, newest first (a final name and a readable `state.json` whose
    /// recorded file sizes match).
    pub fn complete_generations(&self) -> Result<Vec<PathBuf>> {
        let mut out: Vec<PathBuf> = self
            .entries()?
            .into_iter()
            .filter(|(_, partial, path)| !partial && Self::is_complete(path))
            .map(|(_, _, p)| p)
            .collect();
        out.reverse();
        Ok(out)
    }

    fn is_complete(dir: &Path) -> bool {
        Self::read_state(dir).is_ok()
    }

    /// Reads and checks `state.json` of a generation: parse, then compare recorded sizes.
    fn read_state(dir: &Path) -> Result<Value> {
        let path = dir.join(STATE_FILE);
        let bytes = fs::read(&path).map_err(|e| NnError::io(&path, e))?;
        let mut state: Value = serde_json::from_slice(&bytes)
            .map_err(|e| NnError::bad_file(&path, format!("not valid JSON: {e}")))?;
        let files = state
            .as_object_mut()
            .and_then(|o| o.remove("files"))
            .ok_or_else(|| NnError::bad_file(&path, "no 'files' entry"))?;
        let files = files
            .as_object()
            .ok_or_else(|| NnError::bad_file(&path, "'files' is not an object"))?;
        for name in [WEIGHTS_FILE, OPTIMIZER_FILE] {
            let want = files
                .get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| NnError::bad_file(&path, format!("no size recorded for {name}")))?;
            let fp = dir.join(name);
            let got = fs::metadata(&fp).map_err(|e| NnError::io(&fp, e))?.len();
            if got != want {
                return Err(NnError::bad_file(
                    &fp,
                    format!("is {got} bytes, {STATE_FILE} recorded {want}"),
                ));
            }
        }
        Ok(state)
    }

    /// Writes a new generation and prunes old ones. Returns the new generation's folder.
    pub fn save(&self, data: &CheckpointData<'_>) -> Result<PathBuf> {
        fs::create_dir_all(&self.root).map_err(|e| NnError::io(&self.root, e))?;
        let next = self.entries()?.last().map(|(g, _, _)| g + 1).unwrap_or(1);
        let name = format!("{next:08}");
        let partial = self.root.join(format!("{name}{PARTIAL_SUFFIX}"));
        let fin = self.root.join(&name);
        fs::create_dir(&partial).map_err(|e| NnError::io(&partial, e))?;

        let wpath = partial.join(WEIGHTS_FILE);
        write_safetensors(&wpath, &data.weights)?;
        let opath = partial.join(OPTIMIZER_FILE);
        write_safetensors(&opath, &data.optimizer)?;
        let size =
            |p: &Path| -> Result<u64> { Ok(fs::metadata(p).map_err(|e| NnError::io(p, e))?.len()) };
        let mut state = match &data.state {
            Value::Object(o) => o.clone(),
            other => {
                let mut m = serde_json::Map::new();
                m.insert("value".into(), other.clone());
                m
            }
        };
        let mut files = serde_json::Map::new();
        files.insert(WEIGHTS_FILE.into(), size(&wpath)?.into());
        files.insert(OPTIMIZER_FILE.into(), size(&opath)?.into());
        state.insert("files".into(), Value::Object(files));
        let spath = partial.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(&Value::Object(state))
            .map_err(|e| NnError::bad_file(&spath, e.to_string()))?;
        write_synced(&spath, &json)?;
        sync_dir(&partial)?;
        fs::rename(&partial, &fin).map_err(|e| NnError::io(&fin, e))?;
        sync_dir(&self.root)?;
        self.prune()?;
        Ok(fin)
    }

    /// Removes stale `.partial` folders and complete generations beyond `keep`.
    fn prune(&self) -> Result<()> {
        let entries = self.entries()?;
        let mut complete_seen = 0usize;
        for (_, partial, path) in entries.into_iter().rev() {
            let remove = if partial {
                true
            } else if Self::is_complete(&path) {
                complete_seen += 1;
                complete_seen > self.keep
            } else {
                // A final-named folder that does not verify is not ours to judge: keep it
                // for the user to inspect (it cannot come from an interrupted save).
                false
            };
            if remove {
                fs::remove_dir_all(&path).map_err(|e| NnError::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Loads the newest complete generation. Errors if there is none, or if its files do not
    /// parse (naming the file).
    pub fn load_latest(&self) -> Result<LoadedCheckpoint> {
        let dir = self
            .complete_generations()?
            .into_iter()
            .next()
            .ok_or_else(|| NnError::NoCheckpoint {
                path: self.root.clone(),
            })?;
        Self::load_generation(&dir)
    }

    /// Loads one generation folder.
    pub fn load_generation(dir: &Path) -> Result<LoadedCheckpoint> {
        let state = Self::read_state(dir)?;
        let weights = read_safetensors(&dir.join(WEIGHTS_FILE))?;
        let optimizer = read_safetensors(&dir.join(OPTIMIZER_FILE))?;
        Ok(LoadedCheckpoint {
            dir: dir.to_path_buf(),
            weights,
            optimizer,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: f32) -> CheckpointData<'static> {
        let mut weights = BTreeMap::new();
        weights.insert(
            "a.weight".to_string(),
            SaveTensor::Owned(NamedTensor {
                shape: vec![2, 3],
                data: vec![v; 6],
            }),
        );
        CheckpointData {
            weights,
            optimizer: BTreeMap::new(),
            state: serde_json::json!({ "iteration": v as u64 }),
        }
    }

    #[test]
    fn rotates_and_loads_newest() {
        let root = std::env::temp_dir().join(format!("dfl-nn-ckpt-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let c = CheckpointDir::new(&root, 2);
        assert!(matches!(c.load_latest(), Err(NnError::NoCheckpoint { .. })));
        for i in 1..=5 {
            c.save(&data(i as f32)).unwrap();
        }
        let gens = c.complete_generations().unwrap();
        assert_eq!(gens.len(), 3);
        let l = c.load_latest().unwrap();
        assert_eq!(l.state["iteration"], 5);
        assert_eq!(l.weights["a.weight"].data, vec![5.0; 6]);
        // A stale partial folder is ignored and then cleaned by the next save.
        fs::create_dir(root.join("00000099.partial")).unwrap();
        assert_eq!(c.load_latest().unwrap().state["iteration"], 5);
        c.save(&data(6.0)).unwrap();
        assert!(!root.join("00000099.partial").exists());
        assert_eq!(c.load_latest().unwrap().state["iteration"], 6);
        // A truncated weights file makes that generation incomplete: the previous one loads.
        let newest = c.complete_generations().unwrap()[0].clone();
        let w = newest.join(WEIGHTS_FILE);
        let len = fs::metadata(&w).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&w)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        assert_eq!(c.load_latest().unwrap().state["iteration"], 5);
        fs::remove_dir_all(&root).unwrap();
    }
}
