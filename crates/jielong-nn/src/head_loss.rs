//! The LM head and its softmax cross-entropy as one op: `loss = CE(x·Wᵀ, targets)` with W the
//! (vocab, n_embd) output matrix (a tied embedding or an untied head).
//!
//! As two ops, the (rows × vocab) logits are the biggest tensor of a training step (64 MB at
//! both bench presets) and candle's backward walks them several times: the loss gradient is
//! written as a new tensor, the autograd store zero-fills a buffer and adds it in, the reshape
//! between model and loss does the same again, and the normaliser of every row is recomputed.
//! Here the forward computes the logits into a buffer the op keeps, turns each row into its
//! softmax in place while taking the loss, and the backward subtracts the one-hot targets in
//! that same buffer and feeds it to the two products dX = dL·W and dW = dLᵀ·X. The composed
//! path (`linear` then `cross_entropy`) is the reference (see the parity test).

use crate::kernel::{self, contiguous_f32};
use crate::linear::{linear, WeightLayout};
use crate::matmul::{parallelism, sgemm, Mat};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Mean cross-entropy of `x (rows, c) · wᵀ` against `targets (rows)` (u32), `w` (vocab, c).
pub fn linear_cross_entropy(x: &Tensor, w: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if !crate::fused_for(x) {
        return crate::cross_entropy(&linear(x, w, None, WeightLayout::OutIn)?, targets);
    }
    let (rows, c) = x.dims2()?;
    let (v, cw) = w.dims2()?;
    if c != cw {
        candle_core::bail!("linear_cross_entropy: hidden size {c} but the head expects {cw}");
    }
    let targets: Vec<u32> = targets.flatten_all()?.to_dtype(candle_core::DType::U32)?.to_vec1()?;
    if targets.len() != rows {
        candle_core::bail!("linear_cross_entropy: {rows} rows but {} targets", targets.len());
    }
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= v) {
        candle_core::bail!("cross_entropy: target {bad} is outside the vocabulary of {v}");
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, HeadLoss { targets, probs: Mutex::new(Vec::new()) })
}

struct HeadLoss {
    targets: Vec<u32>,
    /// Softmax of the logits, rows × vocab, written by the forward, turned into the logits'
    /// gradient by the backward.
    probs: Mutex<Vec<f32>>,
}

impl CustomOp2 for HeadLoss {
    fn name(&self) -> &'static str {
        "jielong-linear-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (contiguous_f32(s1, l1, "head input")?, contiguous_f32(s2, l2, "head weight")?);
        let (rows, c) = l1.shape().dims2()?;
        let v = l2.shape().dims2()?.0;
        // Written whole by the product (accumulate = false).
        let mut p = kernel::uninit_f32(rows * v);
        unsafe { sgemm(rows, v, c, Mat::rows(x, c), Mat::rows_t(w, c), p.as_mut_ptr(), v, false, parallelism(rows, v, c)) };
        let total = kernel::sum_in_order(p
            .par_chunks_mut(v)
            .zip(self.targets.par_iter())
            .map(|(row, &t)| {
                kernel::vectorized(|| {
                    let m = kernel::max(row);
                    let target_logit = row[t as usize];
                    let s = kernel::exp_sum_in_place(row, 1.0, m);
                    let inv = 1.0 / s;
                    row.iter_mut().for_each(|x| *x *= inv);
                    (s.ln() + m - target_logit) as f64
                })
            }));
        *self.probs.lock().expect("head loss buffer") = p;
        Ok((CpuStorage::F32(vec![(total / rows as f64) as f32]), Shape::from(())))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
        let (rows, c) = x.dims2()?;
        let v = w.dim(0)?;
        // The buffer is consumed: a second backward through the same graph is not supported.
        let mut d = std::mem::take(&mut *self.probs.lock().expect("head loss buffer"));
        if d.len() != rows * v {
            candle_core::bail!("linear_cross_entropy: backward ran twice, or without a forward");
        }
        let scale = g / rows as f32;
        d.par_chunks_mut(v).zip(self.targets.par_iter()).for_each(|(row, &t)| {
            kernel::vectorized(|| row.iter_mut().for_each(|p| *p *= scale));
            row[t as usize] -= scale;
        });
        // Both written whole by their products (accumulate = false).
        let mut dx = kernel::uninit_f32(rows * c);
        let mut dw = kernel::uninit_f32(v * c);
        kernel::with_f32([(x, "head input"), (w, "head weight")], |[xd, wd]| {
            unsafe {
                // dX (rows, c) = dL (rows, v) · W (v, c);  dW (v, c) = dLᵀ (v, rows) · X (rows, c)
                sgemm(rows, c, v, Mat::rows(&d, v), Mat::rows(wd, c), dx.as_mut_ptr(), c, false, parallelism(rows, c, v));
                sgemm(v, c, rows, Mat::rows_t(&d, v), Mat::rows(xd, c), dw.as_mut_ptr(), c, false, parallelism(v, c, rows));
            }
            Ok(())
        })?;
        Ok((Some(Tensor::from_vec(dx, (rows, c), x.device())?), Some(Tensor::from_vec(dw, (v, c), w.device())?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_head_loss_matches_linear_then_cross_entropy() {
        let dev = Device::Cpu;
        for (rows, c, v) in [(5, 8, 11), (64, 48, 300), (300, 32, 1000)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (rows, c), &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f32, 0.5, (v, c), &dev).unwrap()).unwrap();
            let t = Tensor::from_vec((0..rows as u32).map(|i| (i * 7919) % v as u32).collect::<Vec<_>>(), rows, &dev).unwrap();
            // A loss weight so the upstream gradient is not 1.
            let ours = (linear_cross_entropy(x.as_tensor(), w.as_tensor(), &t).unwrap() * 3.0).unwrap();
            let logits = crate::linear::linear_reference(x.as_tensor(), w.as_tensor(), None, WeightLayout::OutIn).unwrap();
            let refr = (candle_nn::loss::cross_entropy(&logits, &t).unwrap() * 3.0).unwrap();
            let (a, b) = (ours.to_scalar::<f32>().unwrap(), refr.to_scalar::<f32>().unwrap());
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "loss {a} vs {b}");
            let (ga, gb) = (ours.backward().unwrap(), refr.backward().unwrap());
            for (name, var) in [("x", &x), ("w", &w)] {
                let (p, q) = (ga.get(var.as_tensor()).unwrap(), gb.get(var.as_tensor()).unwrap());
                let d: f32 = (p - q).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
                let s: f32 = q.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
                assert!(d <= 1e-5 * s.max(1e-3), "d{name} differs by {d} (scale {s}) at {rows}×{c}→{v}");
            }
        }
    }

    #[test]
    fn fused_head_loss_names_bad_targets() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((3, 4), candle_core::DType::F32, &dev).unwrap();
        let err = linear_cross_entropy(&x, &w, &Tensor::new(&[0u32, 3], &dev).unwrap()).unwrap_err().to_string();
        assert!(err.contains("outside the vocabulary of 3"), "{err}");
    }
}
