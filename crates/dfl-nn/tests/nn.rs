//! Integration tests of dfl-nn: training, checkpoints, crash safety, PyTorch parity.

use burn::tensor::{Device, Tensor, TensorData};
use dfl_nn::archs::AeDims;
use dfl_nn::optim::{OptimConfig, OptimizerKind};
use dfl_nn::options::SaehdOptions;
use dfl_nn::store::{NamedTensor, collect_params, read_safetensors};
use dfl_nn::{AeBatch, CheckpointDir, DeviceSpec, LearnedMasks, Quick96, Saehd};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

fn tiny(archi: &str, res: usize) -> SaehdOptions {
    let d = AeDims {
        archi: archi.parse().unwrap(),
        resolution: res,
        ae_dims: 32,
        e_dims: 16,
        d_dims: 16,
        d_mask_dims: 16,
    };
    SaehdOptions {
        archi: d.archi,
        resolution: res,
        ae_dims: d.ae_dims,
        e_dims: d.e_dims,
        d_dims: d.d_dims,
        d_mask_dims: d.d_mask_dims,
        gan_patch_size: res / 8,
        ..SaehdOptions::default()
    }
}

// ------------------------------------------------------------------------------------------
// Learning

/// A tiny DF model learns a fixed batch of 8 synthetic faces: the mean loss falls by at least
/// half within 300 steps (SAEHD's own optimizer settings: AdaBelief, lr 5e-5).
#[test]
fn tiny_df_overfits_a_fixed_batch() {
    let opts = SaehdOptions {
        resolution: 64,
        ae_dims: 32,
        e_dims: 8,
        d_dims: 4,
        d_mask_dims: 4,
        ..tiny("df", 64)
    };
    let mut m = Saehd::new(opts, DeviceSpec::Cpu, 5).unwrap();
    let batch = dfl_nn::synthetic::batch(8, 64, 11, &Device::flex());
    let first = m.train_step(&batch).unwrap();
    let start = (first.src + first.dst) / 2.0;
    let t = std::time::Instant::now();
    let mut last = start;
    let mut steps = 1;
    while steps < 300 {
        let l = m.train_step(&batch).unwrap();
        last = (l.src + l.dst) / 2.0;
        steps += 1;
        if last <= start * 0.5 {
            break;
        }
    }
    eprintln!(
        "overfit: loss {start:.4} -> {last:.4} in {steps} steps, {:?}",
        t.elapsed()
    );
    assert!(
        last <= start * 0.5,
        "loss only fell from {start} to {last} in {steps} steps"
    );
    assert_eq!(m.loss_history().len(), steps);
}

