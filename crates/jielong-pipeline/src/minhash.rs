//! MinHash signatures and LSH banding (Broder 1997; Leskovec et al., *Mining of Massive
//! Datasets*, ch. 3) with datatrove's defaults: word 5-gram shingles, 14 bands × 8 rows = 112
//! hash functions of 64 bits.
//!
//! A document's shingles are hashed once (xxh3), then each of the 112 functions is a random
//! affine map `(a·x + b) mod p` with p = 2⁶¹ − 1, and the signature keeps each function's
//! minimum. Two documents agree on one entry with probability equal to their Jaccard
//! similarity, so they share all 8 rows of some band with probability 1 − (1 − J⁸)¹⁴: about
//! 0.06 at J = 0.5, 0.6 at J = 0.75 and 0.995 at J = 0.9.

use crate::words::{is_symbol, tokens};
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

const P: u64 = (1 << 61) - 1;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MinHashConfig {
    /// Shingle size in words (characters for Chinese).
    pub n_grams: usize,
    pub num_buckets: usize,
    pub hashes_per_bucket: usize,
    /// Seed of the hash functions (the same seed must sign every document of one run).
    pub seed: u64,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        MinHashConfig { n_grams: 5, num_buckets: 14, hashes_per_bucket: 8, seed: 1 }
    }
}

impl MinHashConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.n_grams) {
            return Err(format!("n_grams = {} must be between 1 and 64", self.n_grams));
        }
        if self.num_buckets == 0 || self.hashes_per_bucket == 0 || self.num_buckets * self.hashes_per_bucket > 4096 {
            return Err("num_buckets and hashes_per_bucket must be at least 1, with at most 4096 hashes in all".into());
        }
        Ok(())
    }
}

/// The hash functions of one configuration.
#[derive(Debug, Clone)]
pub struct MinHasher {
    pub cfg: MinHashConfig,
    coeffs: Vec<(u64, u64)>,
}

/// SplitMix64: a small, well-mixed generator for the coefficients.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// (a·x + b) mod (2⁶¹ − 1) without division.
#[inline]
fn affine(a: u64, b: u64, x: u64) -> u64 {
    let x = x % P;
    let prod = a as u128 * x as u128 + b as u128;
    let lo = (prod as u64) & P;
    let hi = (prod >> 61) as u64;
    let s = lo + hi;
    if s >= P { s - P } else { s }
}

impl MinHasher {
    pub fn new(cfg: MinHashConfig) -> Self {
        let mut state = cfg.seed;
        let coeffs = (0..cfg.num_buckets * cfg.hashes_per_bucket).map(|_| (splitmix(&mut state) % (P - 1) + 1, splitmix(&mut state) % P)).collect();
        MinHasher { cfg, coeffs }
    }

    pub fn num_hashes(&self) -> usize {
        self.coeffs.len()
    }

    /// The shingle hashes of `text`: lower-cased word n-grams, punctuation left out. A text
    /// shorter than one shingle is one shingle; an empty one has none.
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let lower = text.to_lowercase();
        let words: Vec<&str> = tokens(&lower).into_iter().filter(|w| !is_symbol(w)).collect();
        let n = self.cfg.n_grams;
        let mut buf = Vec::new();
        let mut hash = |g: &[&str]| {
            buf.clear();
            for w in g {
                buf.extend_from_slice(w.as_bytes());
                buf.push(0x1F);
            }
            xxh3_64(&buf)
        };
        let mut out: Vec<u64> = if words.is_empty() {
            Vec::new()
        } else if words.len() < n {
            vec![hash(&words)]
        } else {
            words.windows(n).map(hash).collect()
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The signature: per hash function, the minimum over the shingles (empty for a
    /// document without shingles, which never matches anything).
    pub fn signature(&self, text: &str) -> Vec<u64> {
        let sh = self.shingles(text);
        if sh.is_empty() {
            return Vec::new();
        }
        self.coeffs.iter().map(|&(a, b)| sh.iter().map(|&x| affine(a, b, x)).min().unwrap_or(u64::MAX)).collect()
    }

    /// The band hashes of a signature, one per bucket.
    pub fn bands(&self, sig: &[u64]) -> Vec<u64> {
        sig.chunks(self.cfg.hashes_per_bucket)
            .map(|rows| {
                let bytes: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
                xxh3_64(&bytes)
            })
            .collect()
    }
}

/// The fraction of equal entries: the MinHash estimate of Jaccard similarity.
pub fn estimated_jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// Exact Jaccard similarity of two shingle sets (sorted, deduplicated).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    if union == 0 { 0.0 } else { inter as f64 / union as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_matches_u128_arithmetic() {
        let mut s = 7;
        for _ in 0..1000 {
            let (a, b, x) = (splitmix(&mut s) % P, splitmix(&mut s) % P, splitmix(&mut s));
            let want = ((a as u128 * (x % P) as u128 + b as u128) % P as u128) as u64;
            assert_eq!(affine(a, b, x), want);
        }
    }

    #[test]
    fn jaccard_by_hand() {
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(jaccard(&[], &[]), 0.0);
        let m = MinHasher::new(MinHashConfig { n_grams: 2, ..Default::default() });
        // "a b c" → {a b, b c}; "A b c!" the same after lower-casing and dropping punctuation.
        assert_eq!(m.shingles("a b c"), m.shingles("A b c!"));
        assert_eq!(m.shingles("a b c").len(), 2);
        assert_eq!(m.signature(""), Vec::<u64>::new());
    }
}
