//! One Llama decoder layer as a single fused CPU op, forward and backward, as `block.rs` does
//! for GPT-2:
//!
//! ```text
//! h1  = rms_norm(x) · w_in
//! qkv = rope(h1 · [Wq | Wk | Wv]ᵀ (+ [bq | bk | bv]))       (b·t, (h + 2·kv)·d)
//! x1  = x  + o_proj(gqa_attention(qkv))
//! out = x1 + down_proj(swiglu(rms_norm(x1) · w_post · [W_gate | W_up]ᵀ))
//! ```
//!
//! Composed from the per-op kernels (RMSNorm, linear, RoPE, grouped-query attention, SwiGLU,
//! two residual adds, two weight concatenations), a layer is about a dozen nodes of candle's
//! autograd graph, and candle's backward zero-fills and adds a gradient buffer for every input
//! of every node. Here the layer is one node: its backward runs the same slice-level kernels in
//! reverse, adds the residual gradients on the way (RMSNorm's backward writes residual + its
//! own), rotates the q/k gradient back in place, and writes every parameter gradient straight
//! into one packed buffer.
//!
//! The parameters travel in as one packed vector in the order of [`LlamaLayerWeights`] (so
//! q|k|v and gate|up are each one contiguous (out, in) matrix, and the model keeps Hugging
//! Face's separate named tensors). The reference is the layer composed from the per-op kernels
//! (see the test), and the whole model against its composed path in
//! `jielong-models/tests/llama_fused.rs`.

use crate::block::{masked, residual_linear, weight_grad, BlockDropout};
use crate::flash::{attention_gqa_backward, attention_gqa_into, kept_probs_len};
use crate::kernel::{self, contiguous_f32};
use crate::layer_norm::Dx;
use crate::linear::{linear_backward_into, linear_into, WeightLayout};
use crate::rms_norm::{rms_norm_backward_into, rms_norm_into};
use crate::swiglu::{swiglu_backward_into, swiglu_into};
use crate::Rope;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use std::ops::Range;
use std::sync::Mutex;

/// The parameters of one Llama layer, linear weights in (out, in) layout as `nn.Linear`.
pub struct LlamaLayerWeights<'a> {
    /// (c)
    pub input_norm: &'a Tensor,
    /// (h·d, c), (kv·d, c), (kv·d, c)
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    /// (h·d), (kv·d), (kv·d): Qwen2's attention biases.
    pub qkv_bias: Option<(&'a Tensor, &'a Tensor, &'a Tensor)>,
    /// (c, h·d)
    pub o: &'a Tensor,
    /// (c)
    pub post_norm: &'a Tensor,
    /// (f, c), (f, c), (c, f)
    pub gate: &'a Tensor,
    pub up: &'a Tensor,
    pub down: &'a Tensor,
}

impl LlamaLayerWeights<'_> {
    fn in_order(&self) -> Vec<&Tensor> {
        let mut v = vec![self.input_norm, self.q, self.k, self.v];
        if let Some((bq, bk, bv)) = self.qkv_bias {
            v.extend([bq, bk, bv]);
        }
        v.extend([self.o, self.post_norm, self.gate, self.up, self.down]);
        v
    }
}

/// Where each parameter sits in the packed vector.
#[derive(Clone)]
struct Packing {
    c: usize,
    h: usize,
    kv: usize,
    d: usize,
    f: usize,
    in_norm: Range<usize>,
    /// [Wq | Wk | Wv]: ((h + 2kv)·d, c)
    qkv_w: Range<usize>,
    qkv_b: Option<Range<usize>>,
    o: Range<usize>,
    post_norm: Range<usize>,
    /// [W_gate | W_up]: (2f, c)
    gate_up: Range<usize>,
    down: Range<usize>,
}

impl Packing {
    fn new(c: usize, h: usize, kv: usize, f: usize, bias: bool) -> Self {
        let d = c / h;
        let wq = (h + 2 * kv) * d;
        let mut at = 0;
        let mut take = |n: usize| {
            at += n;
            at - n..at
        };
        let in_norm = take(c);
        let qkv_w = take(wq * c);
        let qkv_b = bias.then(|| take(wq));
        let o = take(c * h * d);
        let post_norm = take(c);
        let gate_up = take(2 * f * c);
        let down = take(c * f);
        Packing { c, h, kv, d, f, in_norm, qkv_w, qkv_b, o, post_norm, gate_up, down }
    }

