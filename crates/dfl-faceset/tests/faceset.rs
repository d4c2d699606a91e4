//! dfl-faceset against real DFL files, an independent Python writer/reader
//! (`tools/reference/dfljpg_reference.py`), and hostile input.

use dfl_core::NoProgress;
use dfl_faceset::ops::{self, PackOptions, RestoreOptions, UnpackOptions};
use dfl_faceset::pak::{self, PakEntry};
use dfl_faceset::pickle::{self, DType, EnumClass, NdArray, Value};
use dfl_faceset::{
    AlignedFace, Error, FaceMeta, GrayMask, MaskEncoding, PolyType, SegPoly, XsegMask, embed_meta,
    jpeg, read_meta,
};
use dfl_geom::{Affine, FaceType, Pt, transform_mat, transform_points};
use serde_json::{Value as Json, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// Records the largest single allocation per thread, to prove that hostile size claims are
/// refused without allocating.
struct CountingAlloc;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(layout.size())));
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(new_size)));
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn dfl_dir() -> PathBuf {
    fixtures().join("dfl-aligned")
}

fn cross_dir() -> PathBuf {
    fixtures().join("cross")
}

const DFL_FILES: [&str; 5] = [
    "sample5_0.jpg",
    "sample5_1.jpg",
    "sample5_2.jpg",
    "sample5_3.jpg",
    "sample5_4.jpg",
];

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("dfl-faceset-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_json(p: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn pts(j: &Json) -> Vec<Pt> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
        .collect()
}

/// Equal up to JSON float parsing (serde_json may be 1 ulp off without `float_roundtrip`).
fn same_f64(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs())
}

/// The same JSON description of a pickled value that the Python script writes, so the
/// two sides can be compared key by key, types included.
fn describe(v: &Value) -> Json {
    let dtype = |d: DType| {
        let order = if d.size() == 1 { "|" } else { "<" };
        format!("{order}{}", d.code())
    };
    match v {
        Value::None => json!({ "none": null }),
        Value::Bool(b) => json!({ "bool": b }),
        Value::Int(i) => json!({ "int": i }),
        Value::Float(f) => json!({ "float": f }),
        Value::Str(s) => json!({ "str": s }),
        Value::Bytes(b) => json!({ "bytes": hex(b) }),
        Value::List(items) => json!({ "list": items.iter().map(describe).collect::<Vec<_>>() }),
        Value::Tuple(items) => json!({ "tuple": items.iter().map(describe).collect::<Vec<_>>() }),
        Value::Dict(items) => {
            json!({ "dict": items.iter().map(|(k, v)| json!([describe(k), describe(v)])).collect::<Vec<_>>() })
        }
        Value::Array(a) => {
            let mut d = json!({ "dtype": dtype(a.dtype), "shape": a.shape });
            if a.dtype == DType::U8 {
                d["hex"] = json!(hex(&a.data));
            } else {
                d["values"] = values(a);
            }
            json!({ "ndarray": d })
        }
        Value::NumpyScalar(a) => {
            json!({ "numpy_scalar": { "dtype": dtype(a.dtype), "value": values(a)[0].clone() } })
        }
        Value::Enum(c, i) => {
            let name = match c {
                EnumClass::SampleType => "samplelib.Sample.SampleType",
                EnumClass::FaceType => "facelib.FaceType.FaceType",
            };
            json!({ "enum": [name, i] })
        }
    }
}

