//! BERT encoder (post-LN): token, position and segment embeddings, bidirectional attention
//! with a padding mask, exact (erf) GELU, the pooler (tanh of a dense layer on the first
//! token) and the masked-LM head (dense → GELU → layer norm → the token embedding transposed
//! + a bias).
//!
//! Weight names follow Hugging Face `BertForPreTraining` (a `BertModel` file, such as a
//! sentence-transformers checkpoint, has the same names without the `bert.` prefix; linear
//! weights are `nn.Linear`'s (out, in)):
//! ```text
//! bert.embeddings.{word,position,token_type}_embeddings.weight
//! bert.embeddings.LayerNorm.{weight,bias}
//! bert.encoder.layer.{i}.attention.self.{query,key,value}.{weight,bias}
//! bert.encoder.layer.{i}.attention.output.dense.{weight,bias}
//! bert.encoder.layer.{i}.attention.output.LayerNorm.{weight,bias}
//! bert.encoder.layer.{i}.intermediate.dense.{weight,bias}      (n_inner, n_embd)
//! bert.encoder.layer.{i}.output.dense.{weight,bias}            (n_embd, n_inner)
//! bert.encoder.layer.{i}.output.LayerNorm.{weight,bias}
//! bert.pooler.dense.{weight,bias}                              with `pooler = true`
//! cls.predictions.transform.dense.{weight,bias}                with `mlm_head = true`
//! cls.predictions.transform.LayerNorm.{weight,bias}
//! cls.predictions.bias                                         (vocab_size); the decoder
//!                                                              weight is the word embedding
//! cls.seq_relationship.{weight,bias}                           (2, n_embd) with `nsp_head = true`
//! ```
//! The next-sentence head reads the pooled output: logit 0 says "B follows A", logit 1 "B is
//! a random segment" (transformers' labels).
//! The three attention projections run as one (3·n_embd, n_embd) product, so attention runs
//! as one fused kernel from the packed output (`jielong_nn::bidirectional_attention_packed`),
//! without a (t × t) tensor. Training concatenates the three weights per call (gradients
//! reach each parameter); inference (`Encoder::prepare_inference`, which `jielong embed`
//! calls) reads a copy fused and transposed once (`post_ln::Layer::prepare`).

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
pub struct BertConfig {
    /// Size of the token table. 0 in a config file means "take it from the tokenizer".
    #[serde(default)]
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Width of the feed-forward layer (BERT: 4·n_embd; 0 in a config file means that).
    #[serde(default)]
    pub n_inner: usize,
    /// Position table size (Hugging Face `max_position_embeddings`).
    pub max_seq_len: usize,
    /// Segment (token type) table size: 2 in BERT (sentence A / sentence B).
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f64,
    /// The pooler (tanh(dense(first token))), which sentence-pair heads read.
    #[serde(default = "yes")]
    pub pooler: bool,
    /// The masked-LM head (needed to train with `objective = "mlm"` and for `fill-mask`).
    #[serde(default = "yes")]
    pub mlm_head: bool,
    /// The next-sentence-prediction head on the pooler (BertForPreTraining's
    /// `cls.seq_relationship`), for `train.sentence_task = "nsp"`.
    #[serde(default)]
    pub nsp_head: bool,
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

/// The registry entry.
pub const FAMILY: Family = Family {
    name: "bert",
    about: "BERT encoder (post-LN): bidirectional attention with padding masks, segment embeddings, pooler, masked-LM head",
    parse: parse_as::<BertConfig>,
    preset: |name| BertConfig::preset(name).map(|c| Box::new(c) as Box<dyn FamilyConfig>),
    hf: Some(crate::hf::HfCodec { model_types: &["bert"], config_from_hf, config_to_hf, name_from_hf }),
};

/// BertConfig (transformers) → ours. The head the file has follows from `architectures`:
/// `BertModel` (sentence encoders) has the pooler and no MLM head, `BertForMaskedLM` the
/// reverse, `BertForPreTraining` both and the next-sentence classifier.
fn config_from_hf(c: &serde_json::Map<String, serde_json::Value>) -> std::result::Result<Box<dyn FamilyConfig>, String> {
    use crate::hf::{field_f64, field_usize, require};
    require(c, "hidden_act", |v| v.as_str() == Some("gelu"), "the exact GELU, \"gelu\"")?;
    require(c, "position_embedding_type", |v| v.as_str() == Some("absolute"), "absolute (learned) positions")?;
    require(c, "is_decoder", |v| v.as_bool() == Some(false), "an encoder")?;
    require(c, "add_cross_attention", |v| v.as_bool() == Some(false), "no cross-attention")?;
    let arch = c.get("architectures").and_then(|a| a.as_array()).and_then(|a| a.first()).and_then(|a| a.as_str()).unwrap_or("BertModel");
    let (pooler, mlm_head, nsp_head) = match arch {
        "BertForMaskedLM" => (false, true, false),
        "BertForPreTraining" => (true, true, true),
        _ => (true, false, false),
    };
    let cfg = BertConfig {
        vocab_size: field_usize(c, "vocab_size")?,
        n_layer: field_usize(c, "num_hidden_layers")?,
        n_head: field_usize(c, "num_attention_heads")?,
        n_embd: field_usize(c, "hidden_size")?,
        n_inner: field_usize(c, "intermediate_size")?,
        max_seq_len: field_usize(c, "max_position_embeddings")?,
        type_vocab_size: field_usize(c, "type_vocab_size")?,
        dropout: 0.0,
        layer_norm_eps: field_f64(c, "layer_norm_eps")?.unwrap_or(1e-12),
        pooler,
        mlm_head,
        nsp_head,
    };
    Ok(Box::new(cfg))
}

/// Ours → the keys `BertConfig.save_pretrained` writes (transformers 5.23). A model with the
/// MLM head exports as `BertForMaskedLM` (its pooler, if any, is an extra tensor transformers
/// ignores), with the NSP head too as `BertForPreTraining`, one without as `BertModel`.
fn config_to_hf(cfg: &dyn FamilyConfig, meta: &crate::hf::HfMeta) -> std::result::Result<serde_json::Map<String, serde_json::Value>, String> {
    let c = cfg.as_any().downcast_ref::<BertConfig>().ok_or("not a BERT config")?;
    let arch = match (c.mlm_head, c.nsp_head) {
        (true, true) => "BertForPreTraining",
        (true, false) => "BertForMaskedLM",
        _ => "BertModel",
    };
    let v = serde_json::json!({
        "add_cross_attention": false, "architectures": [arch], "attention_probs_dropout_prob": c.dropout,
        "bos_token_id": meta.bos_token_id, "classifier_dropout": null, "dtype": meta.dtype, "torch_dtype": meta.dtype,
        "eos_token_id": meta.eos_token_id, "hidden_act": "gelu", "hidden_dropout_prob": c.dropout,
        "hidden_size": c.n_embd, "initializer_range": 0.02, "intermediate_size": c.inner(), "is_decoder": false,
        "layer_norm_eps": c.layer_norm_eps, "max_position_embeddings": c.max_seq_len, "model_type": "bert",
        "num_attention_heads": c.n_head, "num_hidden_layers": c.n_layer, "pad_token_id": 0,
        "position_embedding_type": "absolute", "tie_word_embeddings": true, "transformers_version": "5.23.0",
        "type_vocab_size": c.type_vocab_size, "use_cache": true, "vocab_size": c.vocab_size,
    });
    Ok(v.as_object().expect("an object").clone())
}

/// `BertModel` files have no `bert.` prefix; `position_ids` is a buffer; the MLM decoder's
/// weight is the word embedding and its bias is `cls.predictions.bias` (older files store both).
fn name_from_hf(name: &str) -> Option<String> {
    if name.ends_with("embeddings.position_ids") || name.starts_with("cls.predictions.decoder.") {
        return None;
    }
    if name.starts_with("bert.") || name.starts_with("cls.") {
        Some(name.to_string())
    } else {
        Some(format!("bert.{name}"))
    }
}

impl FamilyConfig for BertConfig {
    fn family(&self) -> &'static str {
        "bert"
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
        BertConfig::validate(self)
    }
    fn n_params(&self) -> usize {
        BertConfig::n_params(self)
    }
    fn flops_per_token(&self, seq_len: usize) -> f64 {
        let n = (self.n_params() - self.max_seq_len * self.n_embd) as f64;
        6.0 * n + 12.0 * (self.n_layer * self.n_embd * seq_len) as f64
    }
    fn describe(&self) -> String {
        format!("BERT · {} layers · {} heads · n_embd {} · n_inner {} · bidirectional", self.n_layer, self.n_head, self.n_embd, self.inner())
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serializes")
    }
    fn clone_box(&self) -> Box<dyn FamilyConfig> {
        Box::new(self.clone())
    }
    fn build(&self, vb: VarBuilder) -> std::result::Result<Box<dyn Model>, Error> {
        Ok(Box::new(Bert::new(self, vb)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn token_embedding(&self) -> Option<(&'static str, usize)> {
        Some(("bert.embeddings.word_embeddings.weight", self.n_embd))
    }
}

impl BertConfig {
    /// `tiny` (what `quickstart --family bert` would train), `small` and `medium`.
    pub fn preset(name: &str) -> Option<Self> {
        let sized = |n_layer, n_head, n_embd, max_seq_len, vocab_size| Self { vocab_size, n_layer, n_head, n_embd, max_seq_len, dropout: 0.0, ..Self::tiny() };
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
            n_inner: 0,
            max_seq_len: 128,
            type_vocab_size: 2,
            dropout: 0.1,
            layer_norm_eps: ln_eps(),
            pooler: true,
            mlm_head: true,
            nsp_head: false,
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
        for (name, v) in [("n_layer", self.n_layer), ("n_head", self.n_head), ("n_embd", self.n_embd), ("max_seq_len", self.max_seq_len), ("type_vocab_size", self.type_vocab_size)] {
            if v == 0 {
                return bad(format!("model.{name} must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!("model.n_embd = {} is not divisible by model.n_head = {}", self.n_embd, self.n_head));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("model.dropout = {} must be in [0, 1)", self.dropout));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return bad("model.layer_norm_eps must be positive".into());
        }
        if self.nsp_head && !(self.pooler && self.mlm_head) {
            return bad("model.nsp_head = true needs model.pooler = true and model.mlm_head = true (BertForPreTraining has all three)".into());
        }
        Ok(())
    }

    pub fn n_params(&self) -> usize {
        let (c, f, v) = (self.n_embd, self.inner(), self.vocab_size);
        let ln = 2 * c;
        let emb = (v + self.max_seq_len + self.type_vocab_size) * c + ln;
        let layer = 4 * (c * c + c) + ln + (c * f + f) + (f * c + c) + ln;
        let pooler = if self.pooler { c * c + c } else { 0 };
        let head = if self.mlm_head { c * c + c + ln + v } else { 0 };
        let nsp = if self.nsp_head { 2 * c + 2 } else { 0 };
        emb + self.n_layer * layer + pooler + head + nsp
    }
}

const NAMES: LayerNames = LayerNames {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attn_out: "attention.output.dense",
    attn_ln: "attention.output.LayerNorm",
    inter: "intermediate.dense",
    out: "output.dense",
    out_ln: "output.LayerNorm",
};

pub struct Bert {
    cfg: BertConfig,
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_ln: LayerNorm,
    layers: Vec<Layer>,
    pooler: Option<Dense>,
    mlm: Option<MlmHead>,
    nsp: Option<Dense>,
    dropout: Dropout,
    /// LoRA adapters on the encoder layers' linear layers (fine-tuning), None without.
    lora: Option<std::sync::Arc<jielong_nn::Lora>>,
}

impl Bert {
    /// Build the model, creating (or fetching) its parameters through `vb`. Init as BERT:
    /// N(0, 0.02) weights, zero biases, unit layer-norm scales.
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> std::result::Result<Self, Error> {
        cfg.validate()?;
        let (c, f, eps) = (cfg.n_embd, cfg.inner(), cfg.layer_norm_eps);
        let init = Init::Randn { mean: 0.0, stdev: 0.02 };
        let vb_bert = vb.pp("bert");
        let ve = vb_bert.pp("embeddings");
        let word_w = ve.get_with_hints((cfg.vocab_size, c), "word_embeddings.weight", init)?;
        let word = Embedding::new(word_w, c);
        let position = Embedding::new(ve.get_with_hints((cfg.max_seq_len, c), "position_embeddings.weight", init)?, c);
        let token_type = Embedding::new(ve.get_with_hints((cfg.type_vocab_size, c), "token_type_embeddings.weight", init)?, c);
        let emb_ln = LayerNorm::new(c, true, eps, ve.pp("LayerNorm"))?;
        let layers = (0..cfg.n_layer).map(|i| Layer::new(c, f, eps, &NAMES, vb_bert.pp(format!("encoder.layer.{i}")))).collect::<Result<Vec<_>>>()?;
        let pooler = if cfg.pooler { Some(Dense::new(c, c, vb_bert.pp("pooler.dense"))?) } else { None };
        let mlm = if cfg.mlm_head { Some(MlmHead::new(c, c, cfg.vocab_size, eps, "transform.dense", "transform.LayerNorm", vb.pp("cls.predictions"))?) } else { None };
        let nsp = if cfg.nsp_head { Some(Dense::new(c, 2, vb.pp("cls.seq_relationship"))?) } else { None };
        Ok(Self { cfg: cfg.clone(), word, position, token_type, emb_ln, layers, pooler, mlm, nsp, dropout: Dropout { p: cfg.dropout as f32 }, lora: None })
    }

    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// `ids` (b, t) u32, `token_types` (b, t) u32 (None: all segment 0), `attention_mask`
    /// (b, t) (non-zero: a token; zero: padding, never attended to) → the last layer's hidden
    /// states (b, t, n_embd). Hidden states at padded positions are computed but meaningless.
    /// `rows`: Some(positions) → only position `rows[i]` of sequence i, (b, 1, n_embd), with
    /// the last layer computing no more than that needs (see `post_ln::Layer::forward`).
    pub fn hidden(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, opts: ForwardOpts, rows: Option<&[u32]>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.cfg.max_seq_len {
            candle_core::bail!("sequence of {t} tokens is longer than the model's max_seq_len {}", self.cfg.max_seq_len);
        }
        let drop = |site: u64| opts.dropout_seed.filter(|_| self.dropout.p > 0.0).map(|seed| MaskSource { seed, site, first_row: opts.first_row });
        let dev = ids.device();
        let mut xs = self.word.forward(ids)?; // (b, t, c)
        let pos = Tensor::arange(0u32, t as u32, dev)?;
        xs = xs.broadcast_add(&self.position.forward(&pos)?)?;
        let types = match token_types {
            Some(tt) => self.token_type.forward(tt)?,
            None => self.token_type.forward(&Tensor::zeros((b, t), DType::U32, dev)?)?,
        };
        xs = (xs + types)?;
        xs = self.dropout.forward(&self.emb_ln.forward(&xs)?, drop(0))?;
        for (i, layer) in self.layers.iter().enumerate() {
            let site = 1 + 2 * i as u64;
            let last = (i + 1 == self.layers.len()).then_some(rows).flatten();
            xs = layer.forward(&xs, attention_mask, self.cfg.n_head, Gelu::Erf, &self.dropout, [drop(site), drop(site + 1)], self.lora.as_deref(), last)?;
        }
        Ok(xs)
    }

    /// The pooler on the first token of each sequence: tanh(dense(hidden[:, 0])) (b, n_embd).
    pub fn pooled(&self, hidden: &Tensor) -> Result<Option<Tensor>> {
        match &self.pooler {
            Some(p) => Ok(Some(p.forward(&hidden.i((.., 0))?.contiguous()?)?.tanh()?)),
            None => Ok(None),
        }
    }

    /// The distinct encoder layers (what `Encoder::prepare_inference` prepares).
    fn encoder_layers(&self) -> &[Layer] {
        &self.layers
    }

    /// MLM logits (…, vocab_size) from hidden states (…, n_embd); an error without the head.
    pub fn mlm_logits_of(&self, hidden: &Tensor) -> Result<Tensor> {
        let Some(head) = &self.mlm else { candle_core::bail!("this BERT model has no masked-LM head (model.mlm_head = false)") };
        head.logits(hidden, self.word.embeddings(), Gelu::Erf)
    }
}

crate::post_ln::encoder_impls!(Bert, nsp, SentenceTask::Nsp, "this BERT model has no next-sentence head (model.nsp_head = false)");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IGNORE;
    use candle_core::Device;
    use jielong_nn::ParamStore;

    fn model(pooler: bool, mlm_head: bool) -> Bert {
        let cfg = BertConfig { vocab_size: 50, n_layer: 2, n_head: 2, n_embd: 16, n_inner: 24, max_seq_len: 12, dropout: 0.0, pooler, mlm_head, ..BertConfig::tiny() };
        let params = ParamStore::new(3);
        let m = Bert::new(&cfg, params.var_builder(&Device::Cpu)).unwrap();
        assert_eq!(params.n_params(), cfg.n_params(), "n_params formula disagrees with the built model");
        m
    }

    #[test]
    fn bert_sees_both_directions_and_ignores_padding() {
        let m = model(true, true);
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1u32, 5, 9, 2, 7, 3, 4, 8]], &dev).unwrap();
        let b = Tensor::new(&[[1u32, 5, 9, 2, 7, 3, 4, 11]], &dev).unwrap();
        let ones = Tensor::ones((1, 8), DType::U32, &dev).unwrap();
        let (ha, hb) = (m.hidden_states(&a, None, &ones).unwrap(), m.hidden_states(&b, None, &ones).unwrap());
        let d0: f32 = (ha.i((0, 0)).unwrap() - hb.i((0, 0)).unwrap()).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(d0 > 1e-4, "the first position does not see the last");
        // With the last token masked out, changing it changes nothing before it.
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 1, 0]], &dev).unwrap();
        let (ma, mb) = (m.hidden_states(&a, None, &mask).unwrap(), m.hidden_states(&b, None, &mask).unwrap());
        let d: f32 = (ma.narrow(1, 0, 7).unwrap() - mb.narrow(1, 0, 7).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert_eq!(d, 0.0, "padding is attended to");
        assert!(m.hidden_states(&Tensor::zeros((1, 13), DType::U32, &dev).unwrap(), None, &Tensor::ones((1, 13), DType::U32, &dev).unwrap()).is_err());
        let _ = model(false, false);
    }

