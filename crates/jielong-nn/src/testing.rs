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

/// Layer norm over the last dimension from candle's composed ops (differentiable): the
/// reference for the fused ops that contain one.
pub(crate) fn layer_norm_ref(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
    use candle_core::D;
    let mean = x.mean_keepdim(D::Minus1).unwrap();
    let xc = x.broadcast_sub(&mean).unwrap();
    let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    xc.broadcast_div(&(var + eps).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
}
