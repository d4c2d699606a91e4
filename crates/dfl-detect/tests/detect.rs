//! Integration tests of dfl-detect on the bundled photos and weights.

use dfl_detect::{FaceDetector, Landmarker, RgbView};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(name: &str) -> (usize, usize, Vec<u8>) {
    let img = image::open(repo().join("assets/samples").join(name))
        .unwrap()
        .to_rgb8();
    (img.width() as usize, img.height() as usize, img.into_raw())
}

#[derive(serde::Deserialize)]
struct RefFace {
    score: f32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    landmarks: Vec<[f32; 2]>,
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let i = ix * iy;
    i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)
}

/// The six face-api demo photos: all 22 faces, no false positives, boxes and landmarks as
/// face-api itself (TF.js CPU backend, `tools/reference/faceapi_detect_reference.mjs`) finds.
#[test]
fn demo_photos_match_the_tfjs_reference() {
    let reference: std::collections::BTreeMap<String, Vec<RefFace>> = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/faceapi_tfjs_reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dev = burn::tensor::Device::default();
    let det = FaceDetector::bundled(&dev).unwrap();
    let lm = Landmarker::bundled(&dev).unwrap();
    let mut total = 0;
    let mut errs = Vec::new();
    for (name, want) in &reference {
        let (w, h, data) = load(name);
        let img = RgbView::new(w, h, &data).unwrap();
        let got = det.detect(&[img]).remove(0);
        assert_eq!(got.len(), want.len(), "{name}: faces found");
        total += got.len();
        for r in want {
            let rb = [
                r.bbox[0],
                r.bbox[1],
                r.bbox[0] + r.bbox[2],
                r.bbox[1] + r.bbox[3],
            ];
            let best = got
                .iter()
                .max_by(|a, b| iou(a.rect, rb).total_cmp(&iou(b.rect, rb)))
                .unwrap();
            let o = iou(best.rect, rb);
            assert!(
                o > 0.97,
                "{name}: box {rb:?} best IoU {o} ({:?})",
                best.rect
            );
            assert!(
                (best.score - r.score).abs() < 0.03,
                "{name}: score {} vs {}",
                best.score,
                r.score
            );
            let pts = lm.landmarks(&[(img, best.crop())]).remove(0);
            // Error in units of the reference box size.
            let size = r.bbox[2].max(r.bbox[3]);
            let err = pts
                .iter()
                .zip(&r.landmarks)
                .map(|(p, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
                .sum::<f32>()
                / 68.0
                / size;
            errs.push(err);
        }
    }
    assert_eq!(total, 22);
    errs.sort_by(f32::total_cmp);
    // Same net, different JPEG decoder (zune vs jpeg-js) and crop resampling: most faces
    // agree within 1 % of the box, the weakest detection (score 0.76) within ~5 %.
    let (median, worst) = (errs[errs.len() / 2], errs[errs.len() - 1]);
    assert!(
        median < 0.015 && worst < 0.06,
        "landmark offsets median {median}, worst {worst}"
    );
}

/// Every bundled weight file and photo matches its SHA-256 pin in `assets/SHA256SUMS`.
#[test]
fn bundled_assets_match_their_pins() {
    use sha2::{Digest, Sha256};
    let dir = repo().join("assets");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut n = 0;
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (hash, path) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(dir.join(path)).unwrap();
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, hash, "{path}");
        n += 1;
    }
    assert!(n >= 13, "only {n} pins");
}

