//! A whole recurrent layer (Elman RNN, LSTM or GRU, PyTorch's gate order and bias layout) over
//! all time steps as one fused CPU kernel, forward and backward.
//!
//! The input side of the gates, `xg = x·W_ihᵀ + b_ih` for every step, is one matrix product the
//! caller makes before the scan. What stays step by step is `h·W_hhᵀ + b_hh` and the gates'
//! element-wise arithmetic; composed of candle ops that is about a dozen graph nodes, each a
//! pass over memory and an allocation, per step (forward and again backward). Here each step is
//! one small product into a reused buffer and one pass over the gates.
//!
//! The rows of a batch are independent through the whole recurrence, so the batch is split
//! into one band of rows per rayon thread and each band runs every step on its own thread: no
//! synchronisation per step, and each thread's product is single-threaded. The backward pass
//! walks the steps in reverse the same way, keeping the recurrent gradient (dh, dc) per band;
//! the weight gradient is one large product over all steps afterwards:
//!
//! ```text
//! LSTM  a = xg + h·W_hhᵀ + b_hh;  i, f, o = σ(a_i, a_f, a_o);  g = tanh(a_g)
//!       c' = f·c + i·g;  h' = o·tanh(c')
//!       backward: dc += dh·o·(1 − tanh²c');  da_i = dc·g·i(1−i);  da_f = dc·c·f(1−f)
//!                 da_g = dc·i·(1−g²);  da_o = dh·tanh(c')·o(1−o);  dc_prev = dc·f
//!                 dh_prev = da·W_hh
//! GRU   hg = h·W_hhᵀ + b_hh;  r = σ(x_r + hg_r);  z = σ(x_z + hg_z);  n = tanh(x_n + r·hg_n)
//!       h' = n + z·(h − n)
//!       backward: dn = dh·(1−z);  da_n = dn·(1−n²);  da_z = dh·(h−n)·z(1−z)
//!                 da_r = da_n·hg_n·r(1−r);  dxg = (da_r, da_z, da_n);  dhg = (da_r, da_z, da_n·r)
//!                 dh_prev = dh·z + dhg·W_hh
//! RNN   h' = tanh(xg + h·W_hhᵀ + b_hh);  da = dh·(1 − h'²);  dh_prev = da·W_hh
//! dW_hh = Σ_steps dhgᵀ·h_prev (one product),  db_hh = Σ_steps dhg
//! ```
//!
//! Padded steps (`keep` false, for batches of sequences of different lengths) leave the state
//! as it was and pass the gradient through unchanged. The reference path is the composed
//! cell of `jielong_models::recurrent` (see the parity tests there and below).

use crate::flash::Out;
use crate::kernel::{self, contiguous_f32};
use crate::matmul::{parallelism, sgemm, Mat};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Which cell a scan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanCell {
    Rnn,
    Lstm,
    Gru,
}

impl ScanCell {
    /// Gate blocks: 1, 4 (i, f, g, o) or 3 (r, z, n).
    fn gates(self) -> usize {
        match self {
            ScanCell::Rnn => 1,
            ScanCell::Lstm => 4,
            ScanCell::Gru => 3,
        }
    }

    /// State tensors: h, and c for the LSTM.
    fn n_state(self) -> usize {
        if self == ScanCell::Lstm {
            2
        } else {
            1
        }
    }

    /// Values per (row, step) the forward keeps for the backward, in units of hidden: the
    /// LSTM's four activations; the GRU's r, z, n and hg_n; none for the RNN (h' is the output).
    fn kept(self) -> usize {
        match self {
            ScanCell::Rnn => 0,
            ScanCell::Lstm | ScanCell::Gru => 4,
        }
    }
}

/// What a scan returns.
pub struct ScanOutput {
    /// (b, t, hidden): h after every step (carried through padded steps).
    pub outputs: Tensor,
    /// (b, hidden): h after the last step.
    pub h: Tensor,
    /// (b, hidden): the LSTM's c after the last step.
    pub c: Option<Tensor>,
}

