//! Llama-style decoder (Llama 2/3, Qwen2 with attention biases): RMSNorm before attention and
//! MLP, rotary positions (Hugging Face's rotate-half convention, `jielong_nn::Rope`),
//! grouped-query attention (`n_kv_head` key/value heads shared by groups of the `n_head` query
//! heads), a SwiGLU MLP, no biases (but optional q/k/v biases, as Qwen2), tied or untied head.
//!
//! Weight names follow Hugging Face `LlamaForCausalLM` (linear weights (out, in), as
//! `nn.Linear`), so real Llama/Qwen2-architecture weights load and ours export unchanged:
//! ```text
//! model.embed_tokens.weight                       (vocab_size, n_embd)
//! model.layers.{i}.input_layernorm.weight         (n_embd)
//! model.layers.{i}.self_attn.q_proj.{weight (n_head·d, n_embd), bias}   bias: attention_bias
//! model.layers.{i}.self_attn.k_proj.{weight (n_kv_head·d, n_embd), bias}
//! model.layers.{i}.self_attn.v_proj.{weight (n_kv_head·d, n_embd), bias}
//! model.layers.{i}.self_attn.o_proj.weight        (n_embd, n_head·d)
//! model.layers.{i}.post_attention_layernorm.weight
//! model.layers.{i}.mlp.gate_proj.weight           (intermediate_size, n_embd)
//! model.layers.{i}.mlp.up_proj.weight             (intermediate_size, n_embd)
//! model.layers.{i}.mlp.down_proj.weight           (n_embd, intermediate_size)
//! model.norm.weight                               (n_embd)
//! lm_head.weight                                  (vocab_size, n_embd)   untied only
//! ```
//! d = n_embd / n_head.
//!
//! Training runs each layer as one fused CPU op with its own backward
//! (`jielong_nn::llama_block`: RMSNorm, one matmul for q|k|v, RoPE on the packed projection,
//! grouped-query attention straight from it, one matmul for gate|up, SwiGLU, the residual adds);
//! other devices and `--reference-kernels` take the per-op path below, built from candle's
//! composed ops.

use crate::family::{Family, FamilyConfig};
use crate::soft_prompt::{SoftPrompt, SoftPromptKind, SoftPromptShape};
use crate::state::DecodeState;
use crate::{CausalLm, ForwardOpts, Model, ModelConfig, Packing};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Embedding, Init, VarBuilder};
use jielong_core::Error;
use jielong_nn::{LinearSite, Lora};
use std::sync::Arc;
use jielong_nn::{causal_attention_packed_gqa, causal_self_attention, causal_self_attention_reference, linear, llama_layer, BlockDropout, Dropout, KvCache, LlamaLayerWeights, MaskSource, RmsNorm, Rope, WeightLayout};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaConfig {
    /// Size of the token table. 0 in a config file means "take it from the tokenizer".
    #[serde(default)]
    pub vocab_size: usize,
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention); must divide n_head. 0 or absent: n_head.
    #[serde(default)]
    pub n_kv_head: usize,
    pub n_embd: usize,
    /// Hidden size of the SwiGLU MLP. 0 or absent: Llama's rule, 2/3 of 4·n_embd rounded up
    /// to a multiple of 256.
    #[serde(default)]
    pub intermediate_size: usize,
    pub max_seq_len: usize,
    #[serde(default = "rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Share the token embedding with the output projection (Llama: false).
    #[serde(default)]
    pub tie_embeddings: bool,
    /// Biases on the q, k and v projections (Qwen2: true).
    #[serde(default)]
    pub attention_bias: bool,
    /// Dropout on the embeddings and on both residual branches (training only).
    #[serde(default)]
    pub dropout: f64,
}

fn rope_theta() -> f64 {
    10_000.0
}
fn rms_norm_eps() -> f64 {
    1e-6
}

/// Llama's MLP width for `n_embd`: int(2·4·n_embd/3) rounded up to a multiple of 256.
pub fn llama_intermediate_size(n_embd: usize) -> usize {
    (8 * n_embd / 3).div_ceil(256) * 256
}

/// The registry entry.
pub const FAMILY: Family = Family {
    name: "llama",
    about: "Llama-style decoder: RMSNorm, SwiGLU MLP, rotary positions, grouped-query attention (Qwen2: q/k/v biases)",
    parse: |v| {
        let mut cfg: LlamaConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
        cfg.resolve();
        Ok(Box::new(cfg))
    },
    preset: |name| LlamaConfig::preset(name).map(|c| Box::new(c) as Box<dyn FamilyConfig>),
    hf: Some(crate::hf::HfCodec { model_types: &["llama", "qwen2"], config_from_hf, config_to_hf, name_from_hf }),
};

type JsonMap = serde_json::Map<String, serde_json::Value>;

