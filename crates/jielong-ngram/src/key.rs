//! An n-gram as one `u128`: each unit id takes 21 bits, the oldest word in the highest bits, so
//! that sorting keys sorts n-grams by context and then by the predicted word (each context's
//! continuations are contiguous), and the context of an n-gram is `key >> 21`.
//!
//! 21 bits allow 2,097,151 distinct units; 6 × 21 = 126 bits fit orders up to 6.

/// Bits per unit id.
pub const ID_BITS: u32 = 21;
/// Mask of one id.
pub const ID_MASK: u128 = (1 << ID_BITS) - 1;
/// The largest vocabulary a key can hold (the all-ones id is kept free so that `u128::MAX`
/// never is a key: the hash table uses it to mark empty slots).
pub const MAX_VOCAB: usize = (1 << ID_BITS) - 1;
/// The highest order jielong builds.
pub const MAX_ORDER: usize = 6;

/// The key of `ids` (oldest first).
#[inline]
pub fn pack(ids: &[u32]) -> u128 {
    ids.iter().fold(0u128, |k, &w| (k << ID_BITS) | w as u128)
}

/// The key of `context` followed by `word`.
#[inline]
pub fn extend(context_key: u128, word: u32) -> u128 {
    (context_key << ID_BITS) | word as u128
}

/// The last (predicted) word.
#[inline]
pub fn last(key: u128) -> u32 {
    (key & ID_MASK) as u32
}

/// The context: every word but the last.
#[inline]
pub fn context(key: u128) -> u128 {
    key >> ID_BITS
}

/// The first (oldest) word of an n-gram of `order`.
#[inline]
pub fn first(key: u128, order: usize) -> u32 {
    ((key >> (ID_BITS as usize * (order - 1))) & ID_MASK) as u32
}

/// The n-gram without its first word (its lower-order suffix).
#[inline]
pub fn suffix(key: u128, order: usize) -> u128 {
    key & ((1u128 << (ID_BITS as usize * (order - 1))) - 1)
}

/// The ids of a key of `order`, oldest first.
pub fn unpack(key: u128, order: usize) -> Vec<u32> {
    (0..order).rev().map(|i| ((key >> (ID_BITS as usize * i)) & ID_MASK) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_round_trip() {
        let ids = [5, 0, 2_000_000, 7, 1, 3];
        let k = pack(&ids);
        assert_eq!(unpack(k, 6), ids);
        assert_eq!(last(k), 3);
        assert_eq!(first(k, 6), 5);
        assert_eq!(unpack(context(k), 5), &ids[..5]);
        assert_eq!(unpack(suffix(k, 6), 5), &ids[1..]);
        assert_eq!(extend(pack(&ids[..5]), 3), k);
        assert!(pack(&[MAX_VOCAB as u32 - 1; 6]) != u128::MAX);
    }
}