/// Run `cell` over all `t` steps: `xg` (b, t, G·hidden) is the input side of the gates
/// (x·W_ihᵀ + b_ih), `w_hh` (G·hidden, hidden) and `b_hh` (G·hidden) the recurrent weights in
/// PyTorch's layout, `h0` (and for the LSTM `c0`) (b, hidden) the initial state. `keep`: per
/// (row, step), row-major (b, t), whether the step is real; a padded step keeps the state.
/// CPU f32 only; differentiable in every tensor argument.
pub fn recurrent_scan(cell: ScanCell, xg: &Tensor, w_hh: &Tensor, b_hh: &Tensor, h0: &Tensor, c0: Option<&Tensor>, keep: Option<Vec<bool>>) -> Result<ScanOutput> {
    let (b, t, gh) = xg.dims3()?;
    let (hb, hs) = h0.dims2()?;
    if xg.dtype() != DType::F32 || !xg.device().is_cpu() {
        candle_core::bail!("fused recurrent scan runs on CPU f32 only");
    }
    if t == 0 {
        candle_core::bail!("recurrent scan over zero steps");
    }
    if hb != b || gh != cell.gates() * hs || w_hh.dims() != [gh, hs] || b_hh.dims() != [gh] {
        candle_core::bail!("recurrent scan: gates {:?}, W_hh {:?}, b_hh {:?} and h0 {:?} do not fit a {cell:?} of hidden {hs}", xg.dims(), w_hh.dims(), b_hh.dims(), h0.dims());
    }
    if keep.as_ref().is_some_and(|k| k.len() != b * t) {
        candle_core::bail!("recurrent scan: keep mask needs {} values", b * t);
    }
    let s0 = match (cell, c0) {
        (ScanCell::Lstm, Some(c0)) => Tensor::stack(&[h0, c0], 0)?,
        (ScanCell::Lstm, None) => candle_core::bail!("recurrent scan: an LSTM needs its cell state"),
        (_, _) => h0.unsqueeze(0)?,
    };
    let p = Tensor::cat(&[&w_hh.flatten_all()?, &b_hh.flatten_all()?], 0)?;
    let op = Scan { cell, keep: keep.map(Arc::new), saved: Mutex::new(None) };
    // (n_state, b, t, hidden): h of every step, then c of every step.
    let out = xg.contiguous()?.apply_op3(&p, &s0.contiguous()?, op)?;
    let outputs = out.get(0)?;
    let h = outputs.narrow(1, t - 1, 1)?.squeeze(1)?;
    let c = if cell == ScanCell::Lstm { Some(out.get(1)?.narrow(1, t - 1, 1)?.squeeze(1)?) } else { None };
    Ok(ScanOutput { outputs, h, c })
}

struct Scan {
    cell: ScanCell,
    keep: Option<Arc<Vec<bool>>>,
    /// The kept activations, (b, t, kept·hidden).
    saved: Mutex<Option<Vec<f32>>>,
}


/// Bands of rows: one per thread (no more than the rows).
fn bands(b: usize) -> Vec<(usize, usize)> {
    let n = rayon::current_num_threads().clamp(1, b.max(1));
    let per = b.div_ceil(n);
    (0..b).step_by(per).map(|r0| (r0, (r0 + per).min(b))).collect()
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + kernel::exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    // 1 − 2/(e^{2x} + 1): branch-free, so the gate loops vectorise; saturates cleanly.
    1.0 - 2.0 / (kernel::exp(2.0 * x) + 1.0)
}

/// Sizes every band shares.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    hs: usize,
    gh: usize,
}

