//! `dfl extract`: every frame of a folder → every face → aligned JPEGs with DFL metadata
//! (+ `aligned_debug`), crash-safe and resumable.
//!
//! Three threads in a pipeline: one decodes frames ahead, the caller's thread runs the nets
//! (burn parallelises inside each op), one writes (warp, JPEG, metadata, atomic write). A
//! frame counts as done only once all its faces are on disk; the per-shard state file
//! `.dfl-extract-<i>-of-<n>.json` in the output folder records done frames, so an interrupted
//! run resumes where it stopped and `--shard i/n` processes can share one output folder.

use crate::find::{FaceFound, FindOptions, Models, find_faces, track_faces};
use crate::frame::{Frame, FrameError, load_frame};
use crate::output::{CropOptions, OutputError, aligned_files, debug_picture};
use dfl_core::{Progress, Shard, atomic_write, is_image_path};
use dfl_geom::FaceType;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// What `dfl extract` does.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractOptions {
    /// DFL face type of the aligned crops (`wf` by default, as DFL).
    pub face_type: FaceType,
    /// Side of the aligned crops (DFL: 512, 768 for head; valid 256..=2048... any > 0 here).
    pub image_size: usize,
    /// JPEG quality 1..=100 (DFL: 90).
    pub jpeg_quality: u8,
    /// Keep only the N largest faces of a frame (0 = all).
    pub max_faces: usize,
    /// Also write `<output>_debug/<frame stem>.jpg`.
    pub debug: bool,
    /// Video-aware mode: seed each frame from the previous frame's landmarks.
    pub track: bool,
    /// With `track`, run the detector at least every N frames (0 = only when tracking is lost).
    pub detect_every: usize,
    /// This process's share of the frames.
    pub shard: Shard,
    /// Delete existing aligned faces (and the debug folder) first instead of resuming.
    pub overwrite: bool,
    /// Crops averaged in the accurate landmark pass (DFL: 5).
    pub samples: usize,
    /// Also search overlapping tiles for small faces (slower; see `FaceDetector::detect_tiled`).
    pub small_faces: bool,
}

impl ExtractOptions {
    /// DFL's defaults for `face_type`: 512 px (768 for head), quality 90, all faces.
    pub fn new(face_type: FaceType) -> Self {
        Self {
            face_type,
            image_size: if face_type == FaceType::Head {
                768
            } else {
                512
            },
            jpeg_quality: 90,
            max_faces: 0,
            debug: false,
            track: false,
            detect_every: 30,
            shard: Shard::ALL,
            overwrite: false,
            samples: 5,
            small_faces: false,
        }
    }

    fn crop(&self) -> CropOptions {
        CropOptions {
            face_type: self.face_type,
            size: self.image_size,
            jpeg_quality: self.jpeg_quality,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExtractReport {
    /// Image files in the input folder that belong to this shard.
    pub images_found: usize,
    /// Frames processed by this run.
    pub frames_processed: usize,
    /// Frames skipped because an earlier run had finished them.
    pub frames_resumed: usize,
    /// Aligned faces written by this run.
    pub faces_written: usize,
    /// Frames (file names) where no face was found (candidates for `--manual-fix`).
    pub no_face: Vec<String>,
    /// Files of the input folder that are not images (by extension), skipped.
    pub not_images: Vec<String>,
    /// Image files that could not be used, with the reason.
    pub unreadable: Vec<String>,
}

/// Why extraction stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A folder or file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Input and output are the same folder.
    #[error("input and output are the same folder ({0}); aligned faces need their own folder")]
    SameFolder(PathBuf),
    /// The output holds faces extracted with other settings.
    #[error(
        "{path} holds faces extracted as {found}; run again with the same settings to resume, or pass --overwrite to start over"
    )]
    Mismatch {
        /// The state file.
        path: PathBuf,
        /// The settings found there.
        found: String,
    },
    /// The state file is not ours or is corrupt.
    #[error("{path}: unreadable extraction state ({reason}); remove it or pass --overwrite")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Encoding an aligned face failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A worker thread died.
    #[error("extraction worker stopped unexpectedly: {0}")]
    Worker(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The per-shard record of finished frames.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtractState {
    /// Format version (1).
    pub version: u32,
    /// DFL face-type string of the crops.
    pub face_type: String,
    /// Side of the crops.
    pub image_size: usize,
    /// Done frames: file name → number of aligned faces written for it.
    pub frames: BTreeMap<String, usize>,
}

/// The state file of `shard` in `output`.
pub fn state_path(output: &Path, shard: Shard) -> PathBuf {
    output.join(format!(
        ".dfl-extract-{}-of-{}.json",
        shard.index, shard.count
    ))
}

/// Every state file in `output` (all shards).
pub fn state_files(output: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(output)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".dfl-extract-") && n.ends_with(".json"))
        })
        .collect();
    v.sort();
    v
}

