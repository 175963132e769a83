//! The pieces BERT and ALBERT share: a dense layer in `nn.Linear`'s layout, the post-LN
//! encoder layer (attention → add → layer norm → feed-forward → add → layer norm), the
//! masked-LM head (dense → GELU → layer norm → the token embedding transposed + a bias) and
//! the masked-LM / sentence-pair losses. The two families differ in where these sit (ALBERT
//! applies one layer many times, and its head maps back down to the embedding width) and in
//! their parameter names, which each family passes in.

use crate::IGNORE;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use jielong_nn::{bidirectional_attention_packed, linear, post_ln_encoder_layer, BlockAdapter, BlockDropout, Dropout, EncoderLayerWeights, LayerNorm, LinearSite, Lora, MaskSource, WeightLayout};
use std::sync::{Arc, RwLock};

/// BERT's exact GELU (`hidden_act = "gelu"`) or the tanh approximation ALBERT's checkpoints use
/// (`"gelu_new"`, also written `"gelu_pytorch_tanh"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Gelu {
    #[serde(rename = "gelu")]
    Erf,
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh")]
    Tanh,
}

impl Gelu {
    /// The activation as one fused parallel pass with its backward (candle's `gelu_erf` runs
    /// on one thread).
    pub(crate) fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Gelu::Erf => jielong_nn::gelu::gelu_erf(x),
            Gelu::Tanh => jielong_nn::gelu::gelu(x),
        }
    }
    /// The `hidden_act` of a Hugging Face config.
    pub fn hf_name(self) -> &'static str {
        match self {
            Gelu::Erf => "gelu",
            Gelu::Tanh => "gelu_new",
        }
    }
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Gelu::Erf),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Gelu::Tanh),
            _ => None,
        }
    }
}

/// A linear layer in `nn.Linear`'s (out, in) layout with a bias; N(0, 0.02) init.
pub(crate) struct Dense {
    pub w: Tensor,
    pub b: Tensor,
}

impl Dense {
    pub fn new(n_in: usize, n_out: usize, vb: VarBuilder) -> Result<Self> {
        let w = vb.get_with_hints((n_out, n_in), "weight", Init::Randn { mean: 0.0, stdev: 0.02 })?;
        let b = vb.get_with_hints(n_out, "bias", Init::Const(0.0))?;
        Ok(Self { w, b })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.w, Some(&self.b), WeightLayout::OutIn)
    }
}

/// Where a family keeps a layer's parameters, relative to the layer's own prefix.
pub(crate) struct LayerNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attn_out: &'static str,
    pub attn_ln: &'static str,
    pub inter: &'static str,
    pub out: &'static str,
    pub out_ln: &'static str,
}

/// One post-LN encoder layer of width `c` with feed-forward width `f`.
pub(crate) struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attn_out: Dense,
    attn_ln: LayerNorm,
    inter: Dense,
    out: Dense,
    out_ln: LayerNorm,
    /// The layer's own prefix (`bert.encoder.layer.3`) and its parameter names: LoRA
    /// adapters are found by the full module name.
    prefix: String,
    names: &'static LayerNames,
    /// Inference copies of the weights (see [`Prepared`]); None until [`Layer::prepare`], and
    /// dropped again by [`Layer::unprepare`] when training starts.
    prepared: RwLock<Option<Arc<Prepared>>>,
}

/// A layer's weights copied once into the layout the CPU products read fastest, for
/// inference: the query, key and value weights concatenated into one (c, 3c) matrix and every
/// weight transposed from `nn.Linear`'s (out, in) to (in, out).
///
/// Why: the `gemm` crate packs an (out, in) weight with a slow strided loop on every call,
/// and at the few rows of an embedding batch that packing is the product's cost. Measured on
/// this project's 2-core AMD EPYC host (Zen 4), one thread: a 12-row product by the
/// (1536 → 384) weight takes 1.29 ms from (out, in) and 0.125 ms from (in, out); 12 rows by
/// the fused (384 → 1152) Q/K/V weight 0.23 ms against 0.09 ms (plus the 1.7 MB
/// concatenation the training path does per call). The copies are plain tensors, outside
/// autograd, so they are for forward passes only: training reads the parameters themselves.
struct Prepared {
    qkv_w: Tensor,
    qkv_b: Tensor,
    attn_out: Tensor,
    inter: Tensor,
    out: Tensor,
}

