//! dfl-train against real aligned faces (`tests/data/faces`, see its README): the data
//! pipeline's determinism and geometry, uniform-yaw sampling, and tiny SAEHD runs (loss
//! falls, previews look like the faces, resume continues).

use dfl_image::Image;
use dfl_train::faceset::{Faceset, LoadedFace};
use dfl_train::pipeline::{Facesets, build_batch, planner};
use dfl_train::processor::{SideSpec, process_sample};
use dfl_train::sampler::{IndexSampler, yaw_bins};
use dfl_train::warp::{WarpParams, WarpRanges};
use dfl_train::{
    ModelKind, NoObserver, OptionOverrides, PipelineConfig, StopReason, TrainRequest, train,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn faces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/faces")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dfl-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spec(resolution: usize, face_type: dfl_geom::FaceType) -> SideSpec {
    SideSpec {
        resolution,
        face_type,
        random_warp: true,
        random_flip: true,
        ranges: WarpRanges::SAEHD,
        ct_mode: None,
        hsv_power: 0.0,
        eyes_mouth: true,
    }
}

// ------------------------------------------------------------------------------------------
// Data pipeline

/// The same seed gives the same warped/target/mask triple (whole batches, with colour
/// transfer, HSV and eyes/mouth masks on); another seed gives other samples.
#[test]
fn same_seed_same_batch() {
    let set = Arc::new(Faceset::open(&faces_dir()).unwrap());
    assert_eq!(set.len(), 23);
    let sets = Facesets {
        src: set.clone(),
        dst: set.clone(),
    };
    let side = spec(64, dfl_geom::FaceType::Full);
    let cfg = |seed| PipelineConfig {
        src: SideSpec {
            ct_mode: Some(dfl_image::TransferMode::Rct),
            hsv_power: 0.1,
            ..side.clone()
        },
        dst: side.clone(),
        src_uniform_yaw: false,
        dst_uniform_yaw: true,
        batch_size: 3,
        workers: 1,
        prefetch: 1,
        seed,
    };
    let a = build_batch(&sets, &cfg(7), &planner(&sets, &cfg(7)).plan(0).unwrap()).unwrap();
    let b = build_batch(&sets, &cfg(7), &planner(&sets, &cfg(7)).plan(0).unwrap()).unwrap();
    assert_eq!(a, b);
    assert!(a.src.eyes_mouth.is_some());
    let c = build_batch(&sets, &cfg(8), &planner(&sets, &cfg(8)).plan(0).unwrap()).unwrap();
    assert_ne!(a.src.warped, c.src.warped);

    // One sample: same seed, same outputs; the warped input differs from the target only
    // by the grid warp (off: they are equal).
    let mut reader = set.reader();
    let face = reader.load(0).unwrap();
    let meta = &set.samples()[0];
    let s1 = process_sample(meta, &face, &side, 42, None).unwrap();
    let s2 = process_sample(meta, &face, &side, 42, None).unwrap();
    assert_eq!(s1.warped.data(), s2.warped.data());
    assert_eq!(s1.target.data(), s2.target.data());
    assert_eq!(s1.mask.data(), s2.mask.data());
    assert_ne!(s1.warped.data(), s1.target.data());
    let nowarp = SideSpec {
        random_warp: false,
        ..side.clone()
    };
    let s3 = process_sample(meta, &face, &nowarp, 42, None).unwrap();
    assert_eq!(s3.warped.data(), s1.target.data());
}

