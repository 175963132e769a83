//! ALBERT ("A Lite BERT"): BERT's post-LN encoder with two changes that cut parameters, and
//! sentence-order prediction in place of next-sentence prediction.
//!
//! - Factorised embeddings: tokens, positions and segments are embedded at a small width
//!   `embedding_size` (E), then one dense layer maps E → `n_embd` (H). The token table costs
//!   V·E + E·H instead of V·H.
//! - Cross-layer sharing: the encoder has `n_layer_groups` layers (1 in every released ALBERT)
//!   and applies them `n_layer` times in turn (layer i uses group i·groups/n_layer), so depth
//!   costs compute but no parameters.
//! - The masked-LM head maps H → E (dense, GELU, layer norm) and decodes with the E-wide token
//!   table transposed plus a bias; the sentence-order head is a (2, H) classifier on the
//!   pooler (tanh(dense(first token))): logit 0 "segments in order", logit 1 "swapped".
//!
//! Weight names follow Hugging Face `AlbertForPreTraining` (an `AlbertModel` file has the
//! same names without the `albert.` prefix; `AlbertForMaskedLM` has no pooler and no SOP head):
//! ```text
//! albert.embeddings.{word,position,token_type}_embeddings.weight      (·, E)
//! albert.embeddings.LayerNorm.{weight,bias}                           (E)
//! albert.encoder.embedding_hidden_mapping_in.{weight,bias}            (H, E)
//! albert.encoder.albert_layer_groups.{g}.albert_layers.0.
//!     attention.{query,key,value,dense}.{weight,bias}                 (H, H)
//!     attention.LayerNorm.{weight,bias}
//!     ffn.{weight,bias} (n_inner, H) · ffn_output.{weight,bias} (H, n_inner)
//!     full_layer_layer_norm.{weight,bias}
//! albert.pooler.{weight,bias}                                         with `pooler = true`
//! predictions.{dense (E, H), LayerNorm (E), bias (V)}                 with `mlm_head = true`
//! sop_classifier.classifier.{weight,bias}                             (2, H) with `sop_head = true`
//! ```

