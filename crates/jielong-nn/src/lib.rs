//! Layers that candle-nn lacks, or that it has only as forward-only fused kernels (its
//! `layer_norm` and `softmax_last_dim` have no backward pass, so training cannot go through
//! them). Everything here is written with differentiable tensor ops: the readable reference
//! path. Fused kernels with their own backward come beside these, each with a parity test.

pub mod attention;
pub mod block;
pub mod causal_softmax;
pub mod cross_entropy;
pub mod decode_attention;
pub mod dropout;
pub mod encoder_attention;
pub mod encoder_layer;
pub mod flash;
pub mod gelu;
pub mod head_loss;
mod kernel;
pub mod kv_cache;
pub mod layer_norm;
pub mod linear;
pub mod llama_block;
pub mod lora;
pub mod low_rank;
mod matmul;
pub mod optim;
pub mod params;
pub mod position;
pub mod recurrent_scan;
pub mod rms_norm;
pub mod swiglu;
#[cfg(test)]
mod testing;

/// Whether the fused CPU kernels run for tensors like `t` (CPU, f32) or the composed candle
/// reference paths do: elsewhere, and everywhere after `use_reference_kernels(true)`.
pub fn fused_for(t: &candle_core::Tensor) -> bool {
    let reference = REFERENCE.load(std::sync::atomic::Ordering::Relaxed) || REFERENCE_HERE.with(std::cell::Cell::get);
    !reference && t.device().is_cpu() && t.dtype() == candle_core::DType::F32
}

/// Run `f` with the composed reference paths on this thread only (where `f` runs the model's
/// forward and backward): tests that compare the two paths use it, so the tests running beside
/// them in the same process keep the fused kernels.
pub fn with_reference_kernels<R>(f: impl FnOnce() -> R) -> R {
    REFERENCE_HERE.with(|r| r.set(true));
    let out = f();
    REFERENCE_HERE.with(|r| r.set(false));
    out
}

thread_local! {
    static REFERENCE_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run every layer through its composed candle reference path instead of the fused kernels
/// (`jielong train --reference-kernels`): slower, for checking the kernels on a real run.
pub fn use_reference_kernels(on: bool) {
    REFERENCE.store(on, std::sync::atomic::Ordering::Relaxed);
}

static REFERENCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub use low_rank::low_rank_add;
pub use block::{transformer_block, transformer_block_adapted, BlockAdapter, BlockDropout, BlockWeights};
pub use attention::{causal_mask, causal_mask_after, causal_self_attention, causal_self_attention_reference};
pub use cross_entropy::cross_entropy;
pub use decode_attention::cached_attention;
pub use flash::{causal_attention_packed, causal_attention_packed_gqa};
pub use encoder_attention::{bidirectional_attention_packed, bidirectional_attention_reference};
pub use encoder_layer::{post_ln_encoder_layer, EncoderLayerWeights};
pub use dropout::{Dropout, MaskSource};
pub use kv_cache::KvCache;
pub use layer_norm::LayerNorm;
pub use linear::{linear, Conv1dLinear, WeightLayout};
pub use llama_block::{llama_layer, LlamaLayerWeights};
pub use lora::{LinearSite, Lora, LoraConfig, LoraLayer};
pub use matmul::matmul_f32;
pub use params::ParamStore;
pub use position::{PositionEncoding, Rope};
pub use recurrent_scan::{recurrent_scan, ScanCell, ScanOutput};
pub use rms_norm::RmsNorm;
pub use swiglu::swiglu;
