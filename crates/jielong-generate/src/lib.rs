//! Decoding. For now: plain sampling (temperature, top-k) by recomputing the window each step;
//! the engine with a KV cache, the sampler chain and beam search grow here.

pub mod sample;

pub use sample::{sample, SampleOptions};