/// Reads a state file.
pub fn read_state(path: &Path) -> Result<ExtractState, ExtractError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| ExtractError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes a state file crash-safely.
pub fn write_state_file(path: &Path, st: &ExtractState) -> Result<(), ExtractError> {
    let bytes = serde_json::to_vec_pretty(st).map_err(|e| ExtractError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    atomic_write(path, &bytes).map_err(io(path))
}

/// `<output>_debug`, DFL's debug folder beside the output folder.
pub fn debug_dir(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "aligned".into());
    name.push("_debug");
    output.with_file_name(name)
}

/// The input folder split DFL's way: frames (image extensions, sorted, later duplicates of
/// a stem dropped) and the other files.
pub fn list_input(input: &Path) -> Result<(Vec<PathBuf>, Vec<String>), ExtractError> {
    let mut frames = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(input).map_err(io(input))? {
        let entry = entry.map_err(io(input))?;
        let path = entry.path();
        if !entry.file_type().map_err(io(&path))?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if is_image_path(&path) {
            frames.push(path);
        } else {
            others.push(name);
        }
    }
    frames.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    others.sort();
    let mut stems = HashSet::new();
    frames.retain(|p| stems.insert(p.file_stem().map(|s| s.to_os_string())));
    Ok((frames, others))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}

/// Removes aligned faces (`*.jpg`, `*.jpeg`, `*.png`), state files and the debug folder.
fn clear_output(output: &Path) -> Result<(), ExtractError> {
    for entry in std::fs::read_dir(output).map_err(io(output))? {
        let p = entry.map_err(io(output))?.path();
        let ours = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".dfl-extract-"));
        if p.is_file() && (is_image_path(&p) || ours) {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    let dbg = debug_dir(output);
    if dbg.is_dir() {
        std::fs::remove_dir_all(&dbg).map_err(io(&dbg))?;
    }
    Ok(())
}

/// Frames whose `<stem>_*.jpg` already exist in `output` (resume of a folder without our
/// state file, e.g. one DFL filled).
fn stems_with_faces(output: &Path) -> HashSet<String> {
    std::fs::read_dir(output)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let s = n.strip_suffix(".jpg")?;
            let (stem, k) = s.rsplit_once('_')?;
            k.parse::<usize>().ok().map(|_| stem.to_string())
        })
        .collect()
}

enum Decoded {
    Frame(String, Frame),
    Bad(String),
}

struct Work {
    name: String,
    frame: Frame,
    faces: Vec<FaceFound>,
}

/// Runs the extraction of `input` into `output`. Library code: reports through `progress`,
/// returns what it did; non-image and unreadable files are listed, not fatal.
pub fn extract(
    models: &Models,
    input: &Path,
    output: &Path,
    opts: &ExtractOptions,
    progress: &dyn Progress,
) -> Result<ExtractReport, ExtractError> {
    let same = match (input.canonicalize(), output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(ExtractError::SameFolder(output.to_path_buf()));
    }
    let (frames, not_images) = list_input(input)?;
    let frames = opts.shard.select(frames);
    std::fs::create_dir_all(output).map_err(io(output))?;
    if opts.overwrite {
        clear_output(output)?;
    }
    let spath = state_path(output, opts.shard);
    let mut state = if spath.exists() {
        let st = read_state(&spath)?;
        if st.face_type != opts.face_type.as_str() || st.image_size != opts.image_size {
            return Err(ExtractError::Mismatch {
                path: spath,
                found: format!("{} at {} px", st.face_type, st.image_size),
            });
        }
        st
    } else {
        ExtractState {
            version: 1,
            face_type: opts.face_type.as_str().to_string(),
            image_size: opts.image_size,
            frames: BTreeMap::new(),
        }
    };
    let existing = if spath.exists() {
        HashSet::new()
    } else {
        stems_with_faces(output)
    };
    let mut report = ExtractReport {
        images_found: frames.len(),
        not_images,
        ..ExtractReport::default()
    };
    let todo: Vec<PathBuf> = frames
        .into_iter()
        .filter(|p| {
            let n = file_name(p);
            let done = state.frames.contains_key(&n) || existing.contains(&stem(&n));
            if done {
                report.frames_resumed += 1;
            }
            !done
        })
        .collect();
    if opts.debug {
        let d = debug_dir(output);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
    }
    progress.start("extract", Some(todo.len() as u64));

    let (frame_tx, frame_rx) = sync_channel::<Decoded>(3);
    let (work_tx, work_rx) = sync_channel::<Work>(4);
    let result = std::thread::scope(|scope| {
        scope.spawn(move || read_frames(todo, frame_tx));
        let writer = scope.spawn(|| write_faces(work_rx, output, opts, &spath, &mut state));
        let found = run_nets(models, opts, frame_rx, work_tx, progress, &mut report);
        let written = writer
            .join()
            .map_err(|_| ExtractError::Worker("the writer panicked".into()))?;
        found?;
        written
    });
    progress.finish();
    let (faces, no_face) = result?;
    report.faces_written = faces;
    report.no_face = no_face;
    Ok(report)
}

