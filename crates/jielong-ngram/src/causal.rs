//! An n-gram model over a tokenizer's pieces (`--units tokens`) as a causal language model of
//! the model-family spine (`jielong_models::CausalLm`), so `jielong generate --checkpoint` and
//! `jielong eval --checkpoint` run it through the shared engine (every sampler, beam search)
//! with figures on the same token ids as a neural model with that tokenizer.
//!
//! - Its decoding state ([`NgramState`]) is the ids read so far; only the last N − 1 (after
//!   the last end-of-text) matter, so rewinding is exact.
//! - Token ids map to the model's units through the pieces; the tokenizer's end-of-text id is
//!   the model's `</s>`, and after it the context starts again from `<s>`. A sequence starts
//!   from `<s>`.
//! - The logits are natural-log probabilities over the tokenizer's ids. `<unk>` has no token id,
//!   so its probability is left out and a softmax renormalises over the ids.

use crate::model::NgramModel;
use crate::units::piece;
use crate::vocab::{BOS, EOS};
use candle_core::{Device, Result, Tensor};
use jielong_core::Error;
use jielong_models::family::FamilyConfig;
use jielong_models::state::DecodeState;
use jielong_models::{CausalLm, ForwardOpts, Model, ModelConfig};
use jielong_tokenizer::Tokenizer;
use std::any::Any;
use std::path::Path;

/// The longest sequence one `logits` call takes (the context window `jielong eval` uses).
pub const MAX_SEQ_LEN: usize = 512;

/// The n-gram family's config, for the spine (`describe`, `vocab_size`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NgramConfig {
    pub order: usize,
    pub smoothing: String,
    pub vocab_size: usize,
    pub n_ngrams: usize,
}