fn values(a: &NdArray) -> Json {
    match a.to_i64() {
        Some(ints) if a.dtype != DType::Bool => json!(ints),
        _ => json!(a.to_f64()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Structural JSON equality; numbers must agree in kind (int vs float) and value.
fn json_eq(a: &Json, b: &Json, path: &str) -> Result<(), String> {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            if x.is_f64() != y.is_f64() {
                return Err(format!("{path}: {x} vs {y} (int vs float)"));
            }
            let ok = if x.is_f64() {
                same_f64(x.as_f64().unwrap(), y.as_f64().unwrap())
            } else {
                x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64()
            };
            if ok {
                Ok(())
            } else {
                Err(format!("{path}: {x} vs {y}"))
            }
        }
        (Json::Array(x), Json::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{path}: length {} vs {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .try_for_each(|(i, (p, q))| json_eq(p, q, &format!("{path}[{i}]")))
        }
        (Json::Object(x), Json::Object(y)) => {
            let mut kx: Vec<_> = x.keys().collect();
            let mut ky: Vec<_> = y.keys().collect();
            kx.sort();
            ky.sort();
            if kx != ky {
                return Err(format!("{path}: keys {kx:?} vs {ky:?}"));
            }
            x.iter()
                .try_for_each(|(k, v)| json_eq(v, &y[k], &format!("{path}.{k}")))
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{path}: {a} vs {b}")),
    }
}

fn app15_value(bytes: &[u8]) -> Value {
    let h = jpeg::parse_header(bytes).unwrap();
    pickle::loads(h.app15(bytes).unwrap()).unwrap()
}

/// The bytes outside the APP15 segment(s).
fn without_app15(bytes: &[u8]) -> Vec<u8> {
    let h = jpeg::parse_header(bytes).unwrap();
    let mut out = Vec::new();
    let mut cursor = 0;
    for s in h.segments.iter().filter(|s| s.marker == jpeg::APP15) {
        out.extend_from_slice(&bytes[cursor..s.start]);
        cursor = s.end;
    }
    out.extend_from_slice(&bytes[cursor..]);
    out
}

// ------------------------------------------------------------------------------------------
// Real DFL files
// ------------------------------------------------------------------------------------------

#[test]
fn real_dfl_files_every_key() {
    let expected = read_json(&dfl_dir().join("expected.json"));
    for name in DFL_FILES {
        let e = &expected[name];
        let face = AlignedFace::load(&dfl_dir().join(name)).unwrap();
        let m = &face.meta;
        let size = e["size"].as_u64().unwrap() as u32;
        assert_eq!(
            (face.header.width, face.header.height),
            (size, size),
            "{name}"
        );
        assert_eq!(
            m.face_type.unwrap().as_str(),
            e["face_type"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            m.source_filename.as_deref(),
            e["source_filename"].as_str(),
            "{name}"
        );
        let rect: Vec<i64> = e["source_rect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(m.source_rect.unwrap().to_vec(), rect, "{name}");
        for (key, got, want) in [
            (
                "landmarks",
                m.landmarks.as_ref().unwrap(),
                pts(&e["landmarks"]),
            ),
            (
                "source_landmarks",
                m.source_landmarks.as_ref().unwrap(),
                pts(&e["source_landmarks"]),
            ),
        ] {
            assert_eq!(got.len(), 68);
            for (g, w) in got.iter().zip(&want) {
                // Bit-exact: DFL stored float32 values as Python floats. (serde_json may
                // parse the JSON text 1 ulp off in f64; rounding to f32 recovers the value.)
                let w32 = w.map(|v| f64::from(v as f32));
                assert!(*g == w32, "{name} {key}: {g:?} vs {w:?}");
                assert!(
                    g.iter().all(|v| f64::from(*v as f32) == *v),
                    "{name} {key}: not float32 values"
                );
            }
        }
        let mat = m.image_to_face_mat.unwrap();
        for r in 0..2 {
            for c in 0..3 {
                let want = e["image_to_face_mat"][r][c].as_f64().unwrap();
                // float64 values: equal up to serde_json's 1-ulp parsing.
                assert!(
                    same_f64(mat[(r, c)], want),
                    "{name} mat[{r}][{c}]: {} vs {want}",
                    mat[(r, c)]
                );
            }
        }
        assert_eq!(
            m.seg_ie_polys.is_some(),
            e["has_polys"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(
            m.xseg_mask.is_some(),
            e["has_xseg_mask"].as_bool().unwrap(),
            "{name}"
        );
        if let Some(polys) = &m.seg_ie_polys {
            assert!(
                !polys.is_empty() && polys.iter().all(|p| p.pts.len() >= 3),
                "{name}"
            );
        }
        if let Some(mask) = &m.xseg_mask {
            let g = mask.decode().unwrap();
            assert_eq!(
                (g.width, g.height),
                (256, 256),
                "{name}: XSeg apply writes 256x256 masks"
            );
            assert!(
                g.data.iter().all(|&v| v == 0 || v == 255),
                "{name}: binary mask"
            );
            assert!(g.data.contains(&255));
        }
        assert!(m.extra.is_empty(), "{name}: unexpected keys {:?}", m.extra);
        assert_eq!(m.eyebrows_expand_mod, None);
    }
}

/// Allocations `f` makes on this thread, and its result.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = COUNT.with(Cell::get);
    let r = f();
    (COUNT.with(Cell::get) - before, r)
}

/// `scan_meta` (how the trainer opens a faceset) reads the same metadata as a full load, with
/// under half the allocations for extracted faces: the threads scanning a folder share one
/// malloc arena in `dfl`.
#[test]
fn scanning_reads_the_same_metadata_with_few_allocations() {
    let mut paths: Vec<PathBuf> = DFL_FILES.iter().map(|n| dfl_dir().join(n)).collect();
    // The cross-check faces (ours and the Python writer's; base.jpg is a plain JPEG).
    paths.extend(
        dfl_faceset::list_aligned(&cross_dir())
            .unwrap()
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n != "base.jpg")),
    );
    assert!(paths.len() > DFL_FILES.len());
    for path in paths {
        let (full, face) = allocations(|| AlignedFace::load(&path).unwrap());
        let (scan, (meta, w, h)) = allocations(|| dfl_faceset::scan_meta(&path).unwrap());
        let name = path.display();
        assert_eq!((w, h), (face.header.width, face.header.height), "{name}");
        let known = |m: FaceMeta| FaceMeta {
            extra: Vec::new(),
            ..m
        };
        assert_eq!(known(meta), known(face.meta), "{name}");
        // Faces straight from DFL's extractor (landmark lists: what a training faceset holds)
        // take under half; the others are here for the equality above.
        if path.starts_with(dfl_dir()) {
            assert!(
                scan * 2 < full,
                "{name}: {scan} allocations scanning, {full} loading"
            );
        }
    }
}

#[test]
fn dfl_matrices_are_recomputed_by_dfl_geom() {
    let mut worst: f64 = 0.0;
    for name in DFL_FILES {
        let face = AlignedFace::load(&dfl_dir().join(name)).unwrap();
        let m = &face.meta;
        let src = m.source_landmarks.as_ref().unwrap();
        let stored = m.image_to_face_mat.unwrap();
        let ours =
            transform_mat(src, f64::from(face.header.width), m.face_type.unwrap(), 1.0).unwrap();
        // Compare where both matrices send the face's landmarks and the crop's corners.
        let s = f64::from(face.header.width);
        let corners =
            transform_points(&[[0.0, 0.0], [s, 0.0], [s, s], [0.0, s]], &stored, true).unwrap();
        let probe: Vec<Pt> = src.iter().chain(&corners).copied().collect();
        let a = transform_points(&probe, &stored, false).unwrap();
        let b = transform_points(&probe, &ours, false).unwrap();
        for (p, q) in a.iter().zip(&b) {
            let d = (p[0] - q[0]).hypot(p[1] - q[1]);
            worst = worst.max(d);
            assert!(d < 0.05, "{name}: mapped points differ by {d} px");
        }
        // The stored aligned landmarks are the source landmarks mapped by the matrix.
        let mapped = transform_points(src, &ours, false).unwrap();
        for (p, q) in mapped.iter().zip(m.landmarks.as_ref().unwrap()) {
            assert!((p[0] - q[0]).hypot(p[1] - q[1]) < 0.05, "{name}");
        }
    }
    eprintln!("worst mapped-point difference vs DFL's stored matrices: {worst:.2e} px");
}

#[test]
fn dfl_pak_is_read_and_unpacks_to_identical_files() {
    let pak_path = dfl_dir().join("packed/faceset.pak");
    let bytes = std::fs::read(&pak_path).unwrap();
    let samples = pak::read_pak(&bytes).unwrap();
    assert_eq!(samples.len(), 5);
    // DFL's quirk is present in this file: the last offset is the absolute file length.
    let header_len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let last_at = 16 + header_len + 8 * 5;
    let last = u64::from_le_bytes(bytes[last_at..last_at + 8].try_into().unwrap());
    assert_eq!(last, bytes.len() as u64);
    let expected = read_json(&dfl_dir().join("expected.json"));
    for s in &samples {
        let original = std::fs::read(dfl_dir().join(&s.filename)).unwrap();
        assert!(bytes[s.range.clone()] == original[..], "{}", s.filename);
        assert_eq!(s.person_name, None);
        let e = &expected[s.filename.as_str()];
        let code =
            FaceType::from_code(s.config.get("face_type").unwrap().as_i64().unwrap()).unwrap();
        assert_eq!(code.as_str(), e["face_type"].as_str().unwrap());
        // Our sample config for the same file equals DFL's, value for value.
        let ours = pak::sample_config(&PakEntry {
            filename: s.filename.clone(),
            person_name: None,
            bytes: original,
        })
        .unwrap();
        assert_eq!(ours, s.config, "{}", s.filename);
    }

    // The folder job: unpack a copy byte for byte, keeping the pak unless asked.
    let dir = Scratch::new("dflpak");
    std::fs::copy(&pak_path, dir.0.join("faceset.pak")).unwrap();
    let r = ops::unpack(&dir.0, UnpackOptions::default(), &NoProgress).unwrap();
    assert_eq!((r.written, r.unchanged, r.pak_deleted), (5, 0, false));
    for name in DFL_FILES {
        assert!(
            std::fs::read(dir.0.join(name)).unwrap()
                == std::fs::read(dfl_dir().join(name)).unwrap(),
            "{name}"
        );
    }
    // Running again finds identical files; a modified file is refused, then overwritten.
    assert_eq!(
        ops::unpack(&dir.0, UnpackOptions::default(), &NoProgress)
            .unwrap()
            .unchanged,
        5
    );
    std::fs::write(dir.0.join(DFL_FILES[2]), b"edited").unwrap();
    let err = ops::unpack(&dir.0, UnpackOptions::default(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("--overwrite"), "{err}");
    let r = ops::unpack(
        &dir.0,
        UnpackOptions {
            overwrite: true,
            delete_pak: true,
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!((r.written, r.pak_deleted), (1, true));
    assert!(!dir.0.join("faceset.pak").exists());
    assert!(
        std::fs::read(dir.0.join(DFL_FILES[2])).unwrap()
            == std::fs::read(dfl_dir().join(DFL_FILES[2])).unwrap()
    );
}

#[test]
fn pack_then_unpack_is_byte_identical_with_and_without_persons() {
    let dir = Scratch::new("pack");
    for name in DFL_FILES {
        std::fs::copy(dfl_dir().join(name), dir.0.join(name)).unwrap();
    }
    let opts = PackOptions {
        delete_originals: true,
        ..Default::default()
    };
    let r = ops::pack(&dir.0, opts, &NoProgress).unwrap();
    assert_eq!((r.files, r.deleted), (5, 5));
    assert!(
        ops::pack(&dir.0, opts, &NoProgress).is_err(),
        "no faces left, and the pak exists"
    );
    // Our pak has a relative last offset (correct), and DFL's layout otherwise.
    let bytes = std::fs::read(dir.0.join("faceset.pak")).unwrap();
    let samples = pak::read_pak(&bytes).unwrap();
    assert_eq!(samples.last().unwrap().range.end, bytes.len());
    ops::unpack(&dir.0, UnpackOptions::default(), &NoProgress).unwrap();
    for name in DFL_FILES {
        assert!(
            std::fs::read(dir.0.join(name)).unwrap()
                == std::fs::read(dfl_dir().join(name)).unwrap(),
            "{name}"
        );
    }

    // Person facesets: sub-folders become person_name and come back to the same place.
    let pdir = Scratch::new("persons");
    for (i, name) in DFL_FILES.iter().enumerate() {
        let person = pdir.0.join(if i % 2 == 0 { "alice" } else { "bob" });
        std::fs::create_dir_all(&person).unwrap();
        std::fs::copy(dfl_dir().join(name), person.join(name)).unwrap();
    }
    let r = ops::pack(
        &pdir.0,
        PackOptions {
            persons: true,
            delete_originals: true,
            overwrite: false,
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.files, 5);
    let samples = pak::read_pak(&std::fs::read(pdir.0.join("faceset.pak")).unwrap()).unwrap();
    assert_eq!(samples[0].person_name.as_deref(), Some("alice"));
    ops::unpack(&pdir.0, UnpackOptions::default(), &NoProgress).unwrap();
    for (i, name) in DFL_FILES.iter().enumerate() {
        let p = pdir
            .0
            .join(if i % 2 == 0 { "alice" } else { "bob" })
            .join(name);
        assert!(
            std::fs::read(p).unwrap() == std::fs::read(dfl_dir().join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn hostile_paks_are_refused() {
    let good = pak::write_pak(&[PakEntry {
        filename: "a.jpg".into(),
        person_name: None,
        bytes: std::fs::read(dfl_dir().join(DFL_FILES[3])).unwrap(),
    }])
    .unwrap();
    assert_eq!(pak::read_pak(&good).unwrap().len(), 1);
    for cut in [0, 8, 20, good.len() / 2, good.len() - 1] {
        assert!(pak::read_pak(&good[..cut]).is_err(), "cut {cut}");
    }
    // A file name that escapes the folder.
    let evil = pak::write_pak(&[PakEntry {
        filename: "a.jpg".into(),
        person_name: None,
        bytes: std::fs::read(dfl_dir().join(DFL_FILES[3])).unwrap(),
    }])
    .unwrap();
    let text = String::from_utf8_lossy(&evil).into_owned();
    assert!(text.contains("a.jpg"));
    let pos = evil.windows(5).position(|w| w == b"a.jpg").unwrap();
    let mut evil = evil.clone();
    evil[pos - 1..pos + 5].copy_from_slice(b"\x05../ab");
    let err = pak::read_pak(&evil).unwrap_err();
    assert!(err.to_string().contains("unsafe file name"), "{err}");
    assert!(
        pak::write_pak(&[PakEntry {
            filename: "../x.jpg".into(),
            person_name: None,
            bytes: vec![]
        }])
        .is_err()
    );
}

// ------------------------------------------------------------------------------------------
// Cross-check with the independent Python writer/reader
// ------------------------------------------------------------------------------------------

#[test]
fn python_written_files_read_back_with_every_key_equal() {
    let written = read_json(&cross_dir().join("py_written.json"));
    for name in ["py_full.jpg", "py_minimal.jpg", "py_legacy.jpg"] {
        let bytes = std::fs::read(cross_dir().join(name)).unwrap();
        // Every key, value and Python/numpy type, as Python wrote it.
        json_eq(&describe(&app15_value(&bytes)), &written[name], name).unwrap();
        // And the typed view.
        let m = AlignedFace::from_bytes(bytes).unwrap().meta;
        assert_eq!(m.landmarks.as_ref().unwrap().len(), 68, "{name}");
        assert!(m.face_type.is_some());
    }
    let full = read_meta(&cross_dir().join("py_full.jpg")).unwrap();
    assert_eq!(full.face_type, Some(FaceType::WholeFace));
    assert_eq!(full.source_rect, Some([10, 20, 110, 140]));
    assert_eq!(
        full.image_to_face_mat,
        Some(Affine::new(0.5, 0.01, -3.25, -0.01, 0.5, 7.125))
    );
    let polys = full.seg_ie_polys.unwrap();
    assert_eq!(polys[0].kind, PolyType::Include);
    assert_eq!(polys[1].pts, vec![[30.0, 30.0], [40.0, 31.0], [35.0, 44.5]]);
    assert_eq!(
        full.xseg_mask.as_ref().unwrap().encoding().unwrap(),
        MaskEncoding::Png
    );
    assert_eq!(full.xseg_mask.unwrap().decode().unwrap().width, 64);
    assert_eq!(full.eyebrows_expand_mod, Some(1.5));

    let legacy = read_meta(&cross_dir().join("py_legacy.jpg")).unwrap();
    assert_eq!(legacy.source_rect, Some([1, 2, 3, 4]));
    let lp = legacy.seg_ie_polys.unwrap();
    assert_eq!(
        (lp.len(), lp[1].kind, lp[0].pts[1]),
        (2, PolyType::Exclude, [50.0, 2.0])
    );
    assert_eq!(
        legacy.xseg_mask.unwrap().encoding().unwrap(),
        MaskEncoding::Jpeg
    );
    assert_eq!(legacy.eyebrows_expand_mod, Some(1.25));
    assert_eq!(legacy.extra[0].0, "pitch_yaw_roll");

    // The pak written by the Python reference (with DFL's absolute last offset).
    let pak_bytes = std::fs::read(cross_dir().join("py_faceset.pak")).unwrap();
    let samples = pak::read_pak(&pak_bytes).unwrap();
    let files = written["py_faceset.pak"]["files"].as_array().unwrap();
    assert_eq!(samples.len(), files.len());
    for (s, f) in samples.iter().zip(files) {
        assert_eq!(s.filename, f.as_str().unwrap());
        assert!(
            pak_bytes[s.range.clone()] == std::fs::read(cross_dir().join(&s.filename)).unwrap()[..]
        );
    }
    let header = Value::List(samples.iter().map(|s| s.config.clone()).collect());
    json_eq(
        &describe(&header),
        &written["py_faceset.pak"]["header"],
        "py pak header",
    )
    .unwrap();
}

/// The metadata dfl-rs writes for the cross-check files.
fn ours_metas() -> Vec<(&'static str, FaceMeta)> {
    let lm = |k: f64| -> Vec<Pt> {
        (0..68)
            .map(|i| [i as f64 * 1.25 + k, 90.0 - i as f64 * 0.75])
            .collect()
    };
    let mut mask = vec![0u8; 64 * 64];
    for y in 10..50 {
        mask[y * 64 + 12..y * 64 + 52].fill(255);
    }
    let png = XsegMask::encode(&GrayMask {
        width: 64,
        height: 64,
        data: mask,
    })
    .unwrap();
    let mut s = 99u32;
    let noise = (0..256 * 256)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 24) as u8
        })
        .collect();
    let jpg = XsegMask::encode(&GrayMask {
        width: 256,
        height: 256,
        data: noise,
    })
    .unwrap();
    let full = FaceMeta {
        face_type: Some(FaceType::Head),
        landmarks: Some(lm(0.5)),
        source_filename: Some("00017.png".into()),
        source_rect: Some([-5, 12, 300, 4_000_000_000]),
        source_landmarks: Some(lm(100.125)),
        image_to_face_mat: Some(Affine::new(1.5, -0.25, -100.0, 0.25, 1.5, 1e-7)),
        seg_ie_polys: Some(vec![
            SegPoly {
                kind: PolyType::Include,
                pts: vec![[1.0, 2.0], [60.5, 3.0], [30.0, 70.25]],
            },
            SegPoly {
                kind: PolyType::Exclude,
                pts: vec![[10.0, 10.0], [20.0, 10.0], [15.0, 22.0], [11.0, 19.5]],
            },
        ]),
        xseg_mask: Some(png),
        eyebrows_expand_mod: Some(2.0),
        extra: vec![(
            "dfl_rs_note".into(),
            Value::Tuple(vec![Value::Int(1), Value::Str("kept".into())]),
        )],
    };
    let jpeg_mask = FaceMeta {
        face_type: Some(FaceType::Full),
        landmarks: Some(lm(3.0)),
        xseg_mask: Some(jpg),
        ..Default::default()
    };
    vec![("ours_full.jpg", full), ("ours_jpegmask.jpg", jpeg_mask)]
}

#[test]
fn cross_check_ours_is_stable_and_python_reads_every_key() {
    let update = std::env::var_os("DFL_UPDATE_FIXTURES").is_some();
    let base = std::fs::read(cross_dir().join("base.jpg")).unwrap();
    let mut entries = Vec::new();
    for (name, meta) in ours_metas() {
        let bytes = embed_meta(&base, &meta).unwrap();
        assert!(without_app15(&bytes) == base, "{name}: only APP15 is added");
        assert_eq!(
            AlignedFace::from_bytes(bytes.clone()).unwrap().meta,
            meta,
            "{name}: round trip"
        );
        let path = cross_dir().join(name);
        if update {
            std::fs::write(&path, &bytes).unwrap();
        } else {
            assert!(
                std::fs::read(&path).unwrap() == bytes,
                "{name} changed: rerun the cross-check update"
            );
        }
        entries.push(PakEntry {
            filename: name.to_string(),
            person_name: None,
            bytes,
        });
    }
    let pak_bytes = pak::write_pak(&entries).unwrap();
    let pak_path = cross_dir().join("ours_faceset.pak");
    // meta.dat (DFL's pickle format) of the same files.
    let scratch = Scratch::new("cross-meta");
    for e in &entries {
        std::fs::write(scratch.0.join(&e.filename), &e.bytes).unwrap();
    }
    ops::metadata_save(&scratch.0, &NoProgress).unwrap();
    let meta_dat = std::fs::read(scratch.0.join(ops::META_DAT)).unwrap();
    let meta_path = cross_dir().join("ours_meta.dat");
    if update {
        std::fs::write(&pak_path, &pak_bytes).unwrap();
        std::fs::write(&meta_path, &meta_dat).unwrap();
        return;
    }
    assert!(
        std::fs::read(&pak_path).unwrap() == pak_bytes,
        "ours_faceset.pak changed"
    );
    assert!(
        std::fs::read(&meta_path).unwrap() == meta_dat,
        "ours_meta.dat changed"
    );

    // What Python's pickle.loads saw in our files.
    let seen = read_json(&cross_dir().join("ours_read_by_python.json"));
    for (name, meta) in ours_metas() {
        json_eq(&seen[name]["dict"], &describe(&meta.to_value()), name).unwrap();
        let (w, h) = meta.xseg_mask.as_ref().unwrap().dimensions().unwrap();
        assert_eq!(
            seen[name]["xseg_mask_decoded_shape"],
            json!([h, w]),
            "{name}: OpenCV decodes our mask"
        );
        assert_eq!(seen[name]["image_shape"], json!([96, 96, 3]));
    }
    let p = &seen["ours_faceset.pak"];
    assert_eq!(p["last_offset_relative"], json!(true));
    for (name, _) in ours_metas() {
        assert_eq!(
            p["files_equal"][name],
            json!(true),
            "{name}: Python unpacks our pak"
        );
    }
    let header = Value::List(
        entries
            .iter()
            .map(|e| pak::sample_config(e).unwrap())
            .collect(),
    );
    json_eq(&p["header"], &describe(&header), "pak header").unwrap();
    json_eq(
        &seen["ours_meta.dat"],
        &describe(&pickle::loads(&meta_dat).unwrap()),
        "meta.dat",
    )
    .unwrap();
}

// ------------------------------------------------------------------------------------------
// Metadata rewrite, bad input
// ------------------------------------------------------------------------------------------

#[test]
fn rewriting_metadata_keeps_every_other_byte() {
    for name in DFL_FILES {
        let original = std::fs::read(dfl_dir().join(name)).unwrap();
        let face = AlignedFace::from_bytes(original.clone()).unwrap();
        let mut meta = face.meta.clone();
        meta.eyebrows_expand_mod = Some(1.75);
        meta.seg_ie_polys = None;
        let out = face.with_meta(&meta).unwrap();
        assert!(without_app15(&out) == without_app15(&original), "{name}");
        assert_eq!(AlignedFace::from_bytes(out).unwrap().meta, meta, "{name}");
        // The APP15 stays where DFL puts it (right after APP0).
        let h = jpeg::parse_header(&original).unwrap();
        assert_eq!(h.segments[0].marker, 0xE0);
        assert_eq!(h.segments[1].marker, jpeg::APP15);
    }
    // write_meta on disk.
    let dir = Scratch::new("rewrite");
    let p = dir.0.join("a.jpg");
    std::fs::copy(dfl_dir().join(DFL_FILES[0]), &p).unwrap();
    let mut meta = read_meta(&p).unwrap();
    meta.source_filename = Some("renamed.png".into());
    dfl_faceset::write_meta(&p, &meta).unwrap();
    assert_eq!(read_meta(&p).unwrap(), meta);
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        1,
        "no temp file left"
    );
    // Metadata too large for one segment is refused with the typed error.
    meta.extra
        .push(("huge".into(), Value::Bytes(vec![0; 70_000])));
    let err = dfl_faceset::write_meta(&p, &meta).unwrap_err();
    assert!(matches!(err.kind(), Error::MetadataTooLarge(_)), "{err}");
}

fn pickle_in_jpeg(payload: &[u8]) -> Vec<u8> {
    let base = std::fs::read(cross_dir().join("base.jpg")).unwrap();
    let h = jpeg::parse_header(&base).unwrap();
    jpeg::replace_app15(&base, &h, payload).unwrap()
}

fn chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = Scratch::new("bad");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let check = |p: &Path, kind: fn(&Error) -> bool, words: &str| {
        let e = read_meta(p).unwrap_err();
        let msg = chain(&e);
        assert!(kind(e.kind()), "{msg}");
        assert!(
            msg.contains(&p.display().to_string()),
            "error names the file: {msg}"
        );
        assert!(msg.contains(words), "'{words}' in: {msg}");
    };
    // A JPEG without APP15.
    let p = write(
        "plain.jpg",
        &std::fs::read(cross_dir().join("base.jpg")).unwrap(),
    );
    check(
        &p,
        |e| matches!(e, Error::NotAligned),
        "not an aligned face",
    );
    // Truncated files, cut anywhere.
    let good = std::fs::read(dfl_dir().join(DFL_FILES[0])).unwrap();
    for cut in [1, 3, 10, 30, 500, 4000, good.len() / 2, good.len() - 1] {
        let p = write("cut.jpg", &good[..cut]);
        let e = read_meta(&p).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                Error::Truncated(_) | Error::Pickle(_) | Error::NotJpeg | Error::CorruptJpeg(_)
            ),
            "cut {cut}: {}",
            chain(&e)
        );
    }
    let p = write("cut.jpg", &good[..good.len() - 2]);
    check(&p, |e| matches!(e, Error::Truncated(_)), "end-of-image");
    // A pickle naming a foreign global: refused, nothing run.
    let marker = dir.0.join("pwned");
    let cmd = format!("touch {}", marker.display());
    let mut evil = b"\x80\x04\x8c\x05posix\x8c\x06system\x93".to_vec();
    evil.push(b'X');
    evil.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    evil.extend_from_slice(cmd.as_bytes());
    evil.extend_from_slice(b"\x85R.");
    let p = write("evil.jpg", &pickle_in_jpeg(&evil));
    check(
        &p,
        |e| {
            matches!(
                e,
                Error::Pickle(pickle::PickleError::ForbiddenGlobal { .. })
            )
        },
        "posix.system",
    );
    assert!(!marker.exists());
    // A pickle claiming a 10 GB array: refused without allocating it.
    let mut huge = NdArray::from_f64(vec![1], &[0.0]);
    huge.shape = vec![1_250_000_000];
    let payload = pickle::dumps(&Value::Dict(vec![(
        Value::Str("landmarks".into()),
        Value::Array(huge),
    )]));
    let p = write("huge.jpg", &pickle_in_jpeg(&payload));
    LARGEST.with(|m| m.set(0));
    check(
        &p,
        |e| matches!(e, Error::Pickle(pickle::PickleError::ArraySize { .. })),
        "10000000000 bytes",
    );
    let largest = LARGEST.with(|m| m.get());
    assert!(
        largest < 1 << 20,
        "largest allocation while refusing: {largest} bytes"
    );
    // A PNG and an empty file.
    let png = XsegMask::encode(&GrayMask {
        width: 4,
        height: 4,
        data: vec![0; 16],
    })
    .unwrap();
    let p = write("mask.jpg", png.encoded());
    check(&p, |e| matches!(e, Error::Png), "PNG");
    let p = write("empty.jpg", b"");
    check(&p, |e| matches!(e, Error::Empty), "empty");
    // A metadata dict with a wrongly typed key.
    let payload = pickle::dumps(&Value::Dict(vec![(
        Value::Str("landmarks".into()),
        Value::Str("x".into()),
    )]));
    let p = write("typed.jpg", &pickle_in_jpeg(&payload));
    check(&p, |e| matches!(e, Error::Metadata { .. }), "landmarks");
    // A missing file.
    let e = read_meta(&dir.0.join("nope.jpg")).unwrap_err();
    assert!(chain(&e).contains("nope.jpg"));
}

// ------------------------------------------------------------------------------------------
// Folder jobs
// ------------------------------------------------------------------------------------------

#[test]
fn metadata_save_and_restore_survive_an_external_editor() {
    let dir = Scratch::new("meta");
    for name in DFL_FILES {
        std::fs::copy(dfl_dir().join(name), dir.0.join(name)).unwrap();
    }
    let saved = ops::metadata_save(&dir.0, &NoProgress).unwrap();
    assert_eq!((saved.saved, saved.skipped.len()), (5, 0));
    // "Edit" two images: strip the metadata; upscale one of them to twice its size.
    std::fs::write(
        dir.0.join(DFL_FILES[0]),
        without_app15(&std::fs::read(dfl_dir().join(DFL_FILES[0])).unwrap()),
    )
    .unwrap();
    let img =
        image::load_from_memory(&std::fs::read(dfl_dir().join(DFL_FILES[3])).unwrap()).unwrap();
    let big = img
        .resize_exact(256, 256, image::imageops::FilterType::Triangle)
        .into_rgb8();
    big.save(dir.0.join(DFL_FILES[3])).unwrap();
    assert!(read_meta(&dir.0.join(DFL_FILES[3])).is_err());
    let r =
        ops::metadata_restore(&dir.0, RestoreOptions { delete_meta: true }, &NoProgress).unwrap();
    assert_eq!(
        (
            r.restored,
            r.resized,
            r.unchanged,
            r.skipped.len(),
            r.meta_deleted
        ),
        (5, 1, 3, 0, true)
    );
    for name in DFL_FILES {
        let want = read_meta(&dfl_dir().join(name)).unwrap();
        let got = AlignedFace::load(&dir.0.join(name)).unwrap();
        assert_eq!(got.meta, want, "{name}");
        assert_eq!(
            got.header.width,
            AlignedFace::load(&dfl_dir().join(name))
                .unwrap()
                .header
                .width
        );
    }
    // Untouched files keep their bytes exactly.
    assert!(
        std::fs::read(dir.0.join(DFL_FILES[1])).unwrap()
            == std::fs::read(dfl_dir().join(DFL_FILES[1])).unwrap()
    );
    assert!(!dir.0.join("meta.dat").exists());
}

#[test]
fn recover_names_restores_extractor_names() {
    let dir = Scratch::new("names");
    for (i, name) in DFL_FILES.iter().enumerate() {
        std::fs::copy(dfl_dir().join(name), dir.0.join(format!("{i:05}.jpg"))).unwrap();
    }
    let r = ops::recover_names(&dir.0, &NoProgress).unwrap();
    assert_eq!((r.renamed, r.skipped.len()), (5, 0));
    for name in DFL_FILES {
        assert!(
            std::fs::read(dir.0.join(name)).unwrap()
                == std::fs::read(dfl_dir().join(name)).unwrap(),
            "{name}"
        );
    }
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 5);
    // Idempotent.
    assert_eq!(ops::recover_names(&dir.0, &NoProgress).unwrap().renamed, 0);
}

#[test]
fn resize_keeps_metadata_consistent() {
    let dir = Scratch::new("resize");
    let out = dir.0.join("out");
    let input = dir.0.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for name in [DFL_FILES[0], DFL_FILES[1]] {
        std::fs::copy(dfl_dir().join(name), input.join(name)).unwrap();
    }
    // Same face type: 256 -> 128 and 512 -> 128.
    let opts = ops::ResizeOptions {
        size: 128,
        face_type: None,
        overwrite: false,
        shard: dfl_core::Shard::ALL,
    };
    let r = ops::resize_faceset(&input, &out, opts, &NoProgress).unwrap();
    assert_eq!((r.written, r.skipped.len()), (2, 0), "{:?}", r.skipped);
    for name in [DFL_FILES[0], DFL_FILES[1]] {
        let a = AlignedFace::load(&input.join(name)).unwrap();
        let b = AlignedFace::load(&out.join(name)).unwrap();
        assert_eq!((b.header.width, b.header.height), (128, 128));
        let k = 128.0 / f64::from(a.header.width);
        for (p, q) in a
            .meta
            .landmarks
            .as_ref()
            .unwrap()
            .iter()
            .zip(b.meta.landmarks.as_ref().unwrap())
        {
            assert!((p[0] * k - q[0]).abs() < 1e-9 && (p[1] * k - q[1]).abs() < 1e-9);
        }
        let want = transform_mat(
            a.meta.source_landmarks.as_ref().unwrap(),
            128.0,
            a.meta.face_type.unwrap(),
            1.0,
        )
        .unwrap();
        assert_eq!(b.meta.image_to_face_mat, Some(want));
        assert_eq!(
            b.meta.xseg_mask, a.meta.xseg_mask,
            "the mask is resolution independent"
        );
        assert_eq!(b.meta.source_rect, a.meta.source_rect);
    }
    assert!(
        ops::resize_faceset(&input, &out, opts, &NoProgress).is_err(),
        "refuses to overwrite"
    );

    // Re-crop whole_face 512 -> full_face 256: landmarks, matrix, polygons and mask follow.
    let out2 = dir.0.join("out2");
    let opts = ops::ResizeOptions {
        size: 256,
        face_type: Some(FaceType::Full),
        overwrite: false,
        shard: dfl_core::Shard::ALL,
    };
    ops::resize_faceset(&input, &out2, opts, &NoProgress).unwrap();
    let a = AlignedFace::load(&input.join(DFL_FILES[1])).unwrap();
    let b = AlignedFace::load(&out2.join(DFL_FILES[1])).unwrap();
    assert_eq!(b.meta.face_type, Some(FaceType::Full));
    let src = a.meta.source_landmarks.as_ref().unwrap();
    let direct = transform_mat(src, 256.0, FaceType::Full, 1.0).unwrap();
    assert_eq!(b.meta.image_to_face_mat, Some(direct));
    let from_frame = transform_points(src, &direct, false).unwrap();
    for (p, q) in from_frame.iter().zip(b.meta.landmarks.as_ref().unwrap()) {
        assert!(
            (p[0] - q[0]).hypot(p[1] - q[1]) < 0.05,
            "re-cropped landmarks agree with a crop from the frame"
        );
    }
    let mask = b.meta.xseg_mask.as_ref().unwrap().decode().unwrap();
    assert_eq!((mask.width, mask.height), (256, 256));
    let set = mask.data.iter().filter(|&&v| v == 255).count();
    let before = a
        .meta
        .xseg_mask
        .as_ref()
        .unwrap()
        .decode()
        .unwrap()
        .data
        .iter()
        .filter(|&&v| v == 255)
        .count();
    assert!(
        set > before,
        "a tighter crop makes the face mask larger ({before} -> {set})"
    );
    let (pa, pb) = (
        &a.meta.seg_ie_polys.as_ref().unwrap()[0],
        &b.meta.seg_ie_polys.as_ref().unwrap()[0],
    );
    let m = transform_mat(
        a.meta.landmarks.as_ref().unwrap(),
        256.0,
        FaceType::Full,
        1.0,
    )
    .unwrap();
    let want = transform_points(
        &[[f64::from(pa.pts[0][0]), f64::from(pa.pts[0][1])]],
        &m,
        false,
    )
    .unwrap()[0];
    assert!(
        (f64::from(pb.pts[0][0]) - want[0]).abs() < 1e-3
            && (f64::from(pb.pts[0][1]) - want[1]).abs() < 1e-3
    );
}

#[test]
fn debug_pictures_are_drawn() {
    let dir = Scratch::new("debug");
    let input = dir.0.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(dfl_dir().join(DFL_FILES[2]), input.join(DFL_FILES[2])).unwrap();
    let r = ops::debug_images(
        &input,
        &dir.0.join("dbg"),
        dfl_core::Shard::ALL,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.written, 1);
    let face = AlignedFace::load(&input.join(DFL_FILES[2])).unwrap();
    let pic = image::open(dir.0.join("dbg").join(DFL_FILES[2]))
        .unwrap()
        .into_rgb8();
    assert_eq!(
        (pic.width(), pic.height()),
        (face.header.width, face.header.height)
    );
    // Landmark 30 (nose tip) is drawn green; the hull is darkened.
    let lm = face.meta.landmarks.unwrap();
    let [x, y] = lm[8];
    let p = pic.get_pixel(x as u32, y as u32);
    assert!(
        p[1] > 150 && p[0] < 120 && p[2] < 120,
        "jaw point is green: {p:?}"
    );
    assert!(ops::debug_images(&input, &input, dfl_core::Shard::ALL, &NoProgress).is_err());
}
