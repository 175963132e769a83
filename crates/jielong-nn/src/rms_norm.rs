//! Root-mean-square normalisation over the last dimension (Llama, T5):
//! y = x / sqrt(mean(x²) + eps) · weight, no mean subtracted and no bias, computed in f32 as
//! Hugging Face's `LlamaRMSNorm` does.
//!
//! `forward_reference` composes differentiable tensor ops; `forward` is one fused CPU kernel
//! per direction. Backward, with r = 1/sqrt(mean(x²) + eps), x̂ = x·r and g = dy·w:
//!
//! dx = r · (g − x̂ · mean(g · x̂)),   dw = Σ_rows dy · x̂
//!
//! The row sums of dw are collected per block of rows and added in block order
//! (`kernel::add_in_order`), so the result does not depend on work stealing.

use crate::kernel::{self, contiguous_f32};
use crate::layer_norm::Dx;
use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

const ROWS_PER_TASK: usize = 64;

impl RmsNorm {
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?, eps })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The composed, readable path.
    pub fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let ms = xs.sqr()?.mean_keepdim(D::Minus1)?;
        xs.broadcast_div(&(ms + self.eps)?.sqrt()?)?.broadcast_mul(&self.weight)
    }
}

impl Module for RmsNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !crate::fused_for(xs) {
            return self.forward_reference(xs);
        }
        xs.contiguous()?.apply_op2(&self.weight, RmsNormOp { eps: self.eps as f32 })
    }
}

#[inline(always)]
fn rstd(row: &[f32], eps: f32) -> f32 {
    let ms = kernel::lanes_sum(row.len(), |j| row[j] * row[j]) / row.len() as f32;
    1.0 / (ms + eps).sqrt()
}

/// ys = rms_norm(xs) · w row by row; every row written.
pub(crate) fn rms_norm_into(xs: &[f32], w: &[f32], eps: f32, ys: &mut [f32]) {
    let c = w.len();
    ys.par_chunks_mut(c * ROWS_PER_TASK).zip(xs.par_chunks(c * ROWS_PER_TASK)).for_each(|(yb, xb)| {
        kernel::vectorized(|| {
            for (y, x) in yb.chunks_mut(c).zip(xb.chunks(c)) {
                let r = rstd(x, eps);
                for j in 0..c {
                    y[j] = x[j] * r * w[j];
                }
            }
        })
    });
}

/// RMSNorm's backward for upstream `dy`: dx as `mode` says (written, added to, or written as a
/// residual gradient plus the norm's own), dw overwritten.
pub(crate) fn rms_norm_backward_into(xs: &[f32], w: &[f32], dy: &[f32], eps: f32, dx: &mut [f32], mode: Dx, dw: &mut [f32]) {
    let c = w.len();
    if let Dx::Plus(base) = mode {
        assert_eq!(base.len(), dx.len(), "rms norm backward: residual gradient size");
    }
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(c * ROWS_PER_TASK)
        .zip(xs.par_chunks(c * ROWS_PER_TASK).zip(dy.par_chunks(c * ROWS_PER_TASK)))
        .enumerate()
        .map(|(task, (dxb, (xb, gb)))| {
            let mut acc = vec![0f32; c];
            let first = task * c * ROWS_PER_TASK;
            kernel::vectorized(|| {
                for (r, ((dxr, x), g)) in dxb.chunks_mut(c).zip(xb.chunks(c)).zip(gb.chunks(c)).enumerate() {
                    let r_std = rstd(x, eps);
                    let mean_gx = kernel::lanes_sum(c, |j| g[j] * w[j] * x[j] * r_std) / c as f32;
                    // One loop per mode rather than a branch inside one, so that each vectorises.
                    match mode {
                        Dx::Plus(base) => {
                            let base = &base[first + r * c..first + (r + 1) * c];
                            for j in 0..c {
                                let xh = x[j] * r_std;
                                acc[j] += g[j] * xh;
                                dxr[j] = base[j] + r_std * (g[j] * w[j] - xh * mean_gx);
                            }
                        }
                        Dx::Add => {
                            for j in 0..c {
                                let xh = x[j] * r_std;
                                acc[j] += g[j] * xh;
                                dxr[j] += r_std * (g[j] * w[j] - xh * mean_gx);
                            }
                        }
                        Dx::Write => {
                            for j in 0..c {
                                let xh = x[j] * r_std;
                                acc[j] += g[j] * xh;
                                dxr[j] = r_std * (g[j] * w[j] - xh * mean_gx);
                            }
                        }
                    }
                }
            });
            acc
        })
        .collect();
    kernel::add_in_order(partials, dw);
}

struct RmsNormOp {
    eps: f32,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "jielong-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (xs, w) = (contiguous_f32(s1, l1, "rms norm input")?, contiguous_f32(s2, l2, "rms norm weight")?);
        let c = w.len();
        if c == 0 || !xs.len().is_multiple_of(c) {
            candle_core::bail!("rms norm: last dimension must equal the weight size {c}");
        }
        let mut ys = kernel::uninit_f32(xs.len());
        rms_norm_into(xs, w, self.eps, &mut ys);
        Ok((CpuStorage::F32(ys), l1.shape().clone()))
    }

    fn bwd(&self, xs: &Tensor, w: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        kernel::with_f32([(xs, "rms norm input"), (w, "rms norm weight"), (&dy, "rms norm gradient")], |[x, wd, g]| {
            let mut dx = kernel::uninit_f32(x.len());
            let mut dw = vec![0f32; wd.len()];
            rms_norm_backward_into(x, wd, g, self.eps, &mut dx, Dx::Write, &mut dw);
            Ok((Some(Tensor::from_vec(dx, xs.shape(), xs.device())?), Some(Tensor::from_vec(dw, w.shape(), w.device())?)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_abs, max_diff};
    use candle_core::{Device, Var};

    #[test]
    fn rms_norm_fused_matches_reference_values_and_gradients() {
        let dev = Device::Cpu;
        for (rows, c) in [(3, 8), (200, 96), (1, 5)] {
            let store = crate::ParamStore::new(1);
            let norm = RmsNorm::new(c, 1e-6, store.var_builder(&dev).pp("n")).unwrap();
            let w = store.vars()[0].1.clone();
            w.set(&(Tensor::randn(1f32, 0.3, c, &dev).unwrap())).unwrap();
            let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (rows, c), &dev).unwrap()).unwrap();
            let r = Tensor::randn(0f32, 1.0, (rows, c), &dev).unwrap();
            let fused = norm.forward(x.as_tensor()).unwrap();
            let refr = norm.forward_reference(x.as_tensor()).unwrap();
            assert!(max_diff(&fused, &refr) < 1e-5);
            let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for t in [x.as_tensor(), w.as_tensor()] {
                let (a, e) = (ga.get(t).unwrap(), gb.get(t).unwrap());
                let d = max_diff(a, e);
                assert!(d <= 1e-5 * max_abs(e).max(1.0), "rows {rows} c {c}: gradients differ by {d}");
            }
        }
    }
}