impl FamilyConfig for NgramConfig {
    fn family(&self) -> &'static str {
        "ngram"
    }
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    fn set_vocab_size(&mut self, vocab_size: usize) {
        self.vocab_size = vocab_size;
    }
    fn max_seq_len(&self) -> usize {
        MAX_SEQ_LEN
    }
    fn validate(&self) -> std::result::Result<(), Error> {
        Ok(())
    }
    fn n_params(&self) -> usize {
        self.n_ngrams
    }
    fn flops_per_token(&self, _seq_len: usize) -> f64 {
        0.0
    }
    fn describe(&self) -> String {
        format!("n-gram · order {} · {} · {} n-grams", self.order, self.smoothing, self.n_ngrams)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn clone_box(&self) -> Box<dyn FamilyConfig> {
        Box::new(self.clone())
    }
    fn build(&self, _vb: candle_nn::VarBuilder) -> std::result::Result<Box<dyn Model>, Error> {
        Err(Error::input("an n-gram model is trained by `jielong ngram train`, not built from weights"))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What an n-gram model carries between decoding steps: the ids read so far.
#[derive(Debug, Clone, Default)]
pub struct NgramState {
    ids: Vec<u32>,
}

impl DecodeState for NgramState {
    fn len(&self) -> usize {
        self.ids.len()
    }
    fn rewind(&mut self, len: usize) -> Result<usize> {
        self.ids.truncate(len);
        Ok(self.ids.len())
    }
    fn clear(&mut self) {
        self.ids.clear()
    }
    fn fork(&self) -> Box<dyn DecodeState> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

pub struct NgramLm {
    model: NgramModel,
    /// Token id → the model's unit id.
    to_unit: Vec<u32>,
    config: NgramConfig,
}

impl NgramLm {
    /// Wrap a model trained with `--units tokens` on `tokenizer`.
    pub fn new(model: NgramModel, tokenizer: &Tokenizer) -> jielong_core::Result<Self> {
        if model.meta().units != "tokens" {
            return Err(Error::input(format!(
                "this n-gram model counts {}, not tokenizer tokens: only a model trained with --units tokens is a causal LM over token ids (use `jielong ngram eval` / `ngram generate` for it)",
                model.meta().units
            )));
        }
        let eot = tokenizer.eot_id();
        let to_unit = (0..tokenizer.vocab_size() as u32).map(|t| if Some(t) == eot { EOS } else { model.vocab().id(&piece(tokenizer, t)) }).collect();
        let config = NgramConfig {
            order: model.order(),
            smoothing: model.meta().smoothing.clone(),
            vocab_size: tokenizer.vocab_size(),
            n_ngrams: (1..=model.order()).map(|m| model.count(m)).sum(),
        };
        Ok(Self { model, to_unit, config })
    }

    /// Load a binary n-gram model file and its tokenizer (the one it names, or `tokenizer`,
    /// which must be the same: its SHA-256 is checked).
    pub fn load(path: &Path, tokenizer: Option<&Path>) -> jielong_core::Result<(Self, Tokenizer, std::path::PathBuf)> {
        let model = crate::binary::load(path)?;
        if model.meta().units != "tokens" {
            return Err(Error::input(format!(
                "{} counts {}, not tokenizer tokens: only a model trained with --units tokens is a causal LM over token ids (use `jielong ngram eval` / `ngram generate` for it)",
                path.display(),
                model.meta().units
            )));
        }
        let named = model.meta().tokenizer.clone().map(std::path::PathBuf::from);
        let tk_path = tokenizer.map(Path::to_path_buf).or(named).ok_or_else(|| Error::input(format!("{} names no tokenizer: it was not trained with --units tokens", path.display())))?;
        let tk = Tokenizer::load(&tk_path)?;
        if model.meta().tokenizer_sha256.as_deref().is_some_and(|h| h != tk.hash()) {
            return Err(Error::input(format!("{} is not the tokenizer this n-gram model was trained with (its SHA-256 differs)", tk_path.display())));
        }
        let dir = if tk_path.is_dir() { tk_path.clone() } else { tk_path.parent().map(Path::to_path_buf).unwrap_or_default() };
        let lm = Self::new(model, &tk)?;
        Ok((lm, tk, dir))
    }

    /// ln p over every token id after the token ids `history`.
    fn row(&self, history: &[u32], out: &mut Vec<f32>) {
        let n1 = self.model.order() - 1;
        // The context: <s>, then the ids after the last end-of-text, the last N − 1 of them.
        let since = history.iter().rposition(|&t| self.to_unit.get(t as usize) == Some(&EOS)).map_or(0, |i| i + 1);
        let mut ctx: Vec<u32> = vec![BOS];
        ctx.extend(history[since..].iter().map(|&t| self.to_unit.get(t as usize).copied().unwrap_or(crate::vocab::UNK)));
        let ctx = &ctx[ctx.len().saturating_sub(n1)..];
        let ln10 = std::f64::consts::LN_10;
        out.clear();
        out.extend(self.to_unit.iter().map(|&u| (self.model.log10_prob(ctx, u) * ln10) as f32));
    }

    /// Count an n-gram model over `tokenizer`'s ids: each of `documents` (token ids, without
    /// end-of-text) is one sentence, as `jielong ngram train --units tokens --sentences
    /// document` would count the same text (`jielong compare` trains it on the token shards
    /// the neural families read). The model file's metadata names `tokenizer_path`.
    pub fn train_on_ids(documents: &[Vec<u32>], tokenizer: &Tokenizer, tokenizer_path: &Path, cfg: &crate::TrainConfig) -> jielong_core::Result<Self> {
        let mut seed = crate::Vocab::new();
        for id in 0..tokenizer.vocab_size() as u32 {
            seed.insert(&piece(tokenizer, id));
        }
        let sentences: Vec<Vec<String>> = documents.iter().filter(|d| !d.is_empty()).map(|d| d.iter().map(|&id| piece(tokenizer, id)).collect()).collect();
        let (vocab, ids) = crate::index_sentences(&sentences, Some(seed), cfg.prune_threshold(1));
        drop(sentences);
        let mut model = crate::train(&ids, vocab, cfg)?;
        let meta = model.meta_mut();
        meta.units = "tokens".into();
        meta.sentences = "document".into();
        meta.tokenizer = Some(std::fs::canonicalize(tokenizer_path).unwrap_or_else(|_| tokenizer_path.to_path_buf()).display().to_string());
        meta.tokenizer_sha256 = Some(tokenizer.hash().to_string());
        Self::new(model, tokenizer)
    }

    pub fn model(&self) -> &NgramModel {
        &self.model
    }
}

impl Model for NgramLm {
    fn config(&self) -> ModelConfig {
        ModelConfig::new(self.config.clone())
    }
    fn as_causal_lm(&self) -> Option<&dyn CausalLm> {
        Some(self)
    }
}

impl CausalLm for NgramLm {
    fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let ids: Vec<Vec<u32>> = ids.to_vec2()?;
        let v = self.to_unit.len();
        let mut data = Vec::with_capacity(b * t * v);
        let mut row = Vec::with_capacity(v);
        for seq in &ids {
            for j in 0..t {
                self.row(&seq[..=j], &mut row);
                data.extend_from_slice(&row);
            }
        }
        Tensor::from_vec(data, (b, t, v), &Device::Cpu)
    }

    fn loss(&self, ids: &Tensor, targets: &Tensor, _opts: ForwardOpts) -> Result<Tensor> {
        let logits = self.logits(ids)?;
        let (b, t, v) = logits.dims3()?;
        let logp = candle_nn::ops::log_softmax(&logits.reshape((b * t, v))?, 1)?;
        let picked = logp.gather(&targets.reshape((b * t, 1))?, 1)?;
        picked.mean_all()?.neg()
    }

    fn vocab_size(&self) -> usize {
        self.to_unit.len()
    }

    fn max_seq_len(&self) -> usize {
        MAX_SEQ_LEN
    }

    fn new_state(&self) -> Box<dyn DecodeState> {
        Box::new(NgramState::default())
    }

    fn forward_cached(&self, chunks: &[&[u32]], states: &mut [&mut dyn DecodeState]) -> Result<Tensor> {
        if chunks.len() != states.len() {
            candle_core::bail!("{} chunks but {} states", chunks.len(), states.len());
        }
        let v = self.to_unit.len();
        let mut data = Vec::with_capacity(chunks.len() * v);
        let mut row = Vec::with_capacity(v);
        for (chunk, state) in chunks.iter().zip(states.iter_mut()) {
            let st = jielong_models::state::downcast::<NgramState>(&mut **state, "ngram")?;
            st.ids.extend_from_slice(chunk);
            self.row(&st.ids, &mut row);
            data.extend_from_slice(&row);
        }
        Tensor::from_vec(data, (chunks.len(), v), &Device::Cpu)
    }
}
