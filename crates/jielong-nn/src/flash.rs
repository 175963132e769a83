//! Causal self-attention for training as one fused CPU kernel, forward and backward, reading
//! queries, keys and values straight out of the packed `c_attn` output (b, t, 3·c) and writing
//! heads side by side into (b, t, c), so there is no split, transpose or `contiguous()` copy
//! on either side, and no (b, h, t, t) tensor at all.
//!
//! Each (sequence, head) pair is one task on the rayon pool. A task walks its queries in
//! blocks of `BLOCK` rows; block [q0, q1) scores only keys 0..q1 (the masked upper triangle
//! beyond the block is never computed: about half the work at long contexts), so the largest
//! score buffer is BLOCK × t, never t × t. Backward recomputes each block's probabilities from
//! q and k instead of storing them (as FlashAttention does), then
//!
//! ```text
//! dP = dY·Vᵀ,  dS = P ⊙ (dP − rowsum(dY ⊙ Y)) · scale,  dQ = dS·K,  dK += dSᵀ·Q,  dV += Pᵀ·dY
//! ```
//!
//! The reference path is `attention::causal_self_attention_reference` on the split heads
//! (see the parity test).

use crate::kernel::{self, contiguous_f32};
use crate::matmul::{sgemm, Mat};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// Query rows per block.
const BLOCK: usize = 64;

/// `qkv` (b, t, 3·c) → causal attention output (b, t, c), heads of `c / n_head` dimensions.
/// CPU f32 only (the caller keeps the composed path for other devices).
pub fn causal_attention_packed(qkv: &Tensor, n_head: usize) -> Result<Tensor> {
    let (_, _, c3) = qkv.dims3()?;
    if !c3.is_multiple_of(3) || !(c3 / 3).is_multiple_of(n_head) {
        candle_core::bail!("fused attention: {c3} is not 3 × (n_head {n_head} × head size)");
    }
    causal_attention_packed_gqa(qkv, n_head, n_head)
}

/// Grouped-query attention from one packed projection `qkv` (b, t, (n_head + 2·n_kv_head)·d):
/// the n_head query heads, then n_kv_head key heads, then n_kv_head value heads; query head
/// i reads key/value head i / (n_head / n_kv_head), as Hugging Face's `repeat_kv`. Returns
/// (b, t, n_head·d). n_kv_head = n_head is multi-head attention, 1 is multi-query.
pub fn causal_attention_packed_gqa(qkv: &Tensor, n_head: usize, n_kv_head: usize) -> Result<Tensor> {
    let (_, _, width) = qkv.dims3()?;
    if qkv.dtype() != DType::F32 || !qkv.device().is_cpu() {
        candle_core::bail!("fused attention runs on CPU f32 only");
    }
    if n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) || !width.is_multiple_of(n_head + 2 * n_kv_head) {
        candle_core::bail!("fused attention: width {width} is not (n_head {n_head} + 2 × n_kv_head {n_kv_head}) × head size");
    }
    qkv.contiguous()?.apply_op1(PackedAttention { n_head, n_kv_head })
}

struct PackedAttention {
    n_head: usize,
    n_kv_head: usize,
}

/// A raw pointer that tasks share to write disjoint parts of one buffer (every fused kernel
/// of this crate that splits its output among rayon tasks uses it).
#[derive(Clone, Copy)]
pub(crate) struct Out(pub(crate) *mut f32);
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer, `at` values in. A method, so that a closure using it captures the whole
    /// (Send) wrapper rather than its raw-pointer field.
    pub(crate) fn at(&self, at: usize) -> *mut f32 {
        self.0.wrapping_add(at)
    }
}

struct Dims {
    b: usize,
    t: usize,
    /// Width of the output: h · d.
    c: usize,
    /// Query heads.
    h: usize,
    /// Key/value heads (h for multi-head attention).
    kv: usize,
    d: usize,
    /// Width of a packed row: (h + 2·kv) · d.
    row: usize,
    scale: f32,
}

impl Dims {
    fn new(b: usize, t: usize, h: usize, kv: usize, d: usize) -> Self {
        Dims { b, t, c: h * d, h, kv, d, row: (h + 2 * kv) * d, scale: 1.0 / (d as f32).sqrt() }
    }

