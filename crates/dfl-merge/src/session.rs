//! The per-frame config store: `merger_session.json` in the merged-frames folder.
//!
//! DFL's interactive merger keeps each frame's settings in a pickled session file so work can
//! resume; this is the same idea in JSON that people and other tools can read. The later
//! interactive merger writes per-frame configs here; `dfl merge` reads them, so a frame
//! tuned by hand keeps its settings when the whole folder is merged again.
//!
//! ```json
//! { "format": "dfl-rs-merger-session", "version": 1,
//!   "default": { "mode": "overlay", ... },          // optional
//!   "frames": { "00042": { "mode": "seamless", ... } } }
//! ```
//! Frames are keyed by file stem. Each frame config is complete (missing keys take DFL's
//! defaults when read, like config files).

use crate::config::MergerConfig;
use crate::error::{MergeError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the store inside the merged-frames folder.
pub const SESSION_FILE: &str = "merger_session.json";
/// Format tag of the store.
pub const SESSION_FORMAT: &str = "dfl-rs-merger-session";
/// Version of the store layout.
pub const SESSION_VERSION: u32 = 1;

/// Per-frame merger configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergerSession {
    /// Always [`SESSION_FORMAT`].
    pub format: String,
    /// Always [`SESSION_VERSION`].
    pub version: u32,
    /// Config of frames without their own entry (used when no config file is given).
    #[serde(default)]
    pub default: Option<MergerConfig>,
    /// Frame stem → that frame's config.
    #[serde(default)]
    pub frames: BTreeMap<String, MergerConfig>,
}

impl Default for MergerSession {
    fn default() -> Self {
        MergerSession {
            format: SESSION_FORMAT.into(),
            version: SESSION_VERSION,
            default: None,
            frames: BTreeMap::new(),
        }
    }
}

impl MergerSession {
    /// The store's path in a merged-frames folder.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(SESSION_FILE)
    }

    /// Reads the store of `dir`; `None` when there is none. A present but malformed store is
    /// an error (silently dropping hand-tuned configs is not an option).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = Self::path_in(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MergeError::io(&path, e)),
        };
        let s: MergerSession = serde_json::from_slice(&bytes)
            .map_err(|e| MergeError::bad(&path, format!("not a valid merger session: {e}")))?;
        if s.format != SESSION_FORMAT || s.version != SESSION_VERSION {
            return Err(MergeError::bad(
                &path,
                format!(
                    "format {} v{} is not {SESSION_FORMAT} v{SESSION_VERSION}",
                    s.format, s.version
                ),
            ));
        }
        Ok(Some(s))
    }

    /// Writes the store into `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path_in(dir);
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| MergeError::Invalid(format!("merger session: {e}")))?;
        bytes.push(b'\n');
        dfl_core::atomic_write(&path, &bytes).map_err(|e| MergeError::io(&path, e))
    }

    /// The config of frame `stem`: its own entry, else `fallback`.
    pub fn config_for<'a>(&'a self, stem: &str, fallback: &'a MergerConfig) -> &'a MergerConfig {
        self.frames.get(stem).unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    #[test]
    fn roundtrip_and_lookup() {
        let dir = std::env::temp_dir().join(format!("dfl-merge-session-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(MergerSession::load(&dir).unwrap().is_none());
        let mut s = MergerSession::default();
        let special = MergerConfig {
            mode: Mode::Seamless,
            ..MergerConfig::default()
        };
        s.frames.insert("00002".into(), special.clone());
        s.save(&dir).unwrap();
        let back = MergerSession::load(&dir).unwrap().unwrap();
        assert_eq!(back, s);
        let base = MergerConfig::default();
        assert_eq!(back.config_for("00002", &base), &special);
        assert_eq!(back.config_for("00001", &base), &base);
        std::fs::write(MergerSession::path_in(&dir), b"{\"format\": 3}").unwrap();
        let e = MergerSession::load(&dir).unwrap_err().to_string();
        assert!(e.contains("merger_session.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
