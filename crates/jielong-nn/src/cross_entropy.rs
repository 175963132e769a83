//! Softmax cross-entropy as one fused CPU kernel with its own backward.
//!
//! The composed path (`candle_nn::loss::cross_entropy`: log-softmax, gather, mean) materialises
//! several (rows × vocab) tensors forward and as many again backward; at the LM head that is
//! the biggest tensor of the step. Here the forward is two passes over each row of logits
//! (max, then Σ exp), writing nothing but the loss, and the backward is one more
//! recomputation of the row's normaliser and one write of the gradient:
//!
//! loss = mean_i [ log Σ_j exp(x_ij) − x_i,target_i ]
//! ∂loss/∂x_ij = (softmax(x_i)_j − [j = target_i]) / rows
//!
//! Model-agnostic: every family's language-model loss goes through here.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use crate::kernel::{self, contiguous_f32};
use rayon::prelude::*;

fn logits_rows<'a>(s: &'a CpuStorage, l: &Layout) -> Result<(&'a [f32], usize, usize)> {
    let (rows, v) = l.shape().dims2()?;
    Ok((contiguous_f32(s, l, "cross_entropy logits")?, rows, v))
}

fn targets_of(s: &CpuStorage, l: &Layout, rows: usize, v: usize) -> Result<Vec<usize>> {
    let (a, b) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("cross_entropy: targets must be contiguous".into()))?;
    let t: Vec<usize> = match s {
        CpuStorage::U32(d) => d[a..b].iter().map(|&x| x as usize).collect(),
        CpuStorage::I64(d) => d[a..b].iter().map(|&x| if x < 0 { usize::MAX } else { x as usize }).collect(),
        _ => candle_core::bail!("cross_entropy: targets must be u32 or i64"),
    };
    if t.len() != rows {
        candle_core::bail!("cross_entropy: {rows} rows of logits but {} targets", t.len());
    }
    if let Some(&bad) = t.iter().find(|&&x| x >= v) {
        candle_core::bail!("cross_entropy: target {bad} is outside the vocabulary of {v}");
    }
    Ok(t)
}

/// (max, Σ exp(x − max)) of one row.
#[inline(always)]
fn normaliser(row: &[f32]) -> (f32, f32) {
    let m = kernel::max(row);
    (m, kernel::exp_sum(row, m))
}

struct CrossEntropy;

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "jielong-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (xs, rows, v) = logits_rows(s1, l1)?;
        let targets = targets_of(s2, l2, rows, v)?;
        let total = kernel::sum_in_order(xs
            .par_chunks(v)
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                let (m, s) = kernel::vectorized(|| normaliser(row));
                (s.ln() + m - row[t]) as f64
            }));
        Ok((CpuStorage::F32(vec![(total / rows as f64) as f32]), Shape::from(())))
    }

    fn bwd(&self, logits: &Tensor, targets: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = logits.apply_op3_no_bwd(targets, &grad_res.to_dtype(DType::F32)?, &CrossEntropyGrad)?;
        Ok((Some(g), None))
    }
}

/// (logits, targets, upstream scalar g) → g · (softmax − one_hot) / rows
struct CrossEntropyGrad;

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "jielong-cross-entropy-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (xs, rows, v) = logits_rows(s1, l1)?;
        let targets = targets_of(s2, l2, rows, v)?;
        let g = s3.as_slice::<f32>()?[l3.start_offset()];
        let scale = g / rows as f32;
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(v).zip(xs.par_chunks(v)).zip(targets.par_iter()).for_each(|((o, row), &t)| {
            kernel::vectorized(|| {
                let (m, s) = normaliser(row);
                let k = scale / s;
                for (o, &x) in o.iter_mut().zip(row) {
                    *o = kernel::exp(x - m) * k;
                }
            });
            o[t] -= scale;
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Mean softmax cross-entropy of `logits` (rows, vocab) f32 against `targets` (rows) u32/i64.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if !crate::fused_for(logits) {
        return candle_nn::loss::cross_entropy(logits, targets);
    }
    logits.contiguous()?.apply_op2(&targets.contiguous()?, CrossEntropy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn cross_entropy_matches_composed_path_values_and_gradients() {
        let dev = Device::Cpu;
        for (rows, v, scale) in [(7, 11, 1.0f32), (64, 300, 8.0), (3, 5000, 30.0)] {
            let x = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (rows, v), &dev).unwrap() * scale as f64).unwrap()).unwrap();
            let t = Tensor::from_vec((0..rows as u32).map(|i| (i * 7919) % v as u32).collect::<Vec<_>>(), rows, &dev).unwrap();
            // Weight the loss so the upstream gradient is not 1.
            let ours = (cross_entropy(x.as_tensor(), &t).unwrap() * 3.0).unwrap();
            let reference = (candle_nn::loss::cross_entropy(x.as_tensor(), &t).unwrap() * 3.0).unwrap();
            let (a, b) = (ours.to_scalar::<f32>().unwrap(), reference.to_scalar::<f32>().unwrap());
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "loss {a} vs {b}");
            let ga = ours.backward().unwrap().get(x.as_tensor()).unwrap().clone();
            let gb = reference.backward().unwrap().get(x.as_tensor()).unwrap().clone();
            let diff: f32 = (ga - gb).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(diff < 1e-6, "gradient differs by {diff} ({rows}×{v})");
        }
    }

    #[test]
    fn cross_entropy_rejects_targets_outside_the_vocabulary() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
        let t = Tensor::new(&[1u32, 4], &dev).unwrap();
        assert!(cross_entropy(&x, &t).unwrap_err().to_string().contains("outside the vocabulary"));
        // Uniform logits: loss = ln 4.
        let t = Tensor::new(&[1u32, 3], &dev).unwrap();
        assert!((cross_entropy(&x, &t).unwrap().to_scalar::<f32>().unwrap() - 4f32.ln()).abs() < 1e-6);
    }
}