    /// Multi-head attention over a (b·t, 3c) projection.
    fn mha(b: usize, t: usize, c: usize, h: usize) -> Self {
        Self::new(b, t, h, h, c / h)
    }

    /// Column where query head `hi`'s part starts (0 = q, 1 = k, 2 = v: its key/value head).
    fn col(&self, hi: usize, part: usize) -> usize {
        let kvi = hi / (self.h / self.kv);
        match part {
            0 => hi * self.d,
            1 => self.c + kvi * self.d,
            _ => self.c + (self.kv + kvi) * self.d,
        }
    }
}

impl PackedAttention {
    fn dims(&self, l: &Layout) -> Result<Dims> {
        let (b, t, width) = l.shape().dims3()?;
        Ok(Dims::new(b, t, self.n_head, self.n_kv_head, width / (self.n_head + 2 * self.n_kv_head)))
    }
}

/// Row-major view of head `hi`'s part `part` (0 = q, 1 = k, 2 = v) of sequence `bi`, from row `r0`.
fn head(qkv: &[f32], dm: &Dims, bi: usize, hi: usize, part: usize, r0: usize) -> Mat {
    let off = (bi * dm.t + r0) * dm.row + dm.col(hi, part);
    Mat { ptr: qkv[off..].as_ptr(), rs: dm.row as isize, cs: 1 }
}

/// Scores of queries [q0, q0 + rows) against keys 0..n = q0 + rows into `p` (rows × n,
/// row-major), then causal softmax in place: entries above the diagonal are exact zeros.
fn probabilities(qkv: &[f32], dm: &Dims, bi: usize, hi: usize, q0: usize, rows: usize, p: &mut [f32]) {
    let n = q0 + rows;
    let kt = {
        let k = head(qkv, dm, bi, hi, 1, 0);
        Mat { ptr: k.ptr, rs: k.cs, cs: k.rs } // Kᵀ (d, n)
    };
    unsafe { sgemm(rows, n, dm.d, head(qkv, dm, bi, hi, 0, q0), kt, p.as_mut_ptr(), n, false, Parallelism::None) };
    kernel::vectorized(|| {
        for r in 0..rows {
            let row = &mut p[r * n..(r + 1) * n];
            let (seen, hidden) = row.split_at_mut(q0 + r + 1);
            let max = kernel::max(seen) * dm.scale;
            let inv = 1.0 / kernel::exp_sum_in_place(seen, dm.scale, max);
            seen.iter_mut().for_each(|x| *x *= inv);
            hidden.fill(0.0);
        }
    })
}

impl CustomOp1 for PackedAttention {
    fn name(&self) -> &'static str {
        "jielong-causal-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(s, l, "attention qkv")?;
        let dm = self.dims(l)?;
        // Every (sequence, head, query block) writes its rows × head columns with
        // accumulate = false, and the heads tile the c columns.
        let mut y = kernel::uninit_f32(dm.b * dm.t * dm.c);
        forward(qkv, &dm, &mut y, None);
        Ok((CpuStorage::F32(y), Shape::from((dm.b, dm.t, dm.c))))
    }

    fn bwd(&self, qkv: &Tensor, res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let dm = self.dims(qkv.layout())?;
        let dqkv = kernel::with_f32([(qkv, "attention qkv"), (res, "attention output"), (&dy, "attention gradient")], |[qkv_d, y, g]| Ok(backward(qkv_d, y, g, &dm, None)))?;
        Ok(Some(Tensor::from_vec(dqkv, qkv.shape(), qkv.device())?))
    }
}

/// Values in the probabilities of one (sequence, head): query block [q0, q0 + rows) keeps
/// rows × (q0 + rows) of them, so about t²/2 + BLOCK·t/2 in all.
fn probs_per_head(t: usize) -> usize {
    (0..t).step_by(BLOCK).map(|q0| BLOCK.min(t - q0) * (q0 + BLOCK.min(t - q0))).sum()
}