fn read_frames(todo: Vec<PathBuf>, tx: SyncSender<Decoded>) {
    for p in todo {
        let name = file_name(&p);
        let msg = match load_frame(&p) {
            Ok(f) => Decoded::Frame(name, f),
            Err(e) => Decoded::Bad(frame_reason(&e)),
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

fn frame_reason(e: &FrameError) -> String {
    e.to_string()
}

fn run_nets(
    models: &Models,
    opts: &ExtractOptions,
    rx: Receiver<Decoded>,
    tx: SyncSender<Work>,
    progress: &dyn Progress,
    report: &mut ExtractReport,
) -> Result<(), ExtractError> {
    let find = FindOptions {
        max_faces: opts.max_faces,
        samples: opts.samples,
        small_faces: opts.small_faces,
    };
    if !opts.track {
        return run_nets_independent(models, &find, rx, tx, progress, report);
    }
    let mut prev: Vec<FaceFound> = Vec::new();
    let mut since_detect = 0usize;
    for msg in rx {
        let (name, frame) = match msg {
            Decoded::Frame(n, f) => (n, f),
            Decoded::Bad(why) => {
                report.unreadable.push(why);
                progress.inc(1);
                continue;
            }
        };
        let tracked = if opts.detect_every == 0 || since_detect < opts.detect_every {
            track_faces(models, &frame, &prev, &find)
        } else {
            None
        };
        let faces = match tracked {
            Some(f) => {
                since_detect += 1;
                f
            }
            None => {
                since_detect = 1;
                find_faces(models, &frame, &find)
            }
        };
        prev = faces.clone();
        report.frames_processed += 1;
        progress.message(&name);
        if tx.send(Work { name, frame, faces }).is_err() {
            // The writer stopped (its error is returned by the join).
            return Ok(());
        }
        progress.inc(1);
    }
    Ok(())
}

/// Per-frame detection: frames do not depend on each other, so they go through the nets two
/// per worker thread at a time (the nets' serial stretches then overlap) and the results are
/// passed on in frame order.
fn run_nets_independent(
    models: &Models,
    find: &FindOptions,
    rx: Receiver<Decoded>,
    tx: SyncSender<Work>,
    progress: &dyn Progress,
    report: &mut ExtractReport,
) -> Result<(), ExtractError> {
    let group = 2 * rayon::current_num_threads().max(1);
    loop {
        let mut frames = Vec::with_capacity(group);
        let mut received = 0;
        for msg in rx.iter().take(group) {
            received += 1;
            match msg {
                Decoded::Frame(n, f) => frames.push((n, f)),
                Decoded::Bad(why) => {
                    report.unreadable.push(why);
                    progress.inc(1);
                }
            }
        }
        if received == 0 {
            // The reader is done.
            return Ok(());
        }
        let found: Vec<Vec<FaceFound>> = frames
            .par_iter()
            .map(|(_, frame)| find_faces(models, frame, find))
            .collect();
        for ((name, frame), faces) in frames.into_iter().zip(found) {
            report.frames_processed += 1;
            progress.message(&name);
            if tx.send(Work { name, frame, faces }).is_err() {
                return Ok(());
            }
            progress.inc(1);
        }
    }
}

fn write_faces(
    rx: Receiver<Work>,
    output: &Path,
    opts: &ExtractOptions,
    spath: &Path,
    state: &mut ExtractState,
) -> Result<(usize, Vec<String>), ExtractError> {
    let crop = opts.crop();
    let dbg = debug_dir(output);
    let mut written = 0usize;
    let mut no_face = Vec::new();
    let mut last_save = std::time::Instant::now();
    for w in rx {
        let files = aligned_files(&w.frame, &w.name, &w.faces, &crop, 0, true)?;
        for f in &files {
            let p = output.join(&f.name);
            atomic_write(&p, &f.bytes).map_err(io(&p))?;
        }
        if opts.debug {
            let p = dbg.join(format!("{}.jpg", stem(&w.name)));
            let bytes = debug_picture(&w.frame, &w.faces, opts.face_type, &w.name)?;
            atomic_write(&p, &bytes).map_err(io(&p))?;
        }
        if files.is_empty() {
            no_face.push(w.name.clone());
        }
        written += files.len();
        state.frames.insert(w.name, files.len());
        if last_save.elapsed().as_secs_f32() > 2.0 {
            write_state_file(spath, state)?;
            last_save = std::time::Instant::now();
        }
    }
    write_state_file(spath, state)?;
    Ok((written, no_face))
}
