//! `faceset pack` / `faceset unpack`: the folder ↔ `faceset.pak` jobs.

use super::{atomic_write_with, file_name};
use crate::pak::{self, PakEntry, PakSample};
use crate::pickle::{self, Value};
use crate::{Error, list_aligned};
use dfl_core::Progress;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The pak's file name inside a faceset folder.
pub const PAK_NAME: &str = "faceset.pak";

/// Options of [`pack`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PackOptions {
    /// Pack sub-folders as persons (`<dir>/<person>/*.jpg`), DFL's "person faceset".
    pub persons: bool,
    /// Replace an existing `faceset.pak`.
    pub overwrite: bool,
    /// Delete the packed files after the pak is written and verified (DFL's default).
    pub delete_originals: bool,
}

/// What [`pack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackReport {
    /// The pak written.
    pub pak: PathBuf,
    /// Files packed.
    pub files: usize,
    /// Pak size in bytes.
    pub bytes: u64,
    /// Files deleted afterwards (with `delete_originals`).
    pub deleted: usize,
}

struct Source {
    path: PathBuf,
    filename: String,
    person: Option<String>,
    len: u64,
}

fn sources(dir: &Path, persons: bool) -> Result<Vec<Source>, Error> {
    let mut out = Vec::new();
    let mut add = |folder: &Path, person: Option<String>| -> Result<(), Error> {
        for path in list_aligned(folder)? {
            let filename = file_name(&path)?;
            out.push(Source {
                path,
                filename,
                person: person.clone(),
                len: 0,
            });
        }
        Ok(())
    };
    if persons {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            if entry
                .file_type()
                .map_err(|e| Error::io(&entry.path(), e))?
                .is_dir()
            {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        for d in dirs {
            let person = file_name(&d)?;
            add(&d, Some(person))?;
        }
    } else {
        add(dir, None)?;
    }
    Ok(out)
}

/// Packs the aligned faces of `dir` into `dir/faceset.pak` in DFL's format. Every file is
/// validated first (a file without DFL metadata stops the job before anything is written);
/// the pak is written crash-safely and read back and compared with the files before any
/// original is deleted.
pub fn pack(dir: &Path, opts: PackOptions, progress: &dyn Progress) -> Result<PackReport, Error> {
    let pak_path = dir.join(PAK_NAME);
    if pak_path.exists() && !opts.overwrite {
        return Err(Error::Refused(format!(
            "{} already exists (pass --overwrite to replace it)",
            pak_path.display()
        )));
    }
    let mut srcs = sources(dir, opts.persons)?;
    if srcs.is_empty() {
        return Err(Error::Refused(format!(
            "no aligned faces (.jpg) in {}",
            dir.display()
        )));
    }
    // Pass 1: the per-sample configs (DFL's pak header).
    progress.start("reading", Some(srcs.len() as u64));
    let mut configs = Vec::with_capacity(srcs.len());
    for s in &mut srcs {
        let bytes = std::fs::read(&s.path).map_err(|e| Error::io(&s.path, e))?;
        s.len = bytes.len() as u64;
        let entry = PakEntry {
            filename: s.filename.clone(),
            person_name: s.person.clone(),
            bytes,
        };
        configs.push(pak::sample_config(&entry).map_err(|e| e.at(&s.path))?);
        progress.inc(1);
    }
    progress.finish();
    // Pass 2: stream header, offsets and file bytes into the pak.
    let header = pickle::dumps(&Value::List(configs));
    progress.start("packing", Some(srcs.len() as u64));
    atomic_write_with(&pak_path, |w| {
        let io = |e| Error::io(&pak_path, e);
        w.write_all(&pak::PAK_VERSION.to_le_bytes()).map_err(io)?;
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&header).map_err(io)?;
        let mut off = 0u64;
        for s in &srcs {
            w.write_all(&off.to_le_bytes()).map_err(io)?;
            off += s.len;
        }
        w.write_all(&off.to_le_bytes()).map_err(io)?;
        for s in &srcs {
            let bytes = std::fs::read(&s.path).map_err(|e| Error::io(&s.path, e))?;
            if bytes.len() as u64 != s.len {
                return Err(Error::Refused(format!(
                    "{} changed while packing",
                    s.path.display()
                )));
            }
            w.write_all(&bytes).map_err(io)?;
            progress.inc(1);
        }
        Ok(())
    })?;
    progress.finish();
    // Verify before deleting anything.
    let (mut file, samples) = open_pak(&pak_path)?;
    if samples.len() != srcs.len() {
        return Err(Error::Pak(format!(
            "{} reads back with the wrong sample count",
            pak_path.display()
        )));
    }
    let mut deleted = 0;
    if opts.delete_originals {
        progress.start("verifying and deleting originals", Some(srcs.len() as u64));
        for (s, sample) in srcs.iter().zip(&samples) {
            let packed = read_sample(&mut file, &pak_path, sample)?;
            let on_disk = std::fs::read(&s.path).map_err(|e| Error::io(&s.path, e))?;
            if packed != on_disk {
                return Err(Error::Pak(format!(
                    "{} differs from its packed copy; nothing more deleted",
                    s.path.display()
                )));
            }
            std::fs::remove_file(&s.path).map_err(|e| Error::io(&s.path, e))?;
            deleted += 1;
            progress.inc(1);
        }
        progress.finish();
    }
    let bytes = std::fs::metadata(&pak_path)
        .map_err(|e| Error::io(&pak_path, e))?
        .len();
    Ok(PackReport {
        pak: pak_path,
        files: srcs.len(),
        bytes,
        deleted,
    })
}