/// Size of the buffer `attention_into` fills with the probabilities when asked to keep them.
pub(crate) fn kept_probs_len(b: usize, t: usize, h: usize) -> usize {
    b * h * probs_per_head(t)
}

/// y (b·t, c) = causal attention of the packed `qkv` (b·t, 3c) with `h` heads, slice level
/// (for callers that own their buffers, as the fused transformer block); `y` is written whole.
/// With `keep` (`kept_probs_len` values), the probabilities are also written there, so that
/// `attention_backward` need not recompute them.
pub(crate) fn attention_into(qkv: &[f32], b: usize, t: usize, c: usize, h: usize, y: &mut [f32], keep: Option<&mut [f32]>) {
    forward(qkv, &Dims::mha(b, t, c, h), y, keep)
}

/// dqkv (b·t, 3c) for the upstream gradient `g` (b·t, c), given the forward's `qkv` and output
/// `y`, and the probabilities if the forward kept them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_backward(qkv: &[f32], y: &[f32], g: &[f32], b: usize, t: usize, c: usize, h: usize, kept: Option<&[f32]>) -> Vec<f32> {
    backward(qkv, y, g, &Dims::mha(b, t, c, h), kept)
}

/// Grouped-query attention at slice level: `qkv` (b·t, (h + 2·kv)·d) → `y` (b·t, h·d), written
/// whole; `keep` as for `attention_into`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_gqa_into(qkv: &[f32], b: usize, t: usize, h: usize, kv: usize, d: usize, y: &mut [f32], keep: Option<&mut [f32]>) {
    forward(qkv, &Dims::new(b, t, h, kv, d), y, keep)
}

/// dqkv (b·t, (h + 2·kv)·d) of grouped-query attention for the upstream gradient `g` (b·t, h·d).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_gqa_backward(qkv: &[f32], y: &[f32], g: &[f32], b: usize, t: usize, h: usize, kv: usize, d: usize, kept: Option<&[f32]>) -> Vec<f32> {
    backward(qkv, y, g, &Dims::new(b, t, h, kv, d), kept)
}

fn forward(qkv: &[f32], dm: &Dims, y: &mut [f32], keep: Option<&mut [f32]>) {
    let out = Out(y.as_mut_ptr());
    let per_head = probs_per_head(dm.t);
    if let Some(k) = &keep {
        assert_eq!(k.len(), dm.b * dm.h * per_head, "attention: kept probabilities buffer size");
    }
    let keep = keep.map(|k| Out(k.as_mut_ptr()));
    (0..dm.b * dm.h).into_par_iter().for_each_init(
        || vec![0f32; BLOCK * dm.t],
        |p, task| {
            let (bi, hi) = (task / dm.h, task % dm.h);
            let mut off = task * per_head;
            for q0 in (0..dm.t).step_by(BLOCK) {
                let rows = BLOCK.min(dm.t - q0);
                let n = q0 + rows;
                // Into the kept buffer (this task's disjoint range) or the scratch block.
                let p: &mut [f32] = match keep {
                    Some(k) => unsafe { std::slice::from_raw_parts_mut(k.at(off), rows * n) },
                    None => &mut p[..rows * n],
                };
                off += rows * n;
                probabilities(qkv, dm, bi, hi, q0, rows, p);
                // Y[q0..q1] = P · V[0..n], written into this head's columns of y.
                let dst = out.at((bi * dm.t + q0) * dm.c + hi * dm.d);
                unsafe { sgemm(rows, dm.d, n, Mat::rows(&p[..rows * n], n), head(qkv, dm, bi, hi, 2, 0), dst, dm.c, false, Parallelism::None) };
            }
        },
    );
}