/// The random geometry keeps masks and images aligned: bright dots painted at six
/// landmarks land where the landmarks are mapped to (in the warped input through the grid
/// warp too), and the mask of the target equals the hull of the mapped landmarks.
#[test]
fn warp_keeps_masks_aligned_with_images() {
    let set = Faceset::open(&faces_dir()).unwrap();
    let meta = set.samples()[0].clone();
    let r = meta.width as usize;
    let sp = SideSpec {
        eyes_mouth: false,
        ..spec(r, meta.face_type)
    };
    let lm = meta.landmarks_f64();
    let dots = [8usize, 30, 36, 45, 48, 54];
    let mut img = Image::zeros(r, r, 3).unwrap();
    for &k in &dots {
        let [x, y] = lm[k];
        img.fill_rect(x.round() as usize - 1, y.round() as usize - 1, 3, 3, 1.0);
    }
    let face = LoadedFace {
        image: img,
        xseg: None,
    };
    let mut checked = 0;
    for seed in 0..12u64 {
        let s = process_sample(&meta, &face, &sp, seed, None).unwrap();
        let params = WarpParams::generate(r, true, &WarpRanges::SAEHD, seed).unwrap();
        for &k in &dots {
            for (out, warp) in [(&s.target, false), (&s.warped, true)] {
                let Some([x, y]) = params.map_point(lm[k], warp) else {
                    continue;
                };
                let (xi, yi) = (x.round() as usize, y.round() as usize);
                if xi < 2 || yi < 2 || xi + 2 >= r || yi + 2 >= r {
                    continue;
                }
                // The dot's brightest pixel within one pixel of the mapped point.
                let peak = (yi - 1..=yi + 1)
                    .flat_map(|yy| (xi - 1..=xi + 1).map(move |xx| (xx, yy)))
                    .map(|(xx, yy)| out.get(xx, yy, 0))
                    .fold(0.0f32, f32::max);
                assert!(
                    peak > 0.5,
                    "seed {seed} landmark {k} warp {warp}: {peak} at ({x:.1}, {y:.1})"
                );
                checked += 1;
            }
        }
        // The target's mask is the hull of the mapped landmarks (IoU of the binarised masks).
        let mapped: Vec<[f64; 2]> = lm
            .iter()
            .map(|&p| params.map_point(p, false).unwrap())
            .collect();
        let want = dfl_geom::hull_mask(r, r, &mapped, 1.0).unwrap();
        let (mut inter, mut union) = (0usize, 0usize);
        for y in 0..r {
            for x in 0..r {
                let a = s.mask.get(x, y, 0) > 0.5;
                let b = want.data[y * r + x] > 0;
                inter += usize::from(a && b);
                union += usize::from(a || b);
            }
        }
        let iou = inter as f64 / union.max(1) as f64;
        assert!(iou > 0.95, "seed {seed}: mask IoU {iou}");
    }
    assert!(checked > 100, "{checked}");
}

/// Uniform-yaw draws are flat over the occupied yaw bins even when 90 % of the faces look
/// straight ahead; plain shuffled draws follow the skew.
#[test]
fn uniform_yaw_is_flat_on_a_skewed_faceset() {
    let mut yaws: Vec<f32> = (0..900).map(|i| (i % 9) as f32 * 0.002).collect();
    yaws.extend((0..100).map(|i| -1.0 + 2.0 * i as f32 / 99.0));
    let bins = yaw_bins(&yaws);
    let bin_of: Vec<usize> = {
        let mut v = vec![0; yaws.len()];
        for (b, members) in bins.iter().enumerate() {
            for &m in members {
                v[m] = b;
            }
        }
        v
    };
    let draws = 50 * bins.len();
    let count = |mut s: IndexSampler| {
        let mut rng = StdRng::seed_from_u64(3);
        let mut c = vec![0usize; bins.len()];
        for _ in 0..draws {
            c[bin_of[s.draw(&mut rng).unwrap()]] += 1;
        }
        c
    };
    let uni = count(IndexSampler::uniform_yaw(&yaws));
    // A shuffled bag of bins: every bin exactly once per round of draws.
    assert!(uni.iter().all(|&c| c == 50), "{uni:?}");
    let plain = count(IndexSampler::shuffled(yaws.len()));
    let (max, min) = (plain.iter().max().unwrap(), plain.iter().min().unwrap());
    assert!(*max > 10 * (*min).max(1), "{plain:?}");
}

// ------------------------------------------------------------------------------------------
// Training

/// Iterations of the tiny training tests (DF: two runs of half each). Measured on this
/// setup: both losses fall 36-42 % by iteration 150 (31-37 % at 120).
const TRAIN_ITERS: u64 = 150;

/// How much higher the SSIM of the src→src prediction against its target must be than that
/// of a flat image of the target's mean colour (which has the right brightness and no face):
/// an untrained model scores about the flat image's value (0.11-0.15), a mean face 0.08
/// above it, the trained tiny models 0.36 (0.25 above).
const SSIM_MARGIN: f64 = 0.1;

fn tiny(archi: &str) -> OptionOverrides {
    OptionOverrides {
        resolution: Some(64),
        archi: Some(archi.parse().unwrap()),
        ae_dims: Some(32),
        e_dims: Some(16),
        d_dims: Some(16),
        d_mask_dims: Some(16),
        batch_size: Some(2),
        random_warp: Some(true),
        masked_training: Some(true),
        eyes_mouth_prio: Some(true),
        lr_dropout: Some(dfl_nn::options::LrDropout::Y),
        ..OptionOverrides::default()
    }
}

/// One face per side (like DFL's src and dst, one person each; the 23 different people of
/// the bundled set would need thousands of iterations to get past the mean face).
fn one_face_sides(dir: &Path) -> (PathBuf, PathBuf) {
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    for (d, f) in [(&src, "astronaut_0.jpg"), (&dst, "sample3_0.jpg")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::copy(faces_dir().join(f), d.join(f)).unwrap();
    }
    (src, dst)
}

