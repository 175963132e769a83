//! Training: the run config, AdamW with saved state, the LR schedule, checkpoints with exact
//! resume, metrics and the loss plot, and the loop that ties them together.

pub mod adamw;
pub mod adapter;
pub mod budget;
pub mod checkpoint;
pub mod classify_data;
pub mod classify_metrics;
pub mod config;
pub mod eval;
pub mod finetune;
pub mod finetune_span;
pub mod init_embeddings;
pub mod lora_merge;
pub mod interchange;
pub mod metrics;
pub mod mlm;
pub mod objective;
pub mod schedule;
pub mod sentence;
pub mod seq2seq;
pub mod sft;
pub mod step;
pub mod trainer;

pub use adamw::AdamW;
pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use config::{RunConfig, TrainConfig};
pub use eval::evaluate;
pub use init_embeddings::{init_embeddings, EmbeddingInit};
pub use objective::Objective;
pub use step::StepRunner;
pub use trainer::{seconds_per_step, train, Event, TrainSummary};
pub use sft::{sft, LoadedAdapter, Regime, SftConfig, SftSummary, SoftPromptSettings};
