//! Virtual tokens: prompt tuning (Lester et al. 2021) and prefix tuning (Li & Liang 2021), as
//! PEFT's `PROMPT_TUNING` and `PREFIX_TUNING` run them on a causal model.
//!
//! Both train one table of `n` rows and leave every weight of the base as it is:
//!
//! - **prompt tuning**: `prompt_embeddings` (n, n_embd) are input embeddings put before the
//!   token embeddings; the model reads n + t positions (the virtual ones at 0..n) and the loss
//!   is taken on the real ones only.
//! - **prefix tuning**: `prompt_embeddings` (n, n_layer·2·kv_dim) are, for every layer, n keys
//!   and n values put before that layer's own (kv_dim = n_kv_head·head_dim; PEFT's view
//!   (n, n_layer·2, n_kv_head, head_dim), layer l's keys at 2l and values at 2l + 1). Every
//!   query sees all of them; among real tokens attention stays causal. The prefix keys are used
//!   as given (no rotary rotation), and the real tokens sit at positions n..n + t, as in
//!   transformers when a cache of n entries is passed as `past_key_values`
//!   (GPT-2: `position_ids = arange(t) + past_seen_tokens`).
//!
//! In both cases the real tokens sit at positions n..n + t, so the context left for text is
//! `max_seq_len − n`. At decoding time the virtual tokens are the first n entries of the KV
//! cache ([`PrefixedCache`]): filled once per sequence, kept by `rewind` and `clear`, and not
//! counted by `len`, so the engine (its context shift, the chat REPL's prefix reuse) sees only
//! real tokens.

use crate::state::DecodeState;
use candle_core::{Device, Result, Tensor, Var};
use jielong_core::Error;
use jielong_nn::{KvCache, ParamStore};
use std::any::Any;

/// Which method the table belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SoftPromptKind {
    /// Trained input embeddings (PEFT `PROMPT_TUNING`).
    Prompt,
    /// Trained per-layer keys and values (PEFT `PREFIX_TUNING`).
    Prefix,
}

impl SoftPromptKind {
    /// PEFT's `peft_type`.
    pub fn peft_type(self) -> &'static str {
        match self {
            Self::Prompt => "PROMPT_TUNING",
            Self::Prefix => "PREFIX_TUNING",
        }
    }
}

/// What a model tells an adapter about its shapes (PEFT's `num_layers`, `token_dim`,
/// `num_attention_heads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftPromptShape {
    pub n_layer: usize,
    /// The input embedding width (prompt tuning's row).
    pub n_embd: usize,
    /// Key/value heads and their width: a prefix row holds n_layer·2·n_kv_head·head_dim values.
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub max_seq_len: usize,
}

impl SoftPromptShape {
    /// Width of one row of the table for `kind`.
    pub fn width(&self, kind: SoftPromptKind) -> usize {
        match kind {
            SoftPromptKind::Prompt => self.n_embd,
            SoftPromptKind::Prefix => self.n_layer * 2 * self.kv_dim(),
        }
    }
    /// n_kv_head·head_dim: PEFT's `token_dim` for a prefix.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}

/// The trained table of virtual tokens, in its own [`ParamStore`] (the only parameters a
/// prompt- or prefix-tuning run trains and saves) under PEFT's name `prompt_embeddings`.
pub struct SoftPrompt {
    pub kind: SoftPromptKind,
    /// Virtual tokens (rows of the table).
    pub n: usize,
    pub shape: SoftPromptShape,
    params: ParamStore,
    table: Var,
}

/// PEFT's name of the table in `adapter_model.safetensors`.
pub const TABLE: &str = "prompt_embeddings";

impl SoftPrompt {
    /// A table for a model of `shape`, initialised with `init` (n, width). Errors (user errors)
    /// when the virtual tokens leave no room for text or the table has the wrong shape.
    pub fn new(kind: SoftPromptKind, shape: SoftPromptShape, init: &Tensor) -> std::result::Result<Self, Error> {
        let (n, w) = init.dims2()?;
        check_length(n, shape.max_seq_len)?;
        if w != shape.width(kind) {
            return Err(Error::input(format!(
                "the {} table has rows of {w} values, this model needs {}: it was made for another model",
                kind.peft_type(),
                shape.width(kind)
            )));
        }
        let params = ParamStore::new(0);
        let vb = params.var_builder(init.device());
        vb.get_with_hints((n, w), TABLE, candle_nn::Init::Const(0.0))?;
        let table = params.vars().into_iter().find(|(k, _)| k == TABLE).map(|(_, v)| v).expect("just created");
        table.set(&init.to_dtype(candle_core::DType::F32)?)?;
        Ok(Self { kind, n, shape, params, table })
    }

