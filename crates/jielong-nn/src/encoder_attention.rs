//! Bidirectional (encoder) self-attention with a padding mask, as one fused CPU kernel with
//! its own backward: BERT's attention. Every query sees every key of its own sequence that the
//! attention mask keeps; a key the mask drops (padding) gets probability exactly zero, so what
//! is written in padded positions never reaches a real token.
//!
//! Like the causal kernel (`flash.rs`) it reads queries, keys and values straight out of the
//! packed projection (b, t, 3·c), writes heads side by side into (b, t, c), and never builds
//! a (b, h, t, t) tensor: each (sequence, head) task walks its queries in blocks of `BLOCK`
//! rows with a BLOCK × n score buffer, n = one past the sequence's last kept key (keys after
//! it are never scored: a right-padded batch does no work on its padding). Holes inside 0..n
//! (a mask that is not a prefix) are zeroed one by one. Backward recomputes each block's
//! probabilities and applies
//!
//! ```text
//! dP = dY·Vᵀ,  dS = P ⊙ (dP − rowsum(dY ⊙ Y)) · scale,  dQ = dS·K,  dK += dSᵀ·Q,  dV += Pᵀ·dY
//! ```
//!
//! A sequence whose mask keeps no key at all has outputs (and gradients) of zero.
//! The reference path is `bidirectional_attention_reference` (see the parity tests).

use crate::flash::Out;
use crate::kernel::{self, contiguous_f32};
use crate::matmul::{sgemm, Mat};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};
use gemm::Parallelism;
use rayon::prelude::*;
use std::sync::Arc;

/// Query rows per block.
const BLOCK: usize = 64;

/// `qkv` (b, t, 3·c) → bidirectional attention output (b, t, c) with `n_head` heads, where
/// `key_mask` (b, t) says which keys each sequence attends to (non-zero: attend; zero:
/// padding, never attended to). Fused on CPU f32, composed elsewhere.
pub fn bidirectional_attention_packed(qkv: &Tensor, n_head: usize, key_mask: &Tensor) -> Result<Tensor> {
    let (b, t, c3) = qkv.dims3()?;
    if !c3.is_multiple_of(3) || !(c3 / 3).is_multiple_of(n_head) {
        candle_core::bail!("encoder attention: {c3} is not 3 × (n_head {n_head} × head size)");
    }
    if key_mask.dims2()? != (b, t) {
        candle_core::bail!("encoder attention: the mask is {:?}, the batch is ({b}, {t})", key_mask.dims());
    }
    if !crate::fused_for(qkv) {
        let c = c3 / 3;
        let split = |j: usize| -> Result<Tensor> { qkv.narrow(D::Minus1, j * c, c)?.reshape((b, t, n_head, c / n_head))?.transpose(1, 2)?.contiguous() };
        let ys = bidirectional_attention_reference(&split(0)?, &split(1)?, &split(2)?, key_mask)?;
        return ys.transpose(1, 2)?.reshape((b, t, c));
    }
    let keep: Vec<bool> = key_mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|m| m != 0.0).collect();
    qkv.contiguous()?.apply_op1(EncoderAttention { n_head, keep: Arc::new(keep) })
}

/// The composed path on split heads: q, k, v (b, h, t, d), `key_mask` (b, t) →
/// softmax(q·kᵀ/√d + mask)·v (b, h, t, d), the mask adding f32::MIN (as transformers does) to
/// the scores of dropped keys.
pub fn bidirectional_attention_reference(q: &Tensor, k: &Tensor, v: &Tensor, key_mask: &Tensor) -> Result<Tensor> {
    let (b, _h, _t, d) = q.dims4()?;
    let s = k.dim(2)?;
    let keep = key_mask.to_dtype(DType::F32)?.ne(0f32)?.to_dtype(q.dtype())?; // (b, s): 1 keep, 0 drop
    let additive = ((keep.ones_like()? - keep)? * f32::MIN as f64)?.reshape((b, 1, 1, s))?;
    let att = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?.broadcast_add(&additive)?;
    candle_nn::ops::softmax(&att, D::Minus1)?.matmul(v)
}

pub(crate) struct EncoderAttention {
    pub(crate) n_head: usize,
    /// (b·t) flags: key j of sequence i is attended to when `keep[i·t + j]`.
    pub(crate) keep: Arc<Vec<bool>>,
}