/// Every archi variant, LIAE with inter_AB frozen, and all optional loss terms run a step
/// with finite losses, and the discriminators train.
#[test]
fn every_variant_and_loss_term_trains() {
    let batch = dfl_nn::synthetic::batch(2, 32, 2, &Device::flex());
    for archi in ["df-c", "liae-t", "df-udtc", "liae-udtc"] {
        let mut m = Saehd::new(tiny(archi, 32), DeviceSpec::Cpu, 1).unwrap();
        let l = m.train_step(&batch).unwrap();
        assert!(l.src.is_finite() && l.dst.is_finite(), "{archi}");
    }
    let opts = SaehdOptions {
        random_warp: false,
        blur_out_mask: true,
        masked_training: false,
        face_type: dfl_nn::options::FaceType::WholeFace,
        gan_power: 1.0,
        gan_patch_size: 8,
        face_style_power: 10.0,
        bg_style_power: 10.0,
        eyes_mouth_prio: true,
        lr_dropout: dfl_nn::options::LrDropout::Y,
        adabelief: false,
        ..tiny("liae-ud", 32)
    };
    let mut m = Saehd::new(opts, DeviceSpec::Cpu, 1).unwrap();
    let ab_before = {
        let mut v = BTreeMap::new();
        collect_params(m.nets().unwrap().inter_AB.as_ref().unwrap(), "", &mut v);
        v
    };
    for _ in 0..2 {
        let l = m.train_step(&batch).unwrap();
        assert!(l.src.is_finite() && l.d_gan.is_some() && l.d_code.is_none());
    }
    let mut ab_after = BTreeMap::new();
    collect_params(
        m.nets().unwrap().inter_AB.as_ref().unwrap(),
        "",
        &mut ab_after,
    );
    assert_eq!(
        ab_before, ab_after,
        "inter_AB must stay frozen without random warp"
    );
    let (face, prd, dst) = m
        .predict(batch.target_dst.clone(), LearnedMasks::ALL)
        .unwrap();
    let (prd, dst) = (prd.unwrap(), dst.unwrap());
    assert_eq!(
        (face.dims(), prd.dims(), dst.dims()),
        ([2, 3, 32, 32], [2, 1, 32, 32], [2, 1, 32, 32])
    );
    // Wrong shapes are errors, not panics.
    assert!(
        m.predict(
            Tensor::zeros([1, 3, 16, 16], &Device::flex()),
            LearnedMasks::ALL
        )
        .is_err()
    );
    let mut bad = batch.clone();
    bad.target_srcm = Tensor::zeros([2, 3, 32, 32], &Device::flex());
    assert!(
        m.train_step(&bad)
            .unwrap_err()
            .to_string()
            .contains("target_srcm")
    );
}

/// Merge-time prediction runs only the decoder branches it returns, and only the masks asked
/// for; its outputs equal the full forward pass's (the preview's dst->src swap, its mask, and
/// the dst->dst mask) for every choice of masks.
#[test]
fn predict_equals_the_full_forward() {
    let batch = dfl_nn::synthetic::batch(2, 32, 5, &Device::flex());
    for archi in ["df-ud", "liae-ud", "liae-t"] {
        let m = Saehd::new(tiny(archi, 32), DeviceSpec::Cpu, 3).unwrap();
        let full = m
            .preview(batch.target_dst.clone(), batch.target_dst.clone())
            .unwrap();
        for (prd_on, dst_on) in [(true, true), (true, false), (false, true), (false, false)] {
            let masks = LearnedMasks {
                prd: prd_on,
                dst: dst_on,
            };
            let (face, prd, dst) = m.predict(batch.target_dst.clone(), masks).unwrap();
            assert_eq!((prd.is_some(), dst.is_some()), (prd_on, dst_on), "{archi}");
            let mut pairs = vec![("face", face, full.src_dst.0.clone())];
            pairs.extend(prd.map(|p| ("prd mask", p, full.src_dst.1.clone())));
            pairs.extend(dst.map(|d| ("dst mask", d, full.dst_dst.1.clone())));
            for (what, a, b) in pairs {
                let d = max_diff(&values(a), &values(b));
                assert!(d < 1e-5, "{archi} {what} {masks:?}: {d}");
            }
        }
    }
}