    /// A random table: N(0, 0.02) for a prefix; for a prompt, rows drawn from the token
    /// table `vocab` (vocab_size, n_embd) at random ids (the scale of real embeddings, as
    /// Lester et al. recommend over uniform noise).
    pub fn random(kind: SoftPromptKind, shape: SoftPromptShape, n: usize, vocab: Option<&Tensor>, seed: u64, dev: &Device) -> std::result::Result<Self, Error> {
        check_length(n, shape.max_seq_len)?;
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let init = match (kind, vocab) {
            (SoftPromptKind::Prompt, Some(vocab)) => {
                let v = vocab.dim(0)? as u64;
                let ids: Vec<u32> = (0..n).map(|_| (next() % v) as u32).collect();
                vocab.index_select(&Tensor::new(ids.as_slice(), dev)?, 0)?
            }
            _ => {
                let w = shape.width(kind);
                // Box–Muller from the same generator, so the table depends on the seed alone.
                let mut vals = Vec::with_capacity(n * w);
                while vals.len() < n * w {
                    let u1 = ((next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                    let u2 = (next() >> 11) as f64 / (1u64 << 53) as f64;
                    let r = (-2.0 * u1.ln()).sqrt();
                    vals.push((0.02 * r * (2.0 * std::f64::consts::PI * u2).cos()) as f32);
                    vals.push((0.02 * r * (2.0 * std::f64::consts::PI * u2).sin()) as f32);
                }
                vals.truncate(n * w);
                Tensor::from_vec(vals, (n, w), dev)?
            }
        };
        Self::new(kind, shape, &init)
    }

    /// The parameters to train and save: the table alone.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The table (n, width).
    pub fn table(&self) -> &Tensor {
        self.table.as_tensor()
    }

    /// Prompt tuning: the virtual embeddings for a batch, (b, n, n_embd).
    pub fn embeddings(&self, b: usize) -> Result<Tensor> {
        let t = self.table.as_tensor();
        t.unsqueeze(0)?.broadcast_as((b, self.n, t.dim(1)?))?.contiguous()
    }

    /// Prefix tuning: layer `layer`'s prefix keys and values, each (1, n_kv_head, n, head_dim)
    /// (PEFT's view and permute of the table).
    pub fn layer_kv(&self, layer: usize) -> Result<(Tensor, Tensor)> {
        let (kvd, h, d) = (self.shape.kv_dim(), self.shape.n_kv_head, self.shape.head_dim);
        let t = self.table.as_tensor();
        let part = |j: usize| -> Result<Tensor> { t.narrow(1, j * kvd, kvd)?.reshape((1, self.n, h, d))?.transpose(1, 2)?.contiguous() };
        Ok((part(2 * layer)?, part(2 * layer + 1)?))
    }

    /// A decoding state for one sequence: an empty cache the model fills with the virtual
    /// tokens before the first real one.
    pub fn new_state(&self) -> Box<dyn DecodeState> {
        Box::new(PrefixedCache { cache: KvCache::new(self.shape.n_layer, self.shape.max_seq_len), n_virtual: self.n })
    }

    /// Fill an empty cache with the prefix keys and values (prefix tuning).
    pub fn fill_prefix(&self, cache: &mut KvCache) -> Result<()> {
        for layer in 0..self.shape.n_layer {
            let (k, v) = self.layer_kv(layer)?;
            cache.append(layer, &k, &v)?;
        }
        Ok(())
    }
}

/// Virtual tokens that leave no room for text are refused (a user error).
pub fn check_length(n: usize, max_seq_len: usize) -> std::result::Result<(), Error> {
    if n == 0 {
        return Err(Error::input("--num-virtual-tokens must be at least 1"));
    }
    if n >= max_seq_len {
        return Err(Error::input(format!(
            "{n} virtual tokens leave no room for text in the model's context of {max_seq_len} tokens: use --num-virtual-tokens below {max_seq_len} (a few percent of it is usual)"
        )));
    }
    Ok(())
}

/// A KV cache whose first `n_virtual` entries are the virtual tokens. `len`, `rewind` and
/// `clear` count real tokens only; `clear` keeps the virtual tokens.
#[derive(Debug, Clone)]
pub struct PrefixedCache {
    pub cache: KvCache,
    pub n_virtual: usize,
}

impl PrefixedCache {
    /// Whether the virtual tokens still have to be written.
    pub fn needs_fill(&self) -> bool {
        self.cache.is_empty()
    }
}

impl DecodeState for PrefixedCache {
    fn len(&self) -> usize {
        self.cache.len().saturating_sub(self.n_virtual)
    }
    fn rewind(&mut self, len: usize) -> Result<usize> {
        if !self.cache.is_empty() {
            self.cache.truncate(len + self.n_virtual)?;
        }
        Ok(DecodeState::len(self))
    }
    fn clear(&mut self) {
        // Keep the virtual tokens (when written): they do not depend on the text.
        let _ = self.cache.truncate(self.n_virtual);
    }
    fn fork(&self) -> Box<dyn DecodeState> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The KV caches behind `states` (plain, or with virtual tokens), and for each whether its
/// virtual tokens must be written first.
pub fn caches<'a>(states: &'a mut [&mut dyn DecodeState], family: &str) -> Result<Vec<(&'a mut KvCache, bool)>> {
    states
        .iter_mut()
        .map(|s| {
            if s.as_any_mut().is::<PrefixedCache>() {
                let p = s.as_any_mut().downcast_mut::<PrefixedCache>().expect("checked");
                let fill = p.needs_fill();
                Ok((&mut p.cache, fill))
            } else {
                Ok((crate::state::downcast::<KvCache>(&mut **s, family)?, false))
            }
        })
        .collect()
}

/// Write a model's virtual tokens into an empty cache: prefix tuning's keys and values as they
/// are; prompt tuning's embeddings run through the model at positions 0..n by `run` (the
/// model's cached forward given (n, c) embeddings in place of token ids' own).
pub(crate) fn fill_virtual(soft: Option<&SoftPrompt>, cache: &mut KvCache, run: impl FnOnce(&mut KvCache, &[u32], &Tensor) -> Result<()>) -> Result<()> {
    let Some(soft) = soft else { return Ok(()) };
    match soft.kind {
        SoftPromptKind::Prefix => soft.fill_prefix(cache),
        SoftPromptKind::Prompt => run(cache, &vec![0u32; soft.n], soft.table()),
    }
}
