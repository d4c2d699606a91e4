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
