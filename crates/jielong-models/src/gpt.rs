//! GPT decoder (GPT-2 layout), with learned, sinusoidal or rotary positions.
//!
//! Weight names follow Hugging Face GPT-2, so real checkpoints load and ours export as they are
//! (linear weights in Conv1D layout, (in, out)):
//! ```text
//! transformer.wte.weight            (vocab_size, n_embd)
//! transformer.wpe.weight            (max_seq_len, n_embd)        learned positions only
//! transformer.h.{i}.ln_1.{weight,bias}
//! transformer.h.{i}.attn.c_attn.{weight (n_embd, 3·n_embd), bias}
//! transformer.h.{i}.attn.c_proj.{weight (n_embd, n_embd), bias}
//! transformer.h.{i}.ln_2.{weight,bias}
//! transformer.h.{i}.mlp.c_fc.{weight (n_embd, 4·n_embd), bias}
//! transformer.h.{i}.mlp.c_proj.{weight (4·n_embd, n_embd), bias}
//! transformer.ln_f.{weight,bias}
//! lm_head.weight                    (vocab_size, n_embd)         untied only
//! ```
//! (biases exist only with `bias = true`.)

use crate::family::{parse_as, Family, FamilyConfig};
use crate::soft_prompt::{SoftPrompt, SoftPromptKind, SoftPromptShape};
use crate::state::DecodeState;
pub use crate::ForwardOpts;
use crate::{CausalLm, Model, ModelConfig, Packing};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Embedding, Init, VarBuilder};
use jielong_core::Error;
use jielong_nn::{LinearSite, Lora};
use std::sync::Arc;
use jielong_nn::{transformer_block_adapted, BlockAdapter, BlockDropout, BlockWeights, causal_attention_packed, causal_self_attention, causal_self_attention_reference, linear, Conv1dLinear, WeightLayout, Dropout, KvCache, MaskSource, LayerNorm, PositionEncoding, Rope};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Size of the token table. 0 in a config file means "take it from the tokenizer".
    #[serde(default)]
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub max_seq_len: usize,
    #[serde(default)]
    pub dropout: f64,
    /// Biases in linear layers and layer norms (GPT-2: true).
    #[serde(default = "yes")]
    pub bias: bool,
    /// Share the token embedding with the output projection (GPT-2: true).
    #[serde(default = "yes")]
    pub tie_embeddings: bool,
    #[serde(default = "learned")]
    pub pos_encoding: PositionEncoding,
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "rope_theta")]
    pub rope_theta: f64,
}

fn yes() -> bool {
    true
}
fn learned() -> PositionEncoding {
    PositionEncoding::Learned
}
fn ln_eps() -> f64 {
    1e-5
}
fn rope_theta() -> f64 {
    10_000.0
}

/// The registry entry.
pub const FAMILY: Family = Family {
    name: "gpt",
    about: "GPT-2 layout decoder: layer norm, GELU MLP, learned / sinusoidal / rotary positions",
    parse: parse_as::<GptConfig>,
    preset: |name| GptConfig::preset(name).map(|c| Box::new(c) as Box<dyn FamilyConfig>),
    hf: Some(crate::hf::HfCodec { model_types: &["gpt2"], config_from_hf, config_to_hf, name_from_hf }),
};

/// GPT2Config → GptConfig. GPT-2 is learned positions, biases, tanh-GELU, 4·n_embd MLP.
fn config_from_hf(c: &serde_json::Map<String, serde_json::Value>) -> std::result::Result<Box<dyn FamilyConfig>, String> {
    use crate::hf::{field_f64, field_usize, require};
    use serde_json::Value;
    require(c, "activation_function", |v| matches!(v.as_str(), Some("gelu_new" | "gelu_pytorch_tanh")), "the tanh GELU, \"gelu_new\"")?;
    let n_embd = field_usize(c, "n_embd")?;
    require(c, "n_inner", |v| v.is_null() || v.as_u64() == Some(4 * n_embd as u64), "n_inner = 4·n_embd")?;
    require(c, "scale_attn_weights", |v| v.as_bool() == Some(true), "scaled attention")?;
    require(c, "scale_attn_by_inverse_layer_idx", |v| v.as_bool() == Some(false), "no per-layer attention scaling")?;
    require(c, "add_cross_attention", |v| v.as_bool() == Some(false), "a decoder without cross-attention")?;
    let cfg = GptConfig {
        vocab_size: field_usize(c, "vocab_size")?,
        n_layer: field_usize(c, "n_layer")?,
        n_head: field_usize(c, "n_head")?,
        n_embd,
        max_seq_len: field_usize(c, "n_positions")?,
        dropout: 0.0,
        bias: true,
        tie_embeddings: c.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(true),
        pos_encoding: PositionEncoding::Learned,
        layer_norm_eps: field_f64(c, "layer_norm_epsilon")?.unwrap_or(1e-5),
        rope_theta: rope_theta(),
    };
    Ok(Box::new(cfg))
}

/// GptConfig → the keys `GPT2Config.save_pretrained` writes (transformers 5.23), plus
/// `torch_dtype` for transformers 4.
fn config_to_hf(cfg: &dyn FamilyConfig, meta: &crate::hf::HfMeta) -> std::result::Result<serde_json::Map<String, serde_json::Value>, String> {
    let c = cfg.as_any().downcast_ref::<GptConfig>().ok_or("not a GPT config")?;
    if c.pos_encoding != PositionEncoding::Learned {
        return Err(format!("Hugging Face GPT-2 has learned positions; this model has {:?} (model.pos_encoding)", c.pos_encoding).to_lowercase());
    }
    if !c.bias {
        return Err("Hugging Face GPT-2 has biases; this model has none (model.bias = false)".into());
    }
    let v = serde_json::json!({
        "activation_function": "gelu_new", "add_cross_attention": false, "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.0, "bos_token_id": meta.bos_token_id, "dtype": meta.dtype, "torch_dtype": meta.dtype,
        "embd_pdrop": c.dropout, "eos_token_id": meta.eos_token_id, "initializer_range": 0.02,
        "layer_norm_epsilon": c.layer_norm_eps, "model_type": "gpt2", "n_embd": c.n_embd, "n_head": c.n_head,
        "n_inner": null, "n_layer": c.n_layer, "n_positions": c.max_seq_len, "pad_token_id": null,
        "reorder_and_upcast_attn": false, "resid_pdrop": c.dropout, "scale_attn_by_inverse_layer_idx": false,
        "scale_attn_weights": true, "summary_activation": null, "summary_first_dropout": 0.1,
        "summary_proj_to_labels": true, "summary_type": "cls_index", "summary_use_proj": true,
        "tie_word_embeddings": c.tie_embeddings, "transformers_version": "5.23.0", "use_cache": true,
        "vocab_size": c.vocab_size,
    });
    Ok(v.as_object().expect("an object").clone())
}

