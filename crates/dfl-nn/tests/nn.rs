//! Integration tests of dfl-nn: training, checkpoints, crash safety, PyTorch parity.

use dfl_nn::archs::AeDims;
use dfl_nn::options::SaehdOptions;
use dfl_nn::{DeviceSpec, Saehd};
use std::time::Instant;

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

#[test]
fn timing_probe() {
    let mut m = Saehd::new(tiny("df", 64), DeviceSpec::Cpu, 1).unwrap();
    let b = dfl_nn::synthetic::batch(8, 64, 3, &burn::tensor::Device::flex());
    for i in 0..5 {
        let t = Instant::now();
        let l = m.train_step(&b).unwrap();
        eprintln!("step {i}: {:?} {:?}", t.elapsed(), l);
    }
}

#[test]
fn timing_parts() {
    use burn::tensor::{Device, Tensor};
    let dev = Device::flex().autodiff();
    let b = dfl_nn::synthetic::batch(8, 64, 3, &dev);
    let t = |name: &str, f: &dyn Fn()| {
        f();
        let s = Instant::now();
        for _ in 0..3 {
            f();
        }
        eprintln!("{name}: {:?}", s.elapsed() / 3);
    };
    let x: Tensor<4> = b.target_src.clone().require_grad();
    t("dssim fwd", &|| {
        let _ = dfl_nn::losses::dssim(x.clone(), b.target_dst.clone(), 5)
            .sum()
            .into_scalar::<f32>();
    });
    t("dssim fwd+bwd", &|| {
        let _ = dfl_nn::losses::dssim(x.clone(), b.target_dst.clone(), 5)
            .sum()
            .backward();
    });
    t("dssim_ref fwd+bwd", &|| {
        let _ = dfl_nn::losses::dssim_reference(x.clone(), b.target_dst.clone(), 5)
            .sum()
            .backward();
    });
    t("blur fwd+bwd", &|| {
        let _ = dfl_nn::losses::gaussian_blur(x.clone(), 2.0)
            .sum()
            .backward();
    });
    let m = Saehd::new(tiny("df", 64), DeviceSpec::Cpu, 1).unwrap();
    let nets = m.nets().unwrap();
    t("enc fwd", &|| {
        let _ = nets.encoder.forward(x.clone()).sum().into_scalar::<f32>();
    });
    t("enc fwd+bwd", &|| {
        let _ = nets.encoder.forward(x.clone()).sum().backward();
    });
    t("predict fwd+bwd", &|| {
        let (a, b, c) = nets.predict(x.clone()).unwrap();
        let _ = (a.sum() + b.sum() + c.sum()).backward();
    });
}

#[test]
fn timing_decoder() {
    use burn::tensor::{Device, Distribution, Tensor};
    let dev = Device::flex().autodiff();
    let t = |name: &str, f: &dyn Fn()| {
        f();
        let s = Instant::now();
        for _ in 0..3 {
            f();
        }
        eprintln!("{name}: {:?}", s.elapsed() / 3);
    };
    let m = Saehd::new(tiny("df", 64), DeviceSpec::Cpu, 1).unwrap();
    let nets = m.nets().unwrap();
    let dec = nets.decoder_src.as_ref().unwrap();
    let z: Tensor<4> = Tensor::random([8, 32, 8, 8], Distribution::Default, &dev).require_grad();
    t("dec fwd", &|| {
        let (a, b) = dec.forward(z.clone());
        let _ = (a.sum() + b.sum()).into_scalar::<f32>();
    });
    t("dec fwd+bwd", &|| {
        let (a, b) = dec.forward(z.clone());
        let _ = (a.sum() + b.sum()).backward();
    });
    t("upscale0 fwd+bwd", &|| {
        let _ = dec.upscale0.forward(z.clone()).sum().backward();
    });
    let y: Tensor<4> = Tensor::random([8, 128, 16, 16], Distribution::Default, &dev).require_grad();
    t("res0 fwd+bwd", &|| {
        let _ = dec.res0.forward(y.clone()).sum().backward();
    });
    t("d2s fwd+bwd", &|| {
        let _ = dfl_nn::layers::depth_to_space(y.clone(), 2)
            .sum()
            .backward();
    });
    t("conv only fwd+bwd", &|| {
        let _ = dec.upscale0.conv1.forward(z.clone()).sum().backward();
    });
    t("lrelu fwd+bwd", &|| {
        let _ = burn::tensor::activation::leaky_relu(y.clone(), 0.1)
            .sum()
            .backward();
    });
}
