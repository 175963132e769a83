//! Every integration test of `jielong-ngram` in one binary: each test binary links the
//! whole dependency tree with thin LTO, so one binary per crate keeps the test command's build short.
//! Run one file's tests with `cargo test --release -p jielong-ngram --test ngram <file>::`.

mod causal;
mod formats;
mod kenlm;
mod known_answers;