fn request(dir: &Path, overrides: OptionOverrides, iterations: u64) -> TrainRequest {
    let (src, dst) = one_face_sides(dir);
    let mut r = TrainRequest::new(ModelKind::Saehd, dir.join("model"));
    r.src = Some(src);
    r.dst = Some(dst);
    r.overrides = overrides;
    r.seed = 1;
    r.iterations = Some(iterations);
    r.save_interval = Duration::from_secs(3600);
    r.workers = 1;
    r
}

fn mean(h: &[[f32; 2]], side: usize) -> f32 {
    h.iter().map(|p| p[side]).sum::<f32>() / h.len() as f32
}

/// SSIM of two gray images (8x8 windows, stride 4, the usual constants for [0, 1] data).
fn ssim(a: &[f32], b: &[f32], w: usize) -> f64 {
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    let mut n = 0;
    for y0 in (0..=w - 8).step_by(4) {
        for x0 in (0..=w - 8).step_by(4) {
            let px = |v: &[f32]| -> Vec<f64> {
                (0..64)
                    .map(|i| f64::from(v[(y0 + i / 8) * w + x0 + i % 8]))
                    .collect()
            };
            let (pa, pb) = (px(a), px(b));
            let ma = pa.iter().sum::<f64>() / 64.0;
            let mb = pb.iter().sum::<f64>() / 64.0;
            let va = pa.iter().map(|v| (v - ma).powi(2)).sum::<f64>() / 63.0;
            let vb = pb.iter().map(|v| (v - mb).powi(2)).sum::<f64>() / 63.0;
            let cov = pa
                .iter()
                .zip(&pb)
                .map(|(x, y)| (x - ma) * (y - mb))
                .sum::<f64>()
                / 63.0;
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            n += 1;
        }
    }
    total / f64::from(n)
}

/// Gray tile (row, col) of an R-px preview grid.
fn tile(img: &image::RgbImage, row: u32, col: u32, r: u32) -> Vec<f32> {
    let mut v = Vec::with_capacity((r * r) as usize);
    for y in 0..r {
        for x in 0..r {
            let p = img.get_pixel(col * r + x, row * r + y);
            v.push((f32::from(p[0]) + f32::from(p[1]) + f32::from(p[2])) / (3.0 * 255.0));
        }
    }
    v
}

