//! Decoding, for every model family through `CausalLm`: the `Engine` (prefill + batched decode
//! with KV caches owned by the caller), the sampler chain, beam search, stop rules, streaming
//! text, and the repetition measures that show what each strategy does.

pub mod beam;
pub mod bleu;
pub mod embed;
pub mod engine;
pub mod generate;
pub mod repetition;
pub mod sampler;
pub mod seq2seq;
pub mod text;

pub use beam::{beam_search, beam_search_from, BeamOptions, BeamSearch, Hypothesis};
pub use embed::{EmbedOptions, Embedder, Embeddings, Pooling, Truncate};
pub use engine::{Engine, Sequence};
pub use generate::{generate, Finish, GenOptions, Output};
pub use sampler::{Chain, SamplingConfig};
pub use text::StreamText;
