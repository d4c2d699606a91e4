//! `faceset.pak`: DFL's packed faceset (§2.2 of the design notes).
//!
//! Layout (little-endian u64): version 1, header length, a pickled list of per-sample
//! config dicts, N+1 offsets, then the original `.jpg` files back to back. DFL writes the
//! first N offsets relative to the data block but the last one as an absolute file position;
//! the reader accepts both, the writer writes a relative (correct) last offset, which DFL
//! reads fine.

use crate::jpeg::parse_header;
use crate::pickle::{self, EnumClass, NdArray, Value};
use crate::{Error, FaceMeta};
use std::ops::Range;

/// The only pak version DFL has.
pub const PAK_VERSION: u64 = 1;

/// DFL's `SampleType.FACE`.
const SAMPLE_TYPE_FACE: i64 = 1;

/// One sample of a pak: where its file bytes are and the fields that locate it on unpack.
#[derive(Debug, Clone, PartialEq)]
pub struct PakSample {
    /// File name (no folder).
    pub filename: String,
    /// Person sub-folder, for "person facesets" packed from sub-folders.
    pub person_name: Option<String>,
    /// Byte range of the original file inside the pak.
    pub range: Range<usize>,
    /// The whole sample-config dict as DFL stored it (face type, shape, landmarks...).
    pub config: Value,
}

impl PakSample {
    /// Relative path to unpack to: `person/filename` or `filename`.
    pub fn relative_path(&self) -> std::path::PathBuf {
        match &self.person_name {
            Some(p) => std::path::Path::new(p).join(&self.filename),
            None => std::path::PathBuf::from(&self.filename),
        }
    }
}

fn pak_err(msg: impl Into<String>) -> Error {
    Error::Pak(msg.into())
}

/// A file or folder name from a pak must be one plain path component: a hostile pak must
/// not write outside the faceset folder.
fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || (name.len() >= 2 && name.as_bytes()[1] == b':');
    if bad {
        return Err(pak_err(format!(
            "unsafe {what} '{name}' (must be a plain file name)"
        )));
    }
    Ok(())
}