/// LlamaConfig / Qwen2Config → LlamaConfig. Qwen2 is Llama with q/k/v biases (and a sliding
/// window jielong does not implement: `use_sliding_window` must be false).
fn config_from_hf(c: &JsonMap) -> std::result::Result<Box<dyn FamilyConfig>, String> {
    use crate::hf::{field_f64, field_usize, require};
    use serde_json::Value;
    let qwen2 = c.get("model_type").and_then(Value::as_str) == Some("qwen2");
    require(c, "hidden_act", |v| v.as_str() == Some("silu"), "SwiGLU with silu, hidden_act = \"silu\"")?;
    require(c, "mlp_bias", |v| v.as_bool() == Some(false), "an MLP without biases")?;
    require(c, "pretraining_tp", |v| v.as_u64() == Some(1), "pretraining_tp = 1")?;
    require(c, "rope_scaling", Value::is_null, "plain RoPE, rope_scaling = null")?;
    require(c, "use_sliding_window", |v| v.as_bool() == Some(false), "full attention, use_sliding_window = false")?;
    if !qwen2 {
        require(c, "attention_bias", |v| v.as_bool() == Some(false), "Llama without attention biases (Qwen2-style q/k/v biases come with model_type qwen2)")?;
    }
    let rope = c.get("rope_parameters").and_then(Value::as_object);
    if let Some(r) = rope {
        require(r, "rope_type", |v| v.as_str() == Some("default"), "plain RoPE, rope_parameters.rope_type = \"default\"")?;
    }
    let rope_theta = match rope.map(|r| field_f64(r, "rope_theta")).transpose()?.flatten() {
        Some(t) => t,
        None => field_f64(c, "rope_theta")?.unwrap_or(10_000.0),
    };
    let (n_embd, n_head) = (field_usize(c, "hidden_size")?, field_usize(c, "num_attention_heads")?);
    require(c, "head_dim", |v| v.is_null() || v.as_u64() == Some((n_embd / n_head.max(1)) as u64), "head_dim = hidden_size / num_attention_heads")?;
    let mut cfg = LlamaConfig {
        vocab_size: field_usize(c, "vocab_size")?,
        n_layer: field_usize(c, "num_hidden_layers")?,
        n_head,
        n_kv_head: c.get("num_key_value_heads").and_then(Value::as_u64).map_or(n_head, |v| v as usize),
        n_embd,
        intermediate_size: field_usize(c, "intermediate_size")?,
        max_seq_len: field_usize(c, "max_position_embeddings")?,
        rope_theta,
        rms_norm_eps: field_f64(c, "rms_norm_eps")?.unwrap_or(1e-6),
        tie_embeddings: c.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false),
        attention_bias: qwen2,
        dropout: 0.0,
    };
    cfg.resolve();
    Ok(Box::new(cfg))
}

/// LlamaConfig → `LlamaForCausalLM`'s config.json, or `Qwen2ForCausalLM`'s when the model has
/// q/k/v biases (the keys transformers 5.23 writes, plus `torch_dtype` and a top-level
/// `rope_theta` for transformers 4).
fn config_to_hf(cfg: &dyn FamilyConfig, meta: &crate::hf::HfMeta) -> std::result::Result<JsonMap, String> {
    let c = cfg.as_any().downcast_ref::<LlamaConfig>().ok_or("not a Llama config")?;
    let mut v = serde_json::json!({
        "attention_dropout": 0.0, "bos_token_id": meta.bos_token_id, "dtype": meta.dtype, "torch_dtype": meta.dtype,
        "eos_token_id": meta.eos_token_id, "hidden_act": "silu", "hidden_size": c.n_embd, "initializer_range": 0.02,
        "intermediate_size": c.intermediate_size, "max_position_embeddings": c.max_seq_len,
        "num_attention_heads": c.n_head, "num_hidden_layers": c.n_layer, "num_key_value_heads": c.n_kv_head,
        "pad_token_id": null, "rms_norm_eps": c.rms_norm_eps,
        "rope_parameters": {"rope_theta": c.rope_theta, "rope_type": "default"}, "rope_theta": c.rope_theta,
        "tie_word_embeddings": c.tie_embeddings, "transformers_version": "5.23.0", "use_cache": true,
        "vocab_size": c.vocab_size,
    });
    let m = v.as_object_mut().expect("an object");
    if c.attention_bias {
        m.insert("architectures".into(), serde_json::json!(["Qwen2ForCausalLM"]));
        m.insert("model_type".into(), "qwen2".into());
        m.insert("layer_types".into(), serde_json::json!(vec!["full_attention"; c.n_layer]));
        m.insert("max_window_layers".into(), 28.into());
        m.insert("sliding_window".into(), serde_json::Value::Null);
        m.insert("use_sliding_window".into(), false.into());
    } else {
        m.insert("architectures".into(), serde_json::json!(["LlamaForCausalLM"]));
        m.insert("model_type".into(), "llama".into());
        m.insert("attention_bias".into(), false.into());
        m.insert("head_dim".into(), c.head_dim().into());
        m.insert("mlp_bias".into(), false.into());
        m.insert("pretraining_tp".into(), 1.into());
    }
    Ok(m.clone())
}

/// Names are Hugging Face's; older files carry the `rotary_emb.inv_freq` buffers.
fn name_from_hf(name: &str) -> Option<String> {
    (!name.ends_with("rotary_emb.inv_freq")).then(|| name.to_string())
}