impl CustomOp3 for Scan {
    fn name(&self) -> &'static str {
        "jielong-recurrent-scan"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let xg = contiguous_f32(s1, l1, "recurrent scan gates")?;
        let p = contiguous_f32(s2, l2, "recurrent scan weights")?;
        let s0 = contiguous_f32(s3, l3, "recurrent scan state")?;
        let (b, t, gh) = l1.shape().dims3()?;
        let hs = gh / self.cell.gates();
        let d = Dims { b, t, hs, gh };
        let (w, bias) = p.split_at(gh * hs);
        let ns = self.cell.n_state();
        // Every (state, row, step) is written by the step loop below, kept step or padded.
        let mut out = kernel::uninit_f32(ns * b * t * hs);
        // Written for every kept step; padded steps' values are never read.
        let mut saved = kernel::uninit_f32(b * t * self.cell.kept() * hs);
        let (out_p, saved_p) = (Out(out.as_mut_ptr()), Out(saved.as_mut_ptr()));
        let keep = self.keep.as_deref().map(|k| &k[..]);
        let cell = self.cell;
        bands(b).into_par_iter().for_each(|(r0, r1)| {
            // SAFETY: each band writes only its own rows [r0, r1) of `out` and `saved`.
            unsafe { forward_band(cell, d, r0, r1, xg, w, bias, s0, keep, out_p, saved_p) }
        });
        *self.saved.lock().expect("scan state lock") = Some(saved);
        Ok((CpuStorage::F32(out), Shape::from((ns, b, t, hs))))
    }

    fn bwd(&self, _xg: &Tensor, p: &Tensor, s0: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (ns, b, t, hs) = res.dims4()?;
        let gh = self.cell.gates() * hs;
        let d = Dims { b, t, hs, gh };
        let guard = self.saved.lock().expect("scan state lock");
        let Some(saved) = guard.as_ref() else { candle_core::bail!("recurrent scan: backward without a forward") };
        let keep = self.keep.as_deref().map(|k| &k[..]);
        let cell = self.cell;
        let (dxg, dp, ds0) = kernel::with_f32([(p, "recurrent scan weights"), (s0, "recurrent scan state"), (res, "recurrent scan output"), (&grad, "recurrent scan gradient")], |[p, s0, out, g]| {
            let w = &p[..gh * hs];
            // Written whole: every kept step writes all its gates, every padded step zeros.
            let mut dxg = kernel::uninit_f32(b * t * gh);
            // The gradient of hg = h·W_hhᵀ + b_hh; the GRU's differs from dxg in its n block.
            let mut dhg_own = if cell == ScanCell::Gru { kernel::uninit_f32(b * t * gh) } else { Vec::new() };
            // Every band writes its rows of every state.
            let mut ds0 = kernel::uninit_f32(ns * b * hs);
            let (dxg_p, dhg_p, ds0_p) = (Out(dxg.as_mut_ptr()), Out(if cell == ScanCell::Gru { dhg_own.as_mut_ptr() } else { dxg.as_mut_ptr() }), Out(ds0.as_mut_ptr()));
            bands(b).into_par_iter().for_each(|(r0, r1)| {
                // SAFETY: each band writes only its own rows of dxg, dhg and ds0.
                unsafe { backward_band(cell, d, r0, r1, w, s0, out, g, saved, keep, dxg_p, dhg_p, ds0_p) }
            });
            let dhg: &[f32] = if cell == ScanCell::Gru { &dhg_own } else { &dxg };
            // h_prev of every (row, step): h0 then the outputs shifted by one step.
            let mut hprev = kernel::uninit_f32(b * t * hs); // every row and step copied below
            hprev.par_chunks_mut(t * hs).enumerate().for_each(|(r, dst)| {
                dst[..hs].copy_from_slice(&s0[r * hs..(r + 1) * hs]);
                dst[hs..].copy_from_slice(&out[r * t * hs..(r * t + t - 1) * hs]);
            });
            let mut dp = kernel::uninit_f32(gh * hs + gh);
            let (dw, db) = dp.split_at_mut(gh * hs);
            // dW (gh, hs) = dhgᵀ (gh, b·t) · hprev (b·t, hs); written whole (accumulate = false).
            unsafe { sgemm(gh, hs, b * t, Mat::rows_t(dhg, gh), Mat::rows(&hprev, hs), dw.as_mut_ptr(), hs, false, parallelism(gh, hs, b * t)) };
            // db = Σ over rows and steps, in a fixed order (columns split, rows summed serially).
            db.par_chunks_mut(64).enumerate().for_each(|(k, acc)| {
                let (j0, n) = (k * 64, acc.len());
                acc.fill(0.0);
                kernel::vectorized(|| {
                    for row in dhg.chunks_exact(gh) {
                        acc.iter_mut().zip(&row[j0..j0 + n]).for_each(|(a, v)| *a += v);
                    }
                })
            });
            Ok((dxg, dp, ds0))
        })?;
        let dev = p.device();
        Ok((Some(Tensor::from_vec(dxg, (b, t, gh), dev)?), Some(Tensor::from_vec(dp, p.shape(), dev)?), Some(Tensor::from_vec(ds0, s0.shape(), dev)?)))
    }
}