/// Mean SSIM of pred src→src against its target over the preview rows, and the same for a
/// flat image of the target's mean (the "no face at all" baseline), on the central half of
/// the tiles (inside the face mask, where the masked loss trains).
fn preview_ssim(model: &Path, r: u32) -> (f64, f64) {
    let img = image::open(model.join("preview_SAEHD.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(img.width(), 5 * r, "five columns");
    let rows = img.height() / r;
    assert!(rows >= 2);
    let centre = |v: &[f32]| -> Vec<f32> {
        let (a, n) = (r as usize / 4, r as usize / 2);
        (0..n * n)
            .map(|i| v[(a + i / n) * r as usize + a + i % n])
            .collect()
    };
    let n = r as usize / 2;
    let (mut pred, mut flat) = (0.0, 0.0);
    for row in 0..rows {
        let target = centre(&tile(&img, row, 0, r));
        let ss = centre(&tile(&img, row, 1, r));
        let m = target.iter().sum::<f32>() / target.len() as f32;
        pred += ssim(&ss, &target, n);
        flat += ssim(&vec![m; target.len()], &target, n);
    }
    (pred / f64::from(rows), flat / f64::from(rows))
}

/// Asserts both losses fell by at least 30 % (mean of the first 10 iterations against the
/// mean of the last 20).
fn assert_losses_fell(h: &[[f32; 2]], what: &str) {
    let (first, last) = (&h[..10], &h[h.len() - 20..]);
    for (side, name) in [(0, "src"), (1, "dst")] {
        let (a, b) = (mean(first, side), mean(last, side));
        eprintln!("{what}: {name} loss {a:.3} -> {b:.3}");
        assert!(
            b <= 0.7 * a,
            "{what}: {name} loss only fell from {a} to {b}"
        );
    }
}

/// Tiny DF SAEHD (random warp, masked, eyes/mouth priority, LR dropout) trained in two runs:
/// the second continues the counter, history and optimizer (no loss jump at the restart);
/// both losses fall ≥ 30 %; the preview predicts faces closer to their targets than a flat
/// image is.
#[test]
fn tiny_df_learns_across_a_resume() {
    let dir = scratch("df");
    let stop = AtomicBool::new(false);
    let first = train(
        &request(&dir, tiny("df"), TRAIN_ITERS / 2),
        &NoObserver,
        &dfl_core::NoProgress,
        &stop,
    )
    .unwrap();
    assert_eq!(
        (first.iteration, first.stop),
        (TRAIN_ITERS / 2, StopReason::IterationsDone)
    );
    let model = dir.join("model");
    let h1 = dfl_train::model_dir::stored_state(&model)
        .unwrap()
        .unwrap()
        .loss_history;
    // Restarted with no options: the stored ones are used.
    let second = train(
        &request(&dir, OptionOverrides::default(), TRAIN_ITERS / 2),
        &NoObserver,
        &dfl_core::NoProgress,
        &stop,
    )
    .unwrap();
    assert_eq!(second.iteration, TRAIN_ITERS);
    let st = dfl_train::model_dir::stored_state(&model).unwrap().unwrap();
    assert_eq!(st.iteration, TRAIN_ITERS);
    assert_eq!(st.loss_history.len() as u64, TRAIN_ITERS);
    assert_eq!(&st.loss_history[..h1.len()], &h1[..]);
    // The optimizer's step counter continued (its moments are loaded with it).
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(st.generation.join(dfl_nn::checkpoint::STATE_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(state["optimizer_iters"]["src_dst_opt"], TRAIN_ITERS);
    // No jump at the restart: the first 10 losses of run 2 against the last 10 of run 1.
    let k = h1.len();
    for side in 0..2 {
        let (before, after) = (
            mean(&st.loss_history[k - 10..k], side),
            mean(&st.loss_history[k..k + 10], side),
        );
        assert!(after < 1.2 * before, "side {side}: {before} -> {after}");
    }
    assert_losses_fell(&st.loss_history, "df");
    let (pred, flat) = preview_ssim(&model, 64);
    eprintln!("df preview SSIM {pred:.3} (flat {flat:.3})");
    assert!(pred > flat + SSIM_MARGIN, "SSIM {pred} vs flat {flat}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same for LIAE in one run.
#[test]
fn tiny_liae_learns() {
    let dir = scratch("liae");
    let r = train(
        &request(&dir, tiny("liae"), TRAIN_ITERS),
        &NoObserver,
        &dfl_core::NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(r.iteration, TRAIN_ITERS);
    let model = dir.join("model");
    let st = dfl_train::model_dir::stored_state(&model).unwrap().unwrap();
    assert_losses_fell(&st.loss_history, "liae");
    let (pred, flat) = preview_ssim(&model, 64);
    eprintln!("liae preview SSIM {pred:.3} (flat {flat:.3})");
    assert!(pred > flat + SSIM_MARGIN, "SSIM {pred} vs flat {flat}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records the NaN recoveries of a run.
#[derive(Default)]
struct NanLog(std::sync::Mutex<Vec<(u64, u64, f32)>>);

impl dfl_train::TrainObserver for NanLog {
    fn event(&self, e: &dfl_train::TrainEvent<'_>) {
        if let dfl_train::TrainEvent::NanRecovered {
            iteration,
            reloaded,
            lr_scale,
            ..
        } = e
        {
            self.0
                .lock()
                .unwrap()
                .push((*iteration, *reloaded, *lr_scale));
        }
    }
}

/// The NaN guard: with the newest checkpoint's weights turned to NaN, the first step's loss
/// is not finite; the trainer reloads the newest save (still NaN), then the one before it,
/// halving the learning rate each time (`--on-nan lower-lr`), and trains on with finite
/// losses.
#[test]
fn nan_guard_falls_back_to_the_previous_save() {
    let dir = scratch("nan");
    let stop = AtomicBool::new(false);
    let mut req = request(&dir, tiny("df"), 3);
    req.save_interval = Duration::ZERO;
    train(&req, &NoObserver, &dfl_core::NoProgress, &stop).unwrap();
    let model = dir.join("model");
    let st = dfl_train::model_dir::stored_state(&model).unwrap().unwrap();
    assert_eq!(st.iteration, 3);
    // Poison the newest generation: every weight byte 0xFF (a NaN).
    let w = st.generation.join("weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[header..].fill(0xFF);
    std::fs::write(&w, &bytes).unwrap();

    let mut req = request(&dir, OptionOverrides::default(), 2);
    req.on_nan = dfl_train::OnNan::LowerLr;
    let log = NanLog::default();
    let r = train(&req, &log, &dfl_core::NoProgress, &stop).unwrap();
    let events = log.0.into_inner().unwrap();
    assert_eq!(events, vec![(3, 3, 0.5), (3, 2, 0.25)]);
    assert_eq!((r.nan_recoveries, r.iteration), (2, 4));
    let st = dfl_train::model_dir::stored_state(&model).unwrap().unwrap();
    assert_eq!(st.loss_history.len(), 4);
    assert!(st.loss_history.iter().flatten().all(|v| v.is_finite()));
    let _ = std::fs::remove_dir_all(&dir);
}