impl Layer {
    pub fn new(c: usize, f: usize, eps: f64, names: &'static LayerNames, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            prefix: vb.prefix(),
            names,
            query: Dense::new(c, c, vb.pp(names.query))?,
            key: Dense::new(c, c, vb.pp(names.key))?,
            value: Dense::new(c, c, vb.pp(names.value))?,
            attn_out: Dense::new(c, c, vb.pp(names.attn_out))?,
            attn_ln: LayerNorm::new(c, true, eps, vb.pp(names.attn_ln))?,
            inter: Dense::new(c, f, vb.pp(names.inter))?,
            out: Dense::new(f, c, vb.pp(names.out))?,
            out_ln: LayerNorm::new(c, true, eps, vb.pp(names.out_ln))?,
            prepared: RwLock::new(None),
        })
    }

    /// Copy the weights as they are now into the inference layout (replacing any earlier
    /// copies); [`Layer::unprepare`] drops them.
    pub fn prepare(&self) -> Result<()> {
        let t = |w: &Tensor| -> Result<Tensor> { w.detach().t()?.contiguous() };
        let qkv_w = Tensor::cat(&[&self.query.w.detach(), &self.key.w.detach(), &self.value.w.detach()], 0)?;
        let qkv_b = Tensor::cat(&[&self.query.b.detach(), &self.key.b.detach(), &self.value.b.detach()], 0)?;
        let p = Prepared { qkv_w: t(&qkv_w)?, qkv_b, attn_out: t(&self.attn_out.w)?, inter: t(&self.inter.w)?, out: t(&self.out.w)? };
        *self.prepared.write().expect("layer lock") = Some(Arc::new(p));
        Ok(())
    }

    /// The six linear layers a LoRA can adapt (query, key, value, the attention output, the
    /// feed-forward's two), named as in the checkpoints, in `nn.Linear`'s (out, in) layout.
    pub fn linear_sites(&self) -> Vec<LinearSite> {
        let n = self.names;
        [(n.query, &self.query), (n.key, &self.key), (n.value, &self.value), (n.attn_out, &self.attn_out), (n.inter, &self.inter), (n.out, &self.out)]
            .into_iter()
            .map(|(name, d)| {
                let (n_out, n_in) = d.w.dims2().expect("a matrix");
                LinearSite { name: format!("{}.{name}", self.prefix), n_in, n_out, layout: WeightLayout::OutIn }
            })
            .collect()
    }

    /// Drop the inference copies: the parameters are about to change (training).
    pub fn unprepare(&self) {
        *self.prepared.write().expect("layer lock") = None;
    }

    /// `xs` (b, t, c) → (b, t, c). The three attention projections run as one (3c, c) product
    /// and attention as one fused kernel over the packed output (no (t × t) tensor);
    /// `attention_mask` (b, t) zero at padding. `drops`: the dropout masks' sources after
    /// attention and after the feed-forward (None in evaluation).
    /// With the inference copies made ([`Layer::prepare`]), no dropout and no adapters, the
    /// same arithmetic reads those instead.
    /// `lora`: adapters to run with: each adapted projection is the base product plus the
    /// adapter's low-rank term (PEFT's layer-level form), so over a frozen (detached) base the
    /// backward computes no gradient the size of a weight, only the adapters' thin ones.
    /// `rows`: Some(positions) when only one position of each sequence is wanted from this
    /// layer (the last layer under [CLS] or last-token pooling): every position's keys and
    /// values are still computed, but attention runs for those queries alone and the rest of
    /// the layer on those rows, giving (b, 1, c) — what the full layer gives at those
    /// positions, for about a quarter of its work.
    #[allow(clippy::too_many_arguments)] // the layer's inputs and its training-time switches
    pub fn forward(&self, xs: &Tensor, attention_mask: &Tensor, n_head: usize, act: Gelu, dropout: &Dropout, drops: [Option<MaskSource>; 2], lora: Option<&Lora>, rows: Option<&[u32]>) -> Result<Tensor> {
        if lora.is_none() && drops.iter().all(Option::is_none) {
            let prepared = self.prepared.read().expect("layer lock").clone();
            if let Some(p) = prepared {
                return self.forward_prepared(&p, xs, attention_mask, n_head, act, rows);
            }
        }
        let n = self.names;
        let layer = |name: &str| lora.and_then(|l| l.layer(&format!("{}.{name}", self.prefix))).filter(|l| !l.is_merged());
        let qkv_adapter = self.qkv_adapter(xs.dim(candle_core::D::Minus1)?, lora)?;
        if rows.is_none() && jielong_nn::fused_for(xs) {
            // The whole layer as one fused op (jielong_nn::encoder_layer), its dropout masks
            // the ones the composed path below draws, the adapters' terms inside it.
            let (b, t, c) = xs.dims3()?;
            let masks = dropout.mask(b, t * c, drops[0]).zip(dropout.mask(b, t * c, drops[1]));
            let adapter = |name: &str| layer(name).map(|l| BlockAdapter { a: l.a.as_tensor(), b: l.b.as_tensor(), scale: l.scale });
            let adapters = [qkv_adapter.as_ref().map(|(a, b)| BlockAdapter { a, b, scale: 1.0 }), adapter(n.attn_out), adapter(n.inter), adapter(n.out)];
            let bias = |ln: &'_ LayerNorm| ln.bias().cloned().ok_or_else(|| candle_core::Error::Msg("a post-LN layer norm without a bias".into()));
            let (ln1_b, ln2_b) = (bias(&self.attn_ln)?, bias(&self.out_ln)?);
            let w = EncoderLayerWeights {
                query: (&self.query.w, &self.query.b),
                key: (&self.key.w, &self.key.b),
                value: (&self.value.w, &self.value.b),
                attn_out: (&self.attn_out.w, &self.attn_out.b),
                attn_ln: (self.attn_ln.weight(), &ln1_b),
                inter: (&self.inter.w, &self.inter.b),
                out: (&self.out.w, &self.out.b),
                out_ln: (self.out_ln.weight(), &ln2_b),
            };
            return post_ln_encoder_layer(xs, &w, n_head, self.attn_ln.eps(), act == Gelu::Erf, attention_mask, masks.map(|(attn, mlp)| BlockDropout { attn, mlp }), adapters);
        }
        let lin = |x: &Tensor, name: &str, d: &Dense| match layer(name) {
            Some(l) => l.forward(x, &d.w, Some(&d.b), None),
            None => d.forward(x),
        };
        let qkv_w = Tensor::cat(&[&self.query.w, &self.key.w, &self.value.w], 0)?; // (3c, c)
        let bias = Tensor::cat(&[&self.query.b, &self.key.b, &self.value.b], 0)?;
        let mut qkv = linear(xs, &qkv_w, Some(&bias), WeightLayout::OutIn)?; // (b, t, 3c)
        if let Some((a, bm)) = &qkv_adapter {
            qkv = jielong_nn::low_rank_add(&qkv, xs, a, bm, 1.0)?;
        }
        let (xs, ys) = attend(&qkv, xs, n_head, attention_mask, rows)?;
        let ys = dropout.forward(&lin(&ys, n.attn_out, &self.attn_out)?, drops[0])?;
        let xs = self.attn_ln.forward(&(xs + ys)?)?;
        let ys = act.apply(&lin(&xs, n.inter, &self.inter)?)?; // (b, t, f)
        let ys = dropout.forward(&lin(&ys, n.out, &self.out)?, drops[1])?;
        self.out_ln.forward(&(xs + ys)?)
    }

    /// The adapters among q, k, v (not merged) as one low-rank term over the packed (3c)
    /// projection: their A's stacked (R, c) and their B's, each scaled by its α/r, in a block
    /// matrix (3c, R) that is zero where a projection has no adapter — one thin product
    /// instead of three. None when none of the three is adapted.
    fn qkv_adapter(&self, c: usize, lora: Option<&Lora>) -> Result<Option<(Tensor, Tensor)>> {
        let n = self.names;
        let ads: Vec<(usize, &jielong_nn::lora::LoraLayer)> = [n.query, n.key, n.value].iter().enumerate().filter_map(|(j, name)| lora?.layer(&format!("{}.{name}", self.prefix)).filter(|l| !l.is_merged()).map(|l| (j, l))).collect();
        if ads.is_empty() {
            return Ok(None);
        }
        let a = Tensor::cat(&ads.iter().map(|(_, l)| l.a.as_tensor()).collect::<Vec<_>>(), 0)?;
        let mut blocks = Vec::with_capacity(3);
        for j in 0..3 {
            let cols = ads.iter().map(|(k, l)| if *k == j { l.b.as_tensor().affine(l.scale, 0.0) } else { Tensor::zeros((c, l.b.dim(1)?), l.b.dtype(), l.b.device()) }).collect::<Result<Vec<_>>>()?;
            blocks.push(Tensor::cat(&cols, 1)?);
        }
        Ok(Some((a, Tensor::cat(&blocks, 0)?)))
    }

    /// `forward` in evaluation from the inference copies.
    fn forward_prepared(&self, p: &Prepared, xs: &Tensor, attention_mask: &Tensor, n_head: usize, act: Gelu, rows: Option<&[u32]>) -> Result<Tensor> {
        let qkv = linear(xs, &p.qkv_w, Some(&p.qkv_b), WeightLayout::InOut)?; // (b, t, 3c)
        let (xs, ys) = attend(&qkv, xs, n_head, attention_mask, rows)?;
        let ys = linear(&ys, &p.attn_out, Some(&self.attn_out.b), WeightLayout::InOut)?;
        let xs = self.attn_ln.forward(&(xs + ys)?)?;
        let ys = act.apply(&linear(&xs, &p.inter, Some(&self.inter.b), WeightLayout::InOut)?)?; // (b, t, f)
        let ys = linear(&ys, &p.out, Some(&self.out.b), WeightLayout::InOut)?;
        self.out_ln.forward(&(xs + ys)?)
    }
}

