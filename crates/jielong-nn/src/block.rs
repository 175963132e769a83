//! One pre-norm transformer block (GPT-2 layout) as a single fused CPU op, forward and
//! backward:
//!
//! ```text
//! x1  = x  + c_proj(attention(c_attn(ln_1(x))))
//! out = x1 + mlp.c_proj(gelu(mlp.c_fc(ln_2(x1))))
//! ```
//!
//! Composed from the per-layer ops (linear, attention, GELU, layer norm, two residual adds),
//! a block is about ten nodes of candle's autograd graph, and candle's backward gives every
//! input of every node a freshly zero-filled gradient buffer and then adds the incoming
//! gradient into it: ≈ 15 M values (60 MB) of zero-fill and add per block at the medium
//! preset, ≈ 10% of a training step (BENCHMARKS.md, 2026-12-02). Here the whole block is one
//! node. Its backward runs the same slice-level kernels (`linear`, `flash`, `gelu`,
//! `layer_norm`) in reverse, adds the residual gradients on the way (the layer-norm backward
//! writes the stream's gradient as residual + its own), and writes every parameter gradient straight
//! into one packed buffer.
//!
//! The twelve parameters travel into the op as one packed vector (`Tensor::cat` of the
//! flattened tensors, so the model keeps its named parameters and checkpoints; the cat's
//! backward hands each parameter its slice). Activations the backward needs are kept inside
//! the op, as the graph would keep them. The reference is the composed path (see the test).

use crate::flash::{attention_backward, attention_into, kept_probs_len};
use crate::gelu::{gelu_backward_in_place, gelu_into};
use crate::kernel::{self, contiguous_f32};
use crate::layer_norm::{layer_norm_backward_into, layer_norm_into, Dx};
use crate::linear::{linear_add_into, linear_backward_into, linear_into, WeightLayout};
use crate::low_rank::{low_add_into, low_input, low_rank_backward};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// The parameters of one block, each (weight, bias); linear weights in (in, out) layout.
pub struct BlockWeights<'a> {
    pub ln_1: (&'a Tensor, &'a Tensor),
    pub c_attn: (&'a Tensor, &'a Tensor),
    pub attn_proj: (&'a Tensor, &'a Tensor),
    pub ln_2: (&'a Tensor, &'a Tensor),
    pub c_fc: (&'a Tensor, &'a Tensor),
    pub mlp_proj: (&'a Tensor, &'a Tensor),
}

impl BlockWeights<'_> {
    fn in_order(&self) -> [&Tensor; 12] {
        let s = self;
        [s.ln_1.0, s.ln_1.1, s.c_attn.0, s.c_attn.1, s.attn_proj.0, s.attn_proj.1, s.ln_2.0, s.ln_2.1, s.c_fc.0, s.c_fc.1, s.mlp_proj.0, s.mlp_proj.1]
    }
}

/// Sizes of the twelve packed parameters for width `c`, in `BlockWeights::in_order` order.
fn sizes(c: usize) -> [usize; 12] {
    [c, c, c * 3 * c, 3 * c, c * c, c, c, c, c * 4 * c, 4 * c, 4 * c * c, c]
}

fn split<T>(mut rest: &[T], c: usize) -> [&[T]; 12] {
    sizes(c).map(|n| {
        let (a, b) = rest.split_at(n);
        rest = b;
        a
    })
}

fn split_mut<T>(mut rest: &mut [T], c: usize) -> [&mut [T]; 12] {
    sizes(c).map(|n| {
        let (a, b) = std::mem::take(&mut rest).split_at_mut(n);
        rest = b;
        a
    })
}

/// Dropout multipliers (0 or 1/(1−p), one per element of the (b, t, c) stream) applied to the
/// attention projection's and the MLP projection's outputs before each residual add, as
/// `Dropout::mask` draws them.
pub struct BlockDropout {
    pub attn: Vec<f32>,
    pub mlp: Vec<f32>,
}

/// A LoRA adapter on one of the block's linear layers: the layer's output gains
/// `scale·(x·Aᵀ)·Bᵀ` (PEFT's layer-level form), A (r, in) and B (out, r) as PEFT stores them.
/// Over a frozen base the backward then computes the adapters' thin gradients and no product
/// the size of a weight.
#[derive(Clone, Copy)]
pub struct BlockAdapter<'a> {
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub scale: f64,
}

/// (in, out) of the four linear layers (c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj).
fn linear_dims(c: usize) -> [(usize, usize); 4] {
    [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)]
}

/// `x` (b, t, c) → the block's output (b, t, c), fused on CPU f32, with optional dropout
/// masks. The caller keeps the composed path for other devices, RoPE and bias-free models.
pub fn transformer_block(x: &Tensor, w: &BlockWeights, n_head: usize, eps: f64, dropout: Option<BlockDropout>) -> Result<Tensor> {
    transformer_block_adapted(x, w, n_head, eps, dropout, [None; 4])
}