/// For every face type, the aligned crop puts the eye centres where DFL's template says: the
/// template's unit square scaled by `size / (1 + 2 sqrt 2 padding)` about the crop centre
/// (shifted 7 % of it for whole face, 50 % for head). Checked on the metadata landmarks of
/// every face of two demo photos, and on the pixels by running the landmark net again on the
/// written full-face crops.
#[test]
fn aligned_eyes_sit_where_the_template_says() {
    use dfl_detect::output::{CropOptions, aligned_files};
    use dfl_detect::{FindOptions, Frame, Models, crop_from_landmarks, find_faces};
    use dfl_geom::FaceType;
    let dev = burn::tensor::Device::default();
    let models = Models::bundled(&dev).unwrap();
    // Template eye centres (mean of points 36..41 and 42..47 of DFL's landmarks_2D).
    let right = [0.225_492, 0.215_990];
    let left = [0.754_755, 0.215_990];
    let mut checked = 0;
    for name in ["sample1.jpg", "sample6.jpg"] {
        let (w, h, data) = load(name);
        let frame = Frame::new(w, h, data).unwrap();
        let faces = find_faces(&models, &frame, &FindOptions::default());
        assert!(faces.len() >= 3);
        for (ft, shift) in [
            (FaceType::Half, 0.0),
            (FaceType::MidFull, 0.0),
            (FaceType::Full, 0.0),
            (FaceType::WholeFace, 0.07),
            (FaceType::Head, 0.5),
        ] {
            let size = 256usize;
            let opts = CropOptions {
                face_type: ft,
                size,
                jpeg_quality: 95,
            };
            let files = aligned_files(&frame, name, &faces, &opts, 0, true).unwrap();
            assert_eq!(
                files.len(),
                faces.len(),
                "{name} {ft:?}: sanity filter dropped a face"
            );
            let k = size as f64 / (1.0 + 2.0 * 2f64.sqrt() * ft.padding());
            for f in &files {
                let meta = dfl_faceset::read_meta_bytes(&f.bytes).unwrap();
                // HEAD also moves the crop sideways by DFL's damped yaw estimate.
                let src = meta.source_landmarks.clone().unwrap();
                let unit = dfl_geom::transform_points(
                    &src,
                    &dfl_geom::unit_face_mat(&src).unwrap(),
                    false,
                )
                .unwrap();
                let mut yaw = dfl_geom::estimate_averaged_yaw(&unit).unwrap();
                yaw *= (2.0 * yaw).tanh().abs();
                let side = if ft == FaceType::Head { yaw / 2.0 } else { 0.0 };
                let expect = |u: [f64; 2]| {
                    [
                        size as f64 / 2.0 + (u[0] - 0.5 - side) * k,
                        size as f64 / 2.0 + (u[1] - 0.5 + shift) * k,
                    ]
                };
                let lm = meta.landmarks.unwrap();
                let eye = |r: std::ops::Range<usize>| {
                    let n = r.len() as f64;
                    r.fold([0.0; 2], |a, i| [a[0] + lm[i][0] / n, a[1] + lm[i][1] / n])
                };
                let tol_x = 0.06 * k;
                for (got, want) in [(eye(36..42), expect(right)), (eye(42..48), expect(left))] {
                    assert!(
                        (got[0] - want[0]).abs() < tol_x && (got[1] - want[1]).abs() < 0.06 * k,
                        "{name} {ft:?} {}: eye at {got:?}, template {want:?}",
                        f.name
                    );
                }
                if ft == FaceType::Full {
                    // The pixels agree: the net finds the eyes in the written crop too.
                    let img = image::load_from_memory(&f.bytes).unwrap().to_rgb8();
                    let crop_view = RgbView::new(size, size, img.as_raw()).unwrap();
                    let mut flm = [[0f32; 2]; 68];
                    for (a, p) in flm.iter_mut().zip(&lm) {
                        *a = [p[0] as f32, p[1] as f32];
                    }
                    let again = models
                        .landmarker
                        .landmarks(&[(crop_view, crop_from_landmarks(&flm))]);
                    let e = |l: &[[f32; 2]; 68], r: std::ops::Range<usize>| {
                        let n = r.len() as f32;
                        r.fold([0f32; 2], |a, i| [a[0] + l[i][0] / n, a[1] + l[i][1] / n])
                    };
                    for r in [36..42, 42..48] {
                        let (a, b) = (e(&again[0], r.clone()), e(&flm, r));
                        let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
                        assert!(
                            d < 0.05 * k as f32,
                            "{name} {}: eye moved {d} px in the crop",
                            f.name
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 35, "{checked}");
}

/// A bundled photo moved by known smooth motion over 60 frames: the face is found in every
/// frame, the motion-compensated landmarks barely move, and tracking moves them less than
/// running the detector on every frame.
#[test]
fn tracking_lowers_jitter_on_a_moving_sequence() {
    use dfl_detect::eval::{measure_jitter, moving_sequence};
    use dfl_detect::{Models, load_frame};
    let dev = burn::tensor::Device::default();
    let models = Models::bundled(&dev).unwrap();
    let base = load_frame(&repo().join("assets/samples/astronaut.png")).unwrap();
    let (frames, motions) = moving_sequence(&base, 60, 480, 360).unwrap();
    let det = measure_jitter(&models, &frames, &motions, false).unwrap();
    let trk = measure_jitter(&models, &frames, &motions, true).unwrap();
    eprintln!("detector {det:?}\ntrack {trk:?}");
    assert_eq!(det.frames_with_face, 60);
    assert_eq!(trk.frames_with_face, 60);
    assert!(det.jitter < 0.03 && det.spread < 0.05, "{det:?}");
    assert!(trk.jitter < det.jitter, "track {trk:?} vs detector {det:?}");
}

/// Frames that cannot hold a face or cannot be read: a 1x1 image has no face; a
/// 16000x16000 header is refused before decoding; a truncated JPEG is a decode error naming
/// the file.
#[test]
fn bad_frames_are_refused_or_faceless() {
    use dfl_detect::{FindOptions, Frame, FrameError, Models, find_faces, load_frame};
    let dir = std::env::temp_dir().join(format!("dfl-detect-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = Frame::new(1, 1, vec![0, 0, 0]).unwrap();
    let dev = burn::tensor::Device::default();
    let models = Models::bundled(&dev).unwrap();
    assert!(find_faces(&models, &tiny, &FindOptions::default()).is_empty());
    let jpeg = std::fs::read(repo().join("assets/samples/sample1.jpg")).unwrap();
    let huge = dir.join("huge.jpg");
    std::fs::write(
        &huge,
        dfl_detect_test_support::with_jpeg_size(&jpeg, 16000, 16000),
    )
    .unwrap();
    match load_frame(&huge) {
        Err(FrameError::TooLarge {
            width: 16000,
            height: 16000,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let cut = dir.join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() / 3]).unwrap();
    let e = load_frame(&cut);
    // A truncated baseline JPEG either fails to decode or decodes with grey rows; both are
    // handled (the error names the file).
    if let Err(e) = e {
        assert!(e.to_string().contains("cut.jpg"), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

mod dfl_detect_test_support {
    /// The JPEG with its SOF0/SOF2 height and width rewritten (header only; for size checks).
    pub fn with_jpeg_size(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
        let mut out = jpeg.to_vec();
        let mut i = 2;
        while i + 9 < out.len() {
            assert_eq!(out[i], 0xFF);
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
}

/// A photo turned on its side whose faces the detector misses upright: the fallback picks
/// the rotation that brings it upright (not merely the first one with a detection), and the
/// landmarks come back in the turned frame's coordinates (checked against the upright
/// photo's landmarks turned the same way).
#[test]
fn rotation_fallback_finds_sideways_faces() {
    use dfl_detect::{FindOptions, Frame, Models, Rotation, find_faces};
    let dev = burn::tensor::Device::default();
    let models = Models::bundled(&dev).unwrap();
    let (w, h, data) = load("sample2.jpg");
    let upright = Frame::new(w, h, data).unwrap();
    // Turned 90° clockwise: nothing is found as is; 90° more makes it upside down (where the
    // detector still fires on two faces), 270° brings it upright.
    let turned = upright.rotated(Rotation::R90);
    assert!(models.detector.detect(&[turned.view()])[0].is_empty());
    let a = find_faces(&models, &upright, &FindOptions::default());
    let b = find_faces(&models, &turned, &FindOptions::default());
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), a.len());
    for fa in &a {
        // Where the upright point lands in the turned frame (inverse of R90's point_back).
        let want: Vec<[f32; 2]> = fa
            .landmarks
            .iter()
            .map(|p| [h as f32 - p[1], p[0]])
            .collect();
        let back = Rotation::R90.point_back(want[30], w, h);
        assert!((back[0] - fa.landmarks[30][0]).abs() < 1e-3);
        let best = b
            .iter()
            .map(|fb| {
                fb.landmarks
                    .iter()
                    .zip(&want)
                    .map(|(p, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
                    .sum::<f32>()
                    / 68.0
            })
            .fold(f32::MAX, f32::min);
        let size = fa.rect[2] - fa.rect[0];
        assert!(
            best < 0.03 * size,
            "landmarks off by {best} px (face {size} px)"
        );
    }
}

/// Faces of ~70 px in a 1920x1080 frame (under 4 % of its width, below the smallest anchor of
/// the whole-frame pass): the plain detector misses some, `small_faces` tiles find all three.
#[test]
fn tiles_find_small_faces() {
    use dfl_detect::{FindOptions, Frame, Models, find_faces};
    let dev = burn::tensor::Device::default();
    let models = Models::bundled(&dev).unwrap();
    let img = image::open(repo().join("assets/samples/sample1.jpg")).unwrap();
    let (w, h) = (img.width() * 35 / 100, img.height() * 35 / 100);
    let small = img
        .resize_exact(w, h, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let mut canvas = image::RgbImage::from_pixel(1920, 1080, image::Rgb([90, 90, 90]));
    image::imageops::overlay(&mut canvas, &small, 700, 300);
    let frame = Frame::new(1920, 1080, canvas.into_raw()).unwrap();
    let mut opts = FindOptions::default();
    let plain = find_faces(&models, &frame, &opts);
    opts.small_faces = true;
    let tiled = find_faces(&models, &frame, &opts);
    assert!(plain.len() < 3, "{}", plain.len());
    assert_eq!(tiled.len(), 3);
    for f in &tiled {
        let side = f.rect[2] - f.rect[0];
        assert!((50.0..110.0).contains(&side), "{side}");
        // Inside the pasted photo.
        assert!(
            f.rect[0] >= 700.0 && f.rect[2] <= 700.0 + w as f32,
            "{:?}",
            f.rect
        );
    }
}

/// Batching faces for the landmark net (the fast path) gives the same points as one face
/// per call (the plain path).
#[test]
fn batched_landmarks_equal_single_calls() {
    let dev = burn::tensor::Device::default();
    let det = FaceDetector::bundled(&dev).unwrap();
    let lm = Landmarker::bundled(&dev).unwrap();
    let (w, h, data) = load("sample5.jpg");
    let img = RgbView::new(w, h, &data).unwrap();
    let faces = det.detect(&[img]).remove(0);
    assert_eq!(faces.len(), 5);
    let jobs: Vec<_> = faces.iter().map(|f| (img, f.crop())).collect();
    let batch = lm.landmarks(&jobs);
    for (job, b) in jobs.iter().zip(&batch) {
        let one = lm.landmarks(std::slice::from_ref(job)).remove(0);
        let d = one
            .iter()
            .zip(b)
            .map(|(p, q)| (p[0] - q[0]).abs().max((p[1] - q[1]).abs()))
            .fold(0f32, f32::max);
        assert!(d < 1e-2, "batch and single differ by {d} px");
    }
}