impl LlamaConfig {
    /// `tiny` (what `jielong quickstart --family llama` trains), `small` and `medium` (the
    /// `bench train --family llama` models: the GPT presets' shapes with half as many key/value
    /// heads, SwiGLU at Llama's width, dropout 0).
    pub fn preset(name: &str) -> Option<Self> {
        let make = |n_layer, n_head, n_embd, max_seq_len, vocab_size, dropout| {
            let mut c = Self {
                vocab_size,
                n_layer,
                n_head,
                n_kv_head: n_head / 2,
                n_embd,
                intermediate_size: 0,
                max_seq_len,
                rope_theta: rope_theta(),
                rms_norm_eps: rms_norm_eps(),
                tie_embeddings: true,
                attention_bias: false,
                dropout,
            };
            c.resolve();
            c
        };
        match name {
            "tiny" => Some(make(4, 4, 192, 128, 0, 0.1)),
            "small" => Some(make(4, 4, 256, 128, 4096, 0.0)),
            "medium" => Some(make(6, 6, 384, 256, 8192, 0.0)),
            _ => None,
        }
    }

    /// Fill in the values that 0 stands for.
    pub fn resolve(&mut self) {
        if self.n_kv_head == 0 {
            self.n_kv_head = self.n_head;
        }
        if self.intermediate_size == 0 {
            self.intermediate_size = llama_intermediate_size(self.n_embd);
        }
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head.max(1)
    }

    fn attn_params(&self) -> usize {
        let (c, d) = (self.n_embd, self.head_dim());
        let qkv = (self.n_head + 2 * self.n_kv_head) * d;
        c * qkv + self.attention_bias as usize * qkv + self.n_head * d * c
    }
}

