//! `dfl merge` through the built binary with a tiny SAEHD trained inside the test: merged and
//! copied frames, resume, provenance carried into `dfl video build`'s mp4, and bad input
//! (another model type, missing frames, out-of-range config, unwritable output), each one
//! clear error line that leaves earlier outputs intact. Needs ffmpeg/ffprobe on PATH.

use burn::tensor::Device;
use dfl_faceset::{FaceMeta, embed_meta};
use dfl_geom::{FaceType, Pt};
use dfl_image::{Image, Quantize};
use dfl_nn::options::SaehdOptions;
use dfl_nn::xseg_model::{XSegModel, XSegOptions};
use dfl_nn::{CheckpointDir, DeviceSpec, Saehd};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const R: usize = 32;
const STEPS: usize = 20;

fn dfl(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dfl"))
        .args(args)
        .output()
        .expect("dfl runs")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dfl-cli-merge-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn assert_ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "dfl failed: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The run failed with exactly one error line containing every needle.
fn assert_fails_with(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {err}");
    }
}

/// 68 landmarks of a frontal face centred at (cx, cy), about `size` pixels tall.
fn landmarks(cx: f64, cy: f64, size: f64) -> Vec<Pt> {
    let s = size / 150.0;
    dfl_geom::landmarks::MODEL_3D_68
        .iter()
        .map(|p| [cx + p[0] * s, cy + p[1] * s])
        .collect()
}

/// A gradient frame with a light ellipse and two dark eyes under each face.
fn frame(w: usize, h: usize, faces: &[Vec<Pt>]) -> Image {
    Image::from_fn(w, h, 3, |x, y, c| {
        let (fx, fy) = (x as f64, y as f64);
        let mut v = [0.2 + 0.5 * fx / w as f64, 0.3, 0.6 - 0.4 * fy / h as f64][c];
        for lm in faces {
            let (cx, cy) = (lm[30][0], lm[30][1]);
            let (rx, ry) = ((lm[16][0] - lm[0][0]) / 2.0, (lm[8][1] - lm[19][1]) / 1.6);
            if ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2) <= 1.0 {
                v = [0.45, 0.55, 0.8][c];
            }
            for eye in [36usize, 42] {
                let ex = (lm[eye][0] + lm[eye + 3][0]) / 2.0;
                if (fx - ex).hypot(fy - lm[eye][1]) < rx * 0.15 {
                    v = 0.1;
                }
            }
        }
        v as f32
    })
    .unwrap()
}

/// An aligned-face file whose metadata says it came from `frame_name` with `lm`.
fn write_aligned(dir: &Path, name: &str, frame_name: &str, lm: &[Pt]) {
    let mut jpeg = Vec::new();
    let gray = image::GrayImage::from_pixel(16, 16, image::Luma([128]));
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .encode_image(&gray)
        .unwrap();
    let meta = FaceMeta {
        face_type: Some(FaceType::Full),
        landmarks: Some(lm.to_vec()),
        source_filename: Some(frame_name.to_string()),
        source_landmarks: Some(lm.to_vec()),
        ..FaceMeta::default()
    };
    fs::write(dir.join(name), embed_meta(&jpeg, &meta).unwrap()).unwrap();
}

