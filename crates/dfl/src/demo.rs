//! `dfl demo`: the whole workflow on bundled samples, in a throw-away workspace.
//!
//! The pipeline is a list of [`Stage`]s run in order, each the library call behind one DFL
//! step: two sample videos are made with ffmpeg from two different bundled photos (a slow,
//! known camera move over each still, plus a sine tone), their frames are extracted, faces
//! are detected and aligned, a small SAEHD is trained for a few minutes, every dst frame is
//! merged, and the merged frames become `result.mp4` with the dst audio. A side-by-side
//! preview (dst frame | merged frame) is written next to it.
//!
//! The photos are embedded in the binary (from `assets/samples/`, see `assets/README.md`), so
//! the demo needs nothing but ffmpeg. The result shows the workflow, not a usable swap: a
//! real swap needs real videos with thousands of varied faces and hours of training.

use crate::progress::Ui;
use anyhow::{Context, Result, bail};
use clap::Args;
use dfl_merge::{ColorTransfer, MaskMode, MergeModel, MergeOptions, MergerConfig, Mode};
use dfl_nn::DeviceSpec;
use dfl_nn::options::FaceType as NnFaceType;
use dfl_train::{ModelKind, OptionOverrides, TrainEvent, TrainObserver, TrainRequest};
use dfl_video::{BuildOptions, ExtractOptions, Ffmpeg};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Marker file that identifies a folder as a demo workspace (so it may be reused).
const MARKER: &str = ".dfl-demo";

/// The source person: a group photo from face-api's demo pictures (MIT, see
/// `assets/samples/LICENSE-face-api-samples`); the clip frames the woman in the middle.
const SRC_PHOTO: &[u8] = include_bytes!("../../../assets/samples/sample3.jpg");
/// The destination person: NASA's portrait of Eileen Collins (public domain, from
/// scikit-image's sample data).
const DST_PHOTO: &[u8] = include_bytes!("../../../assets/samples/astronaut.png");

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Smoke run for CI (about a minute): 10 frames per video, a tiny model trained for a
    /// few iterations, so the "swapped" face is a blur [default: 4 s videos at 25 fps and
    /// about 7 minutes of training].
    #[arg(long)]
    pub quick: bool,
    /// Folder to run the demo in. Created if missing; an existing folder must be empty or a
    /// previous demo workspace (nothing outside it is ever touched).
    #[arg(long, value_name = "DIR", default_value = "demo-workspace")]
    pub workspace: PathBuf,
}

/// Sizes of one demo run.
struct Plan {
    /// Frames per video.
    frames: u32,
    /// Frame rate of the sample videos.
    fps: u32,
    /// Side of the aligned faces.
    aligned_size: usize,
    /// Model options (resolution, dims, batch).
    model: OptionOverrides,
    /// Training stops after this many iterations...
    iterations: u64,
    /// ...or after this long, whichever comes first.
    train_time: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let model = |ae: usize, e: usize, d: usize, batch: usize| OptionOverrides {
            resolution: Some(64),
            face_type: Some(NnFaceType::Full),
            archi: "df".parse().ok(),
            ae_dims: Some(ae),
            e_dims: Some(e),
            d_dims: Some(d),
            d_mask_dims: Some(16),
            batch_size: Some(batch),
            // A few hundred iterations on one still per person: reconstructing the faces
            // sharply matters more here than the generalisation random warp buys over days.
            random_warp: Some(false),
            ..OptionOverrides::default()
        };
        if quick {
            Plan {
                frames: 10,
                fps: 10,
                aligned_size: 128,
                model: model(32, 16, 16, 2),
                iterations: 4,
                train_time: Duration::from_secs(60),
            }
        } else {
            Plan {
                frames: 100,
                fps: 25,
                aligned_size: 256,
                model: model(64, 16, 16, 4),
                iterations: 5000,
                train_time: Duration::from_secs(400),
            }
        }
    }
}

/// Everything the stages share.
struct Demo {
    ff: Ffmpeg,
    dir: PathBuf,
    plan: Plan,
    ui: Ui,
}

