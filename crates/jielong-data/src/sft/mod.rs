//! Supervised fine-tuning data: instruction JSONL in its three shapes (`read`), conversations
//! rendered through a chat template into ids with the loss on the assistant's tokens only
//! (`encode`), and padded batches drawn in a seeded order (`batches`).
//!
//! Batches are padded, one example per row, never packed: jielong's fused attention kernels
//! attend causally over the whole window and take no per-example mask, so packing several
//! examples into one window would let an example attend to the one before it. Padding sits
//! after each example, where causal attention never lets a real token see it, and positions
//! start at 0 in every row, so a padded row computes what the example alone would.

pub mod batches;
pub mod chatterbot;
pub mod handbook;
pub mod encode;
pub mod read;

pub use batches::{packed, segment_positions, SftData, SftSampler};
pub use encode::{encode, render_spans, Encoded, LossOn};
pub use read::{parse_line, read_chat_jsonl, ChatExample, ReadReport};

/// The target that carries no loss (prompt tokens and padding); equal to
/// `jielong_models::IGNORE_TARGET`.
pub const IGNORE: u32 = u32::MAX;
