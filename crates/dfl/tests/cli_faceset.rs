//! `dfl faceset ...` end to end on DFL-written aligned faces.

mod common;

use common::{Scratch, dfl, ok};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dfl-faceset/tests/fixtures/dfl-aligned")
}

const FILES: [&str; 5] = [
    "sample5_0.jpg",
    "sample5_1.jpg",
    "sample5_2.jpg",
    "sample5_3.jpg",
    "sample5_4.jpg",
];

/// A scratch folder holding copies of the five DFL-written faces.
fn with_faces(tag: &str) -> Scratch {
    let dir = Scratch::new(&format!("faceset-{tag}"));
    for f in FILES {
        std::fs::copy(fixtures().join(f), dir.0.join(f)).unwrap();
    }
    dir
}

#[test]
fn info_prints_dfl_keys_as_json() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    for f in FILES {
        let out = ok(&dfl(&[
            "faceset",
            "info",
            fixtures().join(f).to_str().unwrap(),
        ]));
        assert_eq!(out.lines().count(), 1, "one JSON object on one line");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        let e = &expected[f];
        assert_eq!(j["face_type"], e["face_type"]);
        assert_eq!(j["source_filename"], e["source_filename"]);
        assert_eq!(j["source_rect"], e["source_rect"]);
        assert_eq!(j["landmarks"].as_array().unwrap().len(), 68);
        assert_eq!(j["source_landmarks"][30], e["source_landmarks"][30]);
        assert_eq!(j["image_to_face_mat"], e["image_to_face_mat"]);
        assert_eq!(
            j["seg_ie_polys"].is_object(),
            e["has_polys"].as_bool().unwrap()
        );
        if e["has_xseg_mask"].as_bool().unwrap() {
            assert_eq!(
                j["xseg_mask"],
                serde_json::json!({"width": 256, "height": 256, "encoding": "png"})
            );
            let poly = &j["seg_ie_polys"]["polys"][0];
            assert_eq!(poly["type"], 1);
            assert!(poly["pts"].as_array().unwrap().len() >= 3);
        } else {
            assert!(j["xseg_mask"].is_null());
        }
        assert!(j["eyebrows_expand_mod"].is_null());
    }
}

#[test]
fn bad_files_fail_with_one_clear_line() {
    let dir = with_faces("bad");
    let bytes = std::fs::read(dir.0.join(FILES[0])).unwrap();
    let cut = dir.0.join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let empty = dir.0.join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    for (path, words) in [(&cut, "truncated"), (&empty, "empty file")] {
        let o = dfl(&["faceset", "info", path.to_str().unwrap()]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(words),
            "{err}"
        );
    }
}

#[test]
fn pack_unpack_round_trip_and_destructive_flags() {
    let dir = with_faces("pack");
    ok(&dfl(&["faceset", "pack", dir.s()]));
    // Without --delete-originals the faces stay.
    assert!(dir.0.join(FILES[0]).exists() && dir.0.join("faceset.pak").exists());
    let again = dfl(&["faceset", "pack", dir.s()]);
    assert!(
        !again.status.success(),
        "an existing pak is not replaced silently"
    );
    ok(&dfl(&[
        "faceset",
        "pack",
        dir.s(),
        "--overwrite",
        "--delete-originals",
    ]));
    assert!(!dir.0.join(FILES[0]).exists());
    ok(&dfl(&["faceset", "unpack", dir.s(), "--delete-pak"]));
    assert!(!dir.0.join("faceset.pak").exists());
    for f in FILES {
        assert!(
            std::fs::read(dir.0.join(f)).unwrap() == std::fs::read(fixtures().join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn metadata_save_restore_recover_names_resize_debug() {
    let dir = with_faces("jobs");
    ok(&dfl(&["faceset", "metadata-save", dir.s()]));
    assert!(dir.0.join("meta.dat").exists());
    let out = ok(&dfl(&[
        "faceset",
        "metadata-restore",
        dir.s(),
        "--delete-meta",
    ]));
    assert!(out.contains("restored 5 faces"), "{out}");
    assert!(!dir.0.join("meta.dat").exists());

    for (i, f) in FILES.iter().enumerate() {
        std::fs::rename(dir.0.join(f), dir.0.join(format!("{i:05}.jpg"))).unwrap();
    }
    ok(&dfl(&["faceset", "recover-names", dir.s()]));
    for f in FILES {
        assert!(dir.0.join(f).exists(), "{f}");
    }

    let out_dir = dir.0.join("resized");
    ok(&dfl(&[
        "faceset",
        "resize",
        dir.s(),
        "--size",
        "64",
        "--output",
        out_dir.to_str().unwrap(),
        "--face-type",
        "f",
    ]));
    let info = ok(&dfl(&[
        "faceset",
        "info",
        out_dir.join(FILES[2]).to_str().unwrap(),
    ]));
    let j: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(j["face_type"], "full_face");
    let bytes = std::fs::read(out_dir.join(FILES[2])).unwrap();
    let h = dfl_faceset::jpeg::parse_header(&bytes).unwrap();
    assert_eq!((h.width, h.height), (64, 64));

    let dbg = dir.0.join("debug");
    let out = ok(&dfl(&[
        "faceset",
        "debug",
        dir.s(),
        "--output",
        dbg.to_str().unwrap(),
    ]));
    assert!(out.contains("wrote 5 debug pictures"), "{out}");
    assert_eq!(std::fs::read_dir(&dbg).unwrap().count(), 5);
}
