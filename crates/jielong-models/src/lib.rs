//! Model families. Models take token ids and return tensors; they never see tokenizers or
//! files. Each family implements `CausalLm` (or the encoder / seq2seq traits to come), so
//! decoding, evaluation, the CLI and the server treat every family alike.

pub mod gpt;

pub use gpt::{Gpt, GptConfig};

use candle_core::{Result, Tensor};

/// A model that gives next-token logits for every position of a batch of sequences.
pub trait CausalLm {
    /// `ids`: (b, t) u32 → logits (b, t, vocab_size).
    fn logits(&self, ids: &Tensor) -> Result<Tensor>;
    fn vocab_size(&self) -> usize;
    /// Longest sequence the model accepts in one call.
    fn max_seq_len(&self) -> usize;
}