pub(crate) struct Dims {
    t: usize,
    c: usize,
    h: usize,
    d: usize,
    scale: f32,
}

impl Dims {
    fn of(l: &Layout, h: usize) -> Result<(usize, Self)> {
        let (b, t, c3) = l.shape().dims3()?;
        Ok((b, Dims::new(t, c3 / 3, h)))
    }

    /// Sequences of `t` positions, width `c` in `h` heads.
    pub(crate) fn new(t: usize, c: usize, h: usize) -> Self {
        Dims { t, c, h, d: c / h, scale: 1.0 / ((c / h) as f32).sqrt() }
    }

    /// Row-major view of head `hi`'s part (0 = q, 1 = k, 2 = v) of sequence `bi` from row `r0`.
    fn head(&self, qkv: &[f32], bi: usize, hi: usize, part: usize, r0: usize) -> Mat {
        let off = (bi * self.t + r0) * 3 * self.c + part * self.c + hi * self.d;
        Mat { ptr: qkv[off..].as_ptr(), rs: (3 * self.c) as isize, cs: 1 }
    }
}

impl EncoderAttention {
    /// One past the last kept key of sequence `bi` (0: none kept), and whether 0..n has holes.
    fn span(&self, bi: usize, t: usize) -> (usize, bool) {
        let row = &self.keep[bi * t..(bi + 1) * t];
        let n = row.iter().rposition(|&k| k).map_or(0, |j| j + 1);
        (n, row[..n].iter().any(|&k| !k))
    }

    /// Probabilities of queries [q0, q0 + rows) over keys 0..n into `p` (rows × n).
    #[allow(clippy::too_many_arguments)]
    fn probabilities(&self, qkv: &[f32], dm: &Dims, bi: usize, hi: usize, q0: usize, rows: usize, n: usize, holes: bool, p: &mut [f32]) {
        let kt = {
            let k = dm.head(qkv, bi, hi, 1, 0);
            Mat { ptr: k.ptr, rs: k.cs, cs: k.rs } // Kᵀ (d, n)
        };
        unsafe { sgemm(rows, n, dm.d, dm.head(qkv, bi, hi, 0, q0), kt, p.as_mut_ptr(), n, false, Parallelism::None) };
        let keep = &self.keep[bi * dm.t..bi * dm.t + n];
        kernel::vectorized(|| {
            for r in 0..rows {
                let row = &mut p[r * n..(r + 1) * n];
                if holes {
                    row.iter_mut().zip(keep).filter(|(_, &k)| !k).for_each(|(x, _)| *x = f32::NEG_INFINITY);
                }
                let max = kernel::max(row) * dm.scale;
                let inv = 1.0 / kernel::exp_sum_in_place(row, dm.scale, max);
                row.iter_mut().for_each(|x| *x *= inv);
            }
        })
    }

    /// Attention over the packed `qkv` (b·t, 3c) → (b·t, c), every element written.
    pub(crate) fn forward(&self, qkv: &[f32], b: usize, dm: &Dims) -> Vec<f32> {
        // Every element is written: each (sequence, head, block) writes rows × d with
        // accumulate = false, or zeros for a sequence without kept keys.
        let mut y = kernel::uninit_f32(b * dm.t * dm.c);
        let out = Out(y.as_mut_ptr());
        (0..b * dm.h).into_par_iter().for_each_init(
            || vec![0f32; BLOCK * dm.t],
            |p, task| {
                let (bi, hi) = (task / dm.h, task % dm.h);
                let (n, holes) = self.span(bi, dm.t);
                for q0 in (0..dm.t).step_by(BLOCK) {
                    let rows = BLOCK.min(dm.t - q0);
                    let dst = out.at((bi * dm.t + q0) * dm.c + hi * dm.d);
                    if n == 0 {
                        for r in 0..rows {
                            unsafe { std::ptr::write_bytes(dst.add(r * dm.c), 0, dm.d) };
                        }
                        continue;
                    }
                    self.probabilities(qkv, dm, bi, hi, q0, rows, n, holes, p);
                    unsafe { sgemm(rows, dm.d, n, Mat::rows(&p[..rows * n], n), dm.head(qkv, bi, hi, 2, 0), dst, dm.c, false, Parallelism::None) };
                }
            },
        );
        y
    }

