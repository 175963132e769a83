//! The SwiGLU gate of Llama's MLP: y = silu(gate) · up, with silu(x) = x·σ(x), read from one
//! packed (…, 2·f) tensor [gate | up] (the two projections run as one matmul), as one fused
//! CPU kernel with its own backward:
//!
//! d gate = dy · up · σ(gate)·(1 + gate·(1 − σ(gate))),   d up = dy · silu(gate)
//!
//! `swiglu_reference` composes candle ops (the parity test checks one against the other).

use crate::kernel::{self, contiguous_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

const ROWS_PER_TASK: usize = 32;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + kernel::exp(-x))
}

/// `gate_up` (…, 2f) → silu(gate) · up (…, f).
pub fn swiglu(gate_up: &Tensor) -> Result<Tensor> {
    if !gate_up.dim(D::Minus1)?.is_multiple_of(2) {
        candle_core::bail!("swiglu: the last dimension must hold gate and up, got {}", gate_up.dim(D::Minus1)?);
    }
    if !crate::fused_for(gate_up) {
        return swiglu_reference(gate_up);
    }
    gate_up.contiguous()?.apply_op1(SwiGlu)
}

/// The composed path.
pub fn swiglu_reference(gate_up: &Tensor) -> Result<Tensor> {
    let f = gate_up.dim(D::Minus1)? / 2;
    let gate = gate_up.narrow(D::Minus1, 0, f)?;
    let up = gate_up.narrow(D::Minus1, f, f)?;
    candle_nn::ops::silu(&gate)?.mul(&up)
}

/// ys (rows, f) = silu(gate) · up from `xs` (rows, 2f) = [gate | up]; every element written.
pub(crate) fn swiglu_into(xs: &[f32], f: usize, ys: &mut [f32]) {
    let f2 = 2 * f;
    ys.par_chunks_mut(f * ROWS_PER_TASK).zip(xs.par_chunks(f2 * ROWS_PER_TASK)).for_each(|(yb, xb)| {
        kernel::vectorized(|| {
            for (y, x) in yb.chunks_mut(f).zip(xb.chunks(f2)) {
                let (gate, up) = x.split_at(f);
                for j in 0..f {
                    y[j] = gate[j] * sigmoid(gate[j]) * up[j];
                }
            }
        })
    });
}

/// dx (rows, 2f) = [d gate | d up] for the upstream gradient `g` (rows, f); every element written.
pub(crate) fn swiglu_backward_into(x: &[f32], g: &[f32], f: usize, dx: &mut [f32]) {
    let f2 = 2 * f;
    dx.par_chunks_mut(f2 * ROWS_PER_TASK).zip(x.par_chunks(f2 * ROWS_PER_TASK).zip(g.par_chunks(f * ROWS_PER_TASK))).for_each(|(db, (xb, gb))| {
        kernel::vectorized(|| {
            for ((d, x), g) in db.chunks_mut(f2).zip(xb.chunks(f2)).zip(gb.chunks(f)) {
                let (gate, up) = x.split_at(f);
                let (d_gate, d_up) = d.split_at_mut(f);
                for j in 0..f {
                    let s = sigmoid(gate[j]);
                    d_gate[j] = g[j] * up[j] * s * (1.0 + gate[j] * (1.0 - s));
                    d_up[j] = g[j] * gate[j] * s;
                }
            }
        })
    });
}

struct SwiGlu;

impl CustomOp1 for SwiGlu {
    fn name(&self) -> &'static str {
        "jielong-swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(s, l, "swiglu")?;
        let mut dims = l.shape().dims().to_vec();
        let f2 = *dims.last().expect("rank ≥ 1");
        let f = f2 / 2;
        let mut ys = kernel::uninit_f32(xs.len() / 2);
        swiglu_into(xs, f, &mut ys);
        *dims.last_mut().expect("rank ≥ 1") = f;
        Ok((CpuStorage::F32(ys), Shape::from(dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let f2 = arg.dim(D::Minus1)?;
        let f = f2 / 2;
        let dx = kernel::with_f32([(arg, "swiglu input"), (&dy, "swiglu gradient")], |[x, g]| {
            let mut dx = kernel::uninit_f32(x.len());
            swiglu_backward_into(x, g, f, &mut dx);
            Ok(dx)
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_abs, max_diff};
    use candle_core::{Device, Var};

    #[test]
    fn swiglu_fused_matches_reference_values_and_gradients() {
        let dev = Device::Cpu;
        for (rows, f) in [(2, 3), (100, 64), (33, 17)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 3.0, (rows, 2 * f), &dev).unwrap()).unwrap();
            let r = Tensor::randn(0f32, 1.0, (rows, f), &dev).unwrap();
            let fused = swiglu(x.as_tensor()).unwrap();
            let refr = swiglu_reference(x.as_tensor()).unwrap();
            assert!(max_diff(&fused, &refr) < 1e-5 * max_abs(&refr).max(1.0));
            let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, e) = (ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap());
            let d = max_diff(a, e);
            assert!(d <= 1e-5 * max_abs(e).max(1.0), "gradients differ by {d}");
        }
    }
}