impl Demo {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// One step of the demo: a name and a function returning a one-line summary.
struct Stage {
    name: &'static str,
    run: fn(&Demo) -> Result<String>,
}

/// The demo pipeline, in order.
fn stages() -> Vec<Stage> {
    vec![
        Stage {
            name: "make sample videos data_src.mp4, data_dst.mp4 from two bundled photos",
            run: make_samples,
        },
        Stage {
            name: "workspace init (step 1)",
            run: |d| {
                crate::workspace::init(&d.dir)?;
                Ok(format!("layout ready in {}", d.dir.display()))
            },
        },
        Stage {
            name: "video extract data_src.mp4 -> data_src/ (step 2)",
            run: |d| extract_frames(d, "data_src.mp4", "data_src"),
        },
        Stage {
            name: "video extract data_dst.mp4 -> data_dst/ (step 3)",
            run: |d| extract_frames(d, "data_dst.mp4", "data_dst"),
        },
        Stage {
            name: "extract faces data_src/ -> data_src/aligned/ (step 4)",
            run: |d| extract_faces(d, "data_src"),
        },
        Stage {
            name: "extract faces data_dst/ -> data_dst/aligned/ (step 5)",
            run: |d| extract_faces(d, "data_dst"),
        },
        Stage {
            name: "train a small SAEHD -> model/ (step 6)",
            run: train,
        },
        Stage {
            name: "merge data_dst/ -> data_dst/merged/ (step 7)",
            run: merge,
        },
        Stage {
            name: "video build data_dst/merged/ -> result.mp4, audio from data_dst.mp4 (step 8)",
            run: build_result,
        },
        Stage {
            name: "side-by-side preview -> preview.png (dst frame | merged frame)",
            run: preview,
        },
    ]
}

/// Renders `photo` into `video`: a slow zoom and pan over the still (sines of known periods,
/// supersampled 2x so the move is smooth) with a sine tone as its audio track.
fn photo_clip(
    d: &Demo,
    photo: &Path,
    crop: &str,
    motion: &str,
    tone: u32,
    video: &Path,
) -> Result<()> {
    let p = &d.plan;
    let secs = f64::from(p.frames) / f64::from(p.fps);
    let filter = format!(
        "[0:v]{crop}scale=1024:1024,zoompan={motion}:d={}:s=512x512:fps={},format=yuv420p[v]",
        p.frames, p.fps
    );
    let mut cmd = d.ff.ffmpeg();
    cmd.arg("-nostdin")
        .arg("-i")
        .arg(photo)
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency={tone}:sample_rate=48000:duration={secs}"
        ))
        .args(["-filter_complex", &filter])
        .args([
            "-map",
            "[v]",
            "-map",
            "1:a",
            "-frames:v",
            &p.frames.to_string(),
        ])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-movflags",
            "+faststart",
            "-y",
        ])
        .arg(video)
        .stdin(Stdio::null());
    let out = cmd.output().context("cannot run ffmpeg")?;
    if !out.status.success() {
        bail!(
            "ffmpeg could not make {}: {}",
            video.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("no message")
        );
    }
    Ok(())
}

