//! Layer normalisation over the last dimension:
//! y = (x − mean) / sqrt(var + eps) · weight + bias, with the biased variance (as PyTorch).
//!
//! Two paths. `forward_reference` composes differentiable tensor ops (about seven passes
//! forward and many more backward). `forward` is one fused CPU kernel per direction: forward
//! computes each row's mean and 1/σ and writes y; backward recomputes them and writes
//!
//! x̂ = (x − μ)/σ,  g = dy · w
//! dx = (g − mean(g) − x̂ · mean(g · x̂)) / σ,   dw = Σ_rows dy · x̂,   db = Σ_rows dy
//!
//! The tests check values and all three gradients of one path against the other.

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::{Init, VarBuilder};
use crate::kernel::{self, contiguous_f32};
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    /// Zeros standing in for a missing bias in the fused kernel (a constant: no gradient kept).
    zero_bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(size: usize, bias: bool, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        let bias = if bias { Some(vb.get_with_hints(size, "bias", Init::Const(0.0))?) } else { None };
        let zero_bias = Tensor::zeros(size, weight.dtype(), weight.device())?;
        Ok(Self { weight, bias, zero_bias, eps })
    }

    /// The (size) scale.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The (size) shift, if the norm has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The ε added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The composed, readable path.
    pub fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let mean = xs.mean_keepdim(D::Minus1)?;
        let xc = xs.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let ys = xn.broadcast_mul(&self.weight)?;
        match &self.bias {
            Some(b) => ys.broadcast_add(b),
            None => Ok(ys),
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !crate::fused_for(xs) {
            return self.forward_reference(xs);
        }
        let bias = self.bias.as_ref().unwrap_or(&self.zero_bias);
        xs.contiguous()?.apply_op3(&self.weight, bias, LayerNormOp { eps: self.eps as f32 })
    }
}