/// GPT-2 files name tensors with or without the `transformer.` prefix (GPT2LMHeadModel vs
/// GPT2Model) and may carry the causal-mask buffers `attn.bias` / `attn.masked_bias`.
fn name_from_hf(name: &str) -> Option<String> {
    if name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
        return None;
    }
    if name.starts_with("transformer.") || name == "lm_head.weight" {
        Some(name.to_string())
    } else {
        Some(format!("transformer.{name}"))
    }
}

impl FamilyConfig for GptConfig {
    fn family(&self) -> &'static str {
        "gpt"
    }
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    fn set_vocab_size(&mut self, vocab_size: usize) {
        self.vocab_size = vocab_size;
    }
    fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }
    fn validate(&self) -> std::result::Result<(), Error> {
        GptConfig::validate(self)
    }
    fn n_params(&self) -> usize {
        GptConfig::n_params(self)
    }
    fn flops_per_token(&self, seq_len: usize) -> f64 {
        GptConfig::flops_per_token(self, seq_len)
    }
    fn describe(&self) -> String {
        let pos = match self.pos_encoding {
            PositionEncoding::Learned => "learned positions",
            PositionEncoding::Sinusoidal => "sinusoidal positions",
            PositionEncoding::Rope => "rotary positions",
        };
        format!("GPT · {} layers · {} heads · n_embd {} · {pos}", self.n_layer, self.n_head, self.n_embd)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serializes")
    }
    fn clone_box(&self) -> Box<dyn FamilyConfig> {
        Box::new(self.clone())
    }
    fn build(&self, vb: VarBuilder) -> std::result::Result<Box<dyn Model>, Error> {
        Ok(Box::new(Gpt::new(self, vb)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn token_embedding(&self) -> Option<(&'static str, usize)> {
        Some(("transformer.wte.weight", self.n_embd))
    }
}

impl GptConfig {
    /// `tiny` (what `jielong quickstart` trains), `small` and `medium` (the `bench train`
    /// models: dropout 0, vocabularies of 4096 and 8192).
    pub fn preset(name: &str) -> Option<Self> {
        let bench = |n_layer, n_head, n_embd, max_seq_len, vocab_size| Self { vocab_size, n_layer, n_head, n_embd, max_seq_len, dropout: 0.0, ..Self::tiny() };
        match name {
            "tiny" => Some(Self::tiny()),
            "small" => Some(bench(4, 4, 256, 128, 4096)),
            "medium" => Some(bench(6, 6, 384, 256, 8192)),
            _ => None,
        }
    }

    /// The model `jielong quickstart` trains: about 2.2 M parameters at a 2048-token vocabulary.
    pub fn tiny() -> Self {
        Self {
            vocab_size: 0,
            n_layer: 4,
            n_head: 4,
            n_embd: 192,
            max_seq_len: 128,
            dropout: 0.1,
            bias: true,
            tie_embeddings: true,
            pos_encoding: PositionEncoding::Learned,
            layer_norm_eps: ln_eps(),
            rope_theta: rope_theta(),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Check that the numbers make a model; errors say which value to change.
    pub fn validate(&self) -> std::result::Result<(), Error> {
        let bad = |m: String| Err(Error::input(m));
        if self.vocab_size == 0 {
            return bad("model.vocab_size is 0: set it, or let `jielong train` take it from the data".into());
        }
        for (name, v) in [("n_layer", self.n_layer), ("n_head", self.n_head), ("n_embd", self.n_embd), ("max_seq_len", self.max_seq_len)] {
            if v == 0 {
                return bad(format!("model.{name} must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "model.n_embd = {} is not divisible by model.n_head = {}: every head needs n_embd / n_head dimensions",
                self.n_embd, self.n_head
            ));
        }
        if self.pos_encoding == PositionEncoding::Rope && !self.head_dim().is_multiple_of(2) {
            return bad(format!("RoPE needs an even head dimension, got n_embd / n_head = {}", self.head_dim()));
        }
        if self.pos_encoding == PositionEncoding::Sinusoidal && !self.n_embd.is_multiple_of(2) {
            return bad(format!("sinusoidal positions need an even n_embd, got {}", self.n_embd));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("model.dropout = {} must be in [0, 1)", self.dropout));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return bad("model.layer_norm_eps must be positive".into());
        }
        Ok(())
    }

    /// Parameters in the model (the tied head counted once).
    pub fn n_params(&self) -> usize {
        let (c, v, l) = (self.n_embd, self.vocab_size, self.n_layer);
        let b = self.bias as usize;
        let ln = c + b * c;
        let block = 2 * ln + (c * 3 * c + b * 3 * c) + (c * c + b * c) + (c * 4 * c + b * 4 * c) + (4 * c * c + b * c);
        let pos = if self.pos_encoding == PositionEncoding::Learned { self.max_seq_len * c } else { 0 };
        let head = if self.tie_embeddings { 0 } else { v * c };
        v * c + pos + l * block + ln + head
    }

    /// Training FLOPs per token (forward + backward) at sequence length `seq_len`, as in the
    /// PaLM appendix / nanoGPT: 6·N (N without position tables) + 12·n_layer·n_embd·seq_len.
    pub fn flops_per_token(&self, seq_len: usize) -> f64 {
        let pos = if self.pos_encoding == PositionEncoding::Learned { self.max_seq_len * self.n_embd } else { 0 };
        let n = (self.n_params() - pos) as f64;
        6.0 * n + 12.0 * (self.n_layer * self.n_embd * seq_len) as f64
    }
}

struct Mlp {
    c_fc: Conv1dLinear,
    c_proj: Conv1dLinear,
}

struct Block {
    /// `transformer.h.{i}`: the prefix of its parameters' names (LoRA finds its layers by it).
    name: String,
    ln_1: LayerNorm,
    c_attn: Conv1dLinear,
    c_proj: Conv1dLinear,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    /// The parameters as the fused block op takes them (models with biases only); `lw` are the
    /// four linear weights as `Gpt::linears` gives them (adapted by LoRA or not).
    /// The four linear weights as stored, in `LINEARS` order (no adapter applied).
    fn linear_weights(&self) -> [&Tensor; 4] {
        [self.c_attn.weight(), self.c_proj.weight(), self.mlp.c_fc.weight(), self.mlp.c_proj.weight()]
    }

    fn weights<'a>(&'a self, lw: &'a [Tensor; 4]) -> Result<BlockWeights<'a>> {
        fn pair<'a>(w: &'a Tensor, b: Option<&'a Tensor>) -> Result<(&'a Tensor, &'a Tensor)> {
            let b = b.ok_or_else(|| candle_core::Error::Msg("the fused block needs biases".into()))?;
            Ok((w, b))
        }
        Ok(BlockWeights {
            ln_1: pair(self.ln_1.weight(), self.ln_1.bias())?,
            c_attn: pair(&lw[0], self.c_attn.bias())?,
            attn_proj: pair(&lw[1], self.c_proj.bias())?,
            ln_2: pair(self.ln_2.weight(), self.ln_2.bias())?,
            c_fc: pair(&lw[2], self.mlp.c_fc.bias())?,
            mlp_proj: pair(&lw[3], self.mlp.c_proj.bias())?,
        })
    }
}

pub struct Gpt {
    cfg: GptConfig,
    wte: Embedding,
    wpe: Option<Embedding>,
    sinusoids: Option<Tensor>,
    rope: Option<Rope>,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// (vocab_size, n_embd): `wte` itself when tied.
    head: Tensor,
    dropout: Dropout,
    /// LoRA adapters on the attention and MLP projections, when set (`Model::set_lora`).
    lora: Option<Arc<Lora>>,
    /// Prompt- or prefix-tuning virtual tokens, when set (`Model::set_soft_prompt`).
    soft: Option<Arc<SoftPrompt>>,
}

/// The names of a block's four linear layers, after its prefix, in `Gpt::linears` order.
const LINEARS: [&str; 4] = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"];

impl Gpt {
    /// A block's four linear weights (c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj), each
    /// adapted by the LoRA when one is set.
    fn linears(&self, block: &Block) -> Result<[Tensor; 4]> {
        let bases = block.linear_weights();
        let w = |j: usize| match &self.lora {
            Some(l) => l.weight(&format!("{}.{}", block.name, LINEARS[j]), bases[j]),
            None => Ok(bases[j].clone()),
        };
        Ok([w(0)?, w(1)?, w(2)?, w(3)?])
    }

    /// Build the model, creating (or fetching) its parameters through `vb`.
    /// Init as GPT-2: N(0, 0.02), residual projections N(0, 0.02/√(2·n_layer)), biases 0.
    pub fn new(cfg: &GptConfig, vb: VarBuilder) -> std::result::Result<Self, Error> {
        cfg.validate()?;
        let c = cfg.n_embd;
        let std = 0.02;
        let proj_std = 0.02 / ((2 * cfg.n_layer) as f64).sqrt();
        let vt = vb.pp("transformer");
        let wte_w = vt.get_with_hints((cfg.vocab_size, c), "wte.weight", Init::Randn { mean: 0.0, stdev: std })?;
        let wte = Embedding::new(wte_w.clone(), c);
        let wpe = match cfg.pos_encoding {
            PositionEncoding::Learned => Some(Embedding::new(
                vt.get_with_hints((cfg.max_seq_len, c), "wpe.weight", Init::Randn { mean: 0.0, stdev: std })?,
                c,
            )),
            _ => None,
        };
        let dev = vb.device();
        let sinusoids = match cfg.pos_encoding {
            PositionEncoding::Sinusoidal => Some(jielong_nn::position::sinusoidal_table(cfg.max_seq_len, c, dev)?),
            _ => None,
        };
        let rope = match cfg.pos_encoding {
            PositionEncoding::Rope => Some(Rope::new(cfg.max_seq_len, cfg.head_dim(), cfg.rope_theta, dev)?),
            _ => None,
        };
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let vb = vt.pp(format!("h.{i}"));
            blocks.push(Block {
                name: format!("transformer.h.{i}"),
                ln_1: LayerNorm::new(c, cfg.bias, cfg.layer_norm_eps, vb.pp("ln_1"))?,
                c_attn: Conv1dLinear::new(c, 3 * c, cfg.bias, std, vb.pp("attn.c_attn"))?,
                c_proj: Conv1dLinear::new(c, c, cfg.bias, proj_std, vb.pp("attn.c_proj"))?,
                ln_2: LayerNorm::new(c, cfg.bias, cfg.layer_norm_eps, vb.pp("ln_2"))?,
                mlp: Mlp {
                    c_fc: Conv1dLinear::new(c, 4 * c, cfg.bias, std, vb.pp("mlp.c_fc"))?,
                    c_proj: Conv1dLinear::new(4 * c, c, cfg.bias, proj_std, vb.pp("mlp.c_proj"))?,
                },
            });
        }
        let ln_f = LayerNorm::new(c, cfg.bias, cfg.layer_norm_eps, vt.pp("ln_f"))?;
        let head = if cfg.tie_embeddings {
            wte_w
        } else {
            vb.get_with_hints((cfg.vocab_size, c), "lm_head.weight", Init::Randn { mean: 0.0, stdev: std })?
        };
        Ok(Self { cfg: cfg.clone(), wte, wpe, sinusoids, rope, blocks, ln_f, head, dropout: Dropout { p: cfg.dropout as f32 }, lora: None, soft: None })
    }

    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// `ids` (b, t) → logits (b, t, vocab_size).
    pub fn forward(&self, ids: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        // (b, t, c) · (v, c)ᵀ -> (b, t, v)
        linear(&self.hidden(ids, opts)?, &self.head, None, WeightLayout::OutIn)
    }

    /// Training loss: mean next-token cross-entropy of `ids` (b, t) against `targets` (b, t),
    /// with the LM head and the loss fused (`jielong_nn::head_loss`): the (b·t × vocab) logits
    /// never become a tensor of the autograd graph.
    pub fn forward_loss(&self, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        let xs = self.hidden(ids, opts)?;
        let (b, t, c) = xs.dims3()?;
        jielong_nn::head_loss::linear_cross_entropy(&xs.reshape((b * t, c))?, &self.head, &targets.reshape(b * t)?)
    }

    /// The (vocab_size, n_embd) output matrix (the token embedding when tied).
    pub fn head(&self) -> &Tensor {
        &self.head
    }

    /// `ids` (b, t) → final hidden states after `ln_f` (b, t, n_embd).
    ///
    /// With virtual tokens (`soft_prompt.rs`) the real tokens sit at positions n..n + t:
    /// prompt tuning runs n + t positions (the trained embeddings first) and returns the last
    /// t; prefix tuning puts each layer's trained keys and values before its own, on the
    /// composed attention path (the fused block and flash kernels take no prefix).
    pub fn hidden(&self, ids: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        self.hidden_with(ids, opts, None)
    }

    /// `hidden`, of packed rows when `packing` is given: positions restart per example and
    /// attention stays within each (the composed path: masked attention, no fused kernels).
    pub fn hidden_with(&self, ids: &Tensor, opts: ForwardOpts, packing: Option<&Packing>) -> Result<Tensor> {
        self.hidden_rows(ids, opts, packing, None)
    }

    /// `hidden_with`; with `rows` Some(positions), only position `rows[i]` of sequence i,
    /// (b, 1, c), the last block computing only what those rows need
    /// ([`Gpt::last_block_rows`]). Rows are for plain batches: no soft prompt, no RoPE, no
    /// packing.
    fn hidden_rows(&self, ids: &Tensor, opts: ForwardOpts, packing: Option<&Packing>, rows: Option<&[u32]>) -> Result<Tensor> {
        if rows.is_some() && (self.soft.is_some() || self.rope.is_some() || packing.is_some()) {
            candle_core::bail!("the last block's rows alone are computed for plain batches only (no virtual tokens, RoPE or packing)");
        }
        let (b, t_real) = ids.dims2()?;
        let n_soft = self.soft.as_ref().map_or(0, |s| s.n);
        if t_real + n_soft > self.cfg.max_seq_len {
            candle_core::bail!("sequence of {t_real} tokens is longer than the model's max_seq_len {} (less {n_soft} virtual tokens)", self.cfg.max_seq_len - n_soft);
        }
        let c = self.cfg.n_embd;
        let (h, d) = (self.cfg.n_head, self.cfg.head_dim());
        let drop = |site: u64| opts.dropout_seed.filter(|_| self.dropout.p > 0.0).map(|seed| MaskSource { seed, site, first_row: opts.first_row });
        let dev = ids.device();
        let prompt = self.soft.as_ref().filter(|s| s.kind == SoftPromptKind::Prompt);
        let prefix = self.soft.as_ref().filter(|s| s.kind == SoftPromptKind::Prefix);

        if packing.is_some() && prompt.is_some() {
            candle_core::bail!("prompt tuning cannot run packed sequences (each example needs its own virtual tokens): train without --packing");
        }
        let mut xs = self.wte.forward(ids)?; // (b, t, c)
        // (first position, positions run): the virtual tokens of a prompt are positions 0..n.
        let (p0, t) = match prompt {
            Some(p) => {
                xs = Tensor::cat(&[&p.embeddings(b)?, &xs], 1)?; // (b, n + t, c)
                (0, n_soft + t_real)
            }
            None => (n_soft, t_real),
        };
        let packed_pos = match packing {
            Some(p) => Some(p.positions_tensor(p0, dev)?), // (b·t)
            None => None,
        };
        if let Some(wpe) = &self.wpe {
            xs = match &packed_pos {
                Some(pos) => (xs + wpe.forward(pos)?.reshape((b, t, c))?)?,
                None => xs.broadcast_add(&wpe.forward(&Tensor::arange(p0 as u32, (p0 + t) as u32, dev)?)?)?,
            };
        }
        if let Some(table) = &self.sinusoids {
            xs = match &packed_pos {
                Some(pos) => (xs + table.index_select(pos, 0)?.reshape((b, t, c))?)?,
                None => xs.broadcast_add(&table.narrow(0, p0, t)?)?,
            };
        }
        let packed_mask = match packing {
            Some(p) => Some(p.mask_after(prefix.map_or(0, |p| p.n))?),
            None => None,
        };
        xs = self.dropout.forward(&xs, drop(0))?;

        // The whole block as one fused op (jielong_nn::block) where it applies: CPU f32,
        // learned or sinusoidal positions, biases. Its dropout masks are the ones the composed
        // path below would draw (same generators and sites).
        let fused_blocks = self.rope.is_none() && self.cfg.bias && prefix.is_none() && packing.is_none() && jielong_nn::fused_for(&xs);
        for (i, block) in self.blocks.iter().enumerate() {
            let site = 1 + 3 * i as u64;
            if let Some(r) = rows.filter(|_| i + 1 == self.blocks.len()) {
                xs = self.last_block_rows(block, &xs, r, [drop(site), drop(site + 1)])?;
                break;
            }
            if fused_blocks {
                let masks = self.dropout.mask(b, t * c, drop(site)).zip(self.dropout.mask(b, t * c, drop(site + 1)));
                let dropout = masks.map(|(attn, mlp)| BlockDropout { attn, mlp });
                // LoRA runs inside the block as low-rank terms over the base weights (no
                // weight-sized product in backward); merged adapters are in the base already.
                let bases = block.linear_weights().map(Tensor::clone);
                let adapters = LINEARS.map(|n| {
                    let l = self.lora.as_deref()?.layer(&format!("{}.{n}", block.name)).filter(|l| !l.is_merged())?;
                    Some(BlockAdapter { a: l.a.as_tensor(), b: l.b.as_tensor(), scale: l.scale })
                });
                xs = transformer_block_adapted(&xs, &block.weights(&bases)?, h, self.cfg.layer_norm_eps, dropout, adapters)?;
                continue;
            }
            let lw = self.linears(block)?;
            let lin = |x: &Tensor, j: usize, b: Option<&Tensor>| linear(x, &lw[j], b, WeightLayout::InOut);
            // Attention: (b, t, c) -> q, k, v (b, h, t, d)
            let qkv = lin(&block.ln_1.forward(&xs)?, 0, block.c_attn.bias())?; // (b, t, 3c)
            let ys = if self.rope.is_none() && prefix.is_none() && packing.is_none() && jielong_nn::fused_for(&qkv) {
                // One fused kernel straight from the packed projection (jielong_nn::flash).
                causal_attention_packed(&qkv, h)?
            } else {
                let split = |j: usize| -> Result<Tensor> {
                    qkv.narrow(D::Minus1, j * c, c)?.reshape((b, t, h, d))?.transpose(1, 2)?.contiguous()
                };
                let (mut q, mut k, mut v) = (split(0)?, split(1)?, split(2)?);
                if let Some(rope) = &self.rope {
                    match &packed_pos {
                        Some(pos) => (q, k) = (rope.apply_at(&q, pos)?, rope.apply_at(&k, pos)?),
                        None => (q, k) = (rope.apply(&q, p0)?, rope.apply(&k, p0)?),
                    }
                }
                if let Some(p) = prefix {
                    // The layer's prefix first: (b, h, n + t, d); every query sees all of it.
                    let (pk, pv) = p.layer_kv(i)?;
                    k = Tensor::cat(&[&pk.broadcast_as((b, h, n_soft, d))?, &k], 2)?.contiguous()?;
                    v = Tensor::cat(&[&pv.broadcast_as((b, h, n_soft, d))?, &v], 2)?.contiguous()?;
                }
                let (ys, _att) = match &packed_mask {
                    Some(mask) => causal_self_attention_reference(&q, &k, &v, Some(mask))?, // within each example
                    None => causal_self_attention(&q, &k, &v)?, // (b, h, t, d), causal after the prefix
                };
                ys.transpose(1, 2)?.reshape((b, t, c))? // (b, t, c)
            };
            let ys = self.dropout.forward(&lin(&ys, 1, block.c_proj.bias())?, drop(site))?;
            xs = (xs + ys)?;
            // MLP: (b, t, c) -> (b, t, 4c) -> (b, t, c)
            let ys = jielong_nn::gelu::gelu(&lin(&block.ln_2.forward(&xs)?, 2, block.mlp.c_fc.bias())?)?;
            let ys = self.dropout.forward(&lin(&ys, 3, block.mlp.c_proj.bias())?, drop(site + 1))?;
            xs = (xs + ys)?;
        }
        if prompt.is_some() {
            xs = xs.narrow(1, n_soft, t_real)?; // the real tokens only
        }
        self.ln_f.forward(&xs)
    }
}

impl Gpt {
    /// A block for one query row per sequence, position `rows[i]` of sequence i, over the
    /// residual stream `xs` (b, t, c): every position's keys and values, attention for those
    /// queries alone (each over its keys up to itself: causal), then the projection, the MLP
    /// and both residuals on those rows, (b, 1, c). LoRA adapters add their low-rank terms to
    /// the base products (PEFT's form), as in the fused block. `drops`: the dropout masks'
    /// sources after attention and after the MLP.
    fn last_block_rows(&self, block: &Block, xs: &Tensor, rows: &[u32], drops: [Option<MaskSource>; 2]) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let bases = block.linear_weights();
        let biases = [block.c_attn.bias(), block.c_proj.bias(), block.mlp.c_fc.bias(), block.mlp.c_proj.bias()];
        let lin = |x: &Tensor, j: usize| -> Result<Tensor> {
            match self.lora.as_deref().and_then(|l| l.layer(&format!("{}.{}", block.name, LINEARS[j]))) {
                Some(l) => l.forward(x, bases[j], biases[j], None),
                None => linear(x, bases[j], biases[j], WeightLayout::InOut),
            }
        };
        let qkv = lin(&block.ln_1.forward(xs)?, 0)?; // (b, t, 3c)
        let causal: Vec<u32> = rows.iter().flat_map(|&r| (0..t as u32).map(move |j| u32::from(j <= r))).collect();
        let (ys, idx) = crate::encoder::attend_rows(&qkv, self.cfg.n_head, &Tensor::from_vec(causal, (b, t), xs.device())?, rows)?;
        let x1 = (crate::encoder::gather_rows(xs, &idx)? + self.dropout.forward(&lin(&ys, 1)?, drops[0])?)?;
        let ys = jielong_nn::gelu::gelu(&lin(&block.ln_2.forward(&x1)?, 2)?)?;
        x1 + self.dropout.forward(&lin(&ys, 3)?, drops[1])?
    }

    /// Decoding with KV caches. Sequence `s` is fed the new tokens `chunks[s]` (its whole prompt
    /// at prefill, one token per step after that) on top of what `caches[s]` already holds.
    /// All new tokens of all sequences travel packed as one (n, c) matrix through the
    /// embeddings, norms and matmuls; attention is one fused kernel over all sequences, each
    /// against its own cached keys and values (`jielong_nn::cached_attention`). Returns the logits at each chunk's last token: (n_seq, vocab_size).
    pub fn forward_cached(&self, chunks: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        self.forward_cached_maps(chunks, caches, None, None)
    }

    /// The causal self-attention weights of every layer for the prompt `ids`: one (n_head, t, t)
    /// tensor per layer, row i the softmax(q_i·kᵀ/√d) over positions 0..=i (zero above the
    /// diagonal). Computed on the explicit decoding path (softmax of the scores, kept), so the
    /// fused training kernels are neither used nor slowed (`jielong attention`).
    pub fn attention_maps(&self, ids: &[u32]) -> Result<Vec<Tensor>> {
        let mut cache = KvCache::new(self.cfg.n_layer, self.cfg.max_seq_len);
        let mut maps = Vec::with_capacity(self.cfg.n_layer);
        self.forward_cached_maps(&[ids], &mut [&mut cache], Some(&mut maps), None)?;
        Ok(maps)
    }

    /// Write the virtual tokens into an empty cache: prefix tuning's keys and values as they
    /// are, prompt tuning's embeddings run through the model at positions 0..n.
    fn fill_virtual(&self, cache: &mut KvCache) -> Result<()> {
        crate::soft_prompt::fill_virtual(self.soft.as_deref(), cache, |c, ids, table| self.forward_cached_maps(&[ids], &mut [c], None, Some(table)).map(|_| ()))
    }

    /// `forward_cached`, keeping each layer's attention weights of the first sequence in `maps`;
    /// `embeds` (n, c), when given, replace the token embeddings of the (single) chunk.
    fn forward_cached_maps(&self, chunks: &[&[u32]], caches: &mut [&mut KvCache], mut maps: Option<&mut Vec<Tensor>>, embeds: Option<&Tensor>) -> Result<Tensor> {
        if chunks.len() != caches.len() {
            candle_core::bail!("{} chunks but {} caches", chunks.len(), caches.len());
        }
        let (c, h, d) = (self.cfg.n_embd, self.cfg.n_head, self.cfg.head_dim());
        let dev = self.head.device();
        // Where each sequence's new tokens start (positions are per sequence).
        let offsets: Vec<usize> = caches.iter().map(|kv| kv.len()).collect();
        let mut ids = Vec::new();
        let mut pos = Vec::new();
        for (chunk, &off) in chunks.iter().zip(&offsets) {
            if chunk.is_empty() {
                candle_core::bail!("forward_cached: a sequence was given no new tokens");
            }
            if off + chunk.len() > self.cfg.max_seq_len {
                candle_core::bail!(
                    "context of {} tokens is longer than the model's max_seq_len {}",
                    off + chunk.len(),
                    self.cfg.max_seq_len
                );
            }
            ids.extend_from_slice(chunk);
            pos.extend((off..off + chunk.len()).map(|p| p as u32));
        }
        let n = ids.len();
        let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        let ids = Tensor::from_vec(ids, n, dev)?;
        let pos = Tensor::from_vec(pos, n, dev)?;

        let mut xs = match embeds {
            Some(e) => e.clone(),
            None => self.wte.forward(&ids)?,
        }; // (n, c)
        if let Some(wpe) = &self.wpe {
            xs = (xs + wpe.forward(&pos)?)?;
        }
        if let Some(table) = &self.sinusoids {
            xs = (xs + table.index_select(&pos, 0)?)?;
        }
        for (layer, block) in self.blocks.iter().enumerate() {
            let lw = self.linears(block)?;
            let lin = |x: &Tensor, j: usize, b: Option<&Tensor>| linear(x, &lw[j], b, WeightLayout::InOut);
            let qkv = lin(&block.ln_1.forward(&xs)?, 0, block.c_attn.bias())?; // (n, 3c)
            let ys = if maps.is_none() && jielong_nn::fused_for(&qkv) {
                // One fused kernel for all sequences, reading and extending the caches in
                // place (jielong_nn::decode_attention).
                jielong_nn::cached_attention(&qkv, layer, &lens, caches, h, h, self.rope.as_ref())? // (n, c)
            } else {
                let mut outs = Vec::with_capacity(chunks.len());
                let mut start = 0;
                for (s, chunk) in chunks.iter().enumerate() {
                    let t = chunk.len();
                    let part = qkv.narrow(0, start, t)?; // (t, 3c)
                    let split = |j: usize| -> Result<Tensor> {
                        part.narrow(1, j * c, c)?.reshape((1, t, h, d))?.transpose(1, 2)?.contiguous() // (1, h, t, d)
                    };
                    let (mut q, mut k, v) = (split(0)?, split(1)?, split(2)?);
                    if let Some(rope) = &self.rope {
                        q = rope.apply(&q, offsets[s])?;
                        k = rope.apply(&k, offsets[s])?;
                    }
                    let (k, v) = caches[s].append(layer, &k, &v)?; // (1, h, off + t, d)
                    let (ys, att) = causal_self_attention(&q, &k, &v)?; // (1, h, t, d), causal after the cache
                    if s == 0 {
                        if let Some(maps) = maps.as_deref_mut() {
                            maps.push(att.squeeze(0)?); // (h, t, off + t)
                        }
                    }
                    outs.push(ys.transpose(1, 2)?.reshape((t, c))?); // (t, c)
                    start += t;
                }
                if outs.len() == 1 { outs.pop().expect("one") } else { Tensor::cat(&outs, 0)? } // (n, c)
            };
            xs = (xs + lin(&ys, 1, block.c_proj.bias())?)?;
            let ys = jielong_nn::gelu::gelu(&lin(&block.ln_2.forward(&xs)?, 2, block.mlp.c_fc.bias())?)?;
            xs = (xs + lin(&ys, 3, block.mlp.c_proj.bias())?)?;
        }
        // Only each chunk's last position is needed: (n_seq, c) -> (n_seq, v).
        let mut end = 0u32;
        let last: Vec<u32> = chunks.iter().map(|ch| { end += ch.len() as u32; end - 1 }).collect();
        let xs = xs.index_select(&Tensor::new(last.as_slice(), dev)?, 0)?;
        linear(&self.ln_f.forward(&xs)?, &self.head, None, WeightLayout::OutIn)
    }
}

impl Model for Gpt {
    fn config(&self) -> ModelConfig {
        ModelConfig::new(self.cfg.clone())
    }
    fn as_causal_lm(&self) -> Option<&dyn CausalLm> {
        Some(self)
    }
    fn as_encoder(&self) -> Option<&dyn crate::Encoder> {
        Some(self)
    }

    // --- adapters (instruction tuning) ---
    fn linear_sites(&self) -> Vec<LinearSite> {
        let c = self.cfg.n_embd;
        let sizes = [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)];
        self.blocks
            .iter()
            .flat_map(|b| LINEARS.iter().zip(sizes).map(move |(n, (n_in, n_out))| LinearSite { name: format!("{}.{n}", b.name), n_in, n_out, layout: WeightLayout::InOut }))
            .collect()
    }
    fn set_lora(&mut self, lora: Option<Arc<Lora>>) -> std::result::Result<(), Error> {
        crate::check_lora(lora.as_deref(), &self.linear_sites())?;
        self.lora = lora;
        Ok(())
    }
    fn soft_prompt_shape(&self) -> Option<SoftPromptShape> {
        let c = &self.cfg;
        Some(SoftPromptShape { n_layer: c.n_layer, n_embd: c.n_embd, n_kv_head: c.n_head, head_dim: c.head_dim(), max_seq_len: c.max_seq_len })
    }
    fn set_soft_prompt(&mut self, prompt: Option<Arc<SoftPrompt>>) -> std::result::Result<(), Error> {
        crate::check_soft_prompt(prompt.as_deref(), self.soft_prompt_shape().expect("gpt has one"))?;
        self.soft = prompt;
        Ok(())
    }
}

