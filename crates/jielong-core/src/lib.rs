//! Shared foundations for every jielong crate: the error type, atomic file writing,
//! a seeded random number generator whose state can be saved, hashing, and device choice.

pub mod error;
pub mod fs;
pub mod rng;

pub use error::{Error, Result};
pub use rng::Rng;

use sha2::{Digest, Sha256};

/// Hex SHA-256 of some bytes (used to tie shards and checkpoints to the tokenizer that made them).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The device tensors live on. CPU everywhere; CUDA behind the `cuda` feature of candle.
pub fn device() -> candle_core::Device {
    candle_core::Device::Cpu
}