fn make_samples(d: &Demo) -> Result<String> {
    let photos = d.path("samples");
    std::fs::create_dir_all(&photos)
        .with_context(|| format!("cannot create {}", photos.display()))?;
    let (src, dst) = (photos.join("src_photo.jpg"), photos.join("dst_photo.png"));
    for (path, bytes) in [(&src, SRC_PHOTO), (&dst, DST_PHOTO)] {
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    // src: an 800x800 square around the middle face of the 1920x1350 photo.
    photo_clip(
        d,
        &src,
        "crop=800:800:794:0,",
        "z='1.1+0.1*sin(2*PI*on/100)':x='(iw-iw/zoom)/2+50*sin(2*PI*on/125)':\
         y='(ih-ih/zoom)/2+30*cos(2*PI*on/150)'",
        330,
        &d.path("data_src.mp4"),
    )?;
    // dst: the whole 512x512 portrait.
    photo_clip(
        d,
        &dst,
        "",
        "z='1.15+0.1*sin(2*PI*on/100)':x='(iw-iw/zoom)/2+50*sin(2*PI*on/100)':\
         y='(ih-ih/zoom)/2-20+30*cos(2*PI*on/125)'",
        440,
        &d.path("data_dst.mp4"),
    )?;
    Ok(format!(
        "512x512, {} frames at {} fps, slow zoom and pan, sine tone",
        d.plan.frames, d.plan.fps
    ))
}

fn extract_frames(d: &Demo, video: &str, dir: &str) -> Result<String> {
    let opts = ExtractOptions {
        overwrite: true,
        ..ExtractOptions::default()
    };
    let r = dfl_video::extract(&d.ff, &d.path(video), &d.path(dir), &opts, &d.ui.progress())?;
    Ok(format!("{} frames in {}", r.frames, d.path(dir).display()))
}

fn extract_faces(d: &Demo, dir: &str) -> Result<String> {
    let device = DeviceSpec::Cpu.device()?;
    let models = dfl_detect::Models::bundled(&device)?;
    let mut opts = dfl_detect::ExtractOptions::new(dfl_geom::FaceType::Full);
    opts.image_size = d.plan.aligned_size;
    opts.max_faces = 1;
    opts.track = true;
    opts.overwrite = true;
    let out = d.path(dir).join("aligned");
    let r = dfl_detect::extract(&models, &d.path(dir), &out, &opts, &d.ui.progress())?;
    if r.faces_written == 0 {
        bail!("no face found in {}", d.path(dir).display());
    }
    Ok(format!(
        "{} faces from {} frames in {}{}",
        r.faces_written,
        r.images_found,
        out.display(),
        if r.no_face.is_empty() {
            String::new()
        } else {
            format!(" ({} frames without a face)", r.no_face.len())
        }
    ))
}

/// Collects the trainer's warnings and the last losses for the stage summary.
#[derive(Default)]
struct TrainNotes {
    warnings: Mutex<Vec<String>>,
    last: Mutex<Option<(u64, f32, f32)>>,
}

impl TrainObserver for TrainNotes {
    fn event(&self, e: &TrainEvent<'_>) {
        match e {
            TrainEvent::Warning(w) => {
                if let Ok(mut v) = self.warnings.lock() {
                    v.push(w.clone());
                }
            }
            TrainEvent::Iteration {
                iteration,
                src,
                dst,
                ..
            } => {
                if let Ok(mut l) = self.last.lock() {
                    *l = Some((*iteration, *src, *dst));
                }
            }
            _ => {}
        }
    }
}

fn train(d: &Demo) -> Result<String> {
    let model = d.path("model");
    if model.exists() {
        std::fs::remove_dir_all(&model)
            .with_context(|| format!("cannot clear the previous demo model {}", model.display()))?;
    }
    let mut req = TrainRequest::new(ModelKind::Saehd, &model);
    req.src = Some(d.path("data_src/aligned"));
    req.dst = Some(d.path("data_dst/aligned"));
    req.overrides = d.plan.model.clone();
    req.iterations = Some(d.plan.iterations);
    req.seed = 1;
    // One save at the end (the trainer always saves when it stops).
    req.save_interval = Duration::from_secs(24 * 3600);
    let stop = AtomicBool::new(false);
    let notes = TrainNotes::default();
    let budget = d.plan.train_time;
    let t = Instant::now();
    let done = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let timer = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if t.elapsed() >= budget {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let r = dfl_train::train(&req, &notes, &d.ui.progress(), &stop);
        done.store(true, Ordering::Relaxed);
        let _ = timer.join();
        r
    })?;
    for w in notes.warnings.lock().map(|v| v.clone()).unwrap_or_default() {
        tracing::warn!("training: {w}");
    }
    let losses = notes
        .last
        .lock()
        .ok()
        .and_then(|l| *l)
        .map(|(_, s, d)| format!(", last losses src {s:.3} dst {d:.3}"))
        .unwrap_or_default();
    Ok(format!(
        "{} iterations in {:.0} s ({:.0} ms each, stopped by {}){losses}; model in {}",
        report.iteration,
        t.elapsed().as_secs_f64(),
        report.mean_ms,
        if stop.load(Ordering::Relaxed) {
            "the time budget"
        } else {
            "the iteration count"
        },
        model.display()
    ))
}

/// The demo's merger settings: DFL's overlay with rct colour transfer; the mask is the dst
/// landmarks' hull, softened, because the learned masks of a few-minute model are not yet
/// reliable.
fn merge_config() -> MergerConfig {
    MergerConfig {
        mode: Mode::Overlay,
        mask_mode: MaskMode::Dst,
        color_transfer_mode: ColorTransfer::Rct,
        erode_mask_modifier: 10,
        blur_mask_modifier: 60,
        ..MergerConfig::default()
    }
}

fn merge(d: &Demo) -> Result<String> {
    let model = MergeModel::open(&d.path("model"), DeviceSpec::Cpu)?;
    let opts = MergeOptions {
        input: d.path("data_dst"),
        aligned: d.path("data_dst/aligned"),
        output: d.path("data_dst/merged"),
        mask_output: Some(d.path("data_dst/merged_mask")),
        config: Some((merge_config(), "the demo's merge settings".into())),
        shard: dfl_core::Shard::ALL,
        batch: dfl_merge::DEFAULT_BATCH,
    };
    let r = dfl_merge::merge_folder(&model, None, &opts, &d.ui.progress())?;
    Ok(format!(
        "{} frames merged, {} copied (no face), provenance in {}",
        r.counts.merged,
        r.counts.copied,
        r.manifest.display()
    ))
}

