//! GELU (tanh approximation, GPT-2's "gelu_new") as one fused CPU kernel with its own backward.
//!
//! candle's `gelu` is correct but its backward builds the derivative from about fourteen
//! separate tensor operations (including two `powf`), each a full pass over memory; here forward
//! and backward are each one parallel pass. `candle_core::Tensor::gelu` is the reference path
//! (see the parity test).
//!
//! gelu(x)  = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
//! gelu'(x) = 0.5·(1 + tanh(u)) + 0.5·x·(1 − tanh²(u))·√(2/π)·(1 + 3·0.044715·x²)

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use crate::kernel::{self, contiguous_f32};
use rayon::prelude::*;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const COEF: f32 = 0.044_715;
const CHUNK: usize = 16 * 1024;

#[inline(always)]
fn tanh_fast(u: f32) -> f32 {
    // tanh(u) = 1 − 2/(e^{2u} + 1), branch-free (the exponential saturates), so it vectorises.
    1.0 - 2.0 / (kernel::exp(2.0 * u) + 1.0)
}

#[inline(always)]
fn gelu_value(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh_fast(SQRT_2_OVER_PI * (x + COEF * x * x * x)))
}

#[inline(always)]
fn gelu_slope(x: f32) -> f32 {
    let x2 = x * x;
    let t = tanh_fast(SQRT_2_OVER_PI * (x + COEF * x2 * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * COEF * x2)
}

/// ys = gelu(xs), one parallel pass; every element of `ys` is written.
pub(crate) fn gelu_into(xs: &[f32], ys: &mut [f32]) {
    ys.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(y, x)| {
        kernel::vectorized(|| y.iter_mut().zip(x).for_each(|(y, &x)| *y = gelu_value(x)))
    });
}

/// g ← g · gelu'(xs), in place: the gradient through GELU.
pub(crate) fn gelu_backward_in_place(xs: &[f32], g: &mut [f32]) {
    g.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(g, x)| {
        kernel::vectorized(|| g.iter_mut().zip(x).for_each(|(g, &x)| *g *= gelu_slope(x)))
    });
}

/// out = g · gelu'(xs): the gradient through GELU into a separate buffer (written whole).
fn gelu_backward_into(xs: &[f32], g: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK).zip(g.par_chunks(CHUNK))).for_each(|(o, (x, g))| {
        kernel::vectorized(|| o.iter_mut().zip(x.iter().zip(g)).for_each(|(o, (&x, &g))| *o = g * gelu_slope(x)))
    });
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "jielong-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(s, l, "gelu")?;
        // Element-wise: every output written.
        let mut ys = kernel::uninit_f32(xs.len());
        gelu_into(xs, &mut ys);
        Ok((CpuStorage::F32(ys), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluGrad)?))
    }
}

/// (x, dy) → dy · gelu'(x)
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "jielong-gelu-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(s1, l1, "gelu backward")?;
        let gs = contiguous_f32(s2, l2, "gelu backward")?;
        if gs.len() != xs.len() {
            candle_core::bail!("gelu backward: gradient has {} values, input {}", gs.len(), xs.len());
        }
        let mut out = kernel::uninit_f32(xs.len());
        gelu_backward_into(xs, gs, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Fused GELU (tanh approximation) with backward, for f32 tensors; other dtypes use candle's.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if !crate::fused_for(xs) {
        return xs.gelu();
    }
    xs.contiguous()?.apply_op1(Gelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn gelu_fused_matches_reference_values_and_grads() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f32, 3.0, (7, 301), &dev).unwrap())).unwrap();
        let w = Tensor::randn(0f32, 1.0, (7, 301), &dev).unwrap();
        let fused = gelu(x.as_tensor()).unwrap();
        let reference = x.as_tensor().gelu().unwrap();
        let d: f32 = (&fused - &reference).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
        assert!(d < 1e-5, "values differ by {d}");
        let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (g1, g2) = (g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap());
        let d: f32 = (g1 - g2).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
        assert!(d < 1e-4, "gradients differ by {d}");
    }
}