    /// Width of the packed q|k|v projection.
    fn wq(&self) -> usize {
        (self.h + 2 * self.kv) * self.d
    }

    /// The sizes of `LlamaLayerWeights::in_order`'s tensors.
    fn sizes(&self) -> Vec<usize> {
        let (c, hd, kvd, f) = (self.c, self.h * self.d, self.kv * self.d, self.f);
        let mut v = vec![c, hd * c, kvd * c, kvd * c];
        if self.qkv_b.is_some() {
            v.extend([hd, kvd, kvd]);
        }
        v.extend([c * hd, c, f * c, f * c, c * f]);
        v
    }
}

/// `x` (b, t, c) → the layer's output (b, t, c), fused on CPU f32, with optional dropout masks
/// on the two residual branches (`BlockDropout::attn` after o_proj, `mlp` after down_proj).
/// `rope` must cover t positions with head dimension c / n_head.
pub fn llama_layer(x: &Tensor, w: &LlamaLayerWeights, rope: &Rope, n_head: usize, n_kv_head: usize, eps: f64, dropout: Option<BlockDropout>) -> Result<Tensor> {
    let (_, t, c) = x.dims3()?;
    if x.dtype() != DType::F32 || !x.device().is_cpu() {
        candle_core::bail!("the fused Llama layer runs on CPU f32 only");
    }
    if n_head == 0 || n_kv_head == 0 || !c.is_multiple_of(n_head) || !n_head.is_multiple_of(n_kv_head) {
        candle_core::bail!("Llama layer: n_embd {c}, n_head {n_head} and n_kv_head {n_kv_head} do not make heads");
    }
    if rope.head_dim() != c / n_head || t > rope.max_len() {
        candle_core::bail!("Llama layer: the RoPE tables (head_dim {}, {} positions) do not fit heads of {} over {t} positions", rope.head_dim(), rope.max_len(), c / n_head);
    }
    let f = w.gate.elem_count() / c;
    let pk = Packing::new(c, n_head, n_kv_head, f, w.qkv_bias.is_some());
    let params = w.in_order();
    for (p, n) in params.iter().zip(pk.sizes()) {
        if p.elem_count() != n {
            candle_core::bail!("Llama layer: a parameter has {} values, expected {n} for n_embd {c}", p.elem_count());
        }
    }
    if let Some(d) = &dropout {
        if d.attn.len() != x.elem_count() || d.mlp.len() != x.elem_count() {
            candle_core::bail!("Llama layer: dropout masks must have one value per input element ({})", x.elem_count());
        }
    }
    // in_norm, q, k, v, [q, k, v biases], o, post_norm, gate, up, down
    let tracked = |r: std::ops::Range<usize>| params[r].iter().any(|p| p.track_op());
    let o = if w.qkv_bias.is_some() { 7 } else { 4 };
    let trained = [tracked(1..4), tracked(o..o + 1), tracked(o + 2..o + 4), tracked(o + 4..o + 5)];
    let flat = params.iter().map(|p| p.flatten_all()).collect::<Result<Vec<_>>>()?;
    let packed = Tensor::cat(&flat, 0)?;
    x.contiguous()?.apply_op2(&packed, LlamaLayerOp { pk, rope: rope.clone(), eps: eps as f32, dropout, trained, saved: Mutex::new(None) })
}

/// What the forward keeps for the backward, each (rows, width) row-major.
struct Saved {
    h1: Vec<f32>,
    /// q|k|v after RoPE.
    qkv: Vec<f32>,
    attn: Vec<f32>,
    /// Attention probabilities when they take no more memory than `gate_up`, else recomputed.
    probs: Option<Vec<f32>>,
    x1: Vec<f32>,
    h2: Vec<f32>,
    gate_up: Vec<f32>,
    act: Vec<f32>,
}

struct LlamaLayerOp {
    pk: Packing,
    rope: Rope,
    eps: f32,
    dropout: Option<BlockDropout>,
    /// Whether the packed q|k|v, o, gate|up and down weights take part in the graph: a frozen
    /// one (a detached base under LoRA, prefix or prompt tuning) costs no dW product; its
    /// gradient slice is zero, and no gradient is returned when no parameter is tracked.
    trained: [bool; 4],
    saved: Mutex<Option<Saved>>,
}

