//! Every integration test of `jielong-serve` in one binary: each test binary links the
//! whole dependency tree with thin LTO, so one binary per crate keeps the test command's build short.
//! Run one file's tests with `cargo test --release -p jielong-serve --test serve <file>::`.

mod common;
mod adapters;
mod api;
mod embeddings;
mod flow;