fn build_result(d: &Demo) -> Result<String> {
    let opts = BuildOptions {
        reference: Some(d.path("data_dst.mp4")),
        overwrite: true,
        ..BuildOptions::default()
    };
    let r = dfl_video::build(
        &d.ff,
        &d.path("data_dst/merged"),
        &d.path("result.mp4"),
        &opts,
        &d.ui.progress(),
    )?;
    Ok(format!(
        "{} ({} frames, {}), provenance in {}",
        r.output.display(),
        r.frames,
        if r.audio { "with audio" } else { "no audio" },
        r.manifest.display()
    ))
}

/// The middle frame that has a merged face: dst frame on the left, merged frame on the right.
fn preview(d: &Demo) -> Result<String> {
    let merged_dir = d.path("data_dst/merged");
    let frames = dfl_core::list_images(&d.path("data_dst"))
        .with_context(|| format!("cannot list {}", d.path("data_dst").display()))?;
    let Some(frame) = frames.get(frames.len() / 2) else {
        bail!("no frames in {}", d.path("data_dst").display());
    };
    let stem = frame
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let merged = merged_dir.join(format!("{stem}.png"));
    let a = image::open(frame)
        .with_context(|| format!("cannot read {}", frame.display()))?
        .to_rgb8();
    let b = image::open(&merged)
        .with_context(|| format!("cannot read {}", merged.display()))?
        .to_rgb8();
    let gap = 8;
    let (w, h) = (a.width() + gap + b.width(), a.height().max(b.height()));
    let mut out = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, &a, 0, 0);
    image::imageops::replace(&mut out, &b, i64::from(a.width() + gap), 0);
    let path = d.path("preview.png");
    out.save(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(format!(
        "{} ({} | merged {})",
        path.display(),
        frame.display(),
        merged.display()
    ))
}

/// Checks that `dir` may be used: missing, empty, or marked as a previous demo workspace; and
/// that the folders the demo writes into are real folders inside it, not links out of it.
fn claim(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{} exists and is not a folder", dir.display());
        }
        let marked = dir.join(MARKER).is_file();
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !marked && !empty {
            bail!(
                "{} is not empty and is not a previous demo workspace (no {MARKER} file); \
                 nothing was changed: choose another --workspace",
                dir.display()
            );
        }
        for sub in ["data_src", "data_dst", "data_dst/merged", "model"] {
            let p = dir.join(sub);
            if p.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                bail!(
                    "{} is a link; the demo only writes inside {}",
                    p.display(),
                    dir.display()
                );
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "dfl demo workspace: `dfl demo` may overwrite the files in this folder\n",
    )
    .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))?;
    Ok(())
}

pub fn run(args: DemoArgs, ui: &Ui) -> Result<()> {
    let ff = Ffmpeg::locate()?;
    claim(&args.workspace)?;
    let demo = Demo {
        ff,
        dir: args.workspace,
        plan: Plan::new(args.quick),
        ui: *ui,
    };
    let all = stages();
    let start = Instant::now();
    for (i, stage) in all.iter().enumerate() {
        println!("[{}/{}] {}", i + 1, all.len(), stage.name);
        let t = Instant::now();
        let summary =
            (stage.run)(&demo).with_context(|| format!("demo stage '{}' failed", stage.name))?;
        println!("      {summary} ({:.1} s)", t.elapsed().as_secs_f64());
    }
    println!(
        "\ndemo finished in {:.1} s. Everything is in {}:",
        start.elapsed().as_secs_f64(),
        demo.dir.display()
    );
    let listing = [
        (
            "data_src.mp4",
            "source-person video (made from a bundled photo)",
        ),
        (
            "data_dst.mp4",
            "destination video (made from a bundled photo)",
        ),
        ("data_src/aligned/", "source faces"),
        ("data_dst/", "destination frames (aligned/ holds its faces)"),
        ("model/", "the trained SAEHD (previews inside)"),
        ("data_dst/merged/", "merged frames (provenance.json inside)"),
        ("data_dst/merged_mask/", "merge masks"),
        (
            "result.mp4",
            "the result video, with the destination's audio",
        ),
        ("result.mp4.provenance.json", "how the result was made"),
        ("preview.png", "dst frame | merged frame"),
    ]
    .map(|(rel, what)| (demo.path(rel).display().to_string(), what));
    let width = listing.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    for (path, what) in &listing {
        println!("  {path:<width$}  {what}");
    }
    println!(
        "This shows every step, not a usable swap: a few minutes of training on one photo per \
         person gives a blurry face. A real swap needs real videos (thousands of varied faces \
         of both people) and hours to days of training; see the README's workflow."
    );
    Ok(())
}