fn rgb(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

/// The comment tag ffprobe reads from the container.
fn container_comment(path: &Path) -> String {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format_tags=comment"])
        .args(["-of", "default=nw=1:nk=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn merge_cli_end_to_end_and_bad_input() {
    let root = scratch("e2e");
    // A tiny DF model, trained a few steps, and an XSeg model (another model type).
    let model = root.join("model");
    let opts = SaehdOptions {
        archi: "df".parse().unwrap(),
        resolution: R,
        ae_dims: 32,
        e_dims: 16,
        d_dims: 16,
        d_mask_dims: 16,
        gan_patch_size: R / 8,
        ..SaehdOptions::default()
    };
    let mut m = Saehd::new(opts, DeviceSpec::Cpu, 3).unwrap();
    let batch = dfl_nn::synthetic::batch(4, R, 3, &Device::flex());
    for _ in 0..STEPS {
        m.train_step(&batch).unwrap();
    }
    m.save(&CheckpointDir::new(&model, 0)).unwrap();
    let xseg = root.join("xseg_model");
    XSegModel::new(XSegOptions::default(), DeviceSpec::Cpu, 5)
        .unwrap()
        .save(&CheckpointDir::new(&xseg, 0))
        .unwrap();

    // Frames: a face, no face, a face.
    let frames = root.join("data_dst");
    let aligned = frames.join("aligned");
    fs::create_dir_all(&aligned).unwrap();
    let layout = [
        vec![landmarks(60.0, 48.0, 44.0)],
        vec![],
        vec![landmarks(66.0, 50.0, 46.0)],
    ];
    for (i, faces) in layout.iter().enumerate() {
        let name = format!("{:05}.png", i + 1);
        frame(128, 96, faces)
            .bgr_to_rgb8(Quantize::Round)
            .unwrap()
            .save(frames.join(&name))
            .unwrap();
        for (k, lm) in faces.iter().enumerate() {
            write_aligned(&aligned, &format!("{:05}_{k}.jpg", i + 1), &name, lm);
        }
    }
    let merged = frames.join("merged");
    let masks = frames.join("merged_mask");
    let merge = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"merge",
            &"--model",
            &model,
            &"--input",
            &frames,
            &"--aligned",
            &aligned,
        ];
        args.extend_from_slice(extra);
        dfl(&args)
    };

    let out = assert_ok(&merge(&[&"--output", &merged, &"--mask-output", &masks]));
    assert!(
        out.contains("Merged:              2 frames, 2 faces"),
        "{out}"
    );
    assert!(out.contains("Copied (no face):    1"), "{out}");
    // The frame without a face is copied pixel for pixel; merged frames change at the face
    // and not in the corner.
    assert_eq!(
        rgb(&merged.join("00002.png")),
        rgb(&frames.join("00002.png"))
    );
    for (i, lm) in [(1, &layout[0][0]), (3, &layout[2][0])] {
        let name = format!("{i:05}.png");
        let (a, b) = (rgb(&merged.join(&name)), rgb(&frames.join(&name)));
        assert_eq!(a.get_pixel(0, 0), b.get_pixel(0, 0), "{name} corner");
        let (cx, cy) = (lm[30][0] as u32, lm[30][1] as u32);
        let diff: i32 = (cx - 6..cx + 6)
            .flat_map(|x| (cy - 6..cy + 6).map(move |y| (x, y)))
            .map(|(x, y)| {
                let (p, q) = (a.get_pixel(x, y).0, b.get_pixel(x, y).0);
                (0..3)
                    .map(|c| (p[c] as i32 - q[c] as i32).abs())
                    .sum::<i32>()
            })
            .sum();
        assert!(diff > 0, "{name}: face region unchanged");
        assert!(masks.join(&name).is_file());
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(merged.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(manifest["synthetic_faces"], true);
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["model"]["iteration"], STEPS);

    // Two shards into another folder give the same frames.
    let sharded = root.join("sharded");
    for shard in ["0/2", "1/2"] {
        assert_ok(&merge(&[&"--output", &sharded, &"--shard", &shard]));
    }
    for name in ["00001.png", "00002.png", "00003.png"] {
        assert_eq!(rgb(&sharded.join(name)), rgb(&merged.join(name)), "{name}");
    }

    // Resume: the same run does nothing again.
    let out = assert_ok(&merge(&[&"--output", &merged, &"--mask-output", &masks]));
    assert!(out.contains("Already merged:      3"), "{out}");

    // The video built from the merged frames carries the merge manifest and the comment.
    let video = root.join("result.mp4");
    assert_ok(&dfl(&[
        &"video",
        &"build",
        &merged,
        &"--output",
        &video,
        &"--fps",
        &"10",
    ]));
    let vm: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("result.mp4.provenance.json")).unwrap())
            .unwrap();
    assert!(vm.to_string().contains("\"step\":\"merge\""), "{vm}");
    assert!(
        container_comment(&video).contains("synthetic"),
        "{}",
        container_comment(&video)
    );

    // Bad input, each refused with one line before anything is written.
    let before = fs::read(merged.join("00001.png")).unwrap();
    assert_fails_with(
        &dfl(&[
            &"merge",
            &"--model",
            &xseg,
            &"--input",
            &frames,
            &"--aligned",
            &aligned,
            &"--output",
            &merged,
        ]),
        &["xseg_model", "XSeg mask model", "SAEHD or Quick96"],
    );
    let cfg = root.join("bad.toml");
    fs::write(&cfg, "mode = \"seamless\"\nerode_mask_modifier = 999\n").unwrap();
    assert_fails_with(
        &merge(&[&"--output", &merged, &"--config", &cfg]),
        &[
            "bad.toml",
            "erode_mask_modifier = 999 is outside -400..=400",
        ],
    );
    fs::write(&cfg, "super_resolution_power = 30\n").unwrap();
    assert_fails_with(
        &merge(&[&"--output", &merged, &"--config", &cfg]),
        &["bad.toml", "FaceEnhancer"],
    );
    fs::write(&cfg, "mask_mode = \"XSeg-dst\"\n").unwrap();
    assert_fails_with(
        &merge(&[&"--output", &merged, &"--config", &cfg]),
        &["needs an XSeg model"],
    );
    let file = root.join("a_file");
    fs::write(&file, b"x").unwrap();
    assert_fails_with(
        &merge(&[&"--output", &file.join("merged")]),
        &["a_file", "cannot create the output folder"],
    );
    fs::rename(frames.join("00003.png"), root.join("00003.png")).unwrap();
    assert_fails_with(
        &merge(&[&"--output", &merged]),
        &["aligned", "frame '00003'", "not in"],
    );
    assert_eq!(fs::read(merged.join("00001.png")).unwrap(), before);
    fs::remove_dir_all(&root).unwrap();
}