fn u64_at(bytes: &[u8], pos: usize) -> Result<u64, Error> {
    let b = bytes
        .get(pos..pos + 8)
        .ok_or_else(|| pak_err(format!("truncated at byte {pos}")))?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

/// Parses a pak held in memory; the samples' `range`s index into `bytes`.
pub fn read_pak(bytes: &[u8]) -> Result<Vec<PakSample>, Error> {
    read_pak_index(bytes, bytes.len() as u64)
}

/// Parses a pak's index: `index` holds at least the version, header and offset table of a
/// pak file that is `file_len` bytes long (the file data itself is not needed).
pub fn read_pak_index(bytes: &[u8], file_len: u64) -> Result<Vec<PakSample>, Error> {
    let version = u64_at(bytes, 0)?;
    if version != PAK_VERSION {
        return Err(pak_err(format!(
            "version {version}, expected {PAK_VERSION}"
        )));
    }
    let meta_len = u64_at(bytes, 8)?;
    let meta_end = 16u64
        .checked_add(meta_len)
        .filter(|&e| e <= bytes.len() as u64)
        .ok_or_else(|| {
            pak_err(format!(
                "header claims {meta_len} bytes, the file has {}",
                bytes.len()
            ))
        })? as usize;
    let configs = pickle::loads(&bytes[16..meta_end])?;
    let Value::List(configs) = configs else {
        return Err(pak_err("header is not a list of samples"));
    };
    let n = configs.len();
    let table_end = (n as u64 + 1)
        .checked_mul(8)
        .and_then(|t| t.checked_add(meta_end as u64))
        .filter(|&e| e <= bytes.len() as u64 && e <= file_len)
        .ok_or_else(|| pak_err("offset table runs past the end of the file"))?
        as usize;
    let data_start = table_end;
    let data_len = file_len
        .checked_sub(data_start as u64)
        .ok_or_else(|| pak_err("offset table runs past the end of the file"))?;
    let mut offsets = Vec::with_capacity(n + 1);
    for i in 0..=n {
        offsets.push(u64_at(bytes, meta_end + 8 * i)?);
    }
    // DFL's quirk: the final offset is the absolute end of the file.
    if let Some(last) = offsets.last_mut()
        && *last == file_len
    {
        *last = data_len;
    }
    let mut samples = Vec::with_capacity(n);
    for (i, cfg) in configs.into_iter().enumerate() {
        let (start, end) = (offsets[i], offsets[i + 1]);
        if start > end || end > data_len {
            return Err(pak_err(format!(
                "sample {i} spans {start}..{end} but the data block has {data_len} bytes"
            )));
        }
        let filename = cfg
            .get("filename")
            .and_then(Value::as_str)
            .ok_or_else(|| pak_err(format!("sample {i} has no filename")))?
            .to_string();
        check_name("file name", &filename)?;
        let person_name = match cfg.get("person_name") {
            None | Some(Value::None) => None,
            Some(Value::Str(p)) => {
                check_name("person name", p)?;
                Some(p.clone())
            }
            Some(_) => return Err(pak_err(format!("sample {i}: person_name is not a string"))),
        };
        samples.push(PakSample {
            filename,
            person_name,
            range: (data_start as u64 + start) as usize..(data_start as u64 + end) as usize,
            config: cfg,
        });
    }
    Ok(samples)
}

/// A file to pack.
#[derive(Debug, Clone)]
pub struct PakEntry {
    /// File name (no folder).
    pub filename: String,
    /// Person sub-folder, if packing a person faceset.
    pub person_name: Option<String>,
    /// The whole file.
    pub bytes: Vec<u8>,
}

/// DFL's sample-config dict for an aligned face (`Sample.get_config()`), with the same
/// Python types: enums for sample and face type, an (H, W, C) tuple, lists, numpy arrays.
pub fn sample_config(entry: &PakEntry) -> Result<Value, Error> {
    let header = parse_header(&entry.bytes)?;
    let payload = header.app15(&entry.bytes).ok_or(Error::NotAligned)?;
    let meta = FaceMeta::from_value(&pickle::loads(payload)?)?;
    let landmarks = meta.landmarks.as_ref().ok_or_else(|| Error::Metadata {
        key: "landmarks".into(),
        problem: "missing (DFL cannot pack a face without landmarks)".into(),
    })?;
    let s = |k: &str| Value::Str(k.to_string());
    let polys = match meta.to_value().get("seg_ie_polys") {
        Some(v) => v.clone(),
        None => Value::Dict(vec![(s("polys"), Value::List(Vec::new()))]),
    };
    let mask = match &meta.xseg_mask {
        Some(m) => Value::Array(NdArray::from_u8(
            vec![m.encoded().len()],
            m.encoded().to_vec(),
        )),
        None => Value::None,
    };
    Ok(Value::Dict(vec![
        (
            s("sample_type"),
            Value::Enum(EnumClass::SampleType, SAMPLE_TYPE_FACE),
        ),
        (s("filename"), s(&entry.filename)),
        (
            s("face_type"),
            Value::Enum(EnumClass::FaceType, meta.face_type_or_default().code()),
        ),
        (
            s("shape"),
            Value::Tuple(vec![
                Value::Int(i64::from(header.height)),
                Value::Int(i64::from(header.width)),
                Value::Int(i64::from(header.components)),
            ]),
        ),
        (
            s("landmarks"),
            Value::List(
                landmarks
                    .iter()
                    .map(|p| Value::List(vec![Value::Float(p[0]), Value::Float(p[1])]))
                    .collect(),
            ),
        ),
        (s("seg_ie_polys"), polys),
        (s("xseg_mask"), Value::None),
        (s("xseg_mask_compressed"), mask),
        (
            s("eyebrows_expand_mod"),
            Value::Float(meta.eyebrows_expand_mod_or_default()),
        ),
        (
            s("source_filename"),
            meta.source_filename.as_deref().map_or(Value::None, s),
        ),
        (
            s("person_name"),
            entry.person_name.as_deref().map_or(Value::None, s),
        ),
    ]))
}

/// Builds a pak from aligned faces (each must carry DFL metadata), with correct relative
/// offsets throughout.
pub fn write_pak(entries: &[PakEntry]) -> Result<Vec<u8>, Error> {
    let mut configs = Vec::with_capacity(entries.len());
    for e in entries {
        check_name("file name", &e.filename)?;
        if let Some(p) = &e.person_name {
            check_name("person name", p)?;
        }
        configs.push(sample_config(e).map_err(|err| match &e.person_name {
            Some(p) => err.at(&std::path::Path::new(p).join(&e.filename)),
            None => err.at(std::path::Path::new(&e.filename)),
        })?);
    }
    let header = pickle::dumps(&Value::List(configs));
    let data_len: usize = entries.iter().map(|e| e.bytes.len()).sum();
    let mut out = Vec::with_capacity(16 + header.len() + 8 * (entries.len() + 1) + data_len);
    out.extend_from_slice(&PAK_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    let mut off = 0u64;
    for e in entries {
        out.extend_from_slice(&off.to_le_bytes());
        off += e.bytes.len() as u64;
    }
    out.extend_from_slice(&off.to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.bytes);
    }
    Ok(out)
}