/// DFL's override rules: leaving pretrain resets the counter and re-initialises the inter
/// (encoder kept); arch options cannot change; the discriminators follow the options.
#[test]
fn option_changes_follow_dfl() {
    let batch = dfl_nn::synthetic::batch(2, 32, 2, &Device::flex());
    let opts = SaehdOptions {
        pretrain: true,
        true_face_power: 0.1,
        ..tiny("df", 32)
    };
    let mut m = Saehd::new(opts.clone(), DeviceSpec::Cpu, 1).unwrap();
    let l = m.train_step(&batch).unwrap();
    assert!(
        l.d_code.is_none(),
        "the code discriminator does not train in pretrain"
    );
    let part = |m: &Saehd, name: &str| {
        let mut v = BTreeMap::new();
        match name {
            "encoder" => collect_params(&m.nets().unwrap().encoder, "", &mut v),
            _ => collect_params(m.nets().unwrap().inter.as_ref().unwrap(), "", &mut v),
        }
        v
    };
    let (enc, inter) = (part(&m, "encoder"), part(&m, "inter"));
    m.set_options(SaehdOptions {
        pretrain: false,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(m.iteration(), 0);
    assert!(
        m.loss_history().is_empty(),
        "DFL's set_iter(0) cuts the history"
    );
    assert_eq!(part(&m, "encoder"), enc);
    assert_ne!(part(&m, "inter"), inter);
    assert!(m.train_step(&batch).unwrap().d_code.is_some());
    let e = m
        .set_options(SaehdOptions {
            ae_dims: 64,
            ..opts.clone()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("ae_dims"), "{e}");
    m.set_options(SaehdOptions {
        pretrain: false,
        true_face_power: 0.0,
        gan_power: 0.5,
        gan_patch_size: 8,
        ..opts
    })
    .unwrap();
    assert_eq!(m.has_discriminators(), (false, true));
}

#[test]
fn xseg_trains_extracts_and_roundtrips() {
    use dfl_nn::xseg_model::{XSegModel, XSegOptions};
    let dev = Device::flex();
    let mut m = XSegModel::new(XSegOptions::default(), DeviceSpec::Cpu, 1).unwrap();
    assert_eq!(m.num_params(), 17_569_317);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let (_, mask, _) = dfl_nn::synthetic::face(256, &mut rng);
    let images = xseg_image(&dev);
    let masks = Tensor::<4>::from_data(TensorData::new(mask, [1, 1, 256, 256]), &dev);
    let l0 = m.train_step(images.clone(), masks.clone()).unwrap();
    assert!(l0.is_finite() && l0 > 0.0);
    let out = values(m.extract(images.clone()).unwrap());
    assert_eq!(out.len(), 256 * 256);
    assert!(out.iter().all(|v| *v == 0.0 || (0.1..=1.0).contains(v)));
    let dir = temp_dir("xseg");
    let ck = CheckpointDir::new(&dir, 0);
    m.save(&ck).unwrap();
    let back = XSegModel::load(&ck, DeviceSpec::Cpu).unwrap();
    assert_eq!(back.iteration(), 1);
    assert_eq!(values(back.extract(images.clone()).unwrap()), out);
    // Pretrain mode: grayscale reconstruction with zeroed skips.
    m.set_options(XSegOptions {
        pretrain: true,
        ..XSegOptions::default()
    })
    .unwrap();
    let gray = images.mean_dim(1);
    assert!(m.train_step(xseg_image(&dev), gray).unwrap().is_finite());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The synthetic face of seed 3 at XSeg's 256 px.
fn xseg_image(dev: &Device) -> Tensor<4> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let (img, _, _) = dfl_nn::synthetic::face(256, &mut rng);
    Tensor::from_data(TensorData::new(img, [1, 3, 256, 256]), dev)
}

// ------------------------------------------------------------------------------------------
// Checkpoints

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dfl-nn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn nets_values(m: &Saehd) -> BTreeMap<String, NamedTensor> {
    let mut out = BTreeMap::new();
    collect_params(m.nets().unwrap(), "", &mut out);
    out
}

/// Save, load, and keep training: the loaded model continues exactly like the original
/// (weights, optimizer state, counters, loss history, discriminators).
#[test]
fn checkpoint_roundtrip_continues_identically() {
    let dir = temp_dir("roundtrip");
    let ckpt = CheckpointDir::new(&dir, 2);
    let opts = SaehdOptions {
        gan_power: 0.1,
        gan_patch_size: 7,
        true_face_power: 0.2,
        face_style_power: 5.0,
        bg_style_power: 5.0,
        eyes_mouth_prio: true,
        clipgrad: true,
        ..tiny("df-ud", 32)
    };
    let mut a = Saehd::new(opts.clone(), DeviceSpec::Cpu, 3).unwrap();
    assert_eq!(a.has_discriminators(), (true, true));
    let batch = dfl_nn::synthetic::batch(2, 32, 4, &Device::flex());
    for _ in 0..2 {
        let l = a.train_step(&batch).unwrap();
        assert!(l.d_code.is_some() && l.d_gan.is_some());
    }
    a.save(&ckpt).unwrap();
    let mut b = Saehd::load(&ckpt, DeviceSpec::Cpu, Some(&opts)).unwrap();
    assert_eq!(b.iteration(), 2);
    assert_eq!(b.loss_history(), a.loss_history());
    assert_eq!(nets_values(&a), nets_values(&b));
    let la = a.train_step(&batch).unwrap();
    let lb = b.train_step(&batch).unwrap();
    assert_eq!(
        (la.src, la.dst, la.d_code, la.d_gan),
        (lb.src, lb.dst, lb.d_code, lb.d_gan)
    );
    assert_eq!(nets_values(&a), nets_values(&b));
    // Rotation keeps 1 + 2 generations.
    for _ in 0..4 {
        b.save(&ckpt).unwrap();
    }
    assert_eq!(ckpt.complete_generations().unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoint_refuses_other_architecture() {
    let dir = temp_dir("mismatch");
    let ckpt = CheckpointDir::new(&dir, 1);
    let opts = tiny("liae-ud", 32);
    Saehd::new(opts.clone(), DeviceSpec::Cpu, 1)
        .unwrap()
        .save(&ckpt)
        .unwrap();
    let other = SaehdOptions {
        d_dims: 24,
        ..opts.clone()
    };
    let e = Saehd::load(&ckpt, DeviceSpec::Cpu, Some(&other))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("d_dims") && e.contains("16") && e.contains("24"),
        "{e}"
    );
    let other = SaehdOptions {
        archi: "df-ud".parse().unwrap(),
        ..opts.clone()
    };
    let e = Saehd::load(&ckpt, DeviceSpec::Cpu, Some(&other))
        .unwrap_err()
        .to_string();
    assert!(e.contains("archi") && e.contains("liae-ud"), "{e}");
    // Changeable options are applied on load.
    let changed = SaehdOptions {
        random_warp: false,
        ..opts.clone()
    };
    let m = Saehd::load(&ckpt, DeviceSpec::Cpu, Some(&changed)).unwrap();
    assert!(!m.options().random_warp);
    // A Quick96 loader refuses a SAEHD checkpoint.
    let e = Quick96::load(&ckpt, DeviceSpec::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("SAEHD") || e.contains("Saehd"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Child half of the crash test: trains a small model and saves three times after every step,
/// forever (until the parent kills it), so that most of its time is spent saving. Does
/// nothing unless `DFL_NN_CRASH_DIR` is set.
#[test]
#[ignore = "child process of checkpoint_survives_sigkill"]
fn crash_child_saves_forever() {
    let Ok(dir) = std::env::var("DFL_NN_CRASH_DIR") else {
        return;
    };
    let ckpt = CheckpointDir::new(&dir, 2);
    let opts = crash_options();
    let mut m = match Saehd::load(&ckpt, DeviceSpec::Cpu, Some(&opts)) {
        Ok(m) => m,
        Err(_) => Saehd::new(opts, DeviceSpec::Cpu, 9).unwrap(),
    };
    let batch = dfl_nn::synthetic::batch(1, 32, 1, &Device::flex());
    loop {
        m.train_step(&batch).unwrap();
        for _ in 0..3 {
            m.save(&ckpt).unwrap();
        }
    }
}

/// A small model (about 1 MB of weights, 3 MB of checkpoint), quick to load and train.
fn crash_options() -> SaehdOptions {
    tiny("df", 32)
}

/// SIGKILL at random moments during repeated saves, 50 times: every time the newest complete
/// checkpoint loads, every complete generation parses fully, and iterations only grow.
#[test]
fn checkpoint_survives_sigkill() {
    use rand::{RngExt, SeedableRng};
    let dir = temp_dir("crash");
    let exe = std::env::current_exe().unwrap();
    let ckpt = CheckpointDir::new(&dir, 2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut last_iter = 0u64;
    let mut kills_after_first_save = 0;
    let mut killed_mid_save = 0usize;
    let partials = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".partial"))
                    .collect()
            })
            .unwrap_or_default()
    };
    for round in 0..50 {
        let before = partials(&dir);
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "crash_child_saves_forever",
                "--ignored",
                "--nocapture",
            ])
            .env("DFL_NN_CRASH_DIR", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let the first child reach a first save; then kill anywhere.
        let wait_ms = if round == 0 {
            3000
        } else {
            rng.random_range(50..700)
        };
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        // A `.partial` folder that did not exist before this round: the kill hit a save.
        let after = partials(&dir);
        killed_mid_save += usize::from(after.iter().any(|p| !before.contains(p)));
        let gens = ckpt.complete_generations().unwrap();
        if gens.is_empty() {
            assert_eq!(round, 0, "no complete checkpoint after round {round}");
            continue;
        }
        kills_after_first_save += 1;
        let m = Saehd::load(&ckpt, DeviceSpec::Cpu, Some(&crash_options()))
            .unwrap_or_else(|e| panic!("round {round}: newest checkpoint does not load: {e}"));
        assert!(
            m.iteration() >= last_iter,
            "round {round}: iteration went back"
        );
        last_iter = m.iteration();
        for g in &gens {
            let l = CheckpointDir::load_generation(g)
                .unwrap_or_else(|e| panic!("round {round}: {} does not parse: {e}", g.display()));
            Saehd::from_loaded(l, DeviceSpec::Cpu, None).unwrap();
        }
    }
    eprintln!("crash test: {killed_mid_save} of 50 kills landed inside a save");
    // The kills must hit saves often enough for the test to mean something.
    assert!(
        killed_mid_save >= 5,
        "only {killed_mid_save} kills landed inside a save"
    );
    assert!(kills_after_first_save >= 49, "{kills_after_first_save}");
    assert!(last_iter > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------------------------------------
// PyTorch parity (fixtures from tools/reference/nn_reference.py)

fn fixture(name: &str) -> (PathBuf, HashMap<String, NamedTensor>) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let t = read_safetensors(&p).unwrap();
    (p, t)
}

fn take_prefix(t: &HashMap<String, NamedTensor>, prefix: &str) -> HashMap<String, NamedTensor> {
    t.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
        .collect()
}

fn tensor4(t: &NamedTensor) -> Tensor<4> {
    let s: [usize; 4] = t.shape.clone().try_into().unwrap();
    Tensor::from_data(TensorData::new(t.data.clone(), s), &Device::flex())
}

fn fixture_batch(t: &HashMap<String, NamedTensor>) -> AeBatch {
    let g = |n: &str| tensor4(&t[&format!("in.{n}")]);
    AeBatch {
        warped_src: g("warped_src"),
        target_src: g("target_src"),
        target_srcm: g("target_srcm"),
        target_srcm_em: Some(g("target_srcm_em")),
        warped_dst: g("warped_dst"),
        target_dst: g("target_dst"),
        target_dstm: g("target_dstm"),
        target_dstm_em: Some(g("target_dstm_em")),
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Tiny dims of the fixtures: ae 4, e 2, d 2, mask 2 at 32 px.
fn fixture_options(archi: &str, eyes_mouth: bool) -> SaehdOptions {
    SaehdOptions {
        archi: archi.parse().unwrap(),
        resolution: 32,
        ae_dims: 4,
        e_dims: 2,
        d_dims: 2,
        d_mask_dims: 2,
        gan_patch_size: 4,
        eyes_mouth_prio: eyes_mouth,
        ..SaehdOptions::default()
    }
}

/// Checks forward outputs and losses (1e-4) and the weights after one step (1e-5).
fn check_parity(model: &mut Saehd, name: &str) {
    let (path, t) = fixture(name);
    let mut w = take_prefix(&t, "w.");
    model.import_weights(&mut w, &path).unwrap();
    assert!(
        w.is_empty(),
        "unused fixture weights: {:?}",
        w.keys().collect::<Vec<_>>()
    );
    let batch = fixture_batch(&t);
    let p = model
        .preview(batch.warped_src.clone(), batch.warped_dst.clone())
        .unwrap();
    for (key, got) in [
        ("pred_src_src", p.src_src.0),
        ("pred_src_srcm", p.src_src.1),
        ("pred_dst_dst", p.dst_dst.0),
        ("pred_dst_dstm", p.dst_dst.1),
        ("pred_src_dst", p.src_dst.0),
        ("pred_src_dstm", p.src_dst.1),
    ] {
        let want = &t[&format!("out.{key}")];
        let d = max_diff(&values(got), &want.data);
        assert!(d < 1e-4, "{name} {key}: max diff {d}");
    }
    let mean = |k: &str| t[k].data.iter().sum::<f32>() / t[k].data.len() as f32;
    let l1 = model.train_step(&batch).unwrap();
    assert!(
        (l1.src - mean("loss.src")).abs() < 1e-4,
        "{name} src loss {} vs {}",
        l1.src,
        mean("loss.src")
    );
    assert!(
        (l1.dst - mean("loss.dst")).abs() < 1e-4,
        "{name} dst loss {} vs {}",
        l1.dst,
        mean("loss.dst")
    );
    check_weights(model, &take_prefix(&t, "step."), name, 1e-5);
}

fn check_weights(model: &Saehd, want: &HashMap<String, NamedTensor>, name: &str, tol: f32) {
    let mut got = BTreeMap::new();
    collect_params(model.nets().unwrap(), "", &mut got);
    assert_eq!(got.len(), want.len(), "{name}: parameter count");
    let mut worst = 0.0f32;
    let mut bad = Vec::new();
    for (k, w) in want {
        let g = &got[k].data[..w.data.len()];
        let d = max_diff(g, &w.data);
        if d >= tol {
            let i = (0..g.len())
                .max_by(|&a, &b| {
                    (g[a] - w.data[a])
                        .abs()
                        .total_cmp(&(g[b] - w.data[b]).abs())
                })
                .unwrap_or(0);
            bad.push(format!(
                "{k}: {d:e} at {i} (ours {} torch {})",
                g[i], w.data[i]
            ));
        }
        worst = worst.max(d);
    }
    bad.sort();
    assert!(
        bad.is_empty(),
        "{name}: weights differ after the steps: {bad:?}"
    );
    eprintln!("{name}: worst weight diff after the steps {worst:e}");
}

#[test]
fn parity_with_pytorch_saehd_archs() {
    for archi in ["df", "liae", "df-ud", "liae-ud", "df-tc", "liae-udt"] {
        let mut m =
            Saehd::new(fixture_options(archi, archi == "df-ud"), DeviceSpec::Cpu, 1).unwrap();
        check_parity(&mut m, &format!("parity_{archi}.safetensors"));
    }
}

#[test]
fn parity_with_pytorch_quick96() {
    let dims = fixture_options("df-ud", false).dims();
    let mut q = Quick96::with_dims(dims, DeviceSpec::Cpu, 1).unwrap();
    // Quick96 trains with LR dropout, which no other framework can reproduce draw for draw.
    q.as_saehd_mut()
        .override_optimizer(OptimConfig::new(OptimizerKind::RmsProp, 2e-4))
        .unwrap();
    check_parity(q.as_saehd_mut(), "parity_quick96.safetensors");
}

#[test]
fn parity_with_pytorch_optimizers() {
    let (path, t) = fixture("optim.safetensors");
    for (tag, kind, clip) in [
        ("adabelief", OptimizerKind::AdaBelief, 0.0),
        ("rmsprop", OptimizerKind::RmsProp, 0.0),
        ("adabelief_clip", OptimizerKind::AdaBelief, 1.0),
    ] {
        let mut m = Saehd::new(fixture_options("df-ud", false), DeviceSpec::Cpu, 1).unwrap();
        m.override_optimizer(OptimConfig {
            clipnorm: clip,
            ..OptimConfig::new(kind, 1e-3)
        })
        .unwrap();
        m.import_weights(&mut take_prefix(&t, "w."), &path).unwrap();
        let batch = fixture_batch(&t);
        m.train_step(&batch).unwrap();
        m.train_step(&batch).unwrap();
        check_weights(&m, &take_prefix(&t, &format!("step.{tag}.")), tag, 1e-5);
    }
}

/// A number from the environment variable `name` (the profiling drivers' settings), else
/// `default`.
fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Profiling driver (not a test): `PROFILE_ARCHI=liae-ud PROFILE_RES=128 PROFILE_BATCH=4`.
#[test]
#[ignore = "profiling driver"]
fn profile_full_size_step() {
    let archi = std::env::var("PROFILE_ARCHI").unwrap_or_else(|_| "liae-ud".into());
    let res = env_usize("PROFILE_RES", 128);
    let b = env_usize("PROFILE_BATCH", 4);
    let opts = SaehdOptions {
        archi: archi.parse().unwrap(),
        resolution: res,
        gan_patch_size: res / 8,
        ..SaehdOptions::default()
    };
    let quick = std::env::var_os("QUICK96").is_some();
    let mut q96 = quick.then(|| dfl_nn::Quick96::new(DeviceSpec::Cpu, 0).unwrap());
    let mut saehd = (!quick).then(|| Saehd::new(opts, DeviceSpec::Cpu, 0).unwrap());
    let m = match (&mut q96, &mut saehd) {
        (Some(q), _) => q.as_saehd_mut(),
        (_, Some(s)) => s,
        _ => unreachable!(),
    };
    let (b, res) = if quick { (4, 96) } else { (b, res) };
    let batch = dfl_nn::synthetic::batch(b, res, 1, &Device::flex());
    for i in 0..env_usize("STEPS", 3) {
        let t = std::time::Instant::now();
        let l = m.train_step(&batch).unwrap();
        eprintln!("step {i}: {:?} {:?}", t.elapsed(), l.timings);
    }
}

/// Profiling driver (not a test): one 3x3 conv layer: forward, input grad, weight grad.
#[test]
#[ignore = "profiling driver"]
fn profile_conv_layer() {
    use burn::tensor::Distribution;
    use burn::tensor::module::{conv_transpose2d, conv2d, conv2d_weight_backward};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    let dev = Device::flex();
    for (b, c, o, hw) in [
        (8, 128, 512, 32),
        (8, 256, 256, 32),
        (8, 64, 64, 128),
        (8, 512, 2048, 8),
        (8, 128, 12, 64),
    ] {
        let x: Tensor<4> = Tensor::random([b, c, hw, hw], Distribution::Default, &dev);
        let w: Tensor<4> = Tensor::random([o, c, 3, 3], Distribution::Default, &dev);
        let gy: Tensor<4> = Tensor::random([b, o, hw, hw], Distribution::Default, &dev);
        let opt = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let time = |f: &dyn Fn() -> f32| {
            f();
            (0..3)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .fold(f64::MAX, f64::min)
        };
        let fwd = time(&|| {
            conv2d(x.clone(), w.clone(), None, opt.clone())
                .slice([0..1, 0..1, 0..1, 0..1])
                .into_scalar()
        });
        let xg = time(&|| {
            conv_transpose2d(
                gy.clone(),
                w.clone(),
                None,
                ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1),
            )
            .slice([0..1, 0..1, 0..1, 0..1])
            .into_scalar()
        });
        let wg = time(&|| {
            conv2d_weight_backward(x.clone(), w.clone(), gy.clone(), opt.clone())
                .slice([0..1, 0..1, 0..1, 0..1])
                .into_scalar()
        });
        let gf = 2.0 * (b * o * hw * hw * c * 9) as f64 / 1e9;
        eprintln!(
            "conv b{b} {c}->{o} {hw}x{hw} ({gf:.1} GFLOP): fwd {fwd:.0} ms, x-grad {xg:.0} ms, w-grad {wg:.0} ms"
        );
    }
}

/// Merge-time prediction in a kernel cache: the model's fixed weights are transformed once
/// (the second call adds no entry: `valid()` keeps the weights' buffers, the cache's key),
/// and the outputs equal the uncached prediction's within Winograd F(4x4)'s rounding.
#[test]
fn cached_prediction_reuses_kernels() {
    use dfl_nn::hostconv::KernelCache;
    use std::sync::Arc;
    let m = Quick96::new(DeviceSpec::Cpu, 1).unwrap();
    let x = dfl_nn::synthetic::batch(1, 96, 4, &Device::flex()).target_dst;
    let plain = m.predict(x.clone(), LearnedMasks::ALL).unwrap();
    let cache = Arc::new(KernelCache::default());
    let first = cache.scope(|| m.predict(x.clone(), LearnedMasks::ALL).unwrap());
    let entries = cache.len();
    assert!(entries >= 10, "{entries} kernels cached");
    let second = cache.scope(|| m.predict(x, LearnedMasks::ALL).unwrap());
    assert_eq!(cache.len(), entries);
    for (a, b, c) in [
        (plain.0, first.0, second.0),
        (plain.1.unwrap(), first.1.unwrap(), second.1.unwrap()),
        (plain.2.unwrap(), first.2.unwrap(), second.2.unwrap()),
    ] {
        let (a, b, c) = (values(a), values(b), values(c));
        assert_eq!(b, c, "the cached kernels give the same result every call");
        assert!(
            max_diff(&a, &b) < 1e-3,
            "cached vs plain: {}",
            max_diff(&a, &b)
        );
    }
}

/// Profiling probe (ignored): Quick96 (SAEHD at DFL's defaults with `SAEHD` set) merge-time
/// prediction in a kernel cache, `PER` faces per call (4) on each of the pool's threads,
/// `ROUNDS` times (10), for `perf record`.
#[test]
#[ignore]
fn profile_quick96_predict() {
    use dfl_nn::hostconv::KernelCache;
    use rayon::prelude::*;
    use std::sync::Arc;
    let saehd = std::env::var("SAEHD").is_ok();
    let (full, quick);
    let m: &Saehd = if saehd {
        full = Saehd::new(SaehdOptions::default(), DeviceSpec::Cpu, 0).unwrap();
        &full
    } else {
        quick = Quick96::new(DeviceSpec::Cpu, 0).unwrap();
        quick.as_saehd()
    };
    let res = m.options().resolution;
    let dev = Device::flex();
    let cache = Arc::new(KernelCache::default());
    let per = env_usize("PER", 4);
    let rounds = env_usize("ROUNDS", 10);
    let run = || {
        (0..rayon::current_num_threads())
            .into_par_iter()
            .for_each(|_| {
                let x = Tensor::<4>::zeros([per, 3, res, res], &dev) + 0.5;
                cache.scope(|| m.predict(x, LearnedMasks::ALL).unwrap());
            })
    };
    run();
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        run();
    }
    eprintln!("kernel cache: {} entries", cache.len());
    let faces = rounds * per * rayon::current_num_threads();
    eprintln!("{:.1} faces/s", faces as f64 / t.elapsed().as_secs_f64());
}
