//! Every integration test of `jielong-lexical` in one binary: each test binary links the
//! whole dependency tree with thin LTO, so one binary per crate keeps the test command's build short.
//! Run one file's tests with `cargo test --release -p jielong-lexical --test lexical <file>::`.

mod bm25_tantivy;
mod known_answers;
mod parity;