/// Opens a pak and reads its index (header and offsets) without loading the file data.
pub fn open_pak(path: &Path) -> Result<(std::fs::File, Vec<PakSample>), Error> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = [0u8; 16];
    f.read_exact(&mut head)
        .map_err(|_| Error::Pak("shorter than its 16-byte header".into()).at(path))?;
    let meta_len = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
    if meta_len > len.saturating_sub(16) {
        return Err(Error::Pak(format!(
            "header claims {meta_len} bytes, the file has {len}"
        ))
        .at(path));
    }
    let mut index = head.to_vec();
    (&mut f)
        .take(meta_len)
        .read_to_end(&mut index)
        .map_err(|e| Error::io(path, e))?;
    // The offset table: its length follows from the sample count in the header.
    let n = match pickle::loads(&index[16..]) {
        Ok(Value::List(v)) => v.len() as u64,
        Ok(_) => return Err(Error::Pak("header is not a list of samples".into()).at(path)),
        Err(e) => return Err(Error::from(e).at(path)),
    };
    let table = (n + 1) * 8;
    if 16 + meta_len + table > len {
        return Err(Error::Pak("offset table runs past the end of the file".into()).at(path));
    }
    let mut t = vec![0u8; table as usize];
    f.read_exact(&mut t).map_err(|e| Error::io(path, e))?;
    index.extend_from_slice(&t);
    // Parse as if the data block followed, with the real file length for the quirk check.
    let samples = pak::read_pak_index(&index, len).map_err(|e| e.at(path))?;
    Ok((f, samples))
}

/// Reads one sample's file bytes from an open pak.
pub fn read_sample(f: &mut std::fs::File, path: &Path, s: &PakSample) -> Result<Vec<u8>, Error> {
    f.seek(SeekFrom::Start(s.range.start as u64))
        .map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; s.range.len()];
    f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

/// Options of [`unpack`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UnpackOptions {
    /// Replace existing files that differ from the packed ones.
    pub overwrite: bool,
    /// Delete `faceset.pak` after every file is written (DFL's default).
    pub delete_pak: bool,
}

/// What [`unpack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// Files written.
    pub written: usize,
    /// Files already present with identical bytes.
    pub unchanged: usize,
    /// Whether the pak was deleted.
    pub pak_deleted: bool,
}

/// Unpacks `dir/faceset.pak` into `dir` (and person sub-folders), byte for byte. Existing
/// files that differ are refused (before anything is written) unless `overwrite`.
pub fn unpack(
    dir: &Path,
    opts: UnpackOptions,
    progress: &dyn Progress,
) -> Result<UnpackReport, Error> {
    let pak_path = dir.join(PAK_NAME);
    if !pak_path.exists() {
        return Err(Error::Refused(format!(
            "no {PAK_NAME} in {}",
            dir.display()
        )));
    }
    let (mut f, samples) = open_pak(&pak_path)?;
    let mut seen = std::collections::HashSet::new();
    for s in &samples {
        if !seen.insert(s.relative_path()) {
            return Err(Error::Pak(format!(
                "two samples unpack to {}",
                s.relative_path().display()
            ))
            .at(&pak_path));
        }
    }
    progress.start("checking", Some(samples.len() as u64));
    let mut todo = Vec::with_capacity(samples.len());
    let mut unchanged = 0;
    for s in &samples {
        let target = dir.join(s.relative_path());
        let data = read_sample(&mut f, &pak_path, s)?;
        match std::fs::read(&target) {
            Ok(existing) if existing == data => unchanged += 1,
            Ok(_) if !opts.overwrite => {
                return Err(Error::Refused(format!(
                    "{} exists and differs from the packed file (pass --overwrite to replace it)",
                    target.display()
                )));
            }
            _ => todo.push((target, s)),
        }
        progress.inc(1);
    }
    progress.finish();
    progress.start("unpacking", Some(todo.len() as u64));
    for (target, s) in &todo {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let data = read_sample(&mut f, &pak_path, s)?;
        dfl_core::atomic_write(target, &data).map_err(|e| Error::io(target, e))?;
        progress.inc(1);
    }
    progress.finish();
    let mut pak_deleted = false;
    if opts.delete_pak {
        drop(f);
        std::fs::remove_file(&pak_path).map_err(|e| Error::io(&pak_path, e))?;
        pak_deleted = true;
    }
    Ok(UnpackReport {
        written: todo.len(),
        unchanged,
        pak_deleted,
    })
}
