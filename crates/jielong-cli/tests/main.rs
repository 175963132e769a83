//! Every integration test of `jielong-cli` in one binary: each test binary links the
//! whole dependency tree with thin LTO, so one binary per crate keeps the test command's build short.
//! Run one file's tests with `cargo test --release -p jielong-cli --test cli <file>::`.

mod common;
mod attention_causal;
mod clean;
mod cli;
mod compare;
mod compare_regimes;
mod data_spans;
mod decode;
mod encoders;
mod finetune;
mod finetune_span;
mod families;
mod lexical;
mod ngram;
mod seq2seq;
mod sft;
mod serve_adapters;
mod shakespeare;
mod signals;
mod study;
mod vectors;