    /// dqkv (b·t, 3c) from the forward's input, its output `y` and the upstream gradient `g`.
    pub(crate) fn backward(&self, qkv: &[f32], y: &[f32], g: &[f32], b: usize, dm: &Dims) -> Vec<f32> {
        let (t, c, d, row) = (dm.t, dm.c, dm.d, 3 * dm.c);
        let mut dqkv = vec![0f32; qkv.len()];
        let out = Out(dqkv.as_mut_ptr());
        // One task per (sequence, head): each writes only its own head's columns of dQ, dK, dV.
        (0..b * dm.h).into_par_iter().for_each_init(
            || (vec![0f32; BLOCK * t], vec![0f32; BLOCK * t], vec![0f32; BLOCK]),
            |(p, dp, delta), task| {
                let (bi, hi) = (task / dm.h, task % dm.h);
                let (n, holes) = self.span(bi, t);
                if n == 0 {
                    return;
                }
                let base = out.at(bi * t * row);
                let dq0 = unsafe { base.add(hi * d) };
                let dk0 = unsafe { base.add(c + hi * d) };
                let dv0 = unsafe { base.add(2 * c + hi * d) };
                for q0 in (0..t).step_by(BLOCK) {
                    let rows = BLOCK.min(t - q0);
                    self.probabilities(qkv, dm, bi, hi, q0, rows, n, holes, p);
                    let gy = Mat { ptr: g[(bi * t + q0) * c + hi * d..].as_ptr(), rs: c as isize, cs: 1 };
                    for (r, dr) in delta[..rows].iter_mut().enumerate() {
                        let at = (bi * t + q0 + r) * c + hi * d;
                        *dr = g[at..at + d].iter().zip(&y[at..at + d]).map(|(a, b)| a * b).sum();
                    }
                    // dP = dY · Vᵀ  (rows × n)
                    let v = dm.head(qkv, bi, hi, 2, 0);
                    let vt = Mat { ptr: v.ptr, rs: v.cs, cs: v.rs };
                    unsafe { sgemm(rows, n, d, gy, vt, dp.as_mut_ptr(), n, false, Parallelism::None) };
                    // dV[0..n] += Pᵀ · dY
                    let pt = Mat { ptr: p.as_ptr(), rs: 1, cs: n as isize };
                    unsafe { sgemm(n, d, rows, pt, gy, dv0, row, true, Parallelism::None) };
                    // dS = P ⊙ (dP − delta) · scale, in place (zero wherever P is: dropped keys)
                    kernel::vectorized(|| {
                        for r in 0..rows {
                            let (pr, dr) = (&p[r * n..(r + 1) * n], &mut dp[r * n..(r + 1) * n]);
                            for (ds, &pv) in dr.iter_mut().zip(pr) {
                                *ds = pv * (*ds - delta[r]) * dm.scale;
                            }
                        }
                    });
                    // dQ[q0..q1] = dS · K[0..n];  dK[0..n] += dSᵀ · Q[q0..q1]
                    let ds = Mat::rows(&dp[..rows * n], n);
                    unsafe { sgemm(rows, d, n, ds, dm.head(qkv, bi, hi, 1, 0), dq0.add(q0 * row), row, false, Parallelism::None) };
                    let dst = Mat { ptr: dp.as_ptr(), rs: 1, cs: n as isize };
                    unsafe { sgemm(n, d, rows, dst, dm.head(qkv, bi, hi, 0, q0), dk0, row, true, Parallelism::None) };
                }
            },
        );
        dqkv
    }
}

