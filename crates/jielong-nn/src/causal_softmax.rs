//! Scaled, causally masked softmax over attention scores as one fused CPU kernel with its own
//! backward, replacing scale → add mask → softmax (about ten passes over the (b, h, t, s) scores
//! forward and backward, and a (t, s) mask tensor).
//!
//! Row i of a (t, s) score block may see keys 0..=offset + i, with offset = s − t (cached keys
//! first); the rest of the row is written as exact zeros and never exponentiated.
//!
//! p = softmax(scale · x) over the visible part;  ∂L/∂x = scale · p ⊙ (dp − Σ_j dp_j p_j)

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use crate::kernel::contiguous_f32;
use rayon::prelude::*;

fn block_dims(l: &Layout) -> Result<(usize, usize)> {
    let dims = l.shape().dims();
    if dims.len() < 2 {
        candle_core::bail!("causal softmax: scores need at least 2 dimensions");
    }
    let (t, s) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    if s < t {
        candle_core::bail!("causal softmax: {t} queries but only {s} keys");
    }
    Ok((t, s))
}

struct CausalSoftmax {
    scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "jielong-causal-softmax"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(st, l, "causal softmax input")?;
        let (t, s) = block_dims(l)?;
        let offset = s - t;
        let mut ys = vec![0f32; xs.len()];
        ys.par_chunks_mut(t * s).zip(xs.par_chunks(t * s)).for_each(|(yb, xb)| {
            for i in 0..t {
                let n = offset + i + 1;
                let (x, y) = (&xb[i * s..i * s + n], &mut yb[i * s..i * s + n]);
                let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) * self.scale;
                let mut sum = 0f32;
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = (x * self.scale - m).exp();
                    sum += *y;
                }
                let inv = 1.0 / sum;
                y.iter_mut().for_each(|y| *y *= inv);
            }
        });
        Ok((CpuStorage::F32(ys), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad_res.contiguous()?, &CausalSoftmaxGrad { scale: self.scale })?))
    }
}

/// (p, dp) → scale · p ⊙ (dp − Σ dp·p), row by row over the visible part.
struct CausalSoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for CausalSoftmaxGrad {
    fn name(&self) -> &'static str {
        "jielong-causal-softmax-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (ps, gs) = (contiguous_f32(s1, l1, "causal softmax probabilities")?, contiguous_f32(s2, l2, "causal softmax gradient")?);
        let (t, s) = block_dims(l1)?;
        let offset = s - t;
        let mut out = vec![0f32; ps.len()];
        out.par_chunks_mut(t * s).zip(ps.par_chunks(t * s).zip(gs.par_chunks(t * s))).for_each(|(ob, (pb, gb))| {
            for i in 0..t {
                let r = i * s..i * s + offset + i + 1;
                let (p, g, o) = (&pb[r.clone()], &gb[r.clone()], &mut ob[r]);
                let dot: f32 = p.iter().zip(g).map(|(p, g)| p * g).sum();
                for ((o, &p), &g) in o.iter_mut().zip(p).zip(g) {
                    *o = self.scale * p * (g - dot);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// softmax(scale · scores) with row i of each (t, s) block limited to keys 0..=s − t + i.
pub fn causal_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
    scores.contiguous()?.apply_op1(CausalSoftmax { scale: scale as f32 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::causal_mask_after;
    use candle_core::{Device, Var, D};

    #[test]
    fn causal_softmax_matches_scale_mask_softmax_values_and_gradients() {
        let dev = Device::Cpu;
        for (t, s) in [(5, 5), (16, 16), (3, 7), (1, 9)] {
            let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, (2, 3, t, s), &dev).unwrap())).unwrap();
            let scale = 0.125;
            let r = Tensor::randn(0f32, 1.0, (2, 3, t, s), &dev).unwrap();
            let fused = causal_softmax(x.as_tensor(), scale).unwrap();
            let mask = causal_mask_after(t, s - t, &dev).unwrap();
            let reference = candle_nn::ops::softmax(&(x.as_tensor() * scale).unwrap().broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
            let d: f32 = (&fused - &reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(d < 1e-6, "values differ by {d}");
            let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
            let gb = (reference * &r).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
            let d: f32 = (ga - gb).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(d < 1e-6, "gradients differ by {d} ({t}×{s})");
        }
    }
}