fn backward(qkv_d: &[f32], y: &[f32], g: &[f32], dm: &Dims, kept: Option<&[f32]>) -> Vec<f32> {
    let per_head = probs_per_head(dm.t);
    let (t, c, d, row) = (dm.t, dm.c, dm.d, dm.row);
    let group = dm.h / dm.kv;
    let mut dqkv = vec![0f32; qkv_d.len()];
    let out = Out(dqkv.as_mut_ptr());
    // One task per (sequence, key/value head): the query heads of a group add into the same
    // dK and dV, so they run one after another inside the task (for multi-head attention a
    // group is one head, and this is one task per (sequence, head)).
    (0..dm.b * dm.kv).into_par_iter().for_each_init(
        || (vec![0f32; BLOCK * t], vec![0f32; BLOCK * t], vec![0f32; BLOCK]),
        |(p, dp, delta), task| {
            let (bi, kvi) = (task / dm.kv, task % dm.kv);
            for hi in kvi * group..(kvi + 1) * group {
                // This head's slices of dQ, dK, dV inside dqkv: rows of stride `row`.
                let base = out.at(bi * t * row);
                let dq0 = unsafe { base.add(dm.col(hi, 0)) };
                let dk0 = unsafe { base.add(dm.col(hi, 1)) };
                let dv0 = unsafe { base.add(dm.col(hi, 2)) };
                let mut off = (bi * dm.h + hi) * per_head;
                for q0 in (0..t).step_by(BLOCK) {
                    let rows = BLOCK.min(t - q0);
                    let n = q0 + rows;
                    // The forward's probabilities if it kept them, else recomputed from q and k.
                    let p: &[f32] = match kept {
                        Some(k) => &k[off..off + rows * n],
                        None => {
                            probabilities(qkv_d, dm, bi, hi, q0, rows, p);
                            &p[..rows * n]
                        }
                    };
                    off += rows * n;
                    let gy = Mat { ptr: g[(bi * t + q0) * c + hi * d..].as_ptr(), rs: c as isize, cs: 1 };
                    // delta_r = dY_r · Y_r
                    for (r, dr) in delta[..rows].iter_mut().enumerate() {
                        let at = (bi * t + q0 + r) * c + hi * d;
                        *dr = g[at..at + d].iter().zip(&y[at..at + d]).map(|(a, b)| a * b).sum();
                    }
                    // dP = dY · Vᵀ  (rows × n)
                    let v = head(qkv_d, dm, bi, hi, 2, 0);
                    let vt = Mat { ptr: v.ptr, rs: v.cs, cs: v.rs };
                    unsafe { sgemm(rows, n, d, gy, vt, dp.as_mut_ptr(), n, false, Parallelism::None) };
                    // dV[0..n] += Pᵀ · dY
                    let pt = Mat { ptr: p.as_ptr(), rs: 1, cs: n as isize };
                    unsafe { sgemm(n, d, rows, pt, gy, dv0, row, true, Parallelism::None) };
                    // dS = P ⊙ (dP − delta) · scale, in place in dp
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
                    unsafe { sgemm(rows, d, n, ds, head(qkv_d, dm, bi, hi, 1, 0), dq0.add(q0 * row), row, false, Parallelism::None) };
                    let dst = Mat { ptr: dp.as_ptr(), rs: 1, cs: n as isize };
                    unsafe { sgemm(n, d, rows, dst, head(qkv_d, dm, bi, hi, 0, q0), dk0, row, true, Parallelism::None) };
                }
            }
        },
    );
    dqkv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{causal_mask, causal_self_attention_reference};
    use crate::testing::{max_abs, max_diff};
    use candle_core::{Device, Var, D};

    fn reference(qkv: &Tensor, h: usize) -> Tensor {
        let (b, t, c3) = qkv.dims3().unwrap();
        let c = c3 / 3;
        let split = |j: usize| qkv.narrow(D::Minus1, j * c, c).unwrap().reshape((b, t, h, c / h)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
        let mask = causal_mask(t, qkv.device()).unwrap();
        let (ys, _) = causal_self_attention_reference(&split(0), &split(1), &split(2), Some(&mask)).unwrap();
        ys.transpose(1, 2).unwrap().reshape((b, t, c)).unwrap()
    }

    #[test]
    fn fused_attention_matches_reference_values_and_gradients() {
        let dev = Device::Cpu;
        // One block, several blocks with a ragged last one, one head and many.
        for (b, t, h, d) in [(2, 5, 2, 4), (3, 150, 3, 8), (1, 64, 1, 16), (2, 129, 4, 32)] {
            let c = h * d;
            let qkv = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, 3 * c), &dev).unwrap()).unwrap();
            let r = Tensor::randn(0f32, 1.0, (b, t, c), &dev).unwrap();
            let fused = causal_attention_packed(qkv.as_tensor(), h).unwrap();
            let refr = reference(qkv.as_tensor(), h);
            let dv = max_diff(&fused, &refr);
            assert!(dv < 1e-5, "values differ by {dv} at b{b} t{t} h{h} d{d}");
            let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, e) = (ga.get(qkv.as_tensor()).unwrap(), gb.get(qkv.as_tensor()).unwrap());
            let (dg, scale) = (max_diff(a, e), max_abs(e));
            assert!(dg <= 1e-5 * scale.max(1.0), "gradients differ by {dg} (scale {scale}) at b{b} t{t} h{h} d{d}");
        }
    }

    /// Grouped-query attention composed as Hugging Face does it: split, repeat each key/value
    /// head for its group (`repeat_kv`), causal attention per head.
    fn reference_gqa(qkv: &Tensor, h: usize, kv: usize) -> Tensor {
        let (b, t, width) = qkv.dims3().unwrap();
        let d = width / (h + 2 * kv);
        let part = |start: usize, heads: usize| qkv.narrow(D::Minus1, start * d, heads * d).unwrap().reshape((b, t, heads, d)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
        let repeat = |x: Tensor| {
            let x = x.unsqueeze(2).unwrap().expand((b, kv, h / kv, t, d)).unwrap();
            x.reshape((b, h, t, d)).unwrap()
        };
        let (q, k, v) = (part(0, h), repeat(part(h, kv)), repeat(part(h + kv, kv)));
        let mask = causal_mask(t, qkv.device()).unwrap();
        let (ys, _) = causal_self_attention_reference(&q, &k, &v, Some(&mask)).unwrap();
        ys.transpose(1, 2).unwrap().reshape((b, t, h * d)).unwrap()
    }

    #[test]
    fn fused_gqa_matches_repeat_kv_reference_for_every_group_size() {
        let dev = Device::Cpu;
        for (b, t, h, kv, d) in [(2, 70, 4, 1, 8), (2, 70, 4, 2, 8), (1, 130, 4, 4, 16), (3, 9, 6, 3, 4)] {
            let qkv = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, (h + 2 * kv) * d), &dev).unwrap()).unwrap();
            let r = Tensor::randn(0f32, 1.0, (b, t, h * d), &dev).unwrap();
            let fused = causal_attention_packed_gqa(qkv.as_tensor(), h, kv).unwrap();
            let refr = reference_gqa(qkv.as_tensor(), h, kv);
            let dv = max_diff(&fused, &refr);
            assert!(dv < 1e-5, "values differ by {dv} at h{h} kv{kv}");
            let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, e) = (ga.get(qkv.as_tensor()).unwrap(), gb.get(qkv.as_tensor()).unwrap());
            let (dg, scale) = (max_diff(a, e), max_abs(e));
            assert!(dg <= 1e-5 * scale.max(1.0), "gradients differ by {dg} (scale {scale}) at h{h} kv{kv}");
        }
        assert!(causal_attention_packed_gqa(&Tensor::zeros((1, 2, 24), DType::F32, &dev).unwrap(), 3, 2).is_err());
    }

    #[test]
    fn fused_attention_is_causal() {
        // Changing the last token must not change any earlier output.
        let dev = Device::Cpu;
        let (t, c) = (70, 16);
        let qkv = Tensor::randn(0f32, 1.0, (1, t, 3 * c), &dev).unwrap();
        let changed = qkv.slice_assign(&[0..1, t - 1..t, 0..3 * c], &Tensor::randn(0f32, 1.0, (1, 1, 3 * c), &dev).unwrap()).unwrap();
        let (a, b) = (causal_attention_packed(&qkv, 2).unwrap(), causal_attention_packed(&changed, 2).unwrap());
        let d: f32 = (a.narrow(1, 0, t - 1).unwrap() - b.narrow(1, 0, t - 1).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert_eq!(d, 0.0);
    }
}