/// Attention over the packed projection `qkv` (b, t, 3c) and the residual stream `xs`
/// (b, t, c) it goes with: every position's (the fused kernel), or with `rows` only position
/// `rows[i]` of sequence i as a query ([`crate::encoder::attend_rows`]), with those rows of
/// `xs`, each (b, 1, c).
fn attend(qkv: &Tensor, xs: &Tensor, n_head: usize, attention_mask: &Tensor, rows: Option<&[u32]>) -> Result<(Tensor, Tensor)> {
    match rows {
        None => Ok((xs.clone(), bidirectional_attention_packed(qkv, n_head, attention_mask)?)),
        Some(rows) => {
            let (ys, idx) = crate::encoder::attend_rows(qkv, n_head, attention_mask, rows)?;
            Ok((crate::encoder::gather_rows(xs, &idx)?, ys))
        }
    }
}

/// The masked-LM head: dense (hidden → `e`, the embedding width), GELU, layer norm, then the
/// word embedding (vocab, e) transposed plus `bias`.
pub(crate) struct MlmHead {
    dense: Dense,
    ln: LayerNorm,
    bias: Tensor,
}

impl MlmHead {
    /// `transform` is the prefix of the dense layer and the layer norm (BERT nests them under
    /// `transform.`); `bias` sits at `vb`'s own level.
    pub fn new(hidden: usize, e: usize, vocab: usize, eps: f64, dense: &str, ln: &str, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            dense: Dense::new(hidden, e, vb.pp(dense))?,
            ln: LayerNorm::new(e, true, eps, vb.pp(ln))?,
            bias: vb.get_with_hints(vocab, "bias", Init::Const(0.0))?,
        })
    }

    /// Logits (…, vocab) from hidden states (…, hidden).
    pub fn logits(&self, hidden: &Tensor, word_embeddings: &Tensor, act: Gelu) -> Result<Tensor> {
        let x = self.ln.forward(&act.apply(&self.dense.forward(hidden)?)?)?;
        linear(&x, word_embeddings, Some(&self.bias), WeightLayout::OutIn)
    }
}