/// [`transformer_block`] with LoRA adapters on any of its four linear layers (c_attn,
/// attn.c_proj, mlp.c_fc, mlp.c_proj, in that order).
pub fn transformer_block_adapted(x: &Tensor, w: &BlockWeights, n_head: usize, eps: f64, dropout: Option<BlockDropout>, adapters: [Option<BlockAdapter>; 4]) -> Result<Tensor> {
    let (_, _, c) = x.dims3()?;
    if x.dtype() != DType::F32 || !x.device().is_cpu() {
        candle_core::bail!("the fused transformer block runs on CPU f32 only");
    }
    if n_head == 0 || c % n_head != 0 {
        candle_core::bail!("transformer block: n_embd {c} is not a multiple of n_head {n_head}");
    }
    let (trained, packed) = pack_params(x, w.in_order(), sizes(c), dropout.as_ref(), "transformer block", &format!("n_embd {c}"))?;
    let (ranks, lora) = pack_adapters(&adapters, linear_dims(c), x.device(), "transformer block")?;
    x.contiguous()?.apply_op3(&packed, &lora, BlockOp { n_head, eps: eps as f32, dropout, trained, ranks, saved: Mutex::new(None) })
}

/// A fused op's parameters checked against their expected `sizes` (`dims` says what those
/// follow from, for the error) and packed into one vector (`Tensor::cat` of the flattened
/// tensors: its backward hands each parameter its slice), with which of them take part in the
/// graph; the dropout masks, if any, checked to have one value per element of `x`.
pub(crate) fn pack_params<const N: usize>(x: &Tensor, params: [&Tensor; N], sizes: [usize; N], dropout: Option<&BlockDropout>, what: &str, dims: &str) -> Result<([bool; N], Tensor)> {
    for (p, n) in params.iter().zip(sizes) {
        if p.elem_count() != n {
            candle_core::bail!("{what}: a parameter has {} values, expected {n} for {dims}", p.elem_count());
        }
    }
    if let Some(d) = dropout {
        if d.attn.len() != x.elem_count() || d.mlp.len() != x.elem_count() {
            candle_core::bail!("{what}: dropout masks must have one value per input element ({})", x.elem_count());
        }
    }
    let flat = params.iter().map(|p| p.flatten_all()).collect::<Result<Vec<_>>>()?;
    Ok((params.map(Tensor::track_op), Tensor::cat(&flat, 0)?))
}

/// Each adapted linear layer's (rank, scale), in layer order.
pub(crate) type Ranks = [Option<(usize, f32)>; 4];

/// The adapters of a fused op's four linear layers (`dims`: each one's (in, out)) packed
/// into one vector, A then B of each adapted layer in layer order, with each one's (rank,
/// scale); a one-value placeholder when there are none.
pub(crate) fn pack_adapters(adapters: &[Option<BlockAdapter>; 4], dims: [(usize, usize); 4], dev: &candle_core::Device, what: &str) -> Result<(Ranks, Tensor)> {
    let mut ranks = [None; 4];
    let mut flat = Vec::new();
    for (j, (ad, (n_in, n_out))) in adapters.iter().zip(dims).enumerate() {
        let Some(ad) = ad else { continue };
        let (r, a_in) = ad.a.dims2()?;
        if a_in != n_in || ad.b.dims2()? != (n_out, r) || r == 0 {
            candle_core::bail!("{what}: adapter {j} is A {:?}, B {:?}; expected ({r}, {n_in}) and ({n_out}, {r})", ad.a.dims(), ad.b.dims());
        }
        ranks[j] = Some((r, ad.scale as f32));
        flat.push(ad.a.flatten_all()?);
        flat.push(ad.b.flatten_all()?);
    }
    let packed = if flat.is_empty() { Tensor::zeros(1, DType::F32, dev)? } else { Tensor::cat(&flat, 0)? };
    Ok((ranks, packed))
}

/// The adapters' gradient slots (dA, dB) in `dl`, packed as [`pack_adapters`] packs them.
pub(crate) fn adapter_grads<'a>(dl: &'a mut [f32], ranks: &[Option<(usize, f32)>; 4], dims: [(usize, usize); 4]) -> [Option<(&'a mut [f32], &'a mut [f32])>; 4] {
    let mut d_ad: [Option<(&mut [f32], &mut [f32])>; 4] = [None, None, None, None];
    let mut rest = dl;
    for (j, (n_in, n_out)) in dims.into_iter().enumerate() {
        if let Some((r, _)) = ranks[j] {
            let (da, tail) = std::mem::take(&mut rest).split_at_mut(r * n_in);
            let (db, tail) = tail.split_at_mut(n_out * r);
            d_ad[j] = Some((da, db));
            rest = tail;
        }
    }
    d_ad
}