/// A causal model embeds too: its last hidden states (after the final norm), each position
/// seeing only what came before it. Right padding is after every real token, so causal
/// attention keeps it out without the mask.
impl crate::Encoder for Gpt {
    fn hidden_states(&self, ids: &Tensor, _token_types: Option<&Tensor>, _attention_mask: &Tensor) -> Result<Tensor> {
        self.hidden(ids, ForwardOpts::default())
    }
    /// The last block computes only the rows asked for (last-token pooling reads one per
    /// sequence); without dropout in training too, as `hidden_states_train` (the trait's
    /// default) is. Soft prompts and RoPE take the full states and gather.
    fn hidden_states_at(&self, ids: &Tensor, _token_types: Option<&Tensor>, _attention_mask: &Tensor, positions: &[u32], _train: Option<ForwardOpts>) -> Result<Tensor> {
        if self.soft.is_some() || self.rope.is_some() {
            let hidden = self.hidden(ids, ForwardOpts::default())?;
            let (b, t, _) = hidden.dims3()?;
            return crate::encoder::gather_rows(&hidden, &crate::encoder::row_index(b, t, positions, ids.device())?)?.squeeze(1);
        }
        self.hidden_rows(ids, ForwardOpts::default(), None, Some(positions))?.squeeze(1)
    }
    fn hidden_size(&self) -> usize {
        self.cfg.n_embd
    }
    fn max_seq_len(&self) -> usize {
        self.cfg.max_seq_len
    }
}

