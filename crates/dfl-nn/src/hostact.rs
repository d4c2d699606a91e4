//! LeakyReLU on the CPU device as one pass forward and one pass backward.
//!
//! burn builds LeakyReLU from a comparison, a scaled copy and a masked select, and under
//! autodiff differentiates each of them: a bool mask, two full copies and a select forward,
//! two masked fills, a scale and a sum backward. Every DeepFakeArchi layer is followed by
//! one, on maps as large as the convolutions', so those memory passes were ~5 % of a Quick96
//! step (`mask_where` alone). Here the forward pass writes the output once and the backward
//! pass reads the output and its gradient once; other devices keep burn's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// Values per parallel task of the element-wise passes.
const CHUNK: usize = 1 << 16;

/// `x` where `x >= 0`, else `alpha * x` (burn's `leaky_relu`), fused on the CPU device for a
/// positive slope.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, alpha: f64) -> Tensor<D> {
    match host_leaky_relu(&x, alpha) {
        Some(y) => y,
        None => burn::tensor::activation::leaky_relu(x, alpha),
    }
}

fn host_leaky_relu<const D: usize>(x: &Tensor<D>, alpha: f64) -> Option<Tensor<D>> {
    let device = x.device();
    // A positive slope keeps the sign, so the output alone tells the backward pass the slope.
    if alpha.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        || device.clone().inner() != Device::flex()
        || x.dtype() != DType::F32
    {
        return None;
    }
    let (dims, a) = (x.dims(), alpha as f32);
    if device.is_autodiff() {
        let xa = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let y = match LeakyBackward
            .prepare::<NoCheckpointing>([xa.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = forward(&xa.into_primitive(), dims, a)?;
                prep.finish((y.clone(), a), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&xa.into_primitive(), dims, a)?),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(y));
    }
    let xf = x.clone().try_into_primitive::<Flex>().ok()?;
    Some(Tensor::from_primitive::<Flex>(forward(&xf, dims, a)?))
}

/// The forward pass into a new tensor of shape `dims`.
fn forward<const D: usize>(x: &FlexTensor, dims: [usize; D], a: f32) -> Option<FlexTensor> {
    let x = x.to_contiguous();
    let xs = x.as_slice::<f32>()?;
    let mut y = vec![0.0f32; xs.len()];
    y.par_chunks_mut(CHUNK)
        .zip(xs.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = if x < 0.0 { x * a } else { x };
            }
        });
    Some(FlexTensor::from_data(TensorData::new(y, dims)))
}

/// The gradient `dy` times the slope at each output `y`: `a` where `y`'s sign bit is set.
/// Where `alpha * x` underflows to `-0.0` the sign still gives `a`, as `x < 0` does; only an
/// input of exactly `-0.0` (whose derivative is a convention) takes `a` where burn takes 1.
fn backward(y: &[f32], dy: &[f32], a: f32) -> Vec<f32> {
    let mut dx = vec![0.0f32; dy.len()];
    dx.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (y, dy))| {
            for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                *dx = if y.is_sign_negative() { dy * a } else { dy };
            }
        });
    dx
}

/// The autodiff node of [`leaky_relu`] on the CPU device.
#[derive(Debug)]
struct LeakyBackward;

impl Backward<Flex, 1> for LeakyBackward {
    /// The output (held by the next layer anyway) and the slope.
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Some(node) = node else { return };
        let (y, a) = ops.state;
        let y = y.to_contiguous();
        // The forward pass wrote `y` with the shape of `dy`, both f32 and contiguous.
        let (Some(yv), Some(dyv)) = (y.as_slice::<f32>(), dy.as_slice::<f32>()) else {
            unreachable!("leaky_relu backward: the output or its gradient is not f32")
        };
        let dx = backward(yv, dyv, a);
        let shape = dy.layout().shape().clone();
        grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dx, shape)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forward values and input gradients equal burn's, with and without autodiff, on values
    /// of both signs, zeros and a non-contiguous (transposed) input.
    #[test]
    fn matches_burn() {
        let dev = Device::flex().autodiff();
        let v: Vec<f32> = (0..3 * 5 * 7 - 3)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .chain([0.0, 1e-30, -1e-30])
            .collect();
        for transpose in [false, true] {
            let base = Tensor::<3>::from_data(TensorData::new(v.clone(), [3, 5, 7]), &dev);
            let x = if transpose {
                base.swap_dims(1, 2)
            } else {
                base
            }
            .require_grad();
            let r = Tensor::<3>::random(x.dims(), burn::tensor::Distribution::Default, &dev);
            let ours = leaky_relu(x.clone(), 0.2);
            let theirs = burn::tensor::activation::leaky_relu(x.clone(), 0.2);
            let y_ours = crate::host::values(ours.clone());
            assert_eq!(y_ours, crate::host::values(theirs.clone()), "forward");
            let g_ours = x.grad(&(ours * r.clone()).sum().backward());
            let g_theirs = x.grad(&(theirs * r).sum().backward());
            let (Some(a), Some(b)) = (g_ours, g_theirs) else {
                panic!("gradients missing")
            };
            assert_eq!(crate::host::values(a), crate::host::values(b), "gradient");
            let plain =
                Tensor::<3>::from_data(TensorData::new(v.clone(), [3, 5, 7]), &Device::flex());
            assert_eq!(
                crate::host::values(leaky_relu(plain.clone(), 0.1)),
                crate::host::values(burn::tensor::activation::leaky_relu(plain, 0.1)),
                "inference"
            );
        }
    }
}
