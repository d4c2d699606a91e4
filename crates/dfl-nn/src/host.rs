//! Moving images between host buffers and tensors (what a trainer or merger needs around
//! [`crate::Saehd`]).

use crate::error::{NnError, Result};
use burn::tensor::{Device, Tensor, TensorData};

/// An NCHW `f32` tensor on `device` from row-major host values; the length must match.
pub fn tensor4(values: Vec<f32>, shape: [usize; 4], device: &Device) -> Result<Tensor<4>> {
    let n: usize = shape.iter().product();
    if values.len() != n {
        return Err(NnError::Batch(format!(
            "{} values cannot fill a {shape:?} tensor ({n} needed)",
            values.len()
        )));
    }
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

/// Row-major `f32` host copy of a tensor (from any device, with or without autodiff).
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    crate::store::to_host(t).data
}

/// `n` zeros written one by one, for buffers that are read before they are written
/// (convolution gradients added into, optimizer state). `vec![0.0; n]` takes fresh pages that
/// reads map to the shared zero page, so the first write to each page is a copy fault with a
/// TLB flush on every core (IPIs): 14 % of a SAEHD step's `perf` samples before this.
pub(crate) fn zeroed(n: usize) -> Vec<f32> {
    // black_box: the optimiser would otherwise fold the allocation and the fill into calloc.
    let mut v: Vec<f32> = std::hint::black_box(Vec::with_capacity(n));
    v.resize(n, 0.0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_length_check() {
        let dev = Device::flex();
        let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let t = tensor4(v.clone(), [1, 2, 3, 4], &dev).unwrap();
        assert_eq!(values(t), v);
        let e = tensor4(v, [1, 2, 3, 5], &dev).unwrap_err().to_string();
        assert!(e.contains("30 needed"), "{e}");
    }
}