/// Frame names (png) directly in `dir`.
fn pngs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    v.sort();
    v
}

/// ffprobe's decoded frame count of the video stream and whether there is an audio stream.
fn probe_frames_audio(path: &Path) -> (u64, bool) {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-print_format", "json"])
        .arg("-show_streams")
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(o.status.success(), "ffprobe cannot read {}", path.display());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let frames = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .and_then(|s| s["nb_read_frames"].as_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let audio = streams.iter().any(|s| s["codec_type"] == "audio");
    (frames, audio)
}

/// `dfl demo --quick`: every stage on the bundled photos; a playable mp4 with audio and one
/// frame per dst frame; merged faces differ from the dst frames inside the merge mask and
/// equal them outside; provenance where the CLI contract says; the workspace is reusable and
/// a foreign folder is refused untouched.
#[test]
fn demo_quick_swaps_faces_end_to_end() {
    let d = scratch("demo");
    let ws = d.join("ws");
    let out = assert_ok(&dfl(&[&"demo", &"--quick", &"--workspace", &ws]));
    assert!(out.contains("result.mp4"), "{out}");
    for f in [
        "data_src.mp4",
        "data_dst.mp4",
        "result.mp4.provenance.json",
        "data_dst/merged/provenance.json",
        "preview.png",
    ] {
        assert!(ws.join(f).is_file(), "{f} missing");
    }
    let dst_frames = pngs(&ws.join("data_dst"));
    assert!(dst_frames.len() >= 5, "{dst_frames:?}");
    assert_eq!(pngs(&ws.join("data_dst/merged")), dst_frames);
    let (frames, audio) = probe_frames_audio(&ws.join("result.mp4"));
    assert_eq!(frames, dst_frames.len() as u64);
    assert!(audio, "result.mp4 has no audio");
    let manifest = fs::read_to_string(ws.join("result.mp4.provenance.json")).unwrap();
    assert!(manifest.contains("synthetic"), "{manifest}");

    let mut changed = 0;
    for name in &dst_frames {
        let dst = rgb(&ws.join("data_dst").join(name));
        let merged = rgb(&ws.join("data_dst/merged").join(name));
        let mask = image::open(ws.join("data_dst/merged_mask").join(name))
            .unwrap()
            .to_luma8();
        let (mut inside, mut diff) = (0u64, 0u64);
        for (x, y, m) in mask.enumerate_pixels() {
            let (p, q) = (merged.get_pixel(x, y).0, dst.get_pixel(x, y).0);
            if m.0[0] == 0 {
                assert_eq!(p, q, "{name}: pixel {x},{y} outside the mask changed");
            } else if m.0[0] > 200 {
                inside += 1;
                diff += (0..3).map(|c| p[c].abs_diff(q[c]) as u64).sum::<u64>();
            }
        }
        assert!(inside > 500, "{name}: face mask too small ({inside} px)");
        // Mean difference inside the face above 4 levels per channel.
        if diff > inside * 3 * 4 {
            changed += 1;
        }
    }
    assert_eq!(
        changed,
        dst_frames.len(),
        "merged face regions equal the dst"
    );

    // A second run reuses its own workspace.
    assert_ok(&dfl(&[&"demo", &"--quick", &"--workspace", &ws]));
    let foreign = d.join("thesis");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("chapter1.txt"), b"precious").unwrap();
    assert_fails_with(
        &dfl(&[&"demo", &"--quick", &"--workspace", &foreign]),
        &["not empty", "not a previous demo workspace"],
    );
    assert_eq!(
        fs::read_dir(&foreign).unwrap().count(),
        1,
        "foreign folder changed"
    );
    fs::remove_dir_all(&d).unwrap();
}