/// What the forward keeps for the backward, each (rows, width) row-major.
struct Saved {
    ln1: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    /// Attention probabilities, kept when they are no larger than `pre` (about h·t ≤ 8c),
    /// so keeping them at most doubles the MLP's saved activation; else recomputed.
    probs: Option<Vec<f32>>,
    x1: Vec<f32>,
    ln2: Vec<f32>,
    pre: Vec<f32>,
    act: Vec<f32>,
    /// Each adapted layer's `scale·(x·Aᵀ)` (rows, r).
    lows: [Option<Vec<f32>>; 4],
}

struct BlockOp {
    n_head: usize,
    eps: f32,
    dropout: Option<BlockDropout>,
    /// Which of the twelve parameters take part in the graph (`Tensor::track_op`, in
    /// `BlockWeights::in_order` order): a frozen linear weight (LoRA, prefix or prompt tuning
    /// over a detached base) costs no dW product in backward; its slice of the packed
    /// gradient is zero, and none is returned when no parameter is tracked.
    trained: [bool; 12],
    /// (rank, scale) of each linear layer's adapter.
    ranks: [Option<(usize, f32)>; 4],
    saved: Mutex<Option<Saved>>,
}

/// The adapters' A and B slices in the packed adapter vector, per linear layer.
pub(crate) fn adapter_slices<'a>(lora: &'a [f32], ranks: &[Option<(usize, f32)>; 4], dims: [(usize, usize); 4]) -> [Option<(&'a [f32], &'a [f32])>; 4] {
    let mut rest = lora;
    let mut out = [None; 4];
    for (j, (n_in, n_out)) in dims.into_iter().enumerate() {
        if let Some((r, _)) = ranks[j] {
            let (a, tail) = rest.split_at(r * n_in);
            let (b, tail) = tail.split_at(n_out * r);
            out[j] = Some((a, b));
            rest = tail;
        }
    }
    out
}

/// out = x + m ⊙ y, element-wise; every element written.
pub(crate) fn residual_plus_masked(x: &[f32], y: &[f32], m: &[f32], out: &mut [f32]) {
    const CHUNK: usize = 16 * 1024;
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK).zip(m.par_chunks(CHUNK)))).for_each(|(o, (x, (y, m)))| {
        kernel::vectorized(|| {
            for i in 0..o.len() {
                o[i] = x[i] + m[i] * y[i];
            }
        })
    });
}

/// A weight's slot in a fused op's packed gradient: itself when the weight is trained, else
/// zeroed and None (its dW product is skipped).
pub(crate) fn weight_grad(d: &mut [f32], trained: bool) -> Option<&mut [f32]> {
    if trained {
        Some(d)
    } else {
        d.fill(0.0);
        None
    }
}

/// g ⊙ m, element-wise: the gradient through a dropout multiplier.
pub(crate) fn masked(g: &[f32], m: &[f32]) -> Vec<f32> {
    let mut out = kernel::uninit_f32(g.len());
    out.par_chunks_mut(16 * 1024).zip(g.par_chunks(16 * 1024).zip(m.par_chunks(16 * 1024))).for_each(|(o, (g, m))| {
        kernel::vectorized(|| o.iter_mut().zip(g.iter().zip(m)).for_each(|(o, (g, m))| *o = g * m))
    });
    out
}

/// x + (a·W + b), or x + m ⊙ (a·W + b) under dropout, into `out` (written whole); `b` may be
/// absent (Llama) and `W` in either layout.
#[allow(clippy::too_many_arguments)]
pub(crate) fn residual_linear(x: &[f32], a: &[f32], w: &[f32], b: Option<&[f32]>, n_in: usize, n_out: usize, layout: WeightLayout, mask: Option<&[f32]>, out: &mut [f32]) {
    residual_linear_low(x, a, w, b, n_in, n_out, layout, mask, None, out)
}

/// [`residual_linear`] whose linear layer also adds a low-rank term `h·Bᵀ` (h (rows, r) the
/// scaled adapter input, B (n_out, r)).
#[allow(clippy::too_many_arguments)]
pub(crate) fn residual_linear_low(x: &[f32], a: &[f32], w: &[f32], b: Option<&[f32]>, n_in: usize, n_out: usize, layout: WeightLayout, mask: Option<&[f32]>, low: Option<(&[f32], &[f32], usize)>, out: &mut [f32]) {
    let add_low = |y: &mut [f32]| {
        if let Some((h, bm, r)) = low {
            low_add_into(h, bm, r, n_out, y);
        }
    };
    match mask {
        None => {
            match b {
                Some(b) => residual_plus_bias(x, b, out),
                None => out.par_chunks_mut(16 * 1024).zip(x.par_chunks(16 * 1024)).for_each(|(o, x)| o.copy_from_slice(x)),
            }
            linear_add_into(a, w, n_in, n_out, layout, out, true);
            add_low(out);
        }
        Some(m) => {
            let mut y = kernel::uninit_f32(out.len());
            linear_into(a, w, b, n_in, n_out, layout, &mut y);
            add_low(&mut y);
            residual_plus_masked(x, &y, m, out);
        }
    }
}