impl CustomOp1 for EncoderAttention {
    fn name(&self) -> &'static str {
        "jielong-encoder-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(s, l, "encoder attention qkv")?;
        let (b, dm) = Dims::of(l, self.n_head)?;
        let y = self.forward(qkv, b, &dm);
        Ok((CpuStorage::F32(y), Shape::from((b, dm.t, dm.c))))
    }

    fn bwd(&self, qkv: &Tensor, res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let (b, dm) = Dims::of(qkv.layout(), self.n_head)?;
        let dqkv = kernel::with_f32([(qkv, "encoder attention qkv"), (res, "encoder attention output"), (&dy, "encoder attention gradient")], |[q, y, g]| {
            Ok(self.backward(q, y, g, b, &dm))
        })?;
        Ok(Some(Tensor::from_vec(dqkv, qkv.shape(), qkv.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_abs, max_diff};
    use candle_core::{Device, Var};

    fn reference(qkv: &Tensor, h: usize, mask: &Tensor) -> Tensor {
        let (b, t, c3) = qkv.dims3().unwrap();
        let c = c3 / 3;
        let split = |j: usize| qkv.narrow(D::Minus1, j * c, c).unwrap().reshape((b, t, h, c / h)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
        let ys = bidirectional_attention_reference(&split(0), &split(1), &split(2), mask).unwrap();
        ys.transpose(1, 2).unwrap().reshape((b, t, c)).unwrap()
    }

    /// Right padding of different lengths per sequence, a mask with holes, and none at all.
    fn mask(b: usize, t: usize, kind: usize) -> Tensor {
        let m: Vec<f32> = (0..b * t)
            .map(|i| {
                let (s, j) = (i / t, i % t);
                let keep = match kind {
                    0 => true,
                    1 => j < t - (s * 7) % t.max(1) || j == 0,
                    _ => (j * 5 + s) % 3 != 0 || j == 1,
                };
                keep as u8 as f32
            })
            .collect();
        Tensor::from_vec(m, (b, t), &Device::Cpu).unwrap()
    }

    #[test]
    fn encoder_attention_matches_reference_values_and_gradients() {
        let dev = Device::Cpu;
        for (b, t, h, d) in [(2, 5, 2, 4), (3, 150, 3, 8), (1, 64, 1, 16), (2, 129, 4, 32)] {
            for kind in 0..3 {
                let c = h * d;
                let m = mask(b, t, kind);
                let qkv = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, 3 * c), &dev).unwrap()).unwrap();
                let r = Tensor::randn(0f32, 1.0, (b, t, c), &dev).unwrap();
                let fused = bidirectional_attention_packed(qkv.as_tensor(), h, &m).unwrap();
                let refr = reference(qkv.as_tensor(), h, &m);
                let dv = max_diff(&fused, &refr);
                assert!(dv < 1e-5, "values differ by {dv} at b{b} t{t} h{h} d{d} mask {kind}");
                let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let gb = (refr * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let (a, e) = (ga.get(qkv.as_tensor()).unwrap(), gb.get(qkv.as_tensor()).unwrap());
                let (dg, scale) = (max_diff(a, e), max_abs(e));
                assert!(dg <= 1e-5 * scale.max(1.0), "gradients differ by {dg} (scale {scale}) at b{b} t{t} h{h} d{d} mask {kind}");
            }
        }
    }

    #[test]
    fn encoder_attention_never_attends_to_padding() {
        // Whatever sits in the padded positions, the kept positions' outputs are the same; and
        // unlike causal attention, changing the last kept token changes the first output.
        let dev = Device::Cpu;
        let (t, c, keep) = (70, 16, 50);
        let m: Vec<f32> = (0..t).map(|j| (j < keep) as u8 as f32).collect();
        let m = Tensor::from_vec(m, (1, t), &dev).unwrap();
        let qkv = Tensor::randn(0f32, 1.0, (1, t, 3 * c), &dev).unwrap();
        let noise = Tensor::randn(0f32, 100.0, (1, t - keep, 3 * c), &dev).unwrap();
        let padded = qkv.slice_assign(&[0..1, keep..t, 0..3 * c], &noise).unwrap();
        let (a, b) = (bidirectional_attention_packed(&qkv, 2, &m).unwrap(), bidirectional_attention_packed(&padded, 2, &m).unwrap());
        assert_eq!(max_diff(&a.narrow(1, 0, keep).unwrap(), &b.narrow(1, 0, keep).unwrap()), 0.0);
        let last = qkv.slice_assign(&[0..1, keep - 1..keep, 0..3 * c], &Tensor::randn(0f32, 1.0, (1, 1, 3 * c), &dev).unwrap()).unwrap();
        let e = bidirectional_attention_packed(&last, 2, &m).unwrap();
        assert!(max_diff(&a.narrow(1, 0, 1).unwrap(), &e.narrow(1, 0, 1).unwrap()) > 1e-4, "the first token does not see the last");
        // A sequence with nothing to attend to gives zeros, not NaN.
        let none = Tensor::zeros((1, t), DType::F32, &dev).unwrap();
        assert_eq!(max_abs(&bidirectional_attention_packed(&qkv, 2, &none).unwrap()), 0.0);
    }
}
