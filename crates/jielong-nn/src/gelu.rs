//! GELU (tanh approximation, GPT-2's "gelu_new") as one fused CPU kernel with its own backward,
//! and the exact GELU of BERT (`gelu_erf`, x·Φ(x)) the same way.
//!
//! candle's `gelu` is correct but its backward builds the derivative from about fourteen
//! separate tensor operations (including two `powf`), each a full pass over memory; here forward
//! and backward are each one parallel pass. `candle_core::Tensor::gelu` is the reference path
//! (see the parity test).
//!
//! gelu(x)  = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
//! gelu'(x) = 0.5·(1 + tanh(u)) + 0.5·x·(1 − tanh²(u))·√(2/π)·(1 + 3·0.044715·x²)
//!
//! gelu_erf(x)  = 0.5·x·(1 + erf(x/√2))
//! gelu_erf'(x) = 0.5·(1 + erf(x/√2)) + x·e^(−x²/2)/√(2π)
//!
//! candle's `gelu_erf` is an element-wise map on one thread; BERT's feed-forward layer applies it
//! to (tokens × 4·n_embd) values per layer, which at batch 32 × 128 tokens of MiniLM cost as much
//! as a fifth of the forward pass.

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

/// erf(x) without branches or calls, so that loops vectorise: Abramowitz & Stegun 7.1.26
/// (absolute error below 1.5e−7, about 2 ulp of 1) on |x|, the sign put back.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * kernel::exp(-a * a)).copysign(x)
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π)
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn gelu_erf_value(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_erf_slope(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * kernel::exp(-0.5 * x * x)
}

/// Which GELU a kernel computes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The tanh approximation (GPT-2).
    Tanh,
    /// The exact x·Φ(x) (BERT).
    Erf,
}

impl Kind {
    fn map(self, xs: &[f32], ys: &mut [f32]) {
        match self {
            Kind::Tanh => map_into(xs, ys, gelu_value),
            Kind::Erf => map_into(xs, ys, gelu_erf_value),
        }
    }
    fn backward(self, xs: &[f32], g: &[f32], out: &mut [f32]) {
        match self {
            Kind::Tanh => backward_into(xs, g, out, gelu_slope),
            Kind::Erf => backward_into(xs, g, out, gelu_erf_slope),
        }
    }
}

#[inline(always)]
fn map_into(xs: &[f32], ys: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Copy) {
    ys.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(y, x)| kernel::vectorized(|| y.iter_mut().zip(x).for_each(|(y, &x)| *y = f(x))));
}

#[inline(always)]
fn backward_into(xs: &[f32], g: &[f32], out: &mut [f32], slope: impl Fn(f32) -> f32 + Sync + Copy) {
    out.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK).zip(g.par_chunks(CHUNK))).for_each(|(o, (x, g))| {
        kernel::vectorized(|| o.iter_mut().zip(x.iter().zip(g)).for_each(|(o, (&x, &g))| *o = g * slope(x)))
    });
}

/// ys = gelu(xs), one parallel pass; every element of `ys` is written.
pub(crate) fn gelu_into(xs: &[f32], ys: &mut [f32]) {
    Kind::Tanh.map(xs, ys)
}

/// g ← g · gelu'(xs), in place: the gradient through GELU.
pub(crate) fn gelu_backward_in_place(xs: &[f32], g: &mut [f32]) {
    g.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(g, x)| {
        kernel::vectorized(|| g.iter_mut().zip(x).for_each(|(g, &x)| *g *= gelu_slope(x)))
    });
}

/// ys = gelu(xs), the exact (`erf`) or the tanh form, one parallel pass, every element written.
pub(crate) fn gelu_kind_into(erf: bool, xs: &[f32], ys: &mut [f32]) {
    if erf { Kind::Erf } else { Kind::Tanh }.map(xs, ys)
}

/// g ← g · gelu'(xs) for the exact (`erf`) or the tanh form, in place.
pub(crate) fn gelu_kind_backward_in_place(erf: bool, xs: &[f32], g: &mut [f32]) {
    if !erf {
        return gelu_backward_in_place(xs, g);
    }
    g.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(g, x)| {
        kernel::vectorized(|| g.iter_mut().zip(x).for_each(|(g, &x)| *g *= gelu_erf_slope(x)))
    });
}

struct Gelu(Kind);

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Tanh => "jielong-gelu",
            Kind::Erf => "jielong-gelu-erf",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(s, l, "gelu")?;
        // Element-wise: every output written.
        let mut ys = kernel::uninit_f32(xs.len());
        self.0.map(xs, &mut ys);
        Ok((CpuStorage::F32(ys), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluGrad(self.0))?))
    }
}

/// (x, dy) → dy · gelu'(x)
struct GeluGrad(Kind);

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
        self.0.backward(xs, gs, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Fused GELU (tanh approximation) with backward, for f32 tensors; other dtypes use candle's.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if !crate::fused_for(xs) {
        return xs.gelu();
    }
    xs.contiguous()?.apply_op1(Gelu(Kind::Tanh))
}

/// Fused exact GELU, x·Φ(x) (BERT's `gelu`, candle's `gelu_erf`), with backward, for f32
/// tensors; other dtypes use candle's.
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    if !crate::fused_for(xs) {
        return xs.gelu_erf();
    }
    xs.contiguous()?.apply_op1(Gelu(Kind::Erf))
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

    #[test]
    fn gelu_erf_fused_matches_candles_exact_gelu_and_its_grads() {
        let dev = Device::Cpu;
        // Wide values (BERT's pre-activations reach ±10) and the region around 0 where erf bends.
        let x = Tensor::randn(0f32, 3.0, (5, 411), &dev).unwrap();
        let x = Var::from_tensor(&Tensor::cat(&[&x, &Tensor::arange_step(-6f32, 6.0, 0.01, &dev).unwrap().reshape((1, 1200)).unwrap().narrow(1, 0, 411).unwrap()], 0).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (6, 411), &dev).unwrap();
        let fused = gelu_erf(x.as_tensor()).unwrap();
        let reference = x.as_tensor().gelu_erf().unwrap();
        let d: f32 = (&fused - &reference).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
        assert!(d < 2e-6, "values differ by {d}");
        let tanh = gelu(x.as_tensor()).unwrap();
        let apart: f32 = (&fused - &tanh).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
        assert!(apart > 1e-4, "the exact GELU should differ from the tanh approximation somewhere ({apart})");
        let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (g1, g2) = (g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap());
        let d: f32 = (g1 - g2).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
        assert!(d < 1e-5, "gradients differ by {d}");
    }
}