/// out = x + b, row by row; every element written.
fn residual_plus_bias(x: &[f32], b: &[f32], out: &mut [f32]) {
    let c = b.len();
    out.par_chunks_mut(c * 256).zip(x.par_chunks(c * 256)).for_each(|(o, x)| {
        kernel::vectorized(|| {
            for (o, x) in o.chunks_mut(c).zip(x.chunks(c)) {
                for j in 0..c {
                    o[j] = x[j] + b[j];
                }
            }
        })
    });
}

impl CustomOp3 for BlockOp {
    fn name(&self) -> &'static str {
        "jielong-transformer-block"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "block input")?;
        let p = contiguous_f32(s2, l2, "block parameters")?;
        let lp = contiguous_f32(s3, l3, "block adapters")?;
        let (b, t, c) = l1.shape().dims3()?;
        let rows = b * t;
        let [ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, mproj_w, mproj_b] = split(p, c);
        let ad = adapter_slices(lp, &self.ranks, linear_dims(c));
        let dims = linear_dims(c);
        let mut lows: [Option<Vec<f32>>; 4] = [None, None, None, None];
        // Every buffer below is written whole before it is read (see each kernel).
        let mut ln1 = kernel::uninit_f32(rows * c);
        layer_norm_into(x, ln1_w, ln1_b, self.eps, &mut ln1);
        let mut qkv = kernel::uninit_f32(rows * 3 * c);
        linear_into(&ln1, attn_w, Some(attn_b), c, 3 * c, WeightLayout::InOut, &mut qkv);
        if let (Some((a, bm)), Some((r, scale))) = (ad[0], self.ranks[0]) {
            let h = low_input(&ln1, a, c, r, scale);
            low_add_into(&h, bm, r, dims[0].1, &mut qkv);
            lows[0] = Some(h);
        }
        let mut attn = kernel::uninit_f32(rows * c);
        // Written whole by the forward when kept.
        let n_probs = kept_probs_len(b, t, self.n_head);
        let mut probs = (n_probs <= rows * 4 * c).then(|| kernel::uninit_f32(n_probs));
        attention_into(&qkv, b, t, c, self.n_head, &mut attn, probs.as_deref_mut());
        let (m_attn, m_mlp) = match &self.dropout {
            Some(d) => (Some(&d.attn[..]), Some(&d.mlp[..])),
            None => (None, None),
        };
        if let (Some((a, _)), Some((r, scale))) = (ad[1], self.ranks[1]) {
            lows[1] = Some(low_input(&attn, a, c, r, scale));
        }
        let mut x1 = kernel::uninit_f32(rows * c);
        let low1 = lows[1].as_deref().zip(ad[1]).zip(self.ranks[1]).map(|((h, (_, bm)), (r, _))| (h, bm, r));
        residual_linear_low(x, &attn, proj_w, Some(proj_b), c, c, WeightLayout::InOut, m_attn, low1, &mut x1);
        let mut ln2 = kernel::uninit_f32(rows * c);
        layer_norm_into(&x1, ln2_w, ln2_b, self.eps, &mut ln2);
        let mut pre = kernel::uninit_f32(rows * 4 * c);
        linear_into(&ln2, fc_w, Some(fc_b), c, 4 * c, WeightLayout::InOut, &mut pre);
        if let (Some((a, bm)), Some((r, scale))) = (ad[2], self.ranks[2]) {
            let h = low_input(&ln2, a, c, r, scale);
            low_add_into(&h, bm, r, dims[2].1, &mut pre);
            lows[2] = Some(h);
        }
        let mut act = kernel::uninit_f32(rows * 4 * c);
        gelu_into(&pre, &mut act);
        if let (Some((a, _)), Some((r, scale))) = (ad[3], self.ranks[3]) {
            lows[3] = Some(low_input(&act, a, 4 * c, r, scale));
        }
        let mut out = kernel::uninit_f32(rows * c);
        let low3 = lows[3].as_deref().zip(ad[3]).zip(self.ranks[3]).map(|((h, (_, bm)), (r, _))| (h, bm, r));
        residual_linear_low(&x1, &act, mproj_w, Some(mproj_b), 4 * c, c, WeightLayout::InOut, m_mlp, low3, &mut out);
        *self.saved.lock().expect("block state lock") = Some(Saved { ln1, qkv, attn, probs, x1, ln2, pre, act, lows });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, p: &Tensor, lora: &Tensor, _res: &Tensor, dout: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dout = dout.contiguous()?;
        let (b, t, c) = x.dims3()?;
        let rows = b * t;
        let guard = self.saved.lock().expect("block state lock");
        let Some(s) = guard.as_ref() else { candle_core::bail!("transformer block: backward without a forward") };
        let (dx, dp, dl) = kernel::with_f32([(x, "block input"), (p, "block parameters"), (lora, "block adapters"), (&dout, "block gradient")], |[xd, pd, lp, g]| {
            let [ln1_w, _, attn_w, _, proj_w, _, ln2_w, _, fc_w, _, mproj_w, _] = split(pd, c);
            // Every parameter gradient is overwritten below (products with accumulate = false,
            // column sums, the norms' sums).
            let mut dp = kernel::uninit_f32(pd.len());
            let [d_ln1_w, d_ln1_b, d_attn_w, d_attn_b, d_proj_w, d_proj_b, d_ln2_w, d_ln2_b, d_fc_w, d_fc_b, d_mproj_w, d_mproj_b] = split_mut(&mut dp, c);
            // The norms' (dw, db) pairs sit next to each other in the packing.
            let d_ln1 = join(d_ln1_w, d_ln1_b);
            let d_ln2 = join(d_ln2_w, d_ln2_b);
            let tr = self.trained;
            let dw = |d, i: usize| weight_grad(d, tr[i]);
            // The adapters' gradients, packed as they are (each A and B overwritten below).
            let ad = adapter_slices(lp, &self.ranks, linear_dims(c));
            let dims = linear_dims(c);
            let mut dl = vec![0f32; if self.ranks.iter().any(Option::is_some) { lp.len() } else { 0 }];
            let [d_ad0, d_ad1, d_ad2, d_ad3] = adapter_grads(&mut dl, &self.ranks, dims);
            // Adapter j's backward at its layer's input `xin` and upstream `up`, into `dxin`.
            let lora_bwd = |j: usize, xin: &[f32], up: &[f32], d: Option<(&mut [f32], &mut [f32])>, dxin: &mut [f32]| {
                if let (Some(h), Some(w), Some(rs), Some(d)) = (s.lows[j].as_deref(), ad[j], self.ranks[j], d) {
                    low_rank_backward(xin, h, w, up, dims[j].0, dims[j].1, rs, d, Some(dxin), true);
                }
            };

            // MLP: out = x1 + m ⊙ (act·W + b); without dropout m = 1.
            let g_mlp = self.dropout.as_ref().map(|d| masked(g, &d.mlp));
            let up = g_mlp.as_deref().unwrap_or(g);
            let mut dh = kernel::uninit_f32(rows * 4 * c);
            linear_backward_into(&s.act, mproj_w, up, 4 * c, c, WeightLayout::InOut, &mut dh, false, dw(d_mproj_w, 10), Some(d_mproj_b));
            lora_bwd(3, &s.act, up, d_ad3, &mut dh);
            gelu_backward_in_place(&s.pre, &mut dh);
            let mut dln = kernel::uninit_f32(rows * c);
            linear_backward_into(&s.ln2, fc_w, &dh, c, 4 * c, WeightLayout::InOut, &mut dln, false, dw(d_fc_w, 8), Some(d_fc_b));
            lora_bwd(2, &s.ln2, &dh, d_ad2, &mut dln);
            drop(dh);
            // dx1 = dout (the residual) + ln_2's backward, written whole in one parallel pass.
            let mut dx = kernel::uninit_f32(rows * c);
            layer_norm_backward_into(&s.x1, ln2_w, &dln, self.eps, &mut dx, Dx::Plus(g), d_ln2);
            // Attention: x1 = x + m ⊙ (attn·W + b).
            let dx_attn = self.dropout.as_ref().map(|d| masked(&dx, &d.attn));
            let up = dx_attn.as_deref().unwrap_or(&dx);
            linear_backward_into(&s.attn, proj_w, up, c, c, WeightLayout::InOut, &mut dln, false, dw(d_proj_w, 4), Some(d_proj_b));
            lora_bwd(1, &s.attn, up, d_ad1, &mut dln);
            let dqkv = attention_backward(&s.qkv, &s.attn, &dln, b, t, c, self.n_head, s.probs.as_deref());
            linear_backward_into(&s.ln1, attn_w, &dqkv, c, 3 * c, WeightLayout::InOut, &mut dln, false, dw(d_attn_w, 2), Some(d_attn_b));
            lora_bwd(0, &s.ln1, &dqkv, d_ad0, &mut dln);
            // dx = dx1 + ln_1's backward.
            layer_norm_backward_into(xd, ln1_w, &dln, self.eps, &mut dx, Dx::Add, d_ln1);
            Ok((dx, dp, dl))
        })?;
        let dev = x.device();
        let dp = if p.track_op() { Some(Tensor::from_vec(dp, p.shape(), dev)?) } else { None };
        let dl = if lora.track_op() && !dl.is_empty() { Some(Tensor::from_vec(dl, lora.shape(), dev)?) } else { None };
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), dp, dl))
    }
}

