//! One post-LN encoder layer (BERT, ALBERT) as a single fused CPU op, forward and backward:
//!
//! ```text
//! s1  = x + m1 ⊙ (attention(x·Wqkvᵀ + bqkv, mask)·Woᵀ + bo)     h   = LN_1(s1)
//! s2  = h + m2 ⊙ (gelu(h·Wiᵀ + bi)·W2ᵀ + b2)                      out = LN_2(s2)
//! ```
//!
//! The same design as GPT's fused block ([`crate::block`]): composed from the per-layer ops
//! (linear, attention, dropout, residual add, layer norm, GELU) a layer is about a dozen nodes
//! of candle's autograd graph, each input of each giving the backward a zero-filled gradient
//! buffer to add into; here the layer is one node whose backward runs the same slice-level
//! kernels (`linear`, `encoder_attention`, `gelu`, `layer_norm`) in reverse and writes every
//! parameter gradient into one packed buffer. The weights stay in `nn.Linear`'s (out, in)
//! layout, as the checkpoints hold them; query, key and value travel next to each other in
//! the packing, which makes them the one (3c, c) projection. LoRA adapters (on the packed
//! projection, the attention output and the feed-forward's two layers) add their low-rank
//! terms inside the op, so over a frozen base no weight-sized gradient is computed. The
//! reference is the composed layer (see the tests, and `jielong_models`' BERT tests).

use crate::block::{adapter_grads, adapter_slices, masked, pack_adapters, pack_params, residual_linear_low, weight_grad, BlockAdapter, BlockDropout};
use crate::encoder_attention::{Dims, EncoderAttention};
use crate::gelu::{gelu_kind_backward_in_place, gelu_kind_into};
use crate::kernel::{self, contiguous_f32};
use crate::layer_norm::{layer_norm_backward_into, layer_norm_into, Dx};
use crate::linear::{linear_backward_into, linear_dw_into, linear_into, column_sums, WeightLayout};
use crate::low_rank::{low_add_into, low_input, low_rank_backward};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// A post-LN layer's parameters, each (weight, bias), linear weights (out, in).
pub struct EncoderLayerWeights<'a> {
    pub query: (&'a Tensor, &'a Tensor),
    pub key: (&'a Tensor, &'a Tensor),
    pub value: (&'a Tensor, &'a Tensor),
    pub attn_out: (&'a Tensor, &'a Tensor),
    pub attn_ln: (&'a Tensor, &'a Tensor),
    pub inter: (&'a Tensor, &'a Tensor),
    pub out: (&'a Tensor, &'a Tensor),
    pub out_ln: (&'a Tensor, &'a Tensor),
}

const N_PARAMS: usize = 16;

impl EncoderLayerWeights<'_> {
    /// Packing order: the three projection weights, then their biases (so each trio is the
    /// packed (3c, c) weight and 3c bias), then the rest layer by layer.
    fn in_order(&self) -> [&Tensor; N_PARAMS] {
        let s = self;
        [s.query.0, s.key.0, s.value.0, s.query.1, s.key.1, s.value.1, s.attn_out.0, s.attn_out.1, s.attn_ln.0, s.attn_ln.1, s.inter.0, s.inter.1, s.out.0, s.out.1, s.out_ln.0, s.out_ln.1]
    }
}

/// Sizes of the packed parameters for width `c` and feed-forward width `f`.
fn sizes(c: usize, f: usize) -> [usize; N_PARAMS] {
    [c * c, c * c, c * c, c, c, c, c * c, c, c, c, f * c, f, c * f, c, c, c]
}

/// Where the packed vector is cut, with the q/k/v trios joined: [qkv_w, qkv_b, attn_out_w,
/// attn_out_b, attn_ln (w ‖ b), inter_w, inter_b, out_w, out_b, out_ln (w ‖ b)].
fn cuts(c: usize, f: usize) -> [usize; 10] {
    [3 * c * c, 3 * c, c * c, c, 2 * c, f * c, f, c * f, c, 2 * c]
}

fn split<T>(mut rest: &[T], c: usize, f: usize) -> [&[T]; 10] {
    cuts(c, f).map(|n| {
        let (a, b) = rest.split_at(n);
        rest = b;
        a
    })
}

fn split_mut<T>(mut rest: &mut [T], c: usize, f: usize) -> [&mut [T]; 10] {
    cuts(c, f).map(|n| {
        let (a, b) = std::mem::take(&mut rest).split_at_mut(n);
        rest = b;
        a
    })
}