/// Mean and 1/σ of a row.
#[inline(always)]
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = kernel::lanes_sum(row.len(), |j| row[j]) / n;
    let var = kernel::lanes_sum(row.len(), |j| (row[j] - mean) * (row[j] - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

const ROWS_PER_TASK: usize = 64;

/// ys = layer_norm(xs) row by row (rows of `w.len()` values); every row of `ys` is written.
pub(crate) fn layer_norm_into(xs: &[f32], w: &[f32], b: &[f32], eps: f32, ys: &mut [f32]) {
    let c = w.len();
    ys.par_chunks_mut(c * ROWS_PER_TASK).zip(xs.par_chunks(c * ROWS_PER_TASK)).for_each(|(yb, xb)| {
        kernel::vectorized(|| {
            for (y, x) in yb.chunks_mut(c).zip(xb.chunks(c)) {
                let (mean, rstd) = moments(x, eps);
                for j in 0..c {
                    y[j] = (x[j] - mean) * rstd * w[j] + b[j];
                }
            }
        })
    });
}

/// What a layer-norm backward does with the input gradient `dx`.
#[derive(Clone, Copy)]
pub(crate) enum Dx<'a> {
    /// dx = ∂loss/∂x through the norm.
    Write,
    /// dx += ∂loss/∂x through the norm (a residual branch already in dx).
    Add,
    /// dx = base + ∂loss/∂x through the norm: a residual gradient `base` added on the way, so
    /// that the caller need not copy it into dx first (a serial copy of the whole stream).
    Plus(&'a [f32]),
}

/// Layer norm's backward for upstream `dy`: dx written row by row as `mode` says; `dwdb` (2c:
/// dw then db) overwritten with the sums over rows.
pub(crate) fn layer_norm_backward_into(xs: &[f32], w: &[f32], dy: &[f32], eps: f32, dx: &mut [f32], mode: Dx, dwdb: &mut [f32]) {
    let c = w.len();
    if let Dx::Plus(base) = mode {
        assert_eq!(base.len(), dx.len(), "layer norm backward: residual gradient size");
    }
    // Rows in parallel; each task also sums its rows' dw, db, then the partial sums are added.
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(c * ROWS_PER_TASK)
        .zip(xs.par_chunks(c * ROWS_PER_TASK).zip(dy.par_chunks(c * ROWS_PER_TASK)))
        .enumerate()
        .map(|(task, (dxb, (xb, gb)))| {
            let mut acc = vec![0f32; 2 * c];
            let (dw, db) = acc.split_at_mut(c);
            let first = task * c * ROWS_PER_TASK;
            kernel::vectorized(|| {
                for (r, ((dxr, x), g)) in dxb.chunks_mut(c).zip(xb.chunks(c)).zip(gb.chunks(c)).enumerate() {
                    let (mean, rstd) = moments(x, eps);
                    let mean_g = kernel::lanes_sum(c, |j| g[j] * w[j]) / c as f32;
                    let mean_gx = kernel::lanes_sum(c, |j| g[j] * w[j] * (x[j] - mean) * rstd) / c as f32;
                    // One loop per mode rather than a branch inside one, so that each vectorises.
                    if let Dx::Plus(base) = mode {
                        let base = &base[first + r * c..first + (r + 1) * c];
                        for j in 0..c {
                            let xh = (x[j] - mean) * rstd;
                            dw[j] += g[j] * xh;
                            db[j] += g[j];
                            dxr[j] = base[j] + (g[j] * w[j] - mean_g - xh * mean_gx) * rstd;
                        }
                    } else if let Dx::Add = mode {
                        for j in 0..c {
                            let xh = (x[j] - mean) * rstd;
                            dw[j] += g[j] * xh;
                            db[j] += g[j];
                            dxr[j] += (g[j] * w[j] - mean_g - xh * mean_gx) * rstd;
                        }
                    } else {
                        for j in 0..c {
                            let xh = (x[j] - mean) * rstd;
                            dw[j] += g[j] * xh;
                            db[j] += g[j];
                            dxr[j] = (g[j] * w[j] - mean_g - xh * mean_gx) * rstd;
                        }
                    }
                }
            });
            acc
        })
        .collect();
    kernel::add_in_order(partials, dwdb);
}

struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "jielong-layer-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (xs, w, b) = (contiguous_f32(s1, l1, "layer norm input")?, contiguous_f32(s2, l2, "layer norm weight")?, contiguous_f32(s3, l3, "layer norm bias")?);
        let c = w.len();
        if c == 0 || xs.len() % c != 0 || b.len() != c {
            candle_core::bail!("layer norm: last dimension must equal the weight size {c}");
        }
        // Row-wise: every row written whole.
        let mut ys = kernel::uninit_f32(xs.len());
        layer_norm_into(xs, w, b, self.eps, &mut ys);
        Ok((CpuStorage::F32(ys), l1.shape().clone()))
    }

    fn bwd(&self, xs: &Tensor, w: &Tensor, _b: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = w.dim(0)?;
        let n = xs.elem_count();
        // One kernel writes [dx (n) | dw (c) | db (c)].
        let packed = xs.apply_op3_no_bwd(w, &dy.contiguous()?, &LayerNormGrad { eps: self.eps })?;
        let dx = packed.narrow(0, 0, n)?.reshape(xs.shape())?;
        let dw = packed.narrow(0, n, c)?;
        let db = packed.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct LayerNormGrad {
    eps: f32,
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "jielong-layer-norm-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (xs, w, dy) = (contiguous_f32(s1, l1, "layer norm input")?, contiguous_f32(s2, l2, "layer norm weight")?, contiguous_f32(s3, l3, "layer norm gradient")?);
        let c = w.len();
        let n = xs.len();
        // dx is written row by row in full, and dw, db overwritten.
        let mut out = kernel::uninit_f32(n + 2 * c);
        let (dx, rest) = out.split_at_mut(n);
        layer_norm_backward_into(xs, w, dy, self.eps, dx, Dx::Write, rest);
        Ok((CpuStorage::F32(out), Shape::from(n + 2 * c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn layer_norm_matches_fused_candle_kernel() {
        let dev = Device::Cpu;
        let xs = Tensor::randn(0f32, 3.0, (2, 5, 16), &dev).unwrap();
        let w = Tensor::randn(1f32, 0.1, 16, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, 16, &dev).unwrap();
        let ln = LayerNorm { weight: w.clone(), bias: Some(b.clone()), zero_bias: Tensor::zeros(16, DType::F32, &dev).unwrap(), eps: 1e-5 };
        let theirs = candle_nn::ops::layer_norm(&xs, &w, &b, 1e-5).unwrap();
        for ours in [ln.forward_reference(&xs).unwrap(), ln.forward(&xs).unwrap()] {
            let diff = (ours - &theirs).unwrap().abs().unwrap().max_all().unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        }
    }

    #[test]
    fn layer_norm_fused_gradients_match_reference_path() {
        let dev = Device::Cpu;
        for (rows, c, bias) in [(3, 8, true), (200, 96, true), (70, 33, false)] {
            let x = Var::from_tensor(&(Tensor::randn(0.5f32, 2.0, (rows, c), &dev).unwrap())).unwrap();
            let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, c, &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, c, &dev).unwrap()).unwrap();
            let ln = LayerNorm {
                weight: w.as_tensor().clone(),
                bias: bias.then(|| b.as_tensor().clone()),
                zero_bias: Tensor::zeros(c, DType::F32, &dev).unwrap(),
                eps: 1e-5,
            };
            // A random upstream gradient: loss = Σ y · r.
            let r = Tensor::randn(0f32, 1.0, (rows, c), &dev).unwrap();
            let fused = (ln.forward(x.as_tensor()).unwrap() * &r).unwrap().sum_all().unwrap();
            let refr = (ln.forward_reference(x.as_tensor()).unwrap() * &r).unwrap().sum_all().unwrap();
            let (ga, gb) = (fused.backward().unwrap(), refr.backward().unwrap());
            let max_diff = |a: &Tensor, b: &Tensor| -> f32 { (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
            assert!((fused.to_scalar::<f32>().unwrap() - refr.to_scalar::<f32>().unwrap()).abs() < 1e-3);
            let mut vars = vec![("x", &x), ("w", &w)];
            if bias {
                vars.push(("b", &b));
            }
            for (name, v) in vars {
                let (a, b) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                let d = max_diff(a, b);
                let scale: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
                assert!(d <= 1e-4 * scale.max(1.0), "d{name} differs by {d} ({rows}×{c})");
            }
        }
    }
}
