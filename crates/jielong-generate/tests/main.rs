//! Every integration test of `jielong-generate` in one binary: each test binary links the
//! whole dependency tree with thin LTO, so one binary per crate keeps the test command's build short.
//! Run one file's tests with `cargo test --release -p jielong-generate --test generate <file>::`.

mod bleu_sacrebleu;
mod engine;
mod minilm_parity;