/// Two slices that are adjacent in memory (`a` immediately followed by `b`), as one.
fn join<'a>(a: &'a mut [f32], b: &'a mut [f32]) -> &'a mut [f32] {
    let (pa, la) = (a.as_mut_ptr(), a.len());
    assert!(std::ptr::eq(pa.wrapping_add(la), b.as_ptr()), "join: slices are not adjacent");
    // SAFETY: both borrows are exclusive, come from one allocation, and `b` starts where `a`
    // ends (checked above), so the union is one valid exclusive slice for the same lifetime.
    unsafe { std::slice::from_raw_parts_mut(pa, la + b.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{layer_norm_ref, max_abs, max_diff};
    use crate::{causal_attention_packed, gelu::gelu, linear, WeightLayout};
    use candle_core::{Device, Var};

    /// The block composed from the per-layer ops, each with candle's autograd between them.
    fn composed(x: &Tensor, w: &BlockWeights, h: usize, eps: f64, masks: Option<&(Tensor, Tensor)>) -> Tensor {
        let lin = |x: &Tensor, (w, b): (&Tensor, &Tensor)| linear(x, w, Some(b), WeightLayout::InOut).unwrap();
        let drop = |y: Tensor, i: usize| match masks {
            Some(m) => (y * if i == 0 { &m.0 } else { &m.1 }).unwrap(),
            None => y,
        };
        let qkv = lin(&layer_norm_ref(x, w.ln_1.0, w.ln_1.1, eps), w.c_attn);
        let x1 = (x + drop(lin(&causal_attention_packed(&qkv, h).unwrap(), w.attn_proj), 0)).unwrap();
        let hid = gelu(&lin(&layer_norm_ref(&x1, w.ln_2.0, w.ln_2.1, eps), w.c_fc)).unwrap();
        (&x1 + drop(lin(&hid, w.mlp_proj), 1)).unwrap()
    }

    #[test]
    fn fused_block_matches_composed_block_values_and_gradients() {
        let dev = Device::Cpu;
        // Attention keeps its probabilities for backward at the first and last shapes and
        // recomputes them at the others (h·t large against n_embd).
        for (b, t, h, d, p) in [(2, 5, 2, 4, 0.0), (3, 70, 3, 8, 0.0), (1, 130, 4, 16, 0.0), (2, 33, 2, 8, 0.25), (4, 20, 2, 16, 0.1)] {
            let c = h * d;
            let rnd = |shape: &[usize], std: f64| Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape, &dev).unwrap() * std).unwrap()).unwrap();
            let x = rnd(&[b, t, c], 1.0);
            let ps: Vec<Var> = [
                (vec![c], 0.3),
                (vec![c], 0.3),
                (vec![c, 3 * c], 0.2),
                (vec![3 * c], 0.1),
                (vec![c, c], 0.2),
                (vec![c], 0.1),
                (vec![c], 0.3),
                (vec![c], 0.3),
                (vec![c, 4 * c], 0.2),
                (vec![4 * c], 0.1),
                (vec![4 * c, c], 0.2),
                (vec![c], 0.1),
            ]
            .into_iter()
            .map(|(s, std)| rnd(&s, std))
            .collect();
            // Norm scales around 1.
            let ln1_w = (ps[0].as_tensor() + 1.0).unwrap();
            let ln2_w = (ps[6].as_tensor() + 1.0).unwrap();
            let t_ = |i: usize| ps[i].as_tensor();
            let w = BlockWeights {
                ln_1: (&ln1_w, t_(1)),
                c_attn: (t_(2), t_(3)),
                attn_proj: (t_(4), t_(5)),
                ln_2: (&ln2_w, t_(7)),
                c_fc: (t_(8), t_(9)),
                mlp_proj: (t_(10), t_(11)),
            };
            let r = Tensor::randn(0f32, 1.0, (b, t, c), &dev).unwrap();
            let drop = crate::Dropout { p };
            let src = |site| Some(crate::MaskSource { seed: 7, site, first_row: 0 });
            let masks = (drop.mask(b, t * c, src(0)), drop.mask(b, t * c, src(1)));
            let dropout = masks.0.clone().zip(masks.1.clone()).map(|(attn, mlp)| BlockDropout { attn, mlp });
            let mask_tensors = masks.0.zip(masks.1).map(|(a, m)| (Tensor::from_vec(a, (b, t, c), &dev).unwrap(), Tensor::from_vec(m, (b, t, c), &dev).unwrap()));
            let fused = transformer_block(x.as_tensor(), &w, h, 1e-5, dropout).unwrap();
            let refr = composed(x.as_tensor(), &w, h, 1e-5, mask_tensors.as_ref());
            let dv = max_diff(&fused, &refr);
            assert!(dv < 1e-4, "values differ by {dv} at b{b} t{t} h{h} d{d} p{p}");
            let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in std::iter::once(("x", &x)).chain(ps.iter().enumerate().map(|(i, v)| (["ln_1.w", "ln_1.b", "c_attn.w", "c_attn.b", "attn.c_proj.w", "attn.c_proj.b", "ln_2.w", "ln_2.b", "c_fc.w", "c_fc.b", "mlp.c_proj.w", "mlp.c_proj.b"][i], v))) {
                let (a, e) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                assert_eq!(a.dims(), e.dims(), "{name}");
                let (dg, scale) = (max_diff(a, e), max_abs(e));
                assert!(dg <= 2e-5 * scale.max(1.0), "d{name} differs by {dg} (scale {scale}) at b{b} t{t} h{h} d{d} p{p}");
            }
        }
    }

    /// A frozen base (detached weights, as LoRA and prefix runs load it): the gradients that
    /// remain (the input's, and a weight's still tracked) are the same values the fully tracked
    /// block gives, and an all-frozen block returns no parameter gradient at all.
    #[test]
    fn fused_block_with_frozen_weights_gives_the_same_remaining_gradients() {
        let dev = Device::Cpu;
        let (b, t, h, c) = (2, 9, 2, 8);
        let rnd = |shape: &[usize], std: f64| Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape, &dev).unwrap() * std).unwrap()).unwrap();
        let x = rnd(&[b, t, c], 1.0);
        let ps: Vec<Var> = sizes(c).iter().map(|&n| rnd(&[n], 0.2)).collect();
        let shapes: [&[usize]; 12] = [&[c], &[c], &[c, 3 * c], &[3 * c], &[c, c], &[c], &[c], &[c], &[c, 4 * c], &[4 * c], &[4 * c, c], &[c]];
        let r = Tensor::randn(0f32, 1.0, (b, t, c), &dev).unwrap();
        // keep: which parameters stay tracked (the rest are detached views).
        let run = |keep: &dyn Fn(usize) -> bool| {
            let ts: Vec<Tensor> = ps.iter().enumerate().map(|(i, v)| {
                let t = v.as_tensor().reshape(shapes[i]).unwrap();
                if keep(i) { t } else { t.detach() }
            }).collect();
            let w = BlockWeights { ln_1: (&ts[0], &ts[1]), c_attn: (&ts[2], &ts[3]), attn_proj: (&ts[4], &ts[5]), ln_2: (&ts[6], &ts[7]), c_fc: (&ts[8], &ts[9]), mlp_proj: (&ts[10], &ts[11]) };
            let y = transformer_block(x.as_tensor(), &w, h, 1e-5, None).unwrap();
            (y * &r).unwrap().sum_all().unwrap().backward().unwrap()
        };
        let all = run(&|_| true);
        let some = run(&|i| i == 2);
        let none = run(&|_| false);
        let g = |s: &candle_core::backprop::GradStore, v: &Var| s.get(v.as_tensor()).map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(g(&some, &x), g(&all, &x), "dx with c_attn alone tracked");
        assert_eq!(g(&none, &x), g(&all, &x), "dx with every weight frozen");
        assert_eq!(g(&some, &ps[2]), g(&all, &ps[2]), "dc_attn.w");
        assert!(g(&all, &ps[8]).is_some() && g(&some, &ps[8]).is_none() && g(&none, &ps[2]).is_none(), "a frozen weight got a gradient");
    }

    /// LoRA inside the fused block (a low-rank term on each adapted layer, the base detached)
    /// against the block computing with the adapted weights `W + s·(B·A)ᵀ` through the composed
    /// path: equal outputs, equal gradients for the input and every A and B, none for the base.
    #[test]
    fn fused_block_with_adapters_matches_the_adapted_weights() {
        let dev = Device::Cpu;
        for (b, t, h, d, p, which) in [(2, 7, 2, 4, 0.0, [true, true, true, true]), (1, 20, 2, 8, 0.2, [true, false, false, true]), (3, 5, 2, 4, 0.0, [false, true, true, false])] {
            let c = h * d;
            let rnd = |shape: &[usize], std: f64| Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape, &dev).unwrap() * std).unwrap()).unwrap();
            let x = rnd(&[b, t, c], 1.0);
            let shapes: [&[usize]; 12] = [&[c], &[c], &[c, 3 * c], &[3 * c], &[c, c], &[c], &[c], &[c], &[c, 4 * c], &[4 * c], &[4 * c, c], &[c]];
            let ps: Vec<Tensor> = shapes.iter().enumerate().map(|(i, s)| {
                let t = Tensor::randn(0f32, 0.2, *s, &dev).unwrap();
                if i == 0 || i == 6 { (t + 1.0).unwrap() } else { t }
            }).collect();
            let r = 3;
            let scale = 16.0 / r as f64;
            let ab: Vec<Option<(Var, Var)>> = linear_dims(c).iter().zip(which).map(|(&(n_in, n_out), on)| on.then(|| (rnd(&[r, n_in], 0.3), rnd(&[n_out, r], 0.3)))).collect();
            let masks = {
                let drop = crate::Dropout { p };
                let src = |site| Some(crate::MaskSource { seed: 3, site, first_row: 0 });
                drop.mask(b, t * c, src(0)).zip(drop.mask(b, t * c, src(1)))
            };
            let rg = Tensor::randn(0f32, 1.0, (b, t, c), &dev).unwrap();
            let base = |i: usize| ps[i].detach();
            let (w0, w1, w2, w3) = (base(2), base(4), base(8), base(10));
            let (l0, l1, l2, l3) = (base(0), base(1), base(6), base(7));
            let (b0, b1, b2, b3) = (base(3), base(5), base(9), base(11));
            // Fused, with the adapters.
            let adapters: Vec<Option<BlockAdapter>> = ab.iter().map(|o| o.as_ref().map(|(a, bm)| BlockAdapter { a: a.as_tensor(), b: bm.as_tensor(), scale })).collect();
            let w = BlockWeights { ln_1: (&l0, &l1), c_attn: (&w0, &b0), attn_proj: (&w1, &b1), ln_2: (&l2, &l3), c_fc: (&w2, &b2), mlp_proj: (&w3, &b3) };
            let dropout = masks.clone().map(|(attn, mlp)| BlockDropout { attn, mlp });
            let fused = transformer_block_adapted(x.as_tensor(), &w, h, 1e-5, dropout, [adapters[0], adapters[1], adapters[2], adapters[3]]).unwrap();
            // Reference: the adapted weights (in, out) = W + s·(B·A)ᵀ through the composed block.
            let eff = |j: usize, wj: &Tensor| match &ab[j] {
                Some((a, bm)) => (wj + (bm.as_tensor().matmul(a.as_tensor()).unwrap().t().unwrap() * scale).unwrap()).unwrap(),
                None => wj.clone(),
            };
            let (e0, e1, e2, e3) = (eff(0, &w0), eff(1, &w1), eff(2, &w2), eff(3, &w3));
            let we = BlockWeights { ln_1: (&l0, &l1), c_attn: (&e0, &b0), attn_proj: (&e1, &b1), ln_2: (&l2, &l3), c_fc: (&e2, &b2), mlp_proj: (&e3, &b3) };
            let mask_tensors = masks.map(|(a, m)| (Tensor::from_vec(a, (b, t, c), &dev).unwrap(), Tensor::from_vec(m, (b, t, c), &dev).unwrap()));
            let refr = composed(x.as_tensor(), &we, h, 1e-5, mask_tensors.as_ref());
            let dv = max_diff(&fused, &refr);
            // Relative to the stream's size (|values| reach 20–45 here; two summation orders
            // differ by a few units in the last place of that, up to ≈ 1e-4 absolute).
            let scale = max_abs(&refr).max(1.0);
            assert!(dv <= 1e-5 * scale, "values differ by {dv} (scale {scale}) ({which:?}, p {p})");
            let ga = (fused * &rg).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &rg).unwrap().sum_all().unwrap().backward().unwrap();
            let mut vars = vec![("x", &x)];
            for (j, o) in ab.iter().enumerate() {
                if let Some((a, bm)) = o {
                    vars.push((["A0", "A1", "A2", "A3"][j], a));
                    vars.push((["B0", "B1", "B2", "B3"][j], bm));
                }
            }
            for (name, v) in vars {
                let (a, e) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                let (dg, sc) = (max_diff(a, e), max_abs(e));
                assert!(dg <= 2e-5 * sc.max(1.0), "d{name} differs by {dg} (scale {sc}) with adapters {which:?}, p {p}");
            }
            assert!(ga.get(&w0).is_none() && ga.get(&w2).is_none(), "the detached base got a gradient");
        }
    }

    #[test]
    fn fused_block_names_a_parameter_of_the_wrong_size() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 3, 8), DType::F32, &dev).unwrap();
        let v = |n: usize| Tensor::zeros(n, DType::F32, &dev).unwrap();
        let (small, m3, m1, m4, m4t) = (v(8), v(8 * 24), v(64), v(8 * 32), v(31));
        let (b3, b4) = (v(24), v(32));
        let w = BlockWeights { ln_1: (&small, &small), c_attn: (&m3, &b3), attn_proj: (&m1, &small), ln_2: (&small, &small), c_fc: (&m4, &b4), mlp_proj: (&m4t, &small) };
        let err = transformer_block(&x, &w, 2, 1e-5, None).unwrap_err().to_string();
        assert!(err.contains("31 values") && err.contains("expected 256"), "{err}");
    }
}
