//! The engine: prefill prompts, then decode a batch of sequences one token per step, all live
//! sequences in one forward pass. It works through the `CausalLm` trait, so every model family
//! decodes the same way.
//!
//! Each `Sequence` owns its tokens and its decoding state (the family's own: a KV cache, a
//! recurrent hidden state, an n-gram context); the model holds only weights. When a sequence
//! outgrows the model's context window, the engine shifts the window: it keeps the most recent
//! half of the context and re-encodes it (llama.cpp's context shift). Learned position tables
//! leave no cheaper correct choice: every kept token moves position.

use candle_core::{DType, Device, Tensor};
use jielong_core::{Error, Result};
use jielong_models::{CausalLm, DecodeState};

/// One sequence being decoded.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// The prompt, then every generated token.
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    cache: Box<dyn DecodeState>,
    /// The state has read `tokens[start .. start + cache.len()]`.
    start: usize,
    /// Times the context window was shifted.
    pub n_shifts: usize,
}

impl Sequence {
    pub fn generated(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }

    pub fn push(&mut self, id: u32) {
        self.tokens.push(id);
    }

    /// Tokens the decoding state has read (whose keys and values are cached).
    pub fn n_cached(&self) -> usize {
        self.cache.len()
    }

    /// Continue from `tokens` instead (the next chat turn): the cache is kept for the longest
    /// common prefix with what it holds. Returns the number of tokens re-used.
    pub fn reset_to(&mut self, tokens: Vec<u32>) -> Result<usize> {
        let cached = &self.tokens[self.start..self.start + self.cache.len()];
        let common = if self.start == 0 { cached.iter().zip(&tokens).take_while(|(a, b)| a == b).count() } else { 0 };
        // Always leave at least one token to feed, so the next step has logits to return.
        let keep = self.cache.rewind(common.min(tokens.len().saturating_sub(1)))?;
        self.start = 0;
        self.prompt_len = tokens.len();
        self.tokens = tokens;
        Ok(keep)
    }
}

pub struct Engine<'m> {
    model: &'m dyn CausalLm,
    dev: Device,
    use_cache: bool,
    /// Ids the tokenizer knows: rows are cut to this many logits (an embedding table padded
    /// past the tokenizer, as Qwen2's, must never be sampled into ids nothing can decode).
    vocab_limit: usize,
}

impl<'m> Engine<'m> {
    pub fn new(model: &'m dyn CausalLm, dev: &Device) -> Self {
        Self { model, dev: dev.clone(), use_cache: true, vocab_limit: model.vocab_size() }
    }

    /// Only the first `n` ids are candidates (the tokenizer's vocabulary when it is smaller
    /// than the model's embedding table).
    pub fn with_vocab_limit(mut self, n: usize) -> Self {
        self.vocab_limit = n.clamp(1, self.model.vocab_size());
        self
    }

    /// Recompute the whole window every step instead of caching (for comparison and benchmarks).
    pub fn without_cache(mut self) -> Self {
        self.use_cache = false;
        self
    }

    pub fn model(&self) -> &dyn CausalLm {
        self.model
    }

    pub fn max_seq_len(&self) -> usize {
        self.model.max_seq_len()
    }

    /// Ids that can be fed or produced (see `with_vocab_limit`).
    pub fn vocab_size(&self) -> usize {
        self.vocab_limit
    }

    /// A new sequence; its prompt is fed at the first `step`.
    pub fn sequence(&self, prompt: Vec<u32>) -> Result<Sequence> {
        if prompt.is_empty() {
            return Err(Error::input("the prompt is empty: a model needs at least one token to continue"));
        }
        if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= self.vocab_size()) {
            return Err(Error::input(format!("token id {bad} is outside the model's vocabulary ({})", self.vocab_size())));
        }
        Ok(Sequence { prompt_len: prompt.len(), tokens: prompt, cache: self.model.new_state(), start: 0, n_shifts: 0 })
    }

    /// A new sequence decoding from a state the caller made (a seq2seq model's encoded
    /// source, `Seq2seq::encode`) instead of the model's empty one.
    pub fn sequence_with_state(&self, prompt: Vec<u32>, state: Box<dyn DecodeState>) -> Result<Sequence> {
        let mut seq = self.sequence(prompt)?;
        seq.cache = state;
        Ok(seq)
    }

    /// Next-token logits for each sequence, feeding whatever each has not yet seen:
    /// rows of `vocab_size` f32s, one per sequence.
    pub fn step(&self, seqs: &mut [&mut Sequence]) -> Result<Vec<Vec<f32>>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut logits = if self.use_cache { self.step_cached(seqs)? } else { self.step_recompute(seqs)? };
        if self.vocab_limit < self.model.vocab_size() {
            logits = logits.narrow(1, 0, self.vocab_limit)?;
        }
        Ok(logits.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }

    fn step_cached(&self, seqs: &mut [&mut Sequence]) -> Result<Tensor> {
        let max = self.max_seq_len();
        for s in seqs.iter_mut() {
            let visible = s.tokens.len() - s.start;
            if visible > max {
                // Shift: a prompt keeps its last `max` tokens, a long generation its last half.
                let keep = if s.cache.is_empty() { max } else { (max / 2).max(1) };
                s.start = s.tokens.len() - keep;
                s.cache.clear();
                s.n_shifts += 1;
            } else if s.start + s.cache.len() == s.tokens.len() {
                // Nothing new since the last step: feed the last token again.
                let len = s.cache.len();
                s.cache.rewind(len - 1)?;
            }
        }
        let (chunks, mut caches): (Vec<&[u32]>, Vec<&mut dyn DecodeState>) = seqs
            .iter_mut()
            .map(|s| {
                let s = &mut **s;
                (&s.tokens[s.start + s.cache.len()..], &mut *s.cache as &mut dyn DecodeState)
            })
            .unzip();
        Ok(self.model.forward_cached(&chunks, &mut caches)?)
    }

    fn step_recompute(&self, seqs: &mut [&mut Sequence]) -> Result<Tensor> {
        let max = self.max_seq_len();
        let windows: Vec<&[u32]> = seqs.iter().map(|s| &s.tokens[s.tokens.len().saturating_sub(max)..]).collect();
        let last_row = |ids: Tensor| -> Result<Tensor> {
            let logits = self.model.logits(&ids)?; // (b, t, v)
            let t = logits.dim(1)?;
            Ok(logits.narrow(1, t - 1, 1)?.squeeze(1)?) // (b, v)
        };
        if windows.iter().all(|w| w.len() == windows[0].len()) {
            let flat: Vec<u32> = windows.concat();
            last_row(Tensor::from_vec(flat, (windows.len(), windows[0].len()), &self.dev)?)
        } else {
            let rows = windows
                .iter()
                .map(|w| last_row(Tensor::new(*w, &self.dev)?.unsqueeze(0)?))
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor::cat(&rows, 0)?)
        }
    }
}