/// The rows of `hidden` (b, t, c) whose `targets` (b, t) are not [`IGNORE`], (n, c), and
/// those targets (n): only the chosen positions (about 15%) go through the MLM head.
pub(crate) fn chosen_rows(hidden: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, t, c) = hidden.dims3()?;
    let flat: Vec<u32> = targets.flatten_all()?.to_vec1::<u32>()?;
    let rows: Vec<u32> = flat.iter().enumerate().filter(|(_, &y)| y != IGNORE).map(|(i, _)| i as u32).collect();
    if rows.is_empty() {
        candle_core::bail!("mlm_loss: no position of the batch is a prediction target");
    }
    let dev = hidden.device();
    let idx = Tensor::new(rows.as_slice(), dev)?;
    let x = hidden.reshape((b * t, c))?.index_select(&idx, 0)?;
    let y = Tensor::new(rows.iter().map(|&r| flat[r as usize]).collect::<Vec<u32>>().as_slice(), dev)?;
    Ok((x, y))
}

/// `Model`, `Encoder` and `MaskedLm` for a post-LN encoder family (BERT, ALBERT): the type has
/// `cfg` (with `n_embd`, `max_seq_len`, `vocab_size`), `mlm: Option<MlmHead>`, the pair head
/// named `$pair: Option<Dense>` answering `$task`, and the inherent methods `hidden`, `pooled`,
/// `mlm_logits_of` and `encoder_layers` (its distinct [`Layer`]s). `$no_pair` is the error when pretraining asks for the missing pair head.
macro_rules! encoder_impls {
    ($ty:ident, $pair:ident, $task:expr, $no_pair:literal) => {
        impl Model for $ty {
            fn config(&self) -> ModelConfig {
                ModelConfig::new(self.cfg.clone())
            }
            fn as_causal_lm(&self) -> Option<&dyn crate::CausalLm> {
                None
            }
            fn as_encoder(&self) -> Option<&dyn Encoder> {
                Some(self)
            }
            fn linear_sites(&self) -> Vec<jielong_nn::LinearSite> {
                self.encoder_layers().iter().flat_map(|l| l.linear_sites()).collect()
            }
            fn set_lora(&mut self, lora: Option<std::sync::Arc<jielong_nn::Lora>>) -> std::result::Result<(), jielong_core::Error> {
                crate::check_lora(lora.as_deref(), &self.linear_sites())?;
                self.lora = lora;
                Ok(())
            }
        }

        impl Encoder for $ty {
            fn hidden_states(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor) -> Result<Tensor> {
                self.hidden(ids, token_types, attention_mask, ForwardOpts::default(), None)
            }
            fn hidden_states_train(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
                self.encoder_layers().iter().for_each(|l| l.unprepare());
                self.hidden(ids, token_types, attention_mask, opts, None)
            }
            fn hidden_states_at(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, positions: &[u32], train: Option<ForwardOpts>) -> Result<Tensor> {
                if train.is_some() {
                    self.encoder_layers().iter().for_each(|l| l.unprepare());
                }
                self.hidden(ids, token_types, attention_mask, train.unwrap_or_default(), Some(positions))?.squeeze(1)
            }
            fn hidden_size(&self) -> usize {
                self.cfg.n_embd
            }
            fn max_seq_len(&self) -> usize {
                self.cfg.max_seq_len
            }
            fn pooled(&self, hidden: &Tensor) -> Result<Option<Tensor>> {
                $ty::pooled(self, hidden)
            }
            fn prepare_inference(&self) -> Result<()> {
                self.encoder_layers().iter().try_for_each(|l| l.prepare())
            }
            fn as_masked_lm(&self) -> Option<&dyn MaskedLm> {
                self.mlm.as_ref().map(|_| self as &dyn MaskedLm)
            }
            fn sentence_task(&self) -> Option<SentenceTask> {
                self.$pair.as_ref().map(|_| $task)
            }
            fn sentence_logits(&self, hidden: &Tensor) -> Result<Option<Tensor>> {
                match (&self.$pair, self.pooled(hidden)?) {
                    (Some(head), Some(pooled)) => Ok(Some(head.forward(&pooled)?)),
                    _ => Ok(None),
                }
            }
        }

        impl MaskedLm for $ty {
            fn vocab_size(&self) -> usize {
                self.cfg.vocab_size
            }
            fn mlm_logits(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor) -> Result<Tensor> {
                self.mlm_logits_of(&self.hidden(ids, token_types, attention_mask, ForwardOpts::default(), None)?)
            }
            fn mlm_loss(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
                // Training: the parameters will change, so the inference copies go.
                self.encoder_layers().iter().for_each(|l| l.unprepare());
                let hidden = self.hidden(ids, token_types, attention_mask, opts, None)?;
                let (x, y) = chosen_rows(&hidden, targets)?;
                jielong_nn::cross_entropy(&self.mlm_logits_of(&x)?, &y)
            }
            fn pretraining(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<(Tensor, Tensor)> {
                self.encoder_layers().iter().for_each(|l| l.unprepare());
                let hidden = self.hidden(ids, token_types, attention_mask, opts, None)?;
                let pair = self.sentence_logits(&hidden)?.ok_or_else(|| candle_core::Error::Msg($no_pair.into()))?;
                let (x, y) = chosen_rows(&hidden, targets)?;
                Ok((jielong_nn::cross_entropy(&self.mlm_logits_of(&x)?, &y)?, pair))
            }
        }
    };
}
pub(crate) use encoder_impls;
