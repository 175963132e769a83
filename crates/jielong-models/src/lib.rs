//! Model families. Models take token ids and return tensors; they never see tokenizers or
//! files. Each family implements `CausalLm` (or the encoder / seq2seq traits to come), so
//! decoding, evaluation, the CLI and the server treat every family alike.

pub mod gpt;

pub use gpt::{Gpt, GptConfig};

use candle_core::{Result, Tensor};
pub use jielong_nn::KvCache;

/// A model that gives next-token logits for every position of a batch of sequences.
pub trait CausalLm {
    /// `ids`: (b, t) u32 → logits (b, t, vocab_size).
    fn logits(&self, ids: &Tensor) -> Result<Tensor>;
    fn vocab_size(&self) -> usize;
    /// Longest sequence the model accepts in one call.
    fn max_seq_len(&self) -> usize;
    /// An empty decoding state for one sequence.
    fn new_cache(&self) -> KvCache;
    /// Feed sequence `s` the new tokens `chunks[s]` on top of `caches[s]` (which grows by them);
    /// returns the logits at each chunk's last token, (n_seq, vocab_size). Sequences may have
    /// different lengths; they share one forward pass.
    fn forward_cached(&self, chunks: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Tensor>;
}
