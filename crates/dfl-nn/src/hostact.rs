//! LeakyReLU on the CPU device as one pass forward and one pass backward.
//!
//! burn builds LeakyReLU from a comparison, a scaled copy and a masked select, and under
//! autodiff differentiates each of them: a bool mask, two full copies and a select forward,
//! two masked fills, a scale and a sum backward. Every DeepFakeArchi layer is followed by
//! one, on maps as large as the convolutions', so those memory passes were ~5 % of a Quick96
//! step (`mask_where` alone). Here the forward pass writes the output and a byte per value
//! saying where the slope applies (what burn keeps too: the output itself may be copied away
//! by a following `depth_to_space`, so keeping it would add 4 bytes per value), and the
//! backward pass reads that byte and the gradient once. Inference and other devices keep
//! burn's (burn-flex's inference LeakyReLU is one pass already).

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

/// `x` where `x >= 0`, else `alpha * x` (burn's `leaky_relu`), fused under autodiff on the CPU
/// device for a positive slope.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, alpha: f64) -> Tensor<D> {
    match host_leaky_relu(&x, alpha) {
        Some(y) => y,
        None => burn::tensor::activation::leaky_relu(x, alpha),
    }
}

fn host_leaky_relu<const D: usize>(x: &Tensor<D>, alpha: f64) -> Option<Tensor<D>> {
    let device = x.device();
    // Without autodiff burn-flex's own LeakyReLU is already one pass (in place when it can).
    if alpha.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        || !device.is_autodiff()
        || device.clone().inner() != Device::flex()
        || x.dtype() != DType::F32
    {
        return None;
    }
    let (dims, a) = (x.dims(), alpha as f32);
    let xa = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    let y = match LeakyBackward
        .prepare::<NoCheckpointing>([xa.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, slope) = forward(&xa.into_primitive(), dims, a, true)?;
            prep.finish((slope, a), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(&xa.into_primitive(), dims, a, false)?.0),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(y))
}

/// The forward pass into a new tensor of shape `dims`, and with `track` a byte per value, 1
/// where the input is negative (the backward pass's slope).
fn forward<const D: usize>(
    x: &FlexTensor,
    dims: [usize; D],
    a: f32,
    track: bool,
) -> Option<(FlexTensor, Vec<u8>)> {
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
    let mut slope = Vec::new();
    if track {
        slope.resize(xs.len(), 0u8);
        slope
            .par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(s, x)| {
                for (s, &x) in s.iter_mut().zip(x) {
                    *s = u8::from(x < 0.0);
                }
            });
    }
    Some((FlexTensor::from_data(TensorData::new(y, dims)), slope))
}

/// The gradient `dy` times the slope: `a` where `negative` is 1, else 1.
fn backward(negative: &[u8], dy: &[f32], a: f32) -> Vec<f32> {
    let mut dx = vec![0.0f32; dy.len()];
    dx.par_chunks_mut(CHUNK)
        .zip(negative.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (n, dy))| {
            for ((dx, &n), &dy) in dx.iter_mut().zip(n).zip(dy) {
                *dx = if n != 0 { dy * a } else { dy };
            }
        });
    dx
}

/// The autodiff node of [`leaky_relu`] on the CPU device.
#[derive(Debug)]
struct LeakyBackward;

impl Backward<Flex, 1> for LeakyBackward {
    /// Where the input was negative (a byte per value) and the slope.
    type State = (Vec<u8>, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Some(node) = node else { return };
        let (negative, a) = ops.state;
        // The forward pass recorded a byte per value of the output whose gradient this is.
        let Some(dyv) = dy.as_slice::<f32>().filter(|d| d.len() == negative.len()) else {
            unreachable!("leaky_relu backward: the gradient does not match the output")
        };
        let dx = backward(&negative, dyv, a);
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
