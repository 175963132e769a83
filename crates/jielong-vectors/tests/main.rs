//! Every integration test of `jielong-vectors` in one binary: each test binary links the
//! whole dependency tree with thin LTO, so one binary per crate keeps the test command's build short.
//! Run one file's tests with `cargo test --release -p jielong-vectors --test vectors <file>::`.

mod planted;
mod shakespeare;
