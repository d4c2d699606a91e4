//! `dfl extract` end to end through the binary: the six demo photos plus bad input in one
//! folder, resume, settings mismatch, manual fix, and `dfl eval landmarks`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dfl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dfl"))
        .args(args)
        .output()
        .expect("run dfl")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn jpgs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    v.sort();
    v
}

/// The JPEG with its SOF height and width rewritten (header only).
fn with_jpeg_size(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let mut i = 2;
    while i + 9 < out.len() {
        let m = out[i + 1];
        let len = u16::from_be_bytes([out[i + 2], out[i + 3]]) as usize;
        if m == 0xC0 || m == 0xC2 {
            out[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
            out[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
            return out;
        }
        i += 2 + len;
    }
    panic!("no SOF marker");
}

fn meta_rect(p: &Path) -> [i64; 4] {
    dfl_faceset::read_meta(p).unwrap().source_rect.unwrap()
}

#[test]
fn extract_demo_photos_bad_input_resume_and_manual_fix() {
    let root = std::env::temp_dir().join(format!("dfl-cli-extract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("data_src");
    let output = root.join("data_src/aligned");
    std::fs::create_dir_all(&input).unwrap();
    for i in 1..=6 {
        let name = format!("sample{i}.jpg");
        std::fs::copy(repo().join("assets/samples").join(&name), input.join(&name)).unwrap();
    }
    // Bad input: a text file, a 1x1 image, a corrupt JPEG, a 16000x16000 header, and a frame
    // whose faces are too small to detect (the manual-fix candidate).
    std::fs::write(input.join("notes.txt"), "not a frame").unwrap();
    image::RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9]))
        .save(input.join("tiny.png"))
        .unwrap();
    std::fs::write(input.join("corrupt.jpg"), b"\xff\xd8\xff\xdb garbage").unwrap();
    let jpeg = std::fs::read(repo().join("assets/samples/sample1.jpg")).unwrap();
    std::fs::write(input.join("huge.jpg"), with_jpeg_size(&jpeg, 16000, 16000)).unwrap();
    let full = image::open(repo().join("assets/samples/sample1.jpg")).unwrap();
    let (w, h) = (full.width(), full.height());
    // Faces shrunk to ~30 px (under DFL's 40 px minimum) on a larger black canvas.
    let s = full
        .resize(w / 6, h / 6, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let mut canvas = image::RgbImage::new(w * 2 / 3, h * 2 / 3);
    image::imageops::overlay(&mut canvas, &s, 0, 0);
    canvas.save(input.join("small.png")).unwrap();

    let inp = input.to_str().unwrap();
    let out = output.to_str().unwrap();
    let o = dfl(&[
        "extract", "--input", inp, "--output", out, "--debug", "--size", "256",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Images found:        10"), "{t}");
    assert!(t.contains("Faces detected:      22"), "{t}");
    // 22 faces from the six photos, numbered largest first per frame, nothing else.
    let files = jpgs(&output);
    assert_eq!(files.len(), 22, "{files:?}");
    for (frame, n) in [(1, 3), (2, 3), (3, 3), (4, 4), (5, 5), (6, 4)] {
        for k in 0..n {
            assert!(
                files.contains(&format!("sample{frame}_{k}.jpg")),
                "{files:?}"
            );
        }
    }
    assert_eq!(jpgs(&root.join("data_src/aligned_debug")).len(), 8);
    assert!(t.contains("notes.txt"), "{t}");
    assert!(t.contains("corrupt.jpg"), "{t}");
    assert!(t.contains("huge.jpg") && t.contains("16000x16000"), "{t}");
    let listed = t.split("No face in").nth(1).unwrap_or("");
    assert!(
        listed.contains("tiny.png") && listed.contains("small.png"),
        "{t}"
    );
    // Every aligned face carries DFL metadata pointing back to its frame.
    let meta = dfl_faceset::read_meta(&output.join("sample5_0.jpg")).unwrap();
    assert_eq!(meta.source_filename.as_deref(), Some("sample5.jpg"));
    assert_eq!(meta.face_type, Some(dfl_geom::FaceType::WholeFace));
    assert_eq!(meta.landmarks.unwrap().len(), 68);
    assert!(meta.image_to_face_mat.is_some());

    // Second run: everything is resumed, nothing rewritten or deleted.
    let first = output.join("sample1_0.jpg");
    let before = std::fs::metadata(&first).unwrap().modified().unwrap();
    let o = dfl(&["extract", "--input", inp, "--output", out, "--size", "256"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Already done:        8"), "{t}");
    assert_eq!(jpgs(&output).len(), 22);
    let after = std::fs::metadata(&first).unwrap().modified().unwrap();
    assert_eq!(before, after);

    // Other settings without --overwrite: refused, faces kept.
    let o = dfl(&[
        "extract",
        "--input",
        inp,
        "--output",
        out,
        "--face-type",
        "f",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--overwrite"), "{}", text(&o));
    assert_eq!(jpgs(&output).len(), 22);

    // Manual fix: list the frames without a face, then add one by rectangle.
    let o = dfl(&["extract", "--input", inp, "--output", out, "--manual-fix"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(
        t.lines().collect::<Vec<_>>(),
        vec!["small.png", "tiny.png"],
        "{t}"
    );
    // The largest face of sample1, its detector box divided by 6 like the frame.
    let r = meta_rect(&first);
    let rect = format!("{},{},{},{}", r[0] / 6, r[1] / 6, r[2] / 6, r[3] / 6);
    let o = dfl(&[
        "extract",
        "--input",
        inp,
        "--output",
        out,
        "--size",
        "256",
        "--manual-fix",
        "--frame",
        "small.png",
        "--rect",
        &rect,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(output.join("small_0.jpg").is_file());
    let o = dfl(&["extract", "--input", inp, "--output", out, "--manual-fix"]);
    assert_eq!(text(&o).trim(), "tiny.png");

    // --overwrite starts over with the new settings.
    let o = dfl(&[
        "extract",
        "--input",
        inp,
        "--output",
        out,
        "--face-type",
        "f",
        "--overwrite",
        "--max-faces",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(jpgs(&output).len(), 6);
    assert!(!root.join("data_src/aligned_debug").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

/// `dfl eval landmarks` on two demo photos annotated with face-api's own (TF.js) landmarks:
/// the NME against them is small, and a missing annotation folder is a clear error.
#[test]
fn eval_landmarks_reports_nme() {
    let root = std::env::temp_dir().join(format!("dfl-cli-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (imgs, pts) = (root.join("img"), root.join("pts"));
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::create_dir_all(&pts).unwrap();
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("crates/dfl-detect/tests/fixtures/faceapi_tfjs_reference.json"))
            .unwrap(),
    )
    .unwrap();
    for name in ["sample1.jpg", "sample3.jpg"] {
        std::fs::copy(repo().join("assets/samples").join(name), imgs.join(name)).unwrap();
        let mut s = String::from("version: 1\nn_points: 68\n{\n");
        for p in reference[name][0]["landmarks"].as_array().unwrap() {
            let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
            s.push_str(&format!("{} {}\n", x + 1.0, y + 1.0));
        }
        s.push_str("}\n");
        std::fs::write(pts.join(name.replace(".jpg", ".pts")), s).unwrap();
    }
    let (i, p) = (imgs.to_str().unwrap(), pts.to_str().unwrap());
    let o = dfl(&["eval", "landmarks", "--images", i, "--pts", p, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    assert_eq!(v["missed"], 0);
    let mean = v["mean_nme"].as_f64().unwrap();
    assert!(mean > 0.0 && mean < 0.05, "{v}");
    let none = root.join("none");
    let o = dfl(&[
        "eval",
        "landmarks",
        "--images",
        i,
        "--pts",
        none.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    std::fs::remove_dir_all(&root).unwrap();
}

/// `--shard i/n`: two processes share one output folder, each takes every other frame, and
/// together they write every face; the manual-fix list reads both shards' state.
#[test]
fn shards_split_frames_and_share_the_output() {
    let root = std::env::temp_dir().join(format!("dfl-cli-shard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("frames");
    let output = root.join("aligned");
    std::fs::create_dir_all(&input).unwrap();
    for name in ["sample1.jpg", "sample2.jpg"] {
        std::fs::copy(repo().join("assets/samples").join(name), input.join(name)).unwrap();
    }
    image::RgbImage::from_pixel(200, 200, image::Rgb([40, 40, 40]))
        .save(input.join("sample3.png"))
        .unwrap();
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let a = dfl(&[
        "extract", "--input", i, "--output", o, "--shard", "0/2", "--size", "256",
    ]);
    assert!(a.status.success(), "{}", text(&a));
    let files = jpgs(&output);
    // Shard 0 owns frames 0 and 2 of the sorted list: sample1.jpg and sample3.png.
    assert!(files.iter().all(|f| f.starts_with("sample1_")), "{files:?}");
    assert_eq!(files.len(), 3);
    let b = dfl(&[
        "extract", "--input", i, "--output", o, "--shard", "1/2", "--size", "256",
    ]);
    assert!(b.status.success(), "{}", text(&b));
    assert_eq!(jpgs(&output).len(), 6);
    let m = dfl(&["extract", "--input", i, "--output", o, "--manual-fix"]);
    assert_eq!(text(&m).trim(), "sample3.png");
    std::fs::remove_dir_all(&root).unwrap();
}
