//! Every integration test of `jielong-models` in one binary: each test binary links the
//! whole dependency tree with thin LTO, so one binary per crate keeps the test command's build short.
//! Run one file's tests with `cargo test --release -p jielong-models --test models <file>::`.

mod albert_parity;
mod bert_parity;
mod fused_block;
mod gpt_parity;
mod heads_parity;
mod hf_parity;
mod llama_fused;
mod lora;
mod recurrent_parity;
mod packing;
mod soft_prompt;
mod seq2seq_parity;