/// The forward recurrence of rows [r0, r1), every step.
///
/// # Safety
/// `out` must hold (n_state, b, t, hs) values and `saved` (b, t, kept·hs); only rows [r0, r1)
/// of them are written.
#[allow(clippy::too_many_arguments)]
unsafe fn forward_band(cell: ScanCell, d: Dims, r0: usize, r1: usize, xg: &[f32], w: &[f32], bias: &[f32], s0: &[f32], keep: Option<&[bool]>, out: Out, saved: Out) {
    let Dims { b, t, hs, gh } = d;
    let m = r1 - r0;
    let kept = cell.kept() * hs;
    let mut hg = vec![0f32; m * gh];
    for s in 0..t {
        for row in hg.chunks_exact_mut(gh) {
            row.copy_from_slice(bias);
        }
        // hg += h_prev · W_hhᵀ; h_prev is h0 (rows of hs) or the previous step's output (rows
        // t·hs apart).
        let hprev = if s == 0 { Mat { ptr: s0[r0 * hs..].as_ptr(), rs: hs as isize, cs: 1 } } else { Mat { ptr: out.at((r0 * t + s - 1) * hs), rs: (t * hs) as isize, cs: 1 } };
        unsafe { sgemm(m, gh, hs, hprev, Mat::rows_t(w, hs), hg.as_mut_ptr(), gh, true, Parallelism::None) };
        for (i, r) in (r0..r1).enumerate() {
            let at = r * t + s;
            let hp: &[f32] = if s == 0 { &s0[r * hs..(r + 1) * hs] } else { unsafe { std::slice::from_raw_parts(out.at(at * hs - hs), hs) } };
            let h_out = unsafe { std::slice::from_raw_parts_mut(out.at(at * hs), hs) };
            let (cp, c_out): (&[f32], &mut [f32]) = if cell == ScanCell::Lstm {
                let cb = b * t * hs;
                let cp = if s == 0 { &s0[(b + r) * hs..(b + r + 1) * hs] } else { unsafe { std::slice::from_raw_parts(out.at(cb + at * hs - hs), hs) } };
                (cp, unsafe { std::slice::from_raw_parts_mut(out.at(cb + at * hs), hs) })
            } else {
                (&[], &mut [])
            };
            if keep.is_some_and(|k| !k[at]) {
                h_out.copy_from_slice(hp);
                c_out.copy_from_slice(cp);
                continue;
            }
            let x = &xg[at * gh..(at + 1) * gh];
            let a = &hg[i * gh..(i + 1) * gh];
            let sv = unsafe { std::slice::from_raw_parts_mut(saved.at(at * kept), kept) };
            kernel::vectorized(|| match cell {
                ScanCell::Rnn => {
                    for j in 0..hs {
                        h_out[j] = tanh(x[j] + a[j]);
                    }
                }
                ScanCell::Lstm => {
                    let (si, rest) = sv.split_at_mut(hs);
                    let (sf, rest) = rest.split_at_mut(hs);
                    let (sg, so) = rest.split_at_mut(hs);
                    for j in 0..hs {
                        let ig = sigmoid(x[j] + a[j]);
                        let fg = sigmoid(x[hs + j] + a[hs + j]);
                        let gg = tanh(x[2 * hs + j] + a[2 * hs + j]);
                        let og = sigmoid(x[3 * hs + j] + a[3 * hs + j]);
                        let c = fg * cp[j] + ig * gg;
                        c_out[j] = c;
                        h_out[j] = og * tanh(c);
                        si[j] = ig;
                        sf[j] = fg;
                        sg[j] = gg;
                        so[j] = og;
                    }
                }
                ScanCell::Gru => {
                    let (sr, rest) = sv.split_at_mut(hs);
                    let (sz, rest) = rest.split_at_mut(hs);
                    let (sn, shn) = rest.split_at_mut(hs);
                    for j in 0..hs {
                        let r = sigmoid(x[j] + a[j]);
                        let z = sigmoid(x[hs + j] + a[hs + j]);
                        let hn = a[2 * hs + j];
                        let n = tanh(x[2 * hs + j] + r * hn);
                        h_out[j] = n + z * (hp[j] - n);
                        sr[j] = r;
                        sz[j] = z;
                        sn[j] = n;
                        shn[j] = hn;
                    }
                }
            });
        }
    }
}