impl FamilyConfig for LlamaConfig {
    fn family(&self) -> &'static str {
        "llama"
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
        let bad = |m: String| Err(Error::input(m));
        if self.vocab_size == 0 {
            return bad("model.vocab_size is 0: set it, or let `jielong train` take it from the data".into());
        }
        for (name, v) in [("n_layer", self.n_layer), ("n_head", self.n_head), ("n_kv_head", self.n_kv_head), ("n_embd", self.n_embd), ("max_seq_len", self.max_seq_len), ("intermediate_size", self.intermediate_size)] {
            if v == 0 {
                return bad(format!("model.{name} must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!("model.n_embd = {} is not divisible by model.n_head = {}: every head needs n_embd / n_head dimensions", self.n_embd, self.n_head));
        }
        if !self.n_head.is_multiple_of(self.n_kv_head) || self.n_kv_head > self.n_head {
            return bad(format!(
                "model.n_kv_head = {} must divide model.n_head = {}: each key/value head serves an equal group of query heads",
                self.n_kv_head, self.n_head
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!("RoPE needs an even head dimension, got n_embd / n_head = {}", self.head_dim()));
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) {
            return bad("model.rope_theta must be a positive number".into());
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return bad("model.rms_norm_eps must be positive".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("model.dropout = {} must be in [0, 1)", self.dropout));
        }
        Ok(())
    }
    fn n_params(&self) -> usize {
        let (c, v, f) = (self.n_embd, self.vocab_size, self.intermediate_size);
        let layer = 2 * c + self.attn_params() + 3 * c * f;
        v * c + self.n_layer * layer + c + if self.tie_embeddings { 0 } else { v * c }
    }
    fn flops_per_token(&self, seq_len: usize) -> f64 {
        // As GPT's (PaLM appendix / nanoGPT): 6·N + 12·n_layer·(n_head·d)·seq_len; grouped keys
        // do not change the attention products, every query head still scores every key.
        6.0 * self.n_params() as f64 + 12.0 * (self.n_layer * self.n_head * self.head_dim() * seq_len) as f64
    }
    fn describe(&self) -> String {
        format!(
            "Llama · {} layers · {} heads ({} key/value) · n_embd {} · SwiGLU {} · RoPE θ {}{}",
            self.n_layer,
            self.n_head,
            self.n_kv_head,
            self.n_embd,
            self.intermediate_size,
            self.rope_theta,
            if self.attention_bias { " · q/k/v biases" } else { "" }
        )
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serializes")
    }
    fn clone_box(&self) -> Box<dyn FamilyConfig> {
        Box::new(self.clone())
    }
    fn build(&self, vb: VarBuilder) -> std::result::Result<Box<dyn Model>, Error> {
        Ok(Box::new(Llama::new(self, vb)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn token_embedding(&self) -> Option<(&'static str, usize)> {
        Some(("model.embed_tokens.weight", self.n_embd))
    }
}

struct Layer {
    /// `model.layers.{i}`: the prefix of its parameters' names (LoRA finds its layers by it).
    name: String,
    input_norm: RmsNorm,
    /// (n_head·d, c), (n_kv_head·d, c), (n_kv_head·d, c)
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// q|k|v biases, when the config has them.
    qkv_bias: Option<(Tensor, Tensor, Tensor)>,
    o: Tensor,
    post_norm: RmsNorm,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

pub struct Llama {
    cfg: LlamaConfig,
    embed: Embedding,
    rope: Rope,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// (vocab_size, n_embd): the embedding itself when tied.
    head: Tensor,
    dropout: Dropout,
    /// LoRA adapters on the attention and MLP projections, when set (`Model::set_lora`).
    lora: Option<Arc<Lora>>,
    /// Prompt- or prefix-tuning virtual tokens, when set (`Model::set_soft_prompt`).
    soft: Option<Arc<SoftPrompt>>,
}

/// The names of a layer's seven linear layers, after its prefix, in `Llama::linears` order.
const LINEARS: [&str; 7] = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

impl Llama {
    /// A layer's seven linear weights (q, k, v, o, gate, up, down), each adapted by the LoRA
    /// when one is set.
    fn linears(&self, layer: &Layer) -> Result<[Tensor; 7]> {
        let bases = [&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down];
        let w = |j: usize| match &self.lora {
            Some(l) => l.weight(&format!("{}.{}", layer.name, LINEARS[j]), bases[j]),
            None => Ok(bases[j].clone()),
        };
        Ok([w(0)?, w(1)?, w(2)?, w(3)?, w(4)?, w(5)?, w(6)?])
    }
}

impl Llama {
    /// Build the model, creating (or fetching) its parameters through `vb`. Init: N(0, 0.02),
    /// o_proj and down_proj N(0, 0.02/√(2·n_layer)), norms 1, biases 0.
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> std::result::Result<Self, Error> {
        let mut cfg = cfg.clone();
        cfg.resolve();
        cfg.validate()?;
        let (c, d, f) = (cfg.n_embd, cfg.head_dim(), cfg.intermediate_size);
        let (qd, kvd) = (cfg.n_head * d, cfg.n_kv_head * d);
        let std = 0.02;
        let proj_std = 0.02 / ((2 * cfg.n_layer) as f64).sqrt();
        let randn = |stdev| Init::Randn { mean: 0.0, stdev };
        let vm = vb.pp("model");
        let embed_w = vm.get_with_hints((cfg.vocab_size, c), "embed_tokens.weight", randn(std))?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let vl = vm.pp(format!("layers.{i}"));
            let va = vl.pp("self_attn");
            let vmlp = vl.pp("mlp");
            let qkv_bias = if cfg.attention_bias {
                Some((
                    va.get_with_hints(qd, "q_proj.bias", Init::Const(0.0))?,
                    va.get_with_hints(kvd, "k_proj.bias", Init::Const(0.0))?,
                    va.get_with_hints(kvd, "v_proj.bias", Init::Const(0.0))?,
                ))
            } else {
                None
            };
            layers.push(Layer {
                name: format!("model.layers.{i}"),
                input_norm: RmsNorm::new(c, cfg.rms_norm_eps, vl.pp("input_layernorm"))?,
                q: va.get_with_hints((qd, c), "q_proj.weight", randn(std))?,
                k: va.get_with_hints((kvd, c), "k_proj.weight", randn(std))?,
                v: va.get_with_hints((kvd, c), "v_proj.weight", randn(std))?,
                qkv_bias,
                o: va.get_with_hints((c, qd), "o_proj.weight", randn(proj_std))?,
                post_norm: RmsNorm::new(c, cfg.rms_norm_eps, vl.pp("post_attention_layernorm"))?,
                gate: vmlp.get_with_hints((f, c), "gate_proj.weight", randn(std))?,
                up: vmlp.get_with_hints((f, c), "up_proj.weight", randn(std))?,
                down: vmlp.get_with_hints((c, f), "down_proj.weight", randn(proj_std))?,
            });
        }
        let norm = RmsNorm::new(c, cfg.rms_norm_eps, vm.pp("norm"))?;
        let head = if cfg.tie_embeddings { embed_w.clone() } else { vb.get_with_hints((cfg.vocab_size, c), "lm_head.weight", randn(std))? };
        let rope = Rope::new(cfg.max_seq_len, d, cfg.rope_theta, vb.device())?;
        Ok(Self { embed: Embedding::new(embed_w, c), rope, layers, norm, head, dropout: Dropout { p: cfg.dropout as f32 }, lora: None, soft: None, cfg })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// `ids` (b, t) → final hidden states after the last norm (b, t, n_embd).
    ///
    /// With virtual tokens (`soft_prompt.rs`) the real tokens sit at positions n..n + t:
    /// prompt tuning runs n + t positions (the trained embeddings first) and returns the last
    /// t; prefix tuning puts each layer's trained keys and values (unrotated, as transformers
    /// uses a `past_key_values` prefix) before its own, on the composed attention path.
    pub fn hidden(&self, ids: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        self.hidden_with(ids, opts, None)
    }

    /// `hidden`, of packed rows when `packing` is given: positions restart per example and
    /// attention stays within each (the composed path: masked attention, no fused layers).
    pub fn hidden_with(&self, ids: &Tensor, opts: ForwardOpts, packing: Option<&Packing>) -> Result<Tensor> {
        let (b, t_real) = ids.dims2()?;
        let n_soft = self.soft.as_ref().map_or(0, |s| s.n);
        if t_real + n_soft > self.cfg.max_seq_len {
            candle_core::bail!("sequence of {t_real} tokens is longer than the model's max_seq_len {} (less {n_soft} virtual tokens)", self.cfg.max_seq_len - n_soft);
        }
        let (h, kv, d) = (self.cfg.n_head, self.cfg.n_kv_head, self.cfg.head_dim());
        let drop = |site: u64| opts.dropout_seed.filter(|_| self.dropout.p > 0.0).map(|seed| MaskSource { seed, site, first_row: opts.first_row });
        let prompt = self.soft.as_ref().filter(|s| s.kind == SoftPromptKind::Prompt);
        let prefix = self.soft.as_ref().filter(|s| s.kind == SoftPromptKind::Prefix);
        if packing.is_some() && prompt.is_some() {
            candle_core::bail!("prompt tuning cannot run packed sequences (each example needs its own virtual tokens): train without --packing");
        }
        let mut xs = self.embed.forward(ids)?; // (b, t, c)
        let t = match prompt {
            Some(p) => {
                xs = Tensor::cat(&[&p.embeddings(b)?, &xs], 1)?; // (b, n + t, c), positions 0..n + t
                n_soft + t_real
            }
            None => t_real,
        };
        let mut xs = self.dropout.forward(&xs, drop(0))?;
        // The whole layer as one fused op (jielong_nn::llama_block) on CPU f32; its dropout
        // masks are the ones the composed path below would draw (same generators and sites).
        let fused_layers = prefix.is_none() && packing.is_none() && jielong_nn::fused_for(&xs);
        let packed = match packing {
            Some(p) => Some((p.positions_tensor(n_soft, xs.device())?, p.mask_after(prefix.map_or(0, |p| p.n))?)),
            None => None,
        };
        let c = self.cfg.n_embd;
        for (i, layer) in self.layers.iter().enumerate() {
            let site = 1 + 3 * i as u64;
            let [q, k, v, o, gate, up, down] = &self.linears(layer)?;
            if fused_layers {
                let masks = self.dropout.mask(b, t * c, drop(site)).zip(self.dropout.mask(b, t * c, drop(site + 1)));
                let dropout = masks.map(|(attn, mlp)| BlockDropout { attn, mlp });
                let w = LlamaLayerWeights {
                    input_norm: layer.input_norm.weight(),
                    q,
                    k,
                    v,
                    qkv_bias: layer.qkv_bias.as_ref().map(|(q, k, v)| (q, k, v)),
                    o,
                    post_norm: layer.post_norm.weight(),
                    gate,
                    up,
                    down,
                };
                xs = llama_layer(&xs, &w, &self.rope, h, kv, self.cfg.rms_norm_eps, dropout)?;
                continue;
            }
            // Attention: one matmul for q|k|v, RoPE on the packed rows, attention from them.
            let w_qkv = Tensor::cat(&[q, k, v], 0)?; // ((h + 2kv)·d, c)
            let b_qkv = match &layer.qkv_bias {
                Some((bq, bk, bv)) => Some(Tensor::cat(&[bq, bk, bv], 0)?),
                None => None,
            };
            let qkv = linear(&layer.input_norm.forward(&xs)?, &w_qkv, b_qkv.as_ref(), WeightLayout::OutIn)?; // (b, t, (h + 2kv)·d)
            let ys = if let Some((pos, mask)) = &packed {
                // Packed rows: each example at its own positions, attending within itself (and
                // to the layer's prefix, when there is one).
                let heads = |start: usize, nh: usize| -> Result<Tensor> {
                    qkv.narrow(D::Minus1, start * d, nh * d)?.reshape((b, t, nh, d))?.transpose(1, 2)?.contiguous() // (b, nh, t, d)
                };
                let q = self.rope.apply_at(&heads(0, h)?, pos)?;
                let mut k = self.rope.apply_at(&heads(h, kv)?, pos)?;
                let mut v = heads(h + kv, kv)?;
                if let Some(p) = prefix {
                    let (pk, pv) = p.layer_kv(i)?; // (1, kv, n, d)
                    k = Tensor::cat(&[&pk.broadcast_as((b, kv, n_soft, d))?, &k], 2)?.contiguous()?;
                    v = Tensor::cat(&[&pv.broadcast_as((b, kv, n_soft, d))?, &v], 2)?.contiguous()?;
                }
                let (ys, _att) = causal_self_attention_reference(&q, &repeat_kv(&k, h / kv)?, &repeat_kv(&v, h / kv)?, Some(mask))?; // (b, h, t, d)
                ys.transpose(1, 2)?.reshape((b, t, h * d))?
            } else if let Some(p) = prefix {
                // Real tokens at positions n..n + t after the layer's prefix keys and values.
                let heads = |start: usize, nh: usize| -> Result<Tensor> {
                    qkv.narrow(D::Minus1, start * d, nh * d)?.reshape((b, t, nh, d))?.transpose(1, 2)?.contiguous() // (b, nh, t, d)
                };
                let q = self.rope.apply(&heads(0, h)?, n_soft)?;
                let k = self.rope.apply(&heads(h, kv)?, n_soft)?;
                let (pk, pv) = p.layer_kv(i)?; // (1, kv, n, d)
                let k = Tensor::cat(&[&pk.broadcast_as((b, kv, n_soft, d))?, &k], 2)?.contiguous()?;
                let v = Tensor::cat(&[&pv.broadcast_as((b, kv, n_soft, d))?, &heads(h + kv, kv)?], 2)?.contiguous()?;
                let (ys, _att) = causal_self_attention(&q, &repeat_kv(&k, h / kv)?, &repeat_kv(&v, h / kv)?)?; // (b, h, t, d)
                ys.transpose(1, 2)?.reshape((b, t, h * d))?
            } else if jielong_nn::fused_for(&qkv) {
                let qkv = self.rope.apply_packed(&qkv, h, kv)?;
                causal_attention_packed_gqa(&qkv, h, kv)? // (b, t, h·d)
            } else {
                let qkv = self.rope.apply_packed(&qkv, h, kv)?;
                let heads = |start: usize, n: usize| -> Result<Tensor> {
                    qkv.narrow(D::Minus1, start * d, n * d)?.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous() // (b, n, t, d)
                };
                let (q, k, v) = (heads(0, h)?, repeat_kv(&heads(h, kv)?, h / kv)?, repeat_kv(&heads(h + kv, kv)?, h / kv)?);
                let (ys, _att) = causal_self_attention(&q, &k, &v)?; // (b, h, t, d)
                ys.transpose(1, 2)?.reshape((b, t, h * d))?
            };
            let ys = self.dropout.forward(&linear(&ys, o, None, WeightLayout::OutIn)?, drop(site))?;
            xs = (xs + ys)?;
            // MLP: (b, t, c) → gate|up (b, t, 2f) → SwiGLU (b, t, f) → (b, t, c)
            let w_gu = Tensor::cat(&[gate, up], 0)?; // (2f, c)
            let gu = linear(&layer.post_norm.forward(&xs)?, &w_gu, None, WeightLayout::OutIn)?;
            let ys = linear(&jielong_nn::swiglu(&gu)?, down, None, WeightLayout::OutIn)?;
            xs = (xs + self.dropout.forward(&ys, drop(site + 1))?)?;
        }
        if prompt.is_some() {
            xs = xs.narrow(1, n_soft, t_real)?; // the real tokens only
        }
        self.norm.forward(&xs)
    }

    /// `ids` (b, t) → logits (b, t, vocab_size).
    pub fn forward(&self, ids: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        linear(&self.hidden(ids, opts)?, &self.head, None, WeightLayout::OutIn)
    }

    /// Mean next-token cross-entropy, the LM head fused with the loss.
    pub fn forward_loss(&self, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        let xs = self.hidden(ids, opts)?;
        let (b, t, c) = xs.dims3()?;
        jielong_nn::head_loss::linear_cross_entropy(&xs.reshape((b * t, c))?, &self.head, &targets.reshape(b * t)?)
    }

    /// Decoding with KV caches (one per sequence, n_kv_head · d values per position and layer): all new
    /// tokens of all sequences travel packed as one (n, c) matrix through the embeddings, norms
    /// and matmuls; RoPE and attention run as one fused kernel over all sequences, each at its own
    /// positions against its own cache (`jielong_nn::cached_attention`). Returns the
    /// logits at each chunk's last token, (n_seq, vocab_size).
    pub fn forward_cached(&self, chunks: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        self.forward_cached_maps(chunks, caches, None, None)
    }

    /// The causal self-attention weights of every layer for the prompt `ids`: one (n_head, t, t)
    /// tensor per layer (grouped key/value heads repeated for their query heads), computed on
    /// the explicit decoding path, not the fused training kernels (`jielong attention`).
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
        let (h, kv, d) = (self.cfg.n_head, self.cfg.n_kv_head, self.cfg.head_dim());
        let dev = self.head.device();
        let offsets: Vec<usize> = caches.iter().map(|c| c.len()).collect();
        let mut ids = Vec::new();
        for (chunk, &off) in chunks.iter().zip(&offsets) {
            if chunk.is_empty() {
                candle_core::bail!("forward_cached: a sequence was given no new tokens");
            }
            if off + chunk.len() > self.cfg.max_seq_len {
                candle_core::bail!("context of {} tokens is longer than the model's max_seq_len {}", off + chunk.len(), self.cfg.max_seq_len);
            }
            ids.extend_from_slice(chunk);
        }
        let n = ids.len();
        let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        let mut xs = match embeds {
            Some(e) => e.clone(),
            None => self.embed.forward(&Tensor::from_vec(ids, n, dev)?)?,
        }; // (n, c)
        for (li, layer) in self.layers.iter().enumerate() {
            let [wq, wk, wv, wo, wgate, wup, wdown] = &self.linears(layer)?;
            let x = layer.input_norm.forward(&xs)?;
            let bias = |i: usize| layer.qkv_bias.as_ref().map(|b| [&b.0, &b.1, &b.2][i]);
            let q = linear(&x, wq, bias(0), WeightLayout::OutIn)?; // (n, h·d)
            let k = linear(&x, wk, bias(1), WeightLayout::OutIn)?; // (n, kv·d)
            let v = linear(&x, wv, bias(2), WeightLayout::OutIn)?;
            let ys = if maps.is_none() && jielong_nn::fused_for(&q) {
                // One fused kernel for all sequences: RoPE at each token's own position, the
                // caches read and extended in place (jielong_nn::decode_attention).
                let qkv = Tensor::cat(&[&q, &k, &v], 1)?; // (n, (h + 2·kv)·d)
                jielong_nn::cached_attention(&qkv, li, &lens, caches, h, kv, Some(&self.rope))?
            } else {
                let mut outs = Vec::with_capacity(chunks.len());
                let mut start = 0;
                for (s, chunk) in chunks.iter().enumerate() {
                    let t = chunk.len();
                    let split = |x: &Tensor, heads: usize| -> Result<Tensor> { x.narrow(0, start, t)?.reshape((1, t, heads, d))?.transpose(1, 2)?.contiguous() };
                    let q = self.rope.apply(&split(&q, h)?, offsets[s])?; // (1, h, t, d)
                    let k = self.rope.apply(&split(&k, kv)?, offsets[s])?; // (1, kv, t, d)
                    let (k, v) = caches[s].append(li, &k, &split(&v, kv)?)?; // (1, kv, off + t, d)
                    let (k, v) = (repeat_kv(&k, h / kv)?, repeat_kv(&v, h / kv)?); // (1, h, off + t, d)
                    let (ys, att) = causal_self_attention(&q, &k, &v)?; // (1, h, t, d)
                    if s == 0 {
                        if let Some(maps) = maps.as_deref_mut() {
                            maps.push(att.squeeze(0)?); // (h, t, off + t)
                        }
                    }
                    outs.push(ys.transpose(1, 2)?.reshape((t, h * d))?);
                    start += t;
                }
                if outs.len() == 1 { outs.pop().expect("one") } else { Tensor::cat(&outs, 0)? } // (n, h·d)
            };
            xs = (xs + linear(&ys, wo, None, WeightLayout::OutIn)?)?;
            let x = layer.post_norm.forward(&xs)?;
            let gu = Tensor::cat(&[linear(&x, wgate, None, WeightLayout::OutIn)?, linear(&x, wup, None, WeightLayout::OutIn)?], 1)?;
            xs = (xs + linear(&jielong_nn::swiglu(&gu)?, wdown, None, WeightLayout::OutIn)?)?;
        }
        let mut end = 0u32;
        let last: Vec<u32> = chunks.iter().map(|ch| { end += ch.len() as u32; end - 1 }).collect();
        let xs = xs.index_select(&Tensor::new(last.as_slice(), dev)?, 0)?;
        linear(&self.norm.forward(&xs)?, &self.head, None, WeightLayout::OutIn)
    }
}

/// (b, kv, t, d) → (b, kv·group, t, d): each key/value head repeated for the query heads of
/// its group (Hugging Face's `repeat_kv`).
fn repeat_kv(x: &Tensor, group: usize) -> Result<Tensor> {
    if group == 1 {
        return Ok(x.clone());
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, group, t, d))?.reshape((b, kv * group, t, d))
}

impl Model for Llama {
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
        let (c, d, f) = (self.cfg.n_embd, self.cfg.head_dim(), self.cfg.intermediate_size);
        let (qd, kvd) = (self.cfg.n_head * d, self.cfg.n_kv_head * d);
        let sizes = [(c, qd), (c, kvd), (c, kvd), (qd, c), (c, f), (c, f), (f, c)];
        self.layers
            .iter()
            .flat_map(|l| LINEARS.iter().zip(sizes).map(move |(n, (n_in, n_out))| LinearSite { name: format!("{}.{n}", l.name), n_in, n_out, layout: WeightLayout::OutIn }))
            .collect()
    }
    fn set_lora(&mut self, lora: Option<Arc<Lora>>) -> std::result::Result<(), Error> {
        crate::check_lora(lora.as_deref(), &self.linear_sites())?;
        self.lora = lora;
        Ok(())
    }
    fn soft_prompt_shape(&self) -> Option<SoftPromptShape> {
        let c = &self.cfg;
        Some(SoftPromptShape { n_layer: c.n_layer, n_embd: c.n_embd, n_kv_head: c.n_kv_head, head_dim: c.head_dim(), max_seq_len: c.max_seq_len })
    }
    fn set_soft_prompt(&mut self, prompt: Option<Arc<SoftPrompt>>) -> std::result::Result<(), Error> {
        crate::check_soft_prompt(prompt.as_deref(), self.soft_prompt_shape().expect("llama has one"))?;
        self.soft = prompt;
        Ok(())
    }
}

/// A causal model embeds too: its last hidden states (after the final norm), each position
/// seeing only what came before it. Right padding is after every real token, so causal
/// attention keeps it out without the mask.
impl crate::Encoder for Llama {
    fn hidden_states(&self, ids: &Tensor, _token_types: Option<&Tensor>, _attention_mask: &Tensor) -> Result<Tensor> {
        self.hidden(ids, ForwardOpts::default())
    }
    fn hidden_size(&self) -> usize {
        self.cfg.n_embd
    }
    fn max_seq_len(&self) -> usize {
        self.cfg.max_seq_len
    }
}

impl CausalLm for Llama {
    fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward(ids, ForwardOpts::default())
    }
    fn loss(&self, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        self.forward_loss(ids, targets, opts)
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    /// The context left for real tokens (less the virtual ones, when set).
    fn max_seq_len(&self) -> usize {
        self.cfg.max_seq_len - self.soft.as_ref().map_or(0, |s| s.n)
    }
    fn new_state(&self) -> Box<dyn DecodeState> {
        match &self.soft {
            Some(soft) => soft.new_state(),
            None => Box::new(KvCache::new(self.cfg.n_layer, self.cfg.max_seq_len)),
        }
    }
    fn attention_maps(&self, ids: &[u32]) -> Result<Option<Vec<Tensor>>> {
        Ok(Some(Self::attention_maps(self, ids)?))
    }
    fn forward_cached(&self, chunks: &[&[u32]], states: &mut [&mut dyn DecodeState]) -> Result<Tensor> {
        let mut caches = Vec::with_capacity(states.len());
        for (cache, fill) in crate::soft_prompt::caches(states, "llama")? {
            if fill {
                self.fill_virtual(cache)?;
            }
            caches.push(cache);
        }
        Llama::forward_cached(self, chunks, &mut caches)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use jielong_nn::ParamStore;

    pub(crate) fn tiny(n_kv_head: usize, tie: bool, bias: bool) -> LlamaConfig {
        LlamaConfig { vocab_size: 50, n_layer: 2, n_head: 4, n_kv_head, n_embd: 32, intermediate_size: 48, max_seq_len: 24, tie_embeddings: tie, attention_bias: bias, dropout: 0.0, ..LlamaConfig::preset("tiny").unwrap() }
    }

    #[test]
    fn llama_n_params_formula_matches_the_built_model_and_is_causal() {
        for (kv, tie, bias) in [(1, true, false), (2, false, true), (4, false, false)] {
            let cfg = tiny(kv, tie, bias);
            let params = ParamStore::new(3);
            let m = Llama::new(&cfg, params.var_builder(&Device::Cpu)).unwrap();
            assert_eq!(params.n_params(), cfg.n_params(), "kv {kv} tie {tie} bias {bias}");
            let a = Tensor::new(&[[1u32, 5, 9, 2, 7, 3]], &Device::Cpu).unwrap();
            let b = Tensor::new(&[[1u32, 5, 9, 2, 11, 12]], &Device::Cpu).unwrap();
            let (la, lb) = (m.logits(&a).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap(), m.logits(&b).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap());
            for i in 0..4 {
                assert!(la[i].iter().zip(&lb[i]).all(|(x, y)| (x - y).abs() < 1e-5), "position {i} sees the future");
            }
            assert!(la[4].iter().zip(&lb[4]).map(|(x, y)| (x - y).abs()).sum::<f32>() > 1e-3);
        }
    }

    #[test]
    fn llama_config_errors_name_the_field() {
        let mut c = tiny(3, true, false);
        assert!(c.validate().unwrap_err().to_string().contains("n_kv_head = 3 must divide model.n_head = 4"));
        c.n_kv_head = 8;
        assert!(c.validate().unwrap_err().to_string().contains("n_kv_head"));
        c.n_kv_head = 2;
        c.n_embd = 36;
        assert!(c.validate().unwrap_err().to_string().contains("n_embd"));
        assert_eq!(llama_intermediate_size(256), 768);
        assert_eq!(llama_intermediate_size(384), 1024);
        assert_eq!(llama_intermediate_size(4096), 11008);
    }

    #[test]
    fn llama_attention_maps_are_causal_distributions_for_every_query_head() {
        let cfg = tiny(2, true, false);
        let params = ParamStore::new(9);
        let m = Llama::new(&cfg, params.var_builder(&Device::Cpu)).unwrap();
        for (_, v) in params.vars() {
            v.set(&Tensor::randn(0f32, 0.5, v.shape(), &Device::Cpu).unwrap()).unwrap();
        }
        let ids = [4u32, 8, 15, 16, 23, 42];
        let maps = m.attention_maps(&ids).unwrap();
        assert_eq!(maps.len(), cfg.n_layer);
        for map in &maps {
            assert_eq!(map.dims(), &[cfg.n_head, 6, 6], "grouped kv heads are repeated for each query head");
            for head in map.to_vec3::<f32>().unwrap() {
                for (i, row) in head.iter().enumerate() {
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                    assert!(row[i + 1..].iter().all(|&x| x == 0.0));
                }
            }
        }
        // Query heads that share a key head differ (their queries do).
        let l0 = maps[0].to_vec3::<f32>().unwrap();
        let d: f32 = l0[0].iter().flatten().zip(l0[1].iter().flatten()).map(|(a, b)| (a - b).abs()).sum();
        assert!(d > 1e-3);
    }

}
