//! The few layer kinds the face-api nets use, on burn: convolutions with TF "same" padding
//! (asymmetric at stride 2: the extra row/column goes at the bottom/right), depthwise
//! convolutions with batch norm folded in, and separable convolutions.

use crate::tfjs::{TfjsError, WeightMap};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

/// TF "same" padding of one spatial axis: output `ceil(n / stride)`, total padding
/// `max(0, (out - 1) * stride + k - n)`, the smaller half before, the larger after.
pub fn same_pad(n: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out.saturating_sub(1)) * stride + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// A 2-D convolution in burn's layout (`[out, in / groups, kh, kw]`) with TF "same" padding.
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    k: usize,
    stride: usize,
    groups: usize,
}

impl Conv {
    /// A regular convolution from TF's `[kh, kw, in, out]` filters and an optional bias.
    pub fn dense(
        filters: &[f32],
        shape: [usize; 4],
        bias: Option<&[f32]>,
        stride: usize,
        device: &Device,
    ) -> Self {
        let [kh, kw, cin, cout] = shape;
        let mut w = vec![0f32; filters.len()];
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..cin {
                    for o in 0..cout {
                        w[((o * cin + i) * kh + y) * kw + x] =
                            filters[((y * kw + x) * cin + i) * cout + o];
                    }
                }
            }
        }
        Self {
            weight: Tensor::from_data(TensorData::new(w, [cout, cin, kh, kw]), device),
            bias: bias.map(|b| Tensor::from_data(TensorData::new(b.to_vec(), [b.len()]), device)),
            k: kh,
            stride,
            groups: 1,
        }
    }

    /// A depthwise convolution from TF's `[kh, kw, c, 1]` filters and a per-channel bias (a
    /// folded batch norm arrives with its scale already in the filters, see [`crate::cpu`]).
    pub fn depthwise(
        filters: &[f32],
        shape: [usize; 4],
        bias: &[f32],
        stride: usize,
        device: &Device,
    ) -> Self {
        let [kh, kw, c, _] = shape;
        let mut w = vec![0f32; filters.len()];
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..c {
                    w[(i * kh + y) * kw + x] = filters[(y * kw + x) * c + i];
                }
            }
        }
        Self {
            weight: Tensor::from_data(TensorData::new(w, [c, 1, kh, kw]), device),
            bias: Some(Tensor::from_data(
                TensorData::new(bias.to_vec(), [bias.len()]),
                device,
            )),
            k: kh,
            stride,
            groups: c,
        }
    }

    /// Applies the convolution to an NCHW tensor.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let opts = ConvOptions::new_with_padding(
            [self.stride, self.stride],
            [
                same_pad(h, self.k, self.stride),
                same_pad(w, self.k, self.stride),
            ],
            [1, 1],
            self.groups,
        );
        conv2d(x, self.weight.clone(), self.bias.clone(), opts)
    }
}

/// Reads a 4-D TF tensor of unknown shape (checked for rank 4).
pub fn get4<'a>(w: &'a WeightMap, name: &str) -> Result<(&'a [f32], [usize; 4]), TfjsError> {
    let shape = w.shape(name).ok_or_else(|| TfjsError::Missing {
        model: w.model.clone(),
        name: name.into(),
        what: "is missing".into(),
    })?;
    let s: [usize; 4] = shape
        .try_into()
        .ok()
        .filter(|s: &[usize; 4]| s.iter().all(|&d| d > 0))
        .ok_or_else(|| TfjsError::Missing {
            model: w.model.clone(),
            name: name.into(),
            what: format!("has shape {shape:?}, expected rank 4 with no empty dimension"),
        })?;
    Ok((w.get(name, &s)?.data.as_slice(), s))
}

/// Reads a 1-D tensor of length `n`.
pub fn get1<'a>(w: &'a WeightMap, name: &str, n: usize) -> Result<&'a [f32], TfjsError> {
    Ok(w.get(name, &[n])?.data.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_is_asymmetric_at_stride_two() {
        assert_eq!(same_pad(512, 3, 2), (0, 1));
        assert_eq!(same_pad(7, 3, 2), (1, 1));
        assert_eq!(same_pad(112, 3, 1), (1, 1));
        assert_eq!(same_pad(16, 1, 1), (0, 0));
        assert_eq!(same_pad(1, 3, 2), (1, 1));
    }

    #[test]
    fn conv_matches_a_hand_computed_tf_same_conv() {
        // 1 channel 4x4 input 0..16, 3x3 all-ones filter, stride 2: TF pads 0 before and 1
        // after, so output (0,0) sums rows 0..3 x cols 0..3.
        let dev = Device::default();
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [1, 1, 4, 4]), &dev);
        let c = Conv::dense(&[1.0; 9], [3, 3, 1, 1], Some(&[0.5]), 2, &dev);
        let y: Vec<f32> = c.forward(x).into_data().try_to_vec().unwrap();
        // (0,0): rows 0..2 x cols 0..2 = 45; (0,1): rows 0..2 x cols 2..3 = 39;
        // (1,0): rows 2..3 x cols 0..2 = 66; (1,1): rows 2..3 x cols 2..3 = 50.
        assert_eq!(y, vec![45.5, 39.5, 66.5, 50.5]);
    }
}