/// (in, out) of the four adaptable products: the packed q/k/v projection, the attention
/// output, the feed-forward's first and second layers.
fn linear_dims(c: usize, f: usize) -> [(usize, usize); 4] {
    [(c, 3 * c), (c, c), (c, f), (f, c)]
}

/// `x` (b, t, c) → the layer's output (b, t, c), fused on CPU f32. `key_mask` (b, t): zero at
/// padding (never attended to); `erf`: BERT's exact GELU, else the tanh form (ALBERT);
/// `dropout`: the multipliers after the attention output and after the feed-forward;
/// `adapters`: LoRA on the packed projection (A (r, c), B (3c, r): several of q, k, v as one
/// term), the attention output, and the feed-forward's two layers.
#[allow(clippy::too_many_arguments)] // the layer's inputs and its training-time switches
pub fn post_ln_encoder_layer(x: &Tensor, w: &EncoderLayerWeights, n_head: usize, eps: f64, erf: bool, key_mask: &Tensor, dropout: Option<BlockDropout>, adapters: [Option<BlockAdapter>; 4]) -> Result<Tensor> {
    let (b, t, c) = x.dims3()?;
    if x.dtype() != DType::F32 || !x.device().is_cpu() {
        candle_core::bail!("the fused encoder layer runs on CPU f32 only");
    }
    if n_head == 0 || c % n_head != 0 {
        candle_core::bail!("encoder layer: width {c} is not a multiple of n_head {n_head}");
    }
    if key_mask.dims2()? != (b, t) {
        candle_core::bail!("encoder layer: the mask is {:?}, the batch is ({b}, {t})", key_mask.dims());
    }
    let f = w.inter.0.dim(0)?;
    let (trained, packed) = pack_params(x, w.in_order(), sizes(c, f), dropout.as_ref(), "encoder layer", &format!("width {c} and feed-forward {f}"))?;
    let (ranks, lora) = pack_adapters(&adapters, linear_dims(c, f), x.device(), "encoder layer")?;
    let keep: Vec<bool> = key_mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|m| m != 0.0).collect();
    let attention = EncoderAttention { n_head, keep: Arc::new(keep) };
    x.contiguous()?.apply_op3(&packed, &lora, EncoderLayerOp { f, eps: eps as f32, erf, attention, dropout, trained, ranks, saved: Mutex::new(None) })
}

/// What the forward keeps for the backward, each (rows, width) row-major.
struct Saved {
    qkv: Vec<f32>,
    attn: Vec<f32>,
    /// The first norm's input and output.
    s1: Vec<f32>,
    h: Vec<f32>,
    pre: Vec<f32>,
    act: Vec<f32>,
    /// The second norm's input.
    s2: Vec<f32>,
    /// Each adapted product's `scale·(x·Aᵀ)` (rows, r).
    lows: [Option<Vec<f32>>; 4],
}

struct EncoderLayerOp {
    f: usize,
    eps: f32,
    erf: bool,
    attention: EncoderAttention,
    dropout: Option<BlockDropout>,
    /// Which parameters take part in the graph (`in_order` order): a frozen weight costs no
    /// product in backward (its gradient slot is zero).
    trained: [bool; N_PARAMS],
    ranks: [Option<(usize, f32)>; 4],
    saved: Mutex<Option<Saved>>,
}

impl EncoderLayerOp {
    /// Whether any of `in_order`'s parameters `range` is trained.
    fn any_trained(&self, range: std::ops::Range<usize>) -> bool {
        self.trained[range].iter().any(|&t| t)
    }
}

/// An adapted product's scaled adapter input with its B and rank, for `residual_linear_low`.
fn with_b<'a>(h: &'a Option<Vec<f32>>, ad: Option<(&'a [f32], &'a [f32])>, rank: Option<(usize, f32)>) -> Option<(&'a [f32], &'a [f32], usize)> {
    h.as_deref().zip(ad).zip(rank).map(|((h, (_, bm)), (r, _))| (h, bm, r))
}

