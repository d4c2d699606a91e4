//! The video steps through the built `dfl` binary, on clips generated with ffmpeg's lavfi
//! sources: frame counts, round trips through every build format, bad inputs, denoise, cut,
//! demo help (the demo itself is tested in cli_merge.rs). Needs ffmpeg/ffprobe on PATH (CI installs them).

use dfl_video::{Ffmpeg, Rate, TestClip, decode_frame};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dfl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dfl"))
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    dfl().args(args).output().expect("dfl runs")
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dfl-cli-video-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "dfl failed: {}\n{}",
        stderr(o),
        String::from_utf8_lossy(&o.stdout)
    );
}

/// The run failed with exactly one error line containing every needle.
fn assert_fails_with(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .collect();
    assert_eq!(lines.len(), 1, "want one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {err}");
    }
}

fn make_clip(path: &Path, width: u32, height: u32, fps: u32, seconds: f64, faststart: bool) {
    let ff = Ffmpeg::locate().expect("ffmpeg installed");
    let clip = TestClip {
        width,
        height,
        fps: Rate { num: fps, den: 1 },
        seconds,
        tone_hz: Some(440),
        faststart,
    };
    dfl_video::make_test_clip(&ff, path, &clip).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// ffprobe's JSON for the file's streams and format (frames counted by decoding).
fn probe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-print_format", "json"])
        .args(["-show_streams", "-show_format"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stream<'a>(p: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    p["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

/// Largest per-channel difference between the frames of two folders (same names).
fn max_diff(a: &Path, b: &Path) -> u8 {
    let (na, nb) = (names(a), names(b));
    assert_eq!(na, nb);
    let mut worst = 0u8;
    for n in na {
        let fa = decode_frame(&a.join(&n)).unwrap();
        let fb = decode_frame(&b.join(&n)).unwrap();
        assert_eq!((fa.width, fa.height), (fb.width, fb.height), "{n}");
        for (x, y) in fa.data.iter().zip(&fb.data) {
            worst = worst.max(x.abs_diff(*y));
        }
    }
    worst
}

#[test]
fn extract_720p_gives_150_frames_and_fps_option_works() {
    let d = scratch("720p");
    let clip = d.join("clip.mp4");
    make_clip(&clip, 1280, 720, 30, 5.0, false);
    let out = d.join("frames");
    assert_ok(&run(&[&"video", &"extract", &clip, &"--output", &out]));
    let n = names(&out);
    assert_eq!(n.len(), 150);
    assert_eq!((n[0].as_str(), n[149].as_str()), ("00001.png", "00150.png"));
    let f = decode_frame(&out.join("00150.png")).unwrap();
    assert_eq!((f.width, f.height), (1280, 720));

    let jpgs = d.join("jpg");
    assert_ok(&run(&[
        &"video",
        &"extract",
        &clip,
        &"-o",
        &jpgs,
        &"--fps",
        &"10",
        &"--format",
        &"jpg",
    ]));
    let n = names(&jpgs);
    assert_eq!(n.len(), 50);
    assert_eq!(n[49], "00050.jpg");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn build_round_trips_every_format() {
    let d = scratch("build");
    let clip = d.join("data_dst.mp4");
    make_clip(&clip, 320, 240, 30, 5.0, false);
    let frames = d.join("data_dst");
    assert_ok(&run(&[&"video", &"extract", &clip, &"-o", &frames]));
    assert_eq!(names(&frames).len(), 150);

    for (format, file) in [
        ("mp4", "result.mp4"),
        ("mp4-lossless", "lossless.mp4"),
        ("mov-lossless", "lossless.mov"),
        ("avi", "result.avi"),
    ] {
        let video = d.join(file);
        assert_ok(&run(&[
            &"video",
            &"build",
            &frames,
            &"--reference",
            &clip,
            &"--output",
            &video,
            &"--format",
            &format,
        ]));
        let p = probe(&video);
        let v = stream(&p, "video").unwrap();
        assert_eq!(v["nb_read_frames"], "150", "{format}");
        assert_eq!(v["r_frame_rate"], "30/1", "{format}");
        let duration = num(&p["format"]["duration"]);
        assert!((duration - 5.0).abs() < 0.05, "{format}: {duration} s");
        let audio = stream(&p, "audio");
        assert!(audio.is_some(), "{format}: no audio stream");
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(d.join(format!("{file}.provenance.json"))).unwrap())
                .unwrap();
        assert_eq!(manifest["tool"], "dfl-rs");
        assert_eq!(manifest["video"]["frames"], 150);
        assert_eq!(manifest["video"]["format"], format);
        assert_eq!(manifest["synthetic_faces"], false);

        if format.contains("lossless") {
            let back = d.join(format!("back-{format}"));
            assert_ok(&run(&[&"video", &"extract", &video, &"-o", &back]));
            assert_eq!(max_diff(&frames, &back), 0, "{format} is not lossless");
        }
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn build_takes_ntsc_rate_embeds_provenance_and_builds_mask() {
    let d = scratch("provenance");
    let clip = d.join("in.mp4");
    make_clip(&clip, 64, 48, 25, 1.0, false);
    let frames = d.join("merged");
    assert_ok(&run(&[&"video", &"extract", &clip, &"-o", &frames]));
    let masks = d.join("merged_mask");
    assert_ok(&run(&[&"video", &"extract", &clip, &"-o", &masks]));
    fs::write(
        frames.join("provenance.json"),
        br#"{"tool":"dfl-rs merge","model":"SAEHD"}"#,
    )
    .unwrap();
    let video = d.join("out/result.mp4");
    assert_ok(&run(&[
        &"video",
        &"build",
        &frames,
        &"--reference",
        &clip,
        &"-o",
        &video,
        &"--fps",
        &"30000/1001",
        &"--mask-frames",
        &masks,
    ]));
    let p = probe(&video);
    assert_eq!(stream(&p, "video").unwrap()["r_frame_rate"], "30000/1001");
    let comment = p["format"]["tags"]["comment"].as_str().unwrap_or("");
    assert!(comment.contains("synthetic faces"), "comment: {comment}");
    let mask = probe(&d.join("out/result_mask.mp4"));
    assert_eq!(stream(&mask, "video").unwrap()["nb_read_frames"], "25");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("out/result.mp4.provenance.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["synthetic_faces"], true);
    assert_eq!(manifest["frames_provenance"]["model"], "SAEHD");
    assert!(
        manifest["output"]["mask_video"]
            .as_str()
            .unwrap()
            .ends_with("result_mask.mp4")
    );

    // Existing outputs are refused and kept; --overwrite replaces them.
    let before = fs::read(&video).unwrap();
    assert_fails_with(
        &run(&[&"video", &"build", &frames, &"--fps", &"25", &"-o", &video]),
        &["result.mp4", "already exists", "--overwrite"],
    );
    assert_eq!(fs::read(&video).unwrap(), before);

    // A frame of another size is named, and no video is written.
    let odd = d.join("odd");
    fs::create_dir_all(&odd).unwrap();
    fs::copy(frames.join("00001.png"), odd.join("00001.png")).unwrap();
    fs::copy(d.join("merged/00002.png"), odd.join("00002.png")).unwrap();
    let small = d.join("small.mp4");
    make_clip(&small, 32, 24, 25, 0.2, false);
    let small_frames = d.join("small_frames");
    assert_ok(&run(&[&"video", &"extract", &small, &"-o", &small_frames]));
    fs::copy(small_frames.join("00001.png"), odd.join("00003.png")).unwrap();
    let odd_video = d.join("odd.mp4");
    assert_fails_with(
        &run(&[&"video", &"build", &odd, &"--fps", &"25", &"-o", &odd_video]),
        &["00003.png", "32x24", "64x48"],
    );
    assert!(!odd_video.exists());
    assert!(names(&d).iter().all(|n| !n.contains("dfl-tmp")));
    fs::remove_dir_all(&d).unwrap();
}

/// Default extraction converts 4:2:0 YUV itself; it must agree with ffmpeg's own RGB
/// conversion (the reference path) for limited-range BT.601 and full-range BT.709 video.
#[test]
fn fast_yuv_path_agrees_with_ffmpeg_conversion() {
    let d = scratch("yuv");
    let limited = d.join("limited.mp4");
    make_clip(&limited, 96, 64, 25, 0.4, false);
    let full = d.join("full709.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=96x64:rate=25:duration=0.4")
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuvj420p",
        ])
        .args(["-colorspace", "bt709", "-color_range", "pc", "-y"])
        .arg(&full)
        .status()
        .unwrap();
    assert!(status.success());
    for clip in [&limited, &full] {
        let fast = d.join("fast");
        let reference = d.join("reference");
        let _ = fs::remove_dir_all(&fast);
        let _ = fs::remove_dir_all(&reference);
        assert_ok(&run(&[&"video", &"extract", clip, &"-o", &fast]));
        assert_ok(&run(&[
            &"video",
            &"extract",
            clip,
            &"-o",
            &reference,
            &"--ffmpeg-rgb",
        ]));
        assert_eq!(names(&fast).len(), 10);
        // Bit-identical on x86 (same fixed-point steps as swscale's SIMD code); other
        // platforms' swscale rounds differently by at most a few levels.
        let diff = max_diff(&fast, &reference);
        assert!(diff <= 3, "{}: off by {diff}", clip.display());
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_inputs_fail_cleanly_and_keep_existing_files() {
    let d = scratch("bad");
    let out = d.join("frames");

    // Missing input.
    let missing = d.join("nothere.mp4");
    assert_fails_with(
        &run(&[&"video", &"extract", &missing, &"-o", &out]),
        &["nothere.mp4", "no such file"],
    );
    assert!(!out.exists());

    // A text file renamed .mp4.
    let text = d.join("notes.mp4");
    fs::write(&text, "shopping list\n").unwrap();
    assert_fails_with(
        &run(&[&"video", &"extract", &text, &"-o", &out]),
        &["notes.mp4", "not a video"],
    );
    assert_eq!(fs::read(&text).unwrap(), b"shopping list\n");

    // A truncated mp4 (index first, data cut): the frames before the cut are written and
    // the error says where decoding stopped.
    let clip = d.join("clip.mp4");
    make_clip(&clip, 160, 120, 30, 3.0, true);
    let bytes = fs::read(&clip).unwrap();
    let cut = d.join("cut.mp4");
    fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let o = run(&[&"video", &"extract", &cut, &"-o", &out]);
    let written = names(&out).len();
    assert!(written > 10 && written < 90, "{written} frames written");
    assert_fails_with(
        &o,
        &[
            "cut.mp4",
            &format!("stopped at frame {written} of 90"),
            "frames before it were written",
        ],
    );

    // An output folder that already holds frames: refused, untouched.
    let full = d.join("full");
    fs::create_dir_all(&full).unwrap();
    for n in ["00001.png", "00500.png"] {
        fs::write(full.join(n), b"old frame").unwrap();
    }
    fs::write(full.join("notes.txt"), b"keep me").unwrap();
    fs::write(full.join("holiday.jpg"), b"my photo").unwrap();
    assert_fails_with(
        &run(&[&"video", &"extract", &clip, &"-o", &full]),
        &["already holds", "--overwrite"],
    );
    assert_eq!(fs::read(full.join("00001.png")).unwrap(), b"old frame");
    // --overwrite replaces the frames, drops the stale one, keeps everything else.
    assert_ok(&run(&[
        &"video",
        &"extract",
        &clip,
        &"-o",
        &full,
        &"--overwrite",
    ]));
    let n = names(&full);
    assert_eq!(n.len(), 90 + 2, "{n:?}");
    assert!(!n.contains(&"00500.png".to_string()));
    assert_eq!(fs::read(full.join("notes.txt")).unwrap(), b"keep me");
    assert_eq!(fs::read(full.join("holiday.jpg")).unwrap(), b"my photo");
    assert_ne!(fs::read(full.join("00001.png")).unwrap(), b"old frame");

    // An unwritable output folder: its parent is a regular file (this fails for root too).
    let blocker = d.join("blocker");
    fs::write(&blocker, b"a file").unwrap();
    assert_fails_with(
        &run(&[&"video", &"extract", &clip, &"-o", &blocker.join("frames")]),
        &["cannot create folder", "blocker"],
    );
    assert_eq!(fs::read(&blocker).unwrap(), b"a file");
    // And a read-only folder, where permissions are enforced (not as root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = d.join("readonly");
        fs::create_dir_all(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        if fs::write(ro.join("probe"), b"x").is_err() {
            assert_fails_with(
                &run(&[&"video", &"extract", &clip, &"-o", &ro]),
                &["cannot write", "readonly", "00001.png"],
            );
        }
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }

    // --fps 0 and negative rates.
    let fresh = d.join("fresh");
    for fps in ["0", "-5", "-1/2"] {
        assert_fails_with(
            &run(&[&"video", &"extract", &clip, &"-o", &fresh, &"--fps", &fps]),
            &["--fps", "frame rate", "greater than 0"],
        );
    }
    assert!(!fresh.exists());

    // ffmpeg missing from PATH: the message says so and how to install it.
    let o = dfl()
        .args(["video", "extract"])
        .arg(&clip)
        .arg("-o")
        .arg(&fresh)
        .env("PATH", d.join("empty-path"))
        .env_remove("DFL_FFMPEG")
        .env_remove("DFL_FFPROBE")
        .output()
        .unwrap();
    assert_fails_with(
        &o,
        &["ffmpeg was not found", "apt-get install ffmpeg", "brew"],
    );
    fs::remove_dir_all(&d).unwrap();
}

/// Mean absolute difference between consecutive frames: the temporal noise of a sequence.
fn temporal_noise(dir: &Path) -> f64 {
    let frames: Vec<_> = names(dir)
        .iter()
        .map(|n| decode_frame(&dir.join(n)).unwrap().data)
        .collect();
    let mut sum = 0.0;
    let mut count = 0.0;
    for pair in frames.windows(2) {
        for (a, b) in pair[0].iter().zip(&pair[1]) {
            sum += f64::from(a.abs_diff(*b));
            count += 1.0;
        }
    }
    sum / count
}

#[test]
fn denoise_factor_reduces_temporal_noise_and_keeps_names() {
    let d = scratch("denoise");
    let noisy = d.join("noisy");
    fs::create_dir_all(&noisy).unwrap();
    // A static gradient with fresh pseudo-random noise (±24 levels) in every frame.
    let (w, h) = (48u32, 32u32);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 1..=16 {
        let mut img = image_rgb(w, h);
        for px in img.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 49) as i32 - 24;
            *px = (i32::from(*px) + noise).clamp(0, 255) as u8;
        }
        write_png(&noisy.join(format!("{i:05}.png")), w, h, &img);
    }
    let raw = temporal_noise(&noisy);
    let mut last = raw;
    for factor in ["1", "7", "20"] {
        let out = d.join(format!("f{factor}"));
        assert_ok(&run(&[
            &"video",
            &"denoise",
            &noisy,
            &"--factor",
            &factor,
            &"--output",
            &out,
        ]));
        assert_eq!(names(&out), names(&noisy));
        let t = temporal_noise(&out);
        assert!(
            t < last * 0.97,
            "factor {factor}: temporal noise {t:.2} not below {last:.2} (raw {raw:.2})"
        );
        last = t;
    }
    assert!(last < raw * 0.5, "factor 20 leaves {last:.2} of {raw:.2}");

    // In place by default: same names and formats, contents replaced, no temp files left.
    let inplace = d.join("inplace");
    fs::create_dir_all(&inplace).unwrap();
    for n in names(&noisy).iter().take(4) {
        fs::copy(noisy.join(n), inplace.join(n)).unwrap();
    }
    let jpg = inplace.join("00005.jpg");
    fs::copy(d.join("f1/00005.png"), inplace.join("tmp.png")).unwrap();
    let f = decode_frame(&inplace.join("tmp.png")).unwrap();
    fs::remove_file(inplace.join("tmp.png")).unwrap();
    let mut bytes = Vec::new();
    dfl_video::encode_frame(&f.data, w, h, dfl_video::FrameFormat::Jpg, 95, &mut bytes).unwrap();
    fs::write(&jpg, &bytes).unwrap();
    let before = names(&inplace);
    let first = fs::read(inplace.join("00001.png")).unwrap();
    assert_ok(&run(&[&"video", &"denoise", &inplace]));
    assert_eq!(names(&inplace), before);
    assert_ne!(fs::read(inplace.join("00001.png")).unwrap(), first);
    assert!(fs::read(&jpg).unwrap().starts_with(&[0xFF, 0xD8]));

    assert_fails_with(
        &run(&[&"video", &"denoise", &inplace, &"--factor", &"21"]),
        &["--factor", "21"],
    );
    fs::remove_dir_all(&d).unwrap();
}

fn image_rgb(w: u32, h: u32) -> Vec<u8> {
    (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| [(40 + x * 3) as u8, (60 + y * 4) as u8, 128]))
        .collect()
}

fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) {
    let mut bytes = Vec::new();
    dfl_video::encode_frame(rgb, w, h, dfl_video::FrameFormat::Png, 0, &mut bytes).unwrap();
    fs::write(path, bytes).unwrap();
}

#[test]
fn cut_keeps_the_range_and_audio() {
    let d = scratch("cut");
    let clip = d.join("clip.mp4");
    make_clip(&clip, 160, 120, 30, 4.0, false);
    let out = d.join("part.mp4");
    assert_ok(&run(&[
        &"video",
        &"cut",
        &clip,
        &"--from",
        &"1",
        &"--to",
        &"00:00:03.500",
        &"-o",
        &out,
    ]));
    let p = probe(&out);
    let v = stream(&p, "video").unwrap();
    assert_eq!(v["nb_read_frames"], "75");
    assert!((num(&v["duration"]) - 2.5).abs() < 0.05);
    assert!(stream(&p, "audio").is_some());
    assert_fails_with(
        &run(&[
            &"video",
            &"cut",
            &clip,
            &"--from",
            &"3",
            &"--to",
            &"2",
            &"-o",
            &d.join("x.mp4"),
        ]),
        &["--to", "not after"],
    );
    assert_fails_with(
        &run(&[
            &"video",
            &"cut",
            &clip,
            &"--audio-track",
            &"2",
            &"-o",
            &d.join("x.mp4"),
        ]),
        &["audio track 2", "1 audio track"],
    );
    assert!(!d.join("x.mp4").exists());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn help_pages_explain_options_with_defaults() {
    for args in [
        vec!["--help"],
        vec!["video", "--help"],
        vec!["video", "extract", "--help"],
        vec!["video", "cut", "--help"],
        vec!["video", "denoise", "--help"],
        vec!["video", "build", "--help"],
        vec!["demo", "--help"],
    ] {
        let o = dfl().args(&args).output().unwrap();
        assert_ok(&o);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Usage: dfl"), "{args:?}");
        if args.len() == 3 || args[0] == "demo" {
            assert!(
                text.contains("[default: "),
                "{args:?}: no defaults shown\n{text}"
            );
        }
    }
}