impl CausalLm for Gpt {
    fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward(ids, ForwardOpts::default())
    }
    fn loss(&self, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        self.forward_loss(ids, targets, opts)
    }
    fn new_state(&self) -> Box<dyn DecodeState> {
        match &self.soft {
            Some(soft) => soft.new_state(),
            None => Box::new(KvCache::new(self.cfg.n_layer, self.cfg.max_seq_len)),
        }
    }
    // --- instruction tuning ---
    fn loss_on_targets(&self, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        crate::masked_head_loss(&self.hidden(ids, opts)?, &self.head, targets)
    }
    fn packed_logits(&self, ids: &Tensor, packing: &Packing) -> Result<Tensor> {
        linear(&self.hidden_with(ids, ForwardOpts::default(), Some(packing))?, &self.head, None, WeightLayout::OutIn)
    }
    fn packed_loss_on_targets(&self, ids: &Tensor, targets: &Tensor, packing: &Packing, opts: ForwardOpts) -> Result<Tensor> {
        crate::masked_head_loss(&self.hidden_with(ids, opts, Some(packing))?, &self.head, targets)
    }
    fn attention_maps(&self, ids: &[u32]) -> Result<Option<Vec<Tensor>>> {
        Ok(Some(Self::attention_maps(self, ids)?))
    }
    fn forward_cached(&self, chunks: &[&[u32]], states: &mut [&mut dyn DecodeState]) -> Result<Tensor> {
        let mut caches = Vec::with_capacity(states.len());
        for (cache, fill) in crate::soft_prompt::caches(states, "gpt")? {
            if fill {
                self.fill_virtual(cache)?;
            }
            caches.push(cache);
        }
        Gpt::forward_cached(self, chunks, &mut caches)
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    /// The context left for real tokens (less the virtual ones, when set).
    fn max_seq_len(&self) -> usize {
        self.cfg.max_seq_len - self.soft.as_ref().map_or(0, |s| s.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use jielong_nn::ParamStore;

    fn model(pos: PositionEncoding, tie: bool, bias: bool) -> Gpt {
        let cfg = GptConfig {
            vocab_size: 50,
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            max_seq_len: 12,
            dropout: 0.0,
            bias,
            tie_embeddings: tie,
            pos_encoding: pos,
            ..GptConfig::tiny()
        };
        let params = ParamStore::new(3);
        let m = Gpt::new(&cfg, params.var_builder(&Device::Cpu)).unwrap();
        assert_eq!(params.n_params(), cfg.n_params(), "n_params formula disagrees with the built model");
        m
    }

    #[test]
    fn gpt_is_causal_for_every_position_encoding() {
        for pos in [PositionEncoding::Learned, PositionEncoding::Sinusoidal, PositionEncoding::Rope] {
            for (tie, bias) in [(true, true), (false, false)] {
                let m = model(pos, tie, bias);
                let a = Tensor::new(&[[1u32, 5, 9, 2, 7, 3, 4, 8]], &Device::Cpu).unwrap();
                let b = Tensor::new(&[[1u32, 5, 9, 2, 11, 12, 13, 14]], &Device::Cpu).unwrap();
                let la = m.logits(&a).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
                let lb = m.logits(&b).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
                for i in 0..4 {
                    for (x, y) in la[i].iter().zip(&lb[i]) {
                        assert!((x - y).abs() < 1e-5, "{pos:?}: position {i} sees the future");
                    }
                }
                let diff: f32 = la[4].iter().zip(&lb[4]).map(|(x, y)| (x - y).abs()).sum();
                assert!(diff > 1e-3, "{pos:?}: position 4 ignores its own token");
            }
        }
    }

    #[test]
    fn gpt_position_matters_and_long_input_is_an_error() {
        for pos in [PositionEncoding::Learned, PositionEncoding::Sinusoidal, PositionEncoding::Rope] {
            let m = model(pos, true, true);
            // Without position information attention is a bag of words: the last position would
            // give the same output for [3, 9, 4] and [9, 3, 4]. (A run of identical tokens is no
            // test: RoPE encodes only relative position.)
            let last = |ids: [u32; 3]| {
                let l = m.logits(&Tensor::new(&[ids], &Device::Cpu).unwrap()).unwrap();
                l.squeeze(0).unwrap().get(2).unwrap().to_vec1::<f32>().unwrap()
            };
            let diff: f32 = last([3, 9, 4]).iter().zip(&last([9, 3, 4])).map(|(x, y)| (x - y).abs()).sum();
            assert!(diff > 1e-4, "{pos:?}: order of the context does not matter");
            let long = Tensor::zeros((1, 13), candle_core::DType::U32, &Device::Cpu).unwrap();
            assert!(m.logits(&long).is_err());
        }
    }

    #[test]
    fn gpt_config_validation_names_the_field() {
        let mut c = GptConfig { vocab_size: 10, ..GptConfig::tiny() };
        c.n_head = 5;
        assert!(c.validate().unwrap_err().to_string().contains("n_head"));
        c.n_head = 4;
        c.dropout = 1.0;
        assert!(c.validate().unwrap_err().to_string().contains("dropout"));
        let c = GptConfig { vocab_size: 0, ..GptConfig::tiny() };
        assert!(c.validate().unwrap_err().to_string().contains("vocab_size"));
    }

    /// Layer 0's attention weights, computed by hand in plain f32 loops from the parameters:
    /// x = wte[id] + wpe[pos], LayerNorm, qkv = x·W + b, softmax(q·kᵀ/√d) over j ≤ i.
    fn explicit_layer0(m: &Gpt, ids: &[u32]) -> Vec<Vec<Vec<f32>>> {
        let cfg = &m.cfg;
        let (c, h, d) = (cfg.n_embd, cfg.n_head, cfg.head_dim());
        let wte = m.wte.embeddings().to_vec2::<f32>().unwrap();
        let wpe = m.wpe.as_ref().unwrap().embeddings().to_vec2::<f32>().unwrap();
        let b0 = &m.blocks[0];
        let g = b0.ln_1.weight().to_vec1::<f32>().unwrap();
        let beta = b0.ln_1.bias().unwrap().to_vec1::<f32>().unwrap();
        let w = b0.c_attn.weight().to_vec2::<f32>().unwrap(); // (c, 3c)
        let bias = b0.c_attn.bias().unwrap().to_vec1::<f32>().unwrap();
        let qkv: Vec<Vec<f32>> = ids
            .iter()
            .enumerate()
            .map(|(p, &id)| {
                let x: Vec<f32> = (0..c).map(|j| wte[id as usize][j] + wpe[p][j]).collect();
                let mean = x.iter().sum::<f32>() / c as f32;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
                let n: Vec<f32> = (0..c).map(|j| (x[j] - mean) / (var + cfg.layer_norm_eps as f32).sqrt() * g[j] + beta[j]).collect();
                (0..3 * c).map(|o| bias[o] + (0..c).map(|j| n[j] * w[j][o]).sum::<f32>()).collect()
            })
            .collect();
        let t = ids.len();
        (0..h)
            .map(|hd| {
                (0..t)
                    .map(|i| {
                        let score = |k: usize| (0..d).map(|e| qkv[i][hd * d + e] * qkv[k][c + hd * d + e]).sum::<f32>() / (d as f32).sqrt();
                        let s: Vec<f32> = (0..=i).map(score).collect();
                        let mx = s.iter().cloned().fold(f32::MIN, f32::max);
                        let z: f32 = s.iter().map(|v| (v - mx).exp()).sum();
                        (0..t).map(|k| if k <= i { (s[k] - mx).exp() / z } else { 0.0 }).collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn gpt_attention_maps_equal_explicit_attention_and_are_causal() {
        let cfg = GptConfig { vocab_size: 40, n_layer: 2, n_head: 2, n_embd: 8, max_seq_len: 12, dropout: 0.0, ..GptConfig::tiny() };
        let params = ParamStore::new(5);
        let m = Gpt::new(&cfg, params.var_builder(&Device::Cpu)).unwrap();
        // Weights far from the init's 0.02 so the maps are sharp, not near-uniform.
        for (_, v) in params.vars() {
            v.set(&Tensor::randn(0f32, 0.7, v.shape(), &Device::Cpu).unwrap()).unwrap();
        }
        let ids = [3u32, 17, 5, 5, 30, 1, 9];
        let maps = m.attention_maps(&ids).unwrap();
        assert_eq!(maps.len(), 2, "one map per layer");
        for map in &maps {
            assert_eq!(map.dims(), &[2, 7, 7]);
            for head in map.to_vec3::<f32>().unwrap() {
                for (i, row) in head.iter().enumerate() {
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "row {i} sums to {}", row.iter().sum::<f32>());
                    assert!(row[i + 1..].iter().all(|&x| x == 0.0), "row {i} attends to the future");
                }
            }
        }
        let want = explicit_layer0(&m, &ids);
        let got = maps[0].to_vec3::<f32>().unwrap();
        let mut sharpest = 0f32;
        for (gh, wh) in got.iter().zip(&want) {
            for (gr, wr) in gh.iter().zip(wh) {
                for (g, w) in gr.iter().zip(wr) {
                    assert!((g - w).abs() < 1e-5, "attention {g} != explicit {w}");
                }
                sharpest = sharpest.max(gr.iter().cloned().fold(0.0, f32::max));
            }
        }
        assert!(sharpest > 0.5 && sharpest < 1.0 + 1e-6);
        // The maps come from the same forward pass as decoding: its logits are unchanged.
        let full = m.logits(&Tensor::new(&[ids], &Device::Cpu).unwrap()).unwrap().squeeze(0).unwrap().get(6).unwrap();
        let mut cache = KvCache::new(2, 12);
        let cached = Gpt::forward_cached(&m, &[&ids], &mut [&mut cache]).unwrap().squeeze(0).unwrap();
        let diff: f32 = (full - cached).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff < 1e-4);
    }

}