use crate::encoder::SentenceTask;
use crate::family::{parse_as, Family, FamilyConfig};
use crate::post_ln::{chosen_rows, Dense, Gelu, Layer, LayerNames, MlmHead};
use crate::{Encoder, ForwardOpts, MaskedLm, Model, ModelConfig};
use candle_core::{DType, IndexOp, Module, Result, Tensor};
use candle_nn::{Embedding, Init, VarBuilder};
use jielong_core::Error;
use jielong_nn::{Dropout, LayerNorm, MaskSource};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlbertConfig {
    /// Size of the token table. 0 in a config file means "take it from the tokenizer".
    #[serde(default)]
    pub vocab_size: usize,
    /// How many times the shared layers are applied (Hugging Face `num_hidden_layers`).
    pub n_layer: usize,
    pub n_head: usize,
    /// Hidden width H (Hugging Face `hidden_size`).
    pub n_embd: usize,
    /// Width E of the token, position and segment embeddings (ALBERT: 128).
    pub embedding_size: usize,
    /// Width of the feed-forward layer (0 in a config file means 4·n_embd).
    #[serde(default)]
    pub n_inner: usize,
    /// Distinct layers (Hugging Face `num_hidden_groups`); they take turns over the n_layer
    /// applications. 1 shares one layer across the whole depth.
    #[serde(default = "one")]
    pub n_layer_groups: usize,
    /// Position table size (Hugging Face `max_position_embeddings`).
    pub max_seq_len: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f64,
    /// "gelu_new" (the tanh approximation, ALBERT's) or "gelu" (exact, BERT's).
    #[serde(default = "gelu_new")]
    pub hidden_act: Gelu,
    #[serde(default = "yes")]
    pub pooler: bool,
    #[serde(default = "yes")]
    pub mlm_head: bool,
    /// The sentence-order head on the pooler, for `train.sentence_task = "sop"`.
    #[serde(default = "yes")]
    pub sop_head: bool,
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn ln_eps() -> f64 {
    1e-12
}
fn gelu_new() -> Gelu {
    Gelu::Tanh
}

/// The registry entry.
pub const FAMILY: Family = Family {
    name: "albert",
    about: "ALBERT encoder: BERT with factorised embeddings (E < H), layers shared across depth, sentence-order head",
    parse: parse_as::<AlbertConfig>,
    preset: |name| AlbertConfig::preset(name).map(|c| Box::new(c) as Box<dyn FamilyConfig>),
    hf: Some(crate::hf::HfCodec { model_types: &["albert"], config_from_hf, config_to_hf, name_from_hf }),
};

/// AlbertConfig (transformers) → ours. `architectures` says which heads the file has:
/// `AlbertForPreTraining` all three, `AlbertForMaskedLM` the MLM head only, `AlbertModel` the
/// pooler only.
fn config_from_hf(c: &serde_json::Map<String, serde_json::Value>) -> std::result::Result<Box<dyn FamilyConfig>, String> {
    use crate::hf::{field_f64, field_usize, require};
    let act = c.get("hidden_act").and_then(|v| v.as_str()).unwrap_or("gelu_new");
    let hidden_act = Gelu::from_hf(act).ok_or_else(|| format!("`hidden_act` = \"{act}\" is not supported (jielong implements \"gelu_new\" and \"gelu\")"))?;
    require(c, "position_embedding_type", |v| v.as_str() == Some("absolute"), "absolute (learned) positions")?;
    require(c, "inner_group_num", |v| v.as_u64() == Some(1), "one layer per group, inner_group_num = 1")?;
    let arch = c.get("architectures").and_then(|a| a.as_array()).and_then(|a| a.first()).and_then(|a| a.as_str()).unwrap_or("AlbertModel");
    let (pooler, mlm_head, sop_head) = match arch {
        "AlbertForPreTraining" => (true, true, true),
        "AlbertForMaskedLM" => (false, true, false),
        _ => (true, false, false),
    };
    let cfg = AlbertConfig {
        vocab_size: field_usize(c, "vocab_size")?,
        n_layer: field_usize(c, "num_hidden_layers")?,
        n_head: field_usize(c, "num_attention_heads")?,
        n_embd: field_usize(c, "hidden_size")?,
        embedding_size: field_usize(c, "embedding_size")?,
        n_inner: field_usize(c, "intermediate_size")?,
        n_layer_groups: field_usize(c, "num_hidden_groups").unwrap_or(1),
        max_seq_len: field_usize(c, "max_position_embeddings")?,
        type_vocab_size: field_usize(c, "type_vocab_size")?,
        dropout: 0.0,
        layer_norm_eps: field_f64(c, "layer_norm_eps")?.unwrap_or(1e-12),
        hidden_act,
        pooler,
        mlm_head,
        sop_head,
    };
    Ok(Box::new(cfg))
}

/// Ours → the keys `AlbertConfig.save_pretrained` writes (transformers 5.23).
fn config_to_hf(cfg: &dyn FamilyConfig, meta: &crate::hf::HfMeta) -> std::result::Result<serde_json::Map<String, serde_json::Value>, String> {
    let c = cfg.as_any().downcast_ref::<AlbertConfig>().ok_or("not an ALBERT config")?;
    let arch = match (c.mlm_head, c.sop_head) {
        (true, true) => "AlbertForPreTraining",
        (true, false) => "AlbertForMaskedLM",
        _ => "AlbertModel",
    };
    let v = serde_json::json!({
        "architectures": [arch], "attention_probs_dropout_prob": c.dropout, "bos_token_id": meta.bos_token_id,
        "classifier_dropout_prob": c.dropout, "dtype": meta.dtype, "torch_dtype": meta.dtype, "embedding_size": c.embedding_size,
        "eos_token_id": meta.eos_token_id, "hidden_act": c.hidden_act.hf_name(), "hidden_dropout_prob": c.dropout,
        "hidden_size": c.n_embd, "initializer_range": 0.02, "inner_group_num": 1, "intermediate_size": c.inner(),
        "layer_norm_eps": c.layer_norm_eps, "max_position_embeddings": c.max_seq_len, "model_type": "albert",
        "num_attention_heads": c.n_head, "num_hidden_groups": c.n_layer_groups, "num_hidden_layers": c.n_layer,
        "pad_token_id": 0, "position_embedding_type": "absolute", "tie_word_embeddings": true,
        "transformers_version": "5.23.0", "type_vocab_size": c.type_vocab_size, "vocab_size": c.vocab_size,
    });
    Ok(v.as_object().expect("an object").clone())
}

/// `AlbertModel` files have no `albert.` prefix; the embeddings' id buffers are not
/// parameters; the MLM decoder's weight is the word embedding and its bias `predictions.bias`.
fn name_from_hf(name: &str) -> Option<String> {
    if name.ends_with("embeddings.position_ids") || name.ends_with("embeddings.token_type_ids") || name.starts_with("predictions.decoder.") {
        return None;
    }
    if ["albert.", "predictions.", "sop_classifier."].iter().any(|p| name.starts_with(p)) {
        Some(name.to_string())
    } else {
        Some(format!("albert.{name}"))
    }
}

impl FamilyConfig for AlbertConfig {
    fn family(&self) -> &'static str {
        "albert"
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
        AlbertConfig::validate(self)
    }
    fn n_params(&self) -> usize {
        AlbertConfig::n_params(self)
    }
    fn flops_per_token(&self, seq_len: usize) -> f64 {
        // A shared layer costs compute each time it is applied.
        let applied = self.n_params() - self.n_layer_groups * self.layer_params() + self.n_layer * self.layer_params() - self.max_seq_len * self.embedding_size;
        6.0 * applied as f64 + 12.0 * (self.n_layer * self.n_embd * seq_len) as f64
    }
    fn describe(&self) -> String {
        format!(
            "ALBERT · {} layers ({} shared) · {} heads · n_embd {} · embedding_size {} · n_inner {} · bidirectional",
            self.n_layer, self.n_layer_groups, self.n_head, self.n_embd, self.embedding_size, self.inner()
        )
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serializes")
    }
    fn clone_box(&self) -> Box<dyn FamilyConfig> {
        Box::new(self.clone())
    }
    fn build(&self, vb: VarBuilder) -> std::result::Result<Box<dyn Model>, Error> {
        Ok(Box::new(Albert::new(self, vb)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn token_embedding(&self) -> Option<(&'static str, usize)> {
        Some(("albert.embeddings.word_embeddings.weight", self.embedding_size))
    }
}

impl AlbertConfig {
    /// `tiny`, `small` and `medium`: the BERT presets' widths with E = n_embd / 2 (at least
    /// 64) and one shared layer.
    pub fn preset(name: &str) -> Option<Self> {
        let sized = |n_layer, n_head, n_embd: usize, max_seq_len, vocab_size| Self { vocab_size, n_layer, n_head, n_embd, embedding_size: (n_embd / 2).max(64), max_seq_len, dropout: 0.0, ..Self::tiny() };
        match name {
            "tiny" => Some(Self::tiny()),
            "small" => Some(sized(4, 4, 256, 128, 4096)),
            "medium" => Some(sized(6, 6, 384, 256, 8192)),
            _ => None,
        }
    }

    pub fn tiny() -> Self {
        Self {
            vocab_size: 0,
            n_layer: 4,
            n_head: 4,
            n_embd: 192,
            embedding_size: 96,
            n_inner: 0,
            n_layer_groups: 1,
            max_seq_len: 128,
            type_vocab_size: 2,
            dropout: 0.1,
            layer_norm_eps: ln_eps(),
            hidden_act: Gelu::Tanh,
            pooler: true,
            mlm_head: true,
            sop_head: true,
        }
    }

    /// The feed-forward width (n_inner, or 4·n_embd when it is 0).
    pub fn inner(&self) -> usize {
        if self.n_inner == 0 {
            4 * self.n_embd
        } else {
            self.n_inner
        }
    }

    pub fn validate(&self) -> std::result::Result<(), Error> {
        let bad = |m: String| Err(Error::input(m));
        if self.vocab_size == 0 {
            return bad("model.vocab_size is 0: set it, or let `jielong train` take it from the data".into());
        }
        for (name, v) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("embedding_size", self.embedding_size),
            ("n_layer_groups", self.n_layer_groups),
            ("max_seq_len", self.max_seq_len),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return bad(format!("model.{name} must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!("model.n_embd = {} is not divisible by model.n_head = {}", self.n_embd, self.n_head));
        }
        if self.n_layer_groups > self.n_layer || !self.n_layer.is_multiple_of(self.n_layer_groups) {
            return bad(format!("model.n_layer_groups = {} must divide model.n_layer = {} (each shared layer is applied n_layer / n_layer_groups times)", self.n_layer_groups, self.n_layer));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("model.dropout = {} must be in [0, 1)", self.dropout));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return bad("model.layer_norm_eps must be positive".into());
        }
        if self.sop_head && !(self.pooler && self.mlm_head) {
            return bad("model.sop_head = true needs model.pooler = true and model.mlm_head = true (AlbertForPreTraining has all three)".into());
        }
        Ok(())
    }

    /// Parameters of one (shared) layer.
    fn layer_params(&self) -> usize {
        let (h, f) = (self.n_embd, self.inner());
        4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    }

    pub fn n_params(&self) -> usize {
        let (h, e, v) = (self.n_embd, self.embedding_size, self.vocab_size);
        let emb = (v + self.max_seq_len + self.type_vocab_size) * e + 2 * e;
        let mapping = e * h + h;
        let pooler = if self.pooler { h * h + h } else { 0 };
        let mlm = if self.mlm_head { h * e + e + 2 * e + v } else { 0 };
        let sop = if self.sop_head { 2 * h + 2 } else { 0 };
        emb + mapping + self.n_layer_groups * self.layer_params() + pooler + mlm + sop
    }
}

const NAMES: LayerNames = LayerNames {
    query: "attention.query",
    key: "attention.key",
    value: "attention.value",
    attn_out: "attention.dense",
    attn_ln: "attention.LayerNorm",
    inter: "ffn",
    out: "ffn_output",
    out_ln: "full_layer_layer_norm",
};

pub struct Albert {
    cfg: AlbertConfig,
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_ln: LayerNorm,
    mapping_in: Dense,
    groups: Vec<Layer>,
    pooler: Option<Dense>,
    mlm: Option<MlmHead>,
    sop: Option<Dense>,
    dropout: Dropout,
    /// LoRA adapters on the encoder layers' linear layers (fine-tuning), None without.
    lora: Option<std::sync::Arc<jielong_nn::Lora>>,
}

impl Albert {
    /// Build the model, creating (or fetching) its parameters through `vb`: N(0, 0.02)
    /// weights, zero biases, unit layer-norm scales.
    pub fn new(cfg: &AlbertConfig, vb: VarBuilder) -> std::result::Result<Self, Error> {
        cfg.validate()?;
        let (h, e, f, eps) = (cfg.n_embd, cfg.embedding_size, cfg.inner(), cfg.layer_norm_eps);
        let init = Init::Randn { mean: 0.0, stdev: 0.02 };
        let va = vb.pp("albert");
        let ve = va.pp("embeddings");
        let word = Embedding::new(ve.get_with_hints((cfg.vocab_size, e), "word_embeddings.weight", init)?, e);
        let position = Embedding::new(ve.get_with_hints((cfg.max_seq_len, e), "position_embeddings.weight", init)?, e);
        let token_type = Embedding::new(ve.get_with_hints((cfg.type_vocab_size, e), "token_type_embeddings.weight", init)?, e);
        let emb_ln = LayerNorm::new(e, true, eps, ve.pp("LayerNorm"))?;
        let mapping_in = Dense::new(e, h, va.pp("encoder.embedding_hidden_mapping_in"))?;
        let groups = (0..cfg.n_layer_groups)
            .map(|g| Layer::new(h, f, eps, &NAMES, va.pp(format!("encoder.albert_layer_groups.{g}.albert_layers.0"))))
            .collect::<Result<Vec<_>>>()?;
        let pooler = if cfg.pooler { Some(Dense::new(h, h, va.pp("pooler"))?) } else { None };
        let mlm = if cfg.mlm_head { Some(MlmHead::new(h, e, cfg.vocab_size, eps, "dense", "LayerNorm", vb.pp("predictions"))?) } else { None };
        let sop = if cfg.sop_head { Some(Dense::new(h, 2, vb.pp("sop_classifier.classifier"))?) } else { None };
        Ok(Self { cfg: cfg.clone(), word, position, token_type, emb_ln, mapping_in, groups, pooler, mlm, sop, dropout: Dropout { p: cfg.dropout as f32 }, lora: None })
    }

    pub fn config(&self) -> &AlbertConfig {
        &self.cfg
    }

    /// `ids` (b, t), `token_types` (b, t) (None: all segment 0), `attention_mask` (b, t)
    /// (zero at padding, never attended to) → the last application's hidden states (b, t, H);
    /// `rows`: Some(positions) → only position `rows[i]` of sequence i, (b, 1, H), as BERT's.
    pub fn hidden(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, opts: ForwardOpts, rows: Option<&[u32]>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.cfg.max_seq_len {
            candle_core::bail!("sequence of {t} tokens is longer than the model's max_seq_len {}", self.cfg.max_seq_len);
        }
        let drop = |site: u64| opts.dropout_seed.filter(|_| self.dropout.p > 0.0).map(|seed| MaskSource { seed, site, first_row: opts.first_row });
        let dev = ids.device();
        let mut xs = self.word.forward(ids)?; // (b, t, e)
        xs = xs.broadcast_add(&self.position.forward(&Tensor::arange(0u32, t as u32, dev)?)?)?;
        let types = match token_types {
            Some(tt) => self.token_type.forward(tt)?,
            None => self.token_type.forward(&Tensor::zeros((b, t), DType::U32, dev)?)?,
        };
        xs = self.dropout.forward(&self.emb_ln.forward(&(xs + types)?)?, drop(0))?;
        xs = self.mapping_in.forward(&xs)?; // (b, t, h)
        let per_group = self.cfg.n_layer / self.cfg.n_layer_groups;
        for i in 0..self.cfg.n_layer {
            let site = 1 + 2 * i as u64;
            let last = (i + 1 == self.cfg.n_layer).then_some(rows).flatten();
            xs = self.groups[i / per_group].forward(&xs, attention_mask, self.cfg.n_head, self.cfg.hidden_act, &self.dropout, [drop(site), drop(site + 1)], self.lora.as_deref(), last)?;
        }
        Ok(xs)
    }

    /// tanh(dense(hidden[:, 0])) (b, H), None without the pooler.
    pub fn pooled(&self, hidden: &Tensor) -> Result<Option<Tensor>> {
        match &self.pooler {
            Some(p) => Ok(Some(p.forward(&hidden.i((.., 0))?.contiguous()?)?.tanh()?)),
            None => Ok(None),
        }
    }

    /// The distinct encoder layers (what `Encoder::prepare_inference` prepares).
    fn encoder_layers(&self) -> &[Layer] {
        &self.groups
    }

    /// MLM logits (…, vocab_size) from hidden states (…, H); an error without the head.
    pub fn mlm_logits_of(&self, hidden: &Tensor) -> Result<Tensor> {
        let Some(head) = &self.mlm else { candle_core::bail!("this ALBERT model has no masked-LM head (model.mlm_head = false)") };
        head.logits(hidden, self.word.embeddings(), self.cfg.hidden_act)
    }
}

crate::post_ln::encoder_impls!(Albert, sop, SentenceTask::Sop, "this ALBERT model has no sentence-order head (model.sop_head = false)");

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use jielong_nn::ParamStore;

    fn cfg(groups: usize) -> AlbertConfig {
        AlbertConfig { vocab_size: 50, n_layer: 4, n_head: 2, n_embd: 16, embedding_size: 8, n_inner: 24, n_layer_groups: groups, max_seq_len: 12, dropout: 0.0, ..AlbertConfig::tiny() }
    }

    #[test]
    fn albert_shares_layers_and_counts_its_parameters() {
        for groups in [1, 2] {
            let c = cfg(groups);
            let params = ParamStore::new(3);
            let m = Albert::new(&c, params.var_builder(&Device::Cpu)).unwrap();
            assert_eq!(params.n_params(), c.n_params(), "n_params formula disagrees with the built model");
            assert_eq!(params.vars().iter().filter(|(n, _)| n.ends_with("full_layer_layer_norm.weight")).count(), groups);
            let dev = Device::Cpu;
            let ids = Tensor::new(&[[1u32, 5, 9, 2, 7, 3]], &dev).unwrap();
            let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 0]], &dev).unwrap();
            let h = m.hidden_states(&ids, None, &mask).unwrap();
            assert_eq!(h.dims3().unwrap(), (1, 6, 16));
            assert_eq!(m.sentence_logits(&h).unwrap().unwrap().dims2().unwrap(), (1, 2));
        }
        // Sharing: the same width with 4 distinct layers costs 3 more layers of parameters.
        let (one, four) = (cfg(1), cfg(4));
        assert_eq!(four.n_params() - one.n_params(), 3 * one.layer_params());
        let e = AlbertConfig { n_layer_groups: 3, ..cfg(1) }.validate().unwrap_err().to_string();
        assert!(e.contains("n_layer_groups"), "{e}");
        let e = AlbertConfig { pooler: false, ..cfg(1) }.validate().unwrap_err().to_string();
        assert!(e.contains("sop_head"), "{e}");
    }
}