    #[test]
    fn bert_prepared_inference_matches_the_parameters_and_training_drops_it() {
        let cfg = BertConfig { vocab_size: 50, n_layer: 2, n_head: 2, n_embd: 16, n_inner: 24, max_seq_len: 12, dropout: 0.0, ..BertConfig::tiny() };
        let params = ParamStore::new(5);
        let m = Bert::new(&cfg, params.var_builder(&Device::Cpu)).unwrap();
        let dev = Device::Cpu;
        let ids = Tensor::new(&[[1u32, 5, 9, 2, 7, 3, 4, 8], [4, 6, 1, 0, 0, 0, 0, 0]], &dev).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0]], &dev).unwrap();
        let diff = |a: &Tensor, b: &Tensor| -> f32 { (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
        let plain = m.hidden_states(&ids, None, &mask).unwrap();
        m.prepare_inference().unwrap();
        let prepared = m.hidden_states(&ids, None, &mask).unwrap();
        assert!(diff(&plain, &prepared) < 1e-5, "the prepared weights give other hidden states");
        // A training forward drops the copies, so new parameter values are read after it.
        let targets = Tensor::new(&[[IGNORE, 3, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE], [IGNORE; 8]], &dev).unwrap();
        m.mlm_loss(&ids, None, &mask, &targets, ForwardOpts::default()).unwrap();
        let (_, wv) = params.vars().into_iter().find(|(n, _)| n == "bert.encoder.layer.0.attention.self.value.weight").unwrap();
        wv.set(&Tensor::randn(0f32, 1.0, wv.shape(), &dev).unwrap()).unwrap();
        let changed = m.hidden_states(&ids, None, &mask).unwrap();
        assert!(diff(&changed, &prepared) > 1e-3, "stale inference copies after training");
        m.prepare_inference().unwrap();
        assert!(diff(&changed, &m.hidden_states(&ids, None, &mask).unwrap()) < 1e-5);
    }
}