/// The backward recurrence of rows [r0, r1), every step in reverse: writes their rows of dxg,
/// dhg (the same buffer as dxg except for the GRU) and ds0.
///
/// # Safety
/// `dxg` and `dhg` must hold (b, t, gh) values and `ds0` (n_state, b, hs); only rows [r0, r1)
/// are written.
#[allow(clippy::too_many_arguments)]
unsafe fn backward_band(cell: ScanCell, d: Dims, r0: usize, r1: usize, w: &[f32], s0: &[f32], out: &[f32], g: &[f32], saved: &[f32], keep: Option<&[bool]>, dxg: Out, dhg: Out, ds0: Out) {
    let Dims { b, t, hs, gh } = d;
    let m = r1 - r0;
    let kept = cell.kept() * hs;
    let cb = b * t * hs;
    // The gradient arriving at the state after step s from step s + 1 (zero after the last).
    let mut dh = vec![0f32; m * hs];
    let mut dc = vec![0f32; if cell == ScanCell::Lstm { m * hs } else { 0 }];
    for s in (0..t).rev() {
        for (i, r) in (r0..r1).enumerate() {
            let at = r * t + s;
            let dh = &mut dh[i * hs..(i + 1) * hs];
            dh.iter_mut().zip(&g[at * hs..(at + 1) * hs]).for_each(|(a, v)| *a += v);
            let dc: &mut [f32] = if cell == ScanCell::Lstm { &mut dc[i * hs..(i + 1) * hs] } else { &mut [] };
            if cell == ScanCell::Lstm {
                dc.iter_mut().zip(&g[cb + at * hs..cb + (at + 1) * hs]).for_each(|(a, v)| *a += v);
            }
            let dx = unsafe { std::slice::from_raw_parts_mut(dxg.at(at * gh), gh) };
            if keep.is_some_and(|k| !k[at]) {
                // A padded step: the state passed through, so does its gradient.
                dx.fill(0.0);
                if cell == ScanCell::Gru {
                    unsafe { std::slice::from_raw_parts_mut(dhg.at(at * gh), gh) }.fill(0.0);
                }
                continue;
            }
            let sv = &saved[at * kept..(at + 1) * kept];
            let hp = if s == 0 { &s0[r * hs..(r + 1) * hs] } else { &out[(at - 1) * hs..at * hs] };
            kernel::vectorized(|| match cell {
                ScanCell::Rnn => {
                    let h = &out[at * hs..(at + 1) * hs];
                    for j in 0..hs {
                        dx[j] = dh[j] * (1.0 - h[j] * h[j]);
                        dh[j] = 0.0;
                    }
                }
                ScanCell::Lstm => {
                    let c = &out[cb + at * hs..cb + (at + 1) * hs];
                    let cp = if s == 0 { &s0[(b + r) * hs..(b + r + 1) * hs] } else { &out[cb + (at - 1) * hs..cb + at * hs] };
                    let (si, rest) = sv.split_at(hs);
                    let (sf, rest) = rest.split_at(hs);
                    let (sg, so) = rest.split_at(hs);
                    let (di, rest) = dx.split_at_mut(hs);
                    let (df, rest) = rest.split_at_mut(hs);
                    let (dg, dout) = rest.split_at_mut(hs);
                    for j in 0..hs {
                        let (ig, fg, gg, og) = (si[j], sf[j], sg[j], so[j]);
                        let tc = tanh(c[j]);
                        let dcj = dc[j] + dh[j] * og * (1.0 - tc * tc);
                        dout[j] = dh[j] * tc * og * (1.0 - og);
                        di[j] = dcj * gg * ig * (1.0 - ig);
                        df[j] = dcj * cp[j] * fg * (1.0 - fg);
                        dg[j] = dcj * ig * (1.0 - gg * gg);
                        dc[j] = dcj * fg;
                        dh[j] = 0.0;
                    }
                }
                ScanCell::Gru => {
                    let dhgr = unsafe { std::slice::from_raw_parts_mut(dhg.at(at * gh), gh) };
                    let (sr, rest) = sv.split_at(hs);
                    let (sz, rest) = rest.split_at(hs);
                    let (sn, shn) = rest.split_at(hs);
                    for j in 0..hs {
                        let (r, z, n, hn) = (sr[j], sz[j], sn[j], shn[j]);
                        let dn = dh[j] * (1.0 - z) * (1.0 - n * n);
                        let dz = dh[j] * (hp[j] - n) * z * (1.0 - z);
                        let dr = dn * hn * r * (1.0 - r);
                        dx[j] = dr;
                        dx[hs + j] = dz;
                        dx[2 * hs + j] = dn;
                        dhgr[j] = dr;
                        dhgr[hs + j] = dz;
                        dhgr[2 * hs + j] = dn * r;
                        dh[j] *= z;
                    }
                }
            });
        }
        // dh_prev += dhg_s · W_hh: (m, gh) · (gh, hs); the rows of step s lie t·gh apart.
        let a = Mat { ptr: dhg.at((r0 * t + s) * gh), rs: (t * gh) as isize, cs: 1 };
        unsafe { sgemm(m, hs, gh, a, Mat::rows(w, hs), dh.as_mut_ptr(), hs, true, Parallelism::None) };
    }
    for i in 0..m {
        let r = r0 + i;
        unsafe { std::ptr::copy_nonoverlapping(dh[i * hs..].as_ptr(), ds0.at(r * hs), hs) };
        if cell == ScanCell::Lstm {
            unsafe { std::ptr::copy_nonoverlapping(dc[i * hs..].as_ptr(), ds0.at((b + r) * hs), hs) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{Device, Var, D};

    /// The composed candle cell, as `jielong_models::recurrent` writes it (the reference).
    fn reference(cell: ScanCell, xg: &Tensor, w: &Tensor, bias: &Tensor, h0: &Tensor, c0: &Tensor, keep: Option<&[bool]>) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = xg.dims3()?;
        let hs = h0.dim(1)?;
        let (mut h, mut c) = (h0.clone(), c0.clone());
        let mut outs = Vec::new();
        for s in 0..t {
            let x = xg.narrow(1, s, 1)?.squeeze(1)?;
            let hg = h.matmul(&w.t()?)?.broadcast_add(bias)?;
            let part = |t: &Tensor, k: usize| t.narrow(D::Minus1, k * hs, hs);
            let (h2, c2) = match cell {
                ScanCell::Rnn => ((x + hg)?.tanh()?, c.clone()),
                ScanCell::Lstm => {
                    let a = (x + hg)?;
                    let i = candle_nn::ops::sigmoid(&part(&a, 0)?)?;
                    let f = candle_nn::ops::sigmoid(&part(&a, 1)?)?;
                    let g = part(&a, 2)?.tanh()?;
                    let o = candle_nn::ops::sigmoid(&part(&a, 3)?)?;
                    let c2 = ((f * &c)? + (i * g)?)?;
                    ((o * c2.tanh()?)?, c2)
                }
                ScanCell::Gru => {
                    let r = candle_nn::ops::sigmoid(&(part(&x, 0)? + part(&hg, 0)?)?)?;
                    let z = candle_nn::ops::sigmoid(&(part(&x, 1)? + part(&hg, 1)?)?)?;
                    let n = (part(&x, 2)? + (r * part(&hg, 2)?)?)?.tanh()?;
                    ((&n + (z * (&h - &n)?)?)?, c.clone())
                }
            };
            match keep {
                None => (h, c) = (h2, c2),
                Some(k) => {
                    let m: Vec<f32> = (0..b).map(|r| if k[r * t + s] { 1.0 } else { 0.0 }).collect();
                    let m = Tensor::from_vec(m, (b, 1), xg.device())?;
                    h = (&h + m.broadcast_mul(&(h2 - &h)?)?)?;
                    c = (&c + m.broadcast_mul(&(c2 - &c)?)?)?;
                }
            }
            outs.push(h.clone());
        }
        Ok((Tensor::stack(&outs, 1)?, h, c))
    }

    /// Values, final states and the gradients of every input equal the composed cell's, for
    /// each cell, with and without padded steps, over more rows than threads (bands of rows).
    #[test]
    fn recurrent_scan_matches_the_composed_cells_values_and_grads() {
        let dev = Device::Cpu;
        let (b, t, hs) = (5, 7, 6);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for cell in [ScanCell::Rnn, ScanCell::Lstm, ScanCell::Gru] {
            for padded in [false, true] {
                let gh = cell.gates() * hs;
                let var = |shape: &[usize], seed: u64| {
                    let n: usize = shape.iter().product();
                    // Spread over (−1, 1) by a multiplicative hash, different per seed.
                    let v: Vec<f32> = (0..n as u64).map(|i| ((i * 2_654_435_761 + seed * 40_503) % 10_007) as f32 / 5003.5 - 1.0).collect();
                    Var::from_tensor(&Tensor::from_vec(v, shape, &dev).unwrap()).unwrap()
                };
                let (xg, w, bias, h0, c0) = (var(&[b, t, gh], 1), var(&[gh, hs], 2), var(&[gh], 3), var(&[b, hs], 4), var(&[b, hs], 5));
                // Row 1 ends after 3 steps, row 3 after 5; the others are full.
                let keep: Option<Vec<bool>> = padded.then(|| (0..b * t).map(|i| i % t < [t, 3, t, 5, t][i / t]).collect());
                let wo = var(&[b, t, hs], 6).as_tensor().clone();
                let (wh, wc) = (var(&[b, hs], 7).as_tensor().clone(), var(&[b, hs], 8).as_tensor().clone());
                // A scalar of every output, weighted so each element's gradient differs.
                let score = |o: &Tensor, h: &Tensor, c: Option<&Tensor>| -> Tensor {
                    let mut s = ((o * &wo).unwrap().sum_all().unwrap() + (h * &wh).unwrap().sum_all().unwrap()).unwrap();
                    if let Some(c) = c {
                        s = (s + (c * &wc).unwrap().sum_all().unwrap()).unwrap();
                    }
                    s
                };
                let lstm = cell == ScanCell::Lstm;
                let fused = pool.install(|| recurrent_scan(cell, xg.as_tensor(), w.as_tensor(), bias.as_tensor(), h0.as_tensor(), lstm.then_some(c0.as_tensor()), keep.clone()).unwrap());
                let (ro, rh, rc) = reference(cell, xg.as_tensor(), w.as_tensor(), bias.as_tensor(), h0.as_tensor(), c0.as_tensor(), keep.as_deref()).unwrap();
                let what = format!("{cell:?} padded {padded}");
                assert!(max_diff(&fused.outputs, &ro) < 1e-5, "{what}: outputs");
                assert!(max_diff(&fused.h, &rh) < 1e-5, "{what}: final h");
                if lstm {
                    assert!(max_diff(fused.c.as_ref().unwrap(), &rc) < 1e-5, "{what}: final c");
                }
                let g1 = pool.install(|| score(&fused.outputs, &fused.h, fused.c.as_ref()).backward().unwrap());
                let g2 = score(&ro, &rh, lstm.then_some(&rc)).backward().unwrap();
                let mut inputs = vec![("xg", &xg), ("w_hh", &w), ("b_hh", &bias), ("h0", &h0)];
                if lstm {
                    inputs.push(("c0", &c0));
                }
                for (name, v) in inputs {
                    let (a, r) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
                    let d = max_diff(a, r);
                    assert!(d < 2e-5, "{what}: gradient of {name} differs by {d}");
                }
            }
        }
    }

    #[test]
    fn recurrent_scan_rejects_mismatched_shapes() {
        let dev = Device::Cpu;
        let xg = Tensor::zeros((2, 3, 8), DType::F32, &dev).unwrap();
        let h0 = Tensor::zeros((2, 2), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((8, 2), DType::F32, &dev).unwrap();
        let b = Tensor::zeros(8, DType::F32, &dev).unwrap();
        let e = recurrent_scan(ScanCell::Gru, &xg, &w, &b, &h0, None, None).err().unwrap();
        assert!(e.to_string().contains("do not fit a Gru"), "{e}");
        let e = recurrent_scan(ScanCell::Lstm, &xg, &w, &b, &h0, None, None).err().unwrap();
        assert!(e.to_string().contains("needs its cell state"), "{e}");
        let e = recurrent_scan(ScanCell::Rnn, &xg.narrow(2, 0, 2).unwrap(), &w.narrow(0, 0, 2).unwrap(), &b.narrow(0, 0, 2).unwrap(), &h0, None, Some(vec![true; 5])).err().unwrap();
        assert!(e.to_string().contains("keep mask needs 6"), "{e}");
    }
}