impl CustomOp3 for EncoderLayerOp {
    fn name(&self) -> &'static str {
        "jielong-post-ln-encoder-layer"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "encoder layer input")?;
        let p = contiguous_f32(s2, l2, "encoder layer parameters")?;
        let lp = contiguous_f32(s3, l3, "encoder layer adapters")?;
        let (b, t, c) = l1.shape().dims3()?;
        let (f, rows) = (self.f, b * t);
        let [qkv_w, qkv_b, o_w, o_b, ln1, i_w, i_b, out_w, out_b, ln2] = split(p, c, f);
        let dims = linear_dims(c, f);
        let ad = adapter_slices(lp, &self.ranks, dims);
        let low = |j: usize, xin: &[f32]| -> Option<Vec<f32>> { ad[j].zip(self.ranks[j]).map(|((a, _), (r, scale))| low_input(xin, a, dims[j].0, r, scale)) };
        let (m1, m2) = match &self.dropout {
            Some(d) => (Some(&d.attn[..]), Some(&d.mlp[..])),
            None => (None, None),
        };
        let mut lows: [Option<Vec<f32>>; 4] = [None, None, None, None];
        // Every buffer below is written whole before it is read (see each kernel).
        let mut qkv = kernel::uninit_f32(rows * 3 * c);
        linear_into(x, qkv_w, Some(qkv_b), c, 3 * c, WeightLayout::OutIn, &mut qkv);
        lows[0] = low(0, x);
        if let Some((h, bm, r)) = with_b(&lows[0], ad[0], self.ranks[0]) {
            low_add_into(h, bm, r, 3 * c, &mut qkv);
        }
        let attn = self.attention.forward(&qkv, b, &Dims::new(t, c, self.attention.n_head));
        lows[1] = low(1, &attn);
        let mut s1 = kernel::uninit_f32(rows * c);
        residual_linear_low(x, &attn, o_w, Some(o_b), c, c, WeightLayout::OutIn, m1, with_b(&lows[1], ad[1], self.ranks[1]), &mut s1);
        let mut h = kernel::uninit_f32(rows * c);
        layer_norm_into(&s1, &ln1[..c], &ln1[c..], self.eps, &mut h);
        let mut pre = kernel::uninit_f32(rows * f);
        linear_into(&h, i_w, Some(i_b), c, f, WeightLayout::OutIn, &mut pre);
        lows[2] = low(2, &h);
        if let Some((hl, bm, r)) = with_b(&lows[2], ad[2], self.ranks[2]) {
            low_add_into(hl, bm, r, f, &mut pre);
        }
        let mut act = kernel::uninit_f32(rows * f);
        gelu_kind_into(self.erf, &pre, &mut act);
        lows[3] = low(3, &act);
        let mut s2 = kernel::uninit_f32(rows * c);
        residual_linear_low(&h, &act, out_w, Some(out_b), f, c, WeightLayout::OutIn, m2, with_b(&lows[3], ad[3], self.ranks[3]), &mut s2);
        let mut out = kernel::uninit_f32(rows * c);
        layer_norm_into(&s2, &ln2[..c], &ln2[c..], self.eps, &mut out);
        *self.saved.lock().expect("encoder layer state lock") = Some(Saved { qkv, attn, s1, h, pre, act, s2, lows });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, p: &Tensor, lora: &Tensor, _res: &Tensor, dout: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dout = dout.contiguous()?;
        let (b, t, c) = x.dims3()?;
        let (f, rows) = (self.f, b * t);
        let need_dx = x.track_op();
        let guard = self.saved.lock().expect("encoder layer state lock");
        let Some(s) = guard.as_ref() else { candle_core::bail!("encoder layer: backward without a forward") };
        let (dx, dp, dl) = kernel::with_f32([(x, "encoder layer input"), (p, "encoder layer parameters"), (lora, "encoder layer adapters"), (&dout, "encoder layer gradient")], |[xd, pd, lp, g]| {
            let [qkv_w, _, o_w, _, ln1, i_w, _, out_w, _, ln2] = split(pd, c, f);
            // Every parameter gradient is overwritten below (products with accumulate =
            // false, column sums, the norms' sums) or zeroed when frozen.
            let mut dp = kernel::uninit_f32(pd.len());
            let [d_qkv_w, d_qkv_b, d_o_w, d_o_b, d_ln1, d_i_w, d_i_b, d_out_w, d_out_b, d_ln2] = split_mut(&mut dp, c, f);
            let tr = self.any_trained(0..3);
            let dims = linear_dims(c, f);
            let ad = adapter_slices(lp, &self.ranks, dims);
            let mut dl = vec![0f32; if self.ranks.iter().any(Option::is_some) { lp.len() } else { 0 }];
            let [d_ad0, d_ad1, d_ad2, d_ad3] = adapter_grads(&mut dl, &self.ranks, dims);
            // Adapter j's backward at its product's input `xin` and upstream `up`, into `dxin`.
            let lora_bwd = |j: usize, xin: &[f32], up: &[f32], d: Option<(&mut [f32], &mut [f32])>, dxin: Option<&mut [f32]>| {
                if let (Some(h), Some(w), Some(rs), Some(d)) = (s.lows[j].as_deref(), ad[j], self.ranks[j], d) {
                    low_rank_backward(xin, h, w, up, dims[j].0, dims[j].1, rs, d, dxin, true);
                }
            };

            // out = LN_2(s2), s2 = h + m2 ⊙ (act·W2ᵀ + b2).
            let mut ds = kernel::uninit_f32(rows * c);
            layer_norm_backward_into(&s.s2, &ln2[..c], g, self.eps, &mut ds, Dx::Write, d_ln2);
            let g2 = self.dropout.as_ref().map(|d| masked(&ds, &d.mlp));
            let up = g2.as_deref().unwrap_or(&ds);
            let mut dpre = kernel::uninit_f32(rows * f);
            linear_backward_into(&s.act, out_w, up, f, c, WeightLayout::OutIn, &mut dpre, false, weight_grad(d_out_w, self.trained[12]), Some(d_out_b));
            lora_bwd(3, &s.act, up, d_ad3, Some(&mut dpre));
            gelu_kind_backward_in_place(self.erf, &s.pre, &mut dpre);
            // dh = ds (the residual) + the feed-forward's input gradient, added in place.
            linear_backward_into(&s.h, i_w, &dpre, c, f, WeightLayout::OutIn, &mut ds, true, weight_grad(d_i_w, self.trained[10]), Some(d_i_b));
            lora_bwd(2, &s.h, &dpre, d_ad2, Some(&mut ds));
            drop(dpre);
            // h = LN_1(s1), s1 = x + m1 ⊙ (attn·Woᵀ + bo).
            let mut ds1 = kernel::uninit_f32(rows * c);
            layer_norm_backward_into(&s.s1, &ln1[..c], &ds, self.eps, &mut ds1, Dx::Write, d_ln1);
            let g1 = self.dropout.as_ref().map(|d| masked(&ds1, &d.attn));
            let up = g1.as_deref().unwrap_or(&ds1);
            // ds is free again: the attention output's gradient goes there.
            linear_backward_into(&s.attn, o_w, up, c, c, WeightLayout::OutIn, &mut ds, false, weight_grad(d_o_w, self.trained[6]), Some(d_o_b));
            lora_bwd(1, &s.attn, up, d_ad1, Some(&mut ds));
            let dqkv = self.attention.backward(&s.qkv, &s.attn, &ds, b, &Dims::new(t, c, self.attention.n_head));
            // dx = ds1 (the residual) + the projection's input gradient; the projection's
            // weight gradient only when one of q, k, v is trained.
            if need_dx {
                linear_backward_into(xd, qkv_w, &dqkv, c, 3 * c, WeightLayout::OutIn, &mut ds1, true, weight_grad(d_qkv_w, tr), Some(d_qkv_b));
            } else {
                if let Some(dw) = weight_grad(d_qkv_w, tr) {
                    linear_dw_into(xd, &dqkv, c, 3 * c, WeightLayout::OutIn, dw);
                }
                d_qkv_b.copy_from_slice(&column_sums(&dqkv, 3 * c));
            }
            lora_bwd(0, xd, &dqkv, d_ad0, need_dx.then_some(&mut ds1[..]));
            Ok((ds1, dp, dl))
        })?;
        let dev = x.device();
        let dx = if need_dx { Some(Tensor::from_vec(dx, x.shape(), dev)?) } else { None };
        let dp = if p.track_op() { Some(Tensor::from_vec(dp, p.shape(), dev)?) } else { None };
        let dl = if lora.track_op() && !dl.is_empty() { Some(Tensor::from_vec(dl, lora.shape(), dev)?) } else { None };
        Ok((dx, dp, dl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{layer_norm_ref, max_abs, max_diff};
    use crate::{bidirectional_attention_packed, linear, Dropout, MaskSource};
    use candle_core::{Device, Var};

    /// The composed layer with the adapted weights `W + scale·B·A` (what PEFT's merged model
    /// computes), dropout as multipliers.
    #[allow(clippy::too_many_arguments)]
    fn composed(x: &Tensor, ps: &[Var], ads: &[Option<(Var, Var, f64)>; 4], n_head: usize, eps: f64, erf: bool, mask: &Tensor, drop: Option<&BlockDropout>) -> Tensor {
        let adapted = |w: Tensor, j: usize| match &ads[j] {
            Some((a, b, s)) => (w + (b.as_tensor().matmul(a.as_tensor()).unwrap() * *s).unwrap()).unwrap(),
            None => w,
        };
        let p = |i: usize| ps[i].as_tensor().clone();
        let qkv_w = adapted(Tensor::cat(&[p(0), p(1), p(2)], 0).unwrap(), 0);
        let qkv_b = Tensor::cat(&[p(3), p(4), p(5)], 0).unwrap();
        let qkv = linear(x, &qkv_w, Some(&qkv_b), WeightLayout::OutIn).unwrap();
        let attn = bidirectional_attention_packed(&qkv, n_head, mask).unwrap();
        let mul = |y: Tensor, m: Option<&Vec<f32>>| match m {
            Some(m) => (y * Tensor::from_vec(m.clone(), x.shape(), x.device()).unwrap()).unwrap(),
            None => y,
        };
        let y1 = mul(linear(&attn, &adapted(p(6), 1), Some(&p(7)), WeightLayout::OutIn).unwrap(), drop.map(|d| &d.attn));
        let h = layer_norm_ref(&(x + y1).unwrap(), &p(8), &p(9), eps);
        let pre = linear(&h, &adapted(p(10), 2), Some(&p(11)), WeightLayout::OutIn).unwrap();
        let act = if erf { crate::gelu::gelu_erf(&pre).unwrap() } else { crate::gelu::gelu(&pre).unwrap() };
        let y2 = mul(linear(&act, &adapted(p(12), 3), Some(&p(13)), WeightLayout::OutIn).unwrap(), drop.map(|d| &d.mlp));
        layer_norm_ref(&(h + y2).unwrap(), &p(14), &p(15), eps)
    }

    /// Values and every gradient (input, parameters, adapters) equal the composed layer's, for
    /// both GELUs, with and without dropout, a padded batch, adapters on a subset, and a
    /// frozen base (no parameter gradient, adapters' still right).
    #[test]
    fn fused_encoder_layer_matches_the_composed_layer() {
        let dev = Device::Cpu;
        let (b, t, c, f, n_head, r, eps) = (2, 7, 8, 12, 2, 3, 1e-12);
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, c), &dev).unwrap()).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]], &dev).unwrap();
        let shapes: Vec<Vec<usize>> = vec![vec![c, c], vec![c, c], vec![c, c], vec![c], vec![c], vec![c], vec![c, c], vec![c], vec![c], vec![c], vec![f, c], vec![f], vec![c, f], vec![c], vec![c], vec![c]];
        let ps: Vec<Var> = shapes.iter().enumerate().map(|(i, s)| {
            let v = Tensor::randn(0f32, 0.3, s.as_slice(), &dev).unwrap();
            // The norms' weights near 1.
            Var::from_tensor(&if i == 8 || i == 14 { (v + 1.0).unwrap() } else { v }).unwrap()
        }).collect();
        let dims = linear_dims(c, f);
        let make_ads = |on: [bool; 4]| -> [Option<(Var, Var, f64)>; 4] {
            std::array::from_fn(|j| on[j].then(|| {
                let (n_in, n_out) = dims[j];
                (Var::from_tensor(&Tensor::randn(0f32, 0.3, (r, n_in), &dev).unwrap()).unwrap(), Var::from_tensor(&Tensor::randn(0f32, 0.3, (n_out, r), &dev).unwrap()).unwrap(), 0.5 + j as f64)
            }))
        };
        let drop = Dropout { p: 0.2 };
        let masks = || BlockDropout { attn: drop.mask(b, t * c, Some(MaskSource { seed: 3, site: 1, first_row: 0 })).unwrap(), mlp: drop.mask(b, t * c, Some(MaskSource { seed: 3, site: 2, first_row: 0 })).unwrap() };
        for (erf, dropout, on, frozen) in [(true, false, [false; 4], false), (true, true, [true, false, true, true], false), (false, true, [true, true, true, true], true), (true, false, [true, false, false, false], true)] {
            let ads = make_ads(on);
            // A frozen base: the parameters enter detached, as LoRA's frozen store gives them.
            let p_in: Vec<Tensor> = ps.iter().map(|v| if frozen { v.as_tensor().detach() } else { v.as_tensor().clone() }).collect();
            let w = EncoderLayerWeights { query: (&p_in[0], &p_in[3]), key: (&p_in[1], &p_in[4]), value: (&p_in[2], &p_in[5]), attn_out: (&p_in[6], &p_in[7]), attn_ln: (&p_in[8], &p_in[9]), inter: (&p_in[10], &p_in[11]), out: (&p_in[12], &p_in[13]), out_ln: (&p_in[14], &p_in[15]) };
            let block_ads: [Option<BlockAdapter>; 4] = std::array::from_fn(|j| ads[j].as_ref().map(|(a, bm, s)| BlockAdapter { a: a.as_tensor(), b: bm.as_tensor(), scale: *s }));
            let fused = post_ln_encoder_layer(x.as_tensor(), &w, n_head, eps, erf, &mask, dropout.then(masks), block_ads).unwrap();
            let reference = composed(x.as_tensor(), &ps, &ads, n_head, eps, erf, &mask, dropout.then(masks).as_ref());
            assert!(max_diff(&fused, &reference) < 1e-4, "values differ: {}", max_diff(&fused, &reference));
            // A loss that weighs every output differently.
            let weights = Tensor::randn(0f32, 1.0, (b, t, c), &dev).unwrap();
            let gf = (fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let gr = (reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let close = |a: &Tensor, b: &Tensor, what: &str| {
                let tol = 1e-4 * max_abs(b).max(1.0);
                assert!(max_diff(a, b) < tol, "{what}: {} (erf {erf}, dropout {dropout}, adapters {on:?}, frozen {frozen})", max_diff(a, b));
            };
            close(gf.get(x.as_tensor()).unwrap(), gr.get(x.as_tensor()).unwrap(), "dx");
            for (i, v) in ps.iter().enumerate() {
                match (frozen, gf.get(v.as_tensor())) {
                    (true, g) => assert!(g.is_none(), "parameter {i} of a frozen base got a gradient"),
                    (false, g) => close(g.unwrap(), gr.get(v.as_tensor()).unwrap(), &format!("parameter {i}")),
                }
            }
            for (j, ad) in ads.iter().enumerate() {
                if let Some((a, bm, _)) = ad {
                    close(gf.get(a.as_tensor()).unwrap(), gr.get(a.as_tensor()).unwrap(), &format!("adapter {j} A"));
                    close(gf.get(bm.as_tensor()).unwrap(), gr.get(bm.as_tensor()).unwrap(), &format!("adapter {j} B"));
                }
            }
        }
        // An input outside the graph (the first layer over frozen embeddings) gets no gradient
        // and the adapters still do.
        let ads = make_ads([true, false, false, false]);
        let p_in: Vec<Tensor> = ps.iter().map(|v| v.as_tensor().detach()).collect();
        let w = EncoderLayerWeights { query: (&p_in[0], &p_in[3]), key: (&p_in[1], &p_in[4]), value: (&p_in[2], &p_in[5]), attn_out: (&p_in[6], &p_in[7]), attn_ln: (&p_in[8], &p_in[9]), inter: (&p_in[10], &p_in[11]), out: (&p_in[12], &p_in[13]), out_ln: (&p_in[14], &p_in[15]) };
        let (a, bm, s) = ads[0].as_ref().unwrap();
        let xd = x.as_tensor().detach();
        let fused = post_ln_encoder_layer(&xd, &w, n_head, eps, true, &mask, None, [Some(BlockAdapter { a: a.as_tensor(), b: bm.as_tensor(), scale: *s }), None, None, None]).unwrap();
        let reference = composed(&xd, &ps.iter().map(|v| Var::from_tensor(&v.as_tensor().detach()).unwrap()).collect::<Vec<_>>(), &ads, n_head, eps, true, &mask, None);
        let gf = fused.sum_all().unwrap().backward().unwrap();
        let gr = reference.sum_all().unwrap().backward().unwrap();
        assert!(gf.get(&xd).is_none());
        assert!(max_diff(gf.get(a.as_tensor()).unwrap(), gr.get(a.as_tensor()).unwrap()) < 1e-4 * max_abs(gr.get(a.as_tensor()).unwrap()).max(1.0));
        assert!(post_ln_encoder_layer(x.as_tensor(), &w, 3, eps, true, &mask, None, [None; 4]).is_err(), "a width that does not split into the heads");
    }
}
