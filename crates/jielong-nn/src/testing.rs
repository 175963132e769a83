//! Helpers for the parity tests: how far apart two tensors are, and how large one is.

use candle_core::Tensor;

/// max |a − b| over all elements.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// max |t| over all elements.
pub(crate) fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}
