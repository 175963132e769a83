//! Every integration test of `jielong-train` in one binary: each test binary links the
//! whole dependency tree with thin LTO, so one binary per crate keeps the test command's build short.
//! Run one file's tests with `cargo test --release -p jielong-train --test train <file>::`.

mod adamw_parity;
mod data_parallel;
mod init_embeddings;
mod lora_merge;
mod resume;
mod seq2seq_train;
mod sequential;
mod sft;
mod sft_packing;
mod sft_soft_prompt;