impl CustomOp2 for LlamaLayerOp {
    fn name(&self) -> &'static str {
        "jielong-llama-layer"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "Llama layer input")?;
        let p = contiguous_f32(s2, l2, "Llama layer parameters")?;
        let pk = &self.pk;
        let (b, t, c) = l1.shape().dims3()?;
        let (rows, f, wq, hd) = (b * t, pk.f, pk.wq(), pk.h * pk.d);
        let m = |r: &Range<usize>| &p[r.clone()];
        // Every buffer below is written whole before it is read (see each kernel).
        let mut h1 = kernel::uninit_f32(rows * c);
        rms_norm_into(x, m(&pk.in_norm), self.eps, &mut h1);
        let mut qkv = kernel::uninit_f32(rows * wq);
        linear_into(&h1, m(&pk.qkv_w), pk.qkv_b.as_ref().map(m), c, wq, WeightLayout::OutIn, &mut qkv);
        self.rope.rotate_packed_in_place(&mut qkv, t, pk.h, pk.kv, false);
        let mut attn = kernel::uninit_f32(rows * hd);
        let n_probs = kept_probs_len(b, t, pk.h);
        let mut probs = (n_probs <= rows * 2 * f).then(|| kernel::uninit_f32(n_probs));
        attention_gqa_into(&qkv, b, t, pk.h, pk.kv, pk.d, &mut attn, probs.as_deref_mut());
        let (m_attn, m_mlp) = match &self.dropout {
            Some(d) => (Some(&d.attn[..]), Some(&d.mlp[..])),
            None => (None, None),
        };
        let mut x1 = kernel::uninit_f32(rows * c);
        residual_linear(x, &attn, m(&pk.o), None, hd, c, WeightLayout::OutIn, m_attn, &mut x1);
        let mut h2 = kernel::uninit_f32(rows * c);
        rms_norm_into(&x1, m(&pk.post_norm), self.eps, &mut h2);
        let mut gate_up = kernel::uninit_f32(rows * 2 * f);
        linear_into(&h2, m(&pk.gate_up), None, c, 2 * f, WeightLayout::OutIn, &mut gate_up);
        let mut act = kernel::uninit_f32(rows * f);
        swiglu_into(&gate_up, f, &mut act);
        let mut out = kernel::uninit_f32(rows * c);
        residual_linear(&x1, &act, m(&pk.down), None, f, c, WeightLayout::OutIn, m_mlp, &mut out);
        *self.saved.lock().expect("Llama layer state lock") = Some(Saved { h1, qkv, attn, probs, x1, h2, gate_up, act });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, p: &Tensor, _res: &Tensor, dout: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dout = dout.contiguous()?;
        let pk = &self.pk;
        let (b, t, c) = x.dims3()?;
        let (rows, f, wq, hd) = (b * t, pk.f, pk.wq(), pk.h * pk.d);
        let guard = self.saved.lock().expect("Llama layer state lock");
        let Some(s) = guard.as_ref() else { candle_core::bail!("Llama layer: backward without a forward") };
        let (dx, dp) = kernel::with_f32([(x, "Llama layer input"), (p, "Llama layer parameters"), (&dout, "Llama layer gradient")], |[xd, pd, g]| {
            let m = |r: &Range<usize>| &pd[r.clone()];
            // Every parameter gradient is overwritten below (products with accumulate = false,
            // column sums, the norms' sums), and the ranges tile the whole vector.
            let mut dp = kernel::uninit_f32(pd.len());
            let (d_in, rest) = dp.split_at_mut(pk.qkv_w.start);
            let (d_qkv_wb, rest) = rest.split_at_mut(pk.o.start - pk.qkv_w.start);
            let (d_o, rest) = rest.split_at_mut(pk.o.len());
            let (d_post, rest) = rest.split_at_mut(pk.post_norm.len());
            let (d_gate_up, d_down) = rest.split_at_mut(pk.gate_up.len());
            let (d_qkv_w, d_qkv_b) = d_qkv_wb.split_at_mut(pk.qkv_w.len());
            let tr = self.trained;
            let dw = |d, i: usize| weight_grad(d, tr[i]);

            // MLP: out = x1 + m ⊙ (act·W_downᵀ); without dropout m = 1.
            let g_mlp = self.dropout.as_ref().map(|d| masked(g, &d.mlp));
            let mut d_act = kernel::uninit_f32(rows * f);
            linear_backward_into(&s.act, m(&pk.down), g_mlp.as_deref().unwrap_or(g), f, c, WeightLayout::OutIn, &mut d_act, false, dw(d_down, 3), None);
            let mut d_gu = kernel::uninit_f32(rows * 2 * f);
            swiglu_backward_into(&s.gate_up, &d_act, f, &mut d_gu);
            drop(d_act);
            let mut dh = kernel::uninit_f32(rows * c);
            linear_backward_into(&s.h2, m(&pk.gate_up), &d_gu, c, 2 * f, WeightLayout::OutIn, &mut dh, false, dw(d_gate_up, 2), None);
            drop(d_gu);
            // dx1 = dout (the residual) + the post-attention norm's backward, one parallel pass.
            let mut dx = kernel::uninit_f32(rows * c);
            rms_norm_backward_into(&s.x1, m(&pk.post_norm), &dh, self.eps, &mut dx, Dx::Plus(g), d_post);
            // Attention: x1 = x + m ⊙ (attn·W_oᵀ).
            let dx_attn = self.dropout.as_ref().map(|d| masked(&dx, &d.attn));
            let mut d_attn = kernel::uninit_f32(rows * hd);
            linear_backward_into(&s.attn, m(&pk.o), dx_attn.as_deref().unwrap_or(&dx), hd, c, WeightLayout::OutIn, &mut d_attn, false, dw(d_o, 1), None);
            let mut dqkv = attention_gqa_backward(&s.qkv, &s.attn, &d_attn, b, t, pk.h, pk.kv, pk.d, s.probs.as_deref());
            drop(d_attn);
            // The rotation's backward is the inverse rotation of the gradient.
            self.rope.rotate_packed_in_place(&mut dqkv, t, pk.h, pk.kv, true);
            let d_qkv_b = (!d_qkv_b.is_empty()).then_some(d_qkv_b);
            linear_backward_into(&s.h1, m(&pk.qkv_w), &dqkv, c, wq, WeightLayout::OutIn, &mut dh, false, dw(d_qkv_w, 0), d_qkv_b);
            // dx = dx1 + the input norm's backward.
            rms_norm_backward_into(xd, m(&pk.in_norm), &dh, self.eps, &mut dx, Dx::Add, d_in);
            Ok((dx, dp))
        })?;
        let dev = x.device();
        let dp = if p.track_op() { Some(Tensor::from_vec(dp, p.shape(), dev)?) } else { None };
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), dp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_abs, max_diff};
    use crate::{causal_attention_packed_gqa, linear, swiglu};
    use candle_core::{Device, Var, D};

    fn rms_ref(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
        let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        x.broadcast_div(&(ms + eps).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(w).unwrap()
    }

    /// The layer composed from the per-op kernels, each with candle's autograd between them
    /// (what `Llama::hidden` ran before this op).
    fn composed(x: &Tensor, w: &LlamaLayerWeights, rope: &Rope, h: usize, kv: usize, eps: f64, masks: Option<&(Tensor, Tensor)>) -> Tensor {
        let lin = |x: &Tensor, w: &Tensor, b: Option<&Tensor>| linear(x, w, b, WeightLayout::OutIn).unwrap();
        let drop = |y: Tensor, i: usize| match masks {
            Some(m) => (y * if i == 0 { &m.0 } else { &m.1 }).unwrap(),
            None => y,
        };
        let w_qkv = Tensor::cat(&[w.q, w.k, w.v], 0).unwrap();
        let b_qkv = w.qkv_bias.map(|(a, b, c)| Tensor::cat(&[a, b, c], 0).unwrap());
        let qkv = lin(&rms_ref(x, w.input_norm, eps), &w_qkv, b_qkv.as_ref());
        let qkv = rope.apply_packed_reference(&qkv, h, kv).unwrap();
        let x1 = (x + drop(lin(&causal_attention_packed_gqa(&qkv, h, kv).unwrap(), w.o, None), 0)).unwrap();
        let gu = lin(&rms_ref(&x1, w.post_norm, eps), &Tensor::cat(&[w.gate, w.up], 0).unwrap(), None);
        (&x1 + drop(lin(&swiglu(&gu).unwrap(), w.down, None), 1)).unwrap()
    }

    #[test]
    fn fused_llama_layer_matches_composed_layer_values_and_gradients() {
        let dev = Device::Cpu;
        // Group sizes 4 (multi-query), 2 and 1 (multi-head), with and without q/k/v biases and
        // dropout; probabilities kept at the short shapes and recomputed at the long ones.
        for (b, t, h, kv, d, f, bias, p) in [(2, 5, 4, 1, 4, 24, false, 0.0), (3, 70, 4, 2, 8, 40, true, 0.0), (1, 130, 2, 2, 16, 24, false, 0.1), (2, 33, 6, 3, 4, 16, true, 0.25)] {
            let c = h * d;
            let rnd = |shape: &[usize], std: f64| Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape, &dev).unwrap() * std).unwrap()).unwrap();
            let x = rnd(&[b, t, c], 1.0);
            let mut shapes = vec![(vec![c], 0.3), (vec![h * d, c], 0.2), (vec![kv * d, c], 0.2), (vec![kv * d, c], 0.2)];
            if bias {
                shapes.extend([(vec![h * d], 0.1), (vec![kv * d], 0.1), (vec![kv * d], 0.1)]);
            }
            shapes.extend([(vec![c, h * d], 0.2), (vec![c], 0.3), (vec![f, c], 0.2), (vec![f, c], 0.2), (vec![c, f], 0.2)]);
            let ps: Vec<Var> = shapes.into_iter().map(|(s, std)| rnd(&s, std)).collect();
            let (in_w, post_w) = ((ps[0].as_tensor() + 1.0).unwrap(), (ps[if bias { 8 } else { 5 }].as_tensor() + 1.0).unwrap());
            let t_ = |i: usize| ps[i].as_tensor();
            let o = if bias { 7 } else { 4 };
            let w = LlamaLayerWeights {
                input_norm: &in_w,
                q: t_(1),
                k: t_(2),
                v: t_(3),
                qkv_bias: bias.then(|| (t_(4), t_(5), t_(6))),
                o: t_(o),
                post_norm: &post_w,
                gate: t_(o + 2),
                up: t_(o + 3),
                down: t_(o + 4),
            };
            let rope = Rope::new(256, d, 10_000.0, &dev).unwrap();
            let r = Tensor::randn(0f32, 1.0, (b, t, c), &dev).unwrap();
            let drop = crate::Dropout { p };
            let src = |site| Some(crate::MaskSource { seed: 11, site, first_row: 0 });
            let masks = (drop.mask(b, t * c, src(0)), drop.mask(b, t * c, src(1)));
            let dropout = masks.0.clone().zip(masks.1.clone()).map(|(attn, mlp)| BlockDropout { attn, mlp });
            let mask_tensors = masks.0.zip(masks.1).map(|(a, m)| (Tensor::from_vec(a, (b, t, c), &dev).unwrap(), Tensor::from_vec(m, (b, t, c), &dev).unwrap()));
            let fused = llama_layer(x.as_tensor(), &w, &rope, h, kv, 1e-6, dropout).unwrap();
            let refr = composed(x.as_tensor(), &w, &rope, h, kv, 1e-6, mask_tensors.as_ref());
            let dv = max_diff(&fused, &refr);
            assert!(dv < 1e-4, "values differ by {dv} at b{b} t{t} h{h} kv{kv} bias {bias} p{p}");
            let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (refr * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (i, v) in std::iter::once(&x).chain(ps.iter()).enumerate() {
                let (a, e) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                assert_eq!(a.dims(), e.dims(), "tensor {i}");
                let (dg, scale) = (max_diff(a, e), max_abs(e));
                assert!(dg <= 2e-5 * scale.max(1.0), "gradient of tensor {i} differs by {dg} (scale {scale}) at b{b} t{t} h{h} kv{kv} bias {bias} p{p}");
            }
        }
    }

    #[test]
    fn fused_llama_layer_names_a_parameter_of_the_wrong_size() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 3, 8), DType::F32, &dev).unwrap();
        let v = |n: usize| Tensor::zeros(n, DType::F32, &dev).unwrap();
        let (norm, sq, half, gate, down_bad) = (v(8), v(64), v(32), v(8 * 16), v(100));
        let w = LlamaLayerWeights { input_norm: &norm, q: &sq, k: &half, v: &half, qkv_bias: None, o: &sq, post_norm: &norm, gate: &gate, up: &gate, down: &down_bad };
        let rope = Rope::new(8, 4, 10_000.0, &dev).unwrap();
        let err = llama_layer(&x, &w, &rope, 2, 1, 1e-6, None).unwrap_err().to_string();
        assert!(err.contains("100 values") && err.contains("expected 128"), "{err}");
    }
}
