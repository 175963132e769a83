//! The lookup structure of one order, shaped like KenLM's "probing" structure: an
//! open-addressing hash table with linear probing whose slots are 16 bytes, a 64-bit hash of
//! the n-gram with its log10 probability and log10 backoff as f32, so that a lookup while
//! scoring touches one 16-byte slot (and the few after it) and nothing else.
//!
//! Beside the slots, at the same indices, lies a cold array of [`Entry`]: the whole n-gram as
//! its key and its values in f64. Scoring text never reads it; it serves the exact lookups
//! (next-unit distributions, ARPA export, enumeration), which therefore never confuse two
//! n-grams and keep full precision.
//!
//! The hash trade-off: a hash-only lookup can be wrong when an n-gram that is not stored has
//! the 64-bit hash of one that is (about one lookup in 10^18), as in KenLM. Two stored n-grams
//! with the same hash are found when the table is built; such a table is marked not
//! hash-unique and the model then scores through the exact path.
//!
//! Both arrays are laid out so that the model file holds them as they are and memory-maps them.

use memmap2::Mmap;
use std::sync::Arc;

/// One n-gram, exactly: its key (see `key.rs`), log10 probability and log10 backoff.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Entry {
    pub key_lo: u64,
    pub key_hi: u64,
    pub logp: f64,
    pub logb: f64,
}

const EMPTY_KEY: u128 = u128::MAX;

impl Entry {
    pub fn new(key: u128, logp: f64, logb: f64) -> Self {
        Self { key_lo: key as u64, key_hi: (key >> 64) as u64, logp, logb }
    }

    #[inline]
    pub fn key(&self) -> u128 {
        (self.key_hi as u128) << 64 | self.key_lo as u128
    }

    fn empty() -> Self {
        Self::new(EMPTY_KEY, 0.0, 0.0)
    }
}

/// One slot of the probing table: the n-gram's hash (0: empty) and its values in f32, as
/// KenLM stores them.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Slot {
    pub hash: u64,
    pub logp: f32,
    pub logb: f32,
}

/// A slice that is either owned or part of a memory-mapped file.
pub struct Buf<T: bytemuck::Pod> {
    ptr: *const T,
    len: usize,
    _owner: Owner<T>,
}

enum Owner<T> {
    Vec(#[allow(dead_code)] Vec<T>),
    Map(#[allow(dead_code)] Arc<Mmap>),
}

// SAFETY: the pointer points into memory the owner keeps alive and never changes (a Vec that is
// never touched again, or a read-only map); the data is plain old data.
unsafe impl<T: bytemuck::Pod + Send> Send for Buf<T> {}
unsafe impl<T: bytemuck::Pod + Sync> Sync for Buf<T> {}

impl<T: bytemuck::Pod> Buf<T> {
    pub fn owned(v: Vec<T>) -> Self {
        Self { ptr: v.as_ptr(), len: v.len(), _owner: Owner::Vec(v) }
    }

    /// `len` items of `T` at byte `offset` of `map`; None when out of bounds or misaligned.
    pub fn mapped(map: &Arc<Mmap>, offset: usize, len: usize) -> Option<Self> {
        let bytes = map.get(offset..offset.checked_add(len.checked_mul(std::mem::size_of::<T>())?)?)?;
        let items: &[T] = bytemuck::try_cast_slice(bytes).ok()?;
        Some(Self { ptr: items.as_ptr(), len, _owner: Owner::Map(map.clone()) })
    }
}

impl<T: bytemuck::Pod> std::ops::Deref for Buf<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: see the Send/Sync note; ptr/len were taken from a live slice.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// murmur3's 64-bit finaliser: every input bit moves every output bit.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

/// The hash of the one-unit sequence `w` (the predicted word). The hash of an n-gram is built
/// from its last word back to its first, one word at a time ([`hash_extend`]), so scoring
/// hashes each longer context with one step, as KenLM does. Fixed here: tables are stored in
/// files (changing it needs a new format version).
#[inline]
pub fn hash_start(w: u32) -> u64 {
    mix(0x243F_6A88_85A3_08D3 ^ w as u64)
}

/// The hash of the sequence hashed as `h` with the older unit `older` put in front.
#[inline]
pub fn hash_extend(h: u64, older: u32) -> u64 {
    mix(h.rotate_left(27) ^ (older as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A hash as stored in a slot (0 marks an empty slot).
#[inline]
pub fn stored(h: u64) -> u64 {
    h.max(1)
}

/// The stored hash of the n-gram `key` of `order`.
pub fn hash_key(key: u128, order: usize) -> u64 {
    let id = |j: usize| ((key >> (crate::key::ID_BITS as usize * j)) & crate::key::ID_MASK) as u32;
    stored((1..order).fold(hash_start(id(0)), |h, j| hash_extend(h, id(j))))
}

/// The home slot of a hash in a table of `cap` slots (Lemire's multiply-shift range reduction).
#[inline]
fn home(h: u64, cap: usize) -> usize {
    ((h as u128 * cap as u128) >> 64) as usize
}

pub struct Table {
    order: usize,
    slots: Buf<Slot>,
    entries: Buf<Entry>,
    len: usize,
    unique: bool,
}

impl Table {
    /// A table of n-grams of `order` holding `entries` (distinct keys), 1.5 slots per entry
    /// (KenLM's probing multiplier).
    pub fn build(order: usize, entries: &[Entry]) -> Self {
        let cap = entries.len() * 3 / 2 + 1;
        let mut slots = vec![Slot { hash: 0, logp: 0.0, logb: 0.0 }; cap];
        let mut cold = vec![Entry::empty(); cap];
        let mut unique = true;
        for e in entries {
            let h = hash_key(e.key(), order);
            let mut i = home(h, cap);
            while slots[i].hash != 0 {
                unique &= slots[i].hash != h;
                i = if i + 1 == cap { 0 } else { i + 1 };
            }
            slots[i] = Slot { hash: h, logp: e.logp as f32, logb: e.logb as f32 };
            cold[i] = *e;
        }
        Self { order, slots: Buf::owned(slots), entries: Buf::owned(cold), len: entries.len(), unique }
    }

    /// A table over arrays read from a file (at least one slot empty, as `build` makes).
    pub fn from_parts(order: usize, slots: Buf<Slot>, entries: Buf<Entry>, len: usize, unique: bool) -> Option<Self> {
        (len < slots.len() && slots.len() == entries.len()).then_some(Self { order, slots, entries, len, unique })
    }

    /// Ask the memory system for the home slot of stored hash `h` (scoring looks several
    /// orders up at once, so their cache misses overlap).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        let slots: &[Slot] = &self.slots;
        let p = slots.as_ptr().wrapping_add(home(h, slots.len()));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint; it never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// The slot with stored hash `h` (hash only: see the module note).
    #[inline]
    pub fn get_hashed(&self, h: u64) -> Option<&Slot> {
        let slots: &[Slot] = &self.slots;
        let cap = slots.len();
        let mut i = home(h, cap);
        loop {
            let s = &slots[i];
            if s.hash == h {
                return Some(s);
            }
            if s.hash == 0 {
                return None;
            }
            i = if i + 1 == cap { 0 } else { i + 1 };
        }
    }

    /// The entry of n-gram `key`, exactly (the full key is compared).
    #[inline]
    pub fn get(&self, key: u128) -> Option<&Entry> {
        self.get_with_hash(key, hash_key(key, self.order))
    }

    /// [`get`](Self::get) when the stored hash of `key` is already known.
    #[inline]
    pub fn get_with_hash(&self, key: u128, h: u64) -> Option<&Entry> {
        let slots: &[Slot] = &self.slots;
        let cap = slots.len();
        let mut i = home(h, cap);
        loop {
            let s = &slots[i];
            if s.hash == h && self.entries[i].key() == key {
                return Some(&self.entries[i]);
            }
            if s.hash == 0 {
                return None;
            }
            i = if i + 1 == cap { 0 } else { i + 1 };
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether no two stored n-grams share a hash (then hash-only lookups of stored n-grams
    /// are always right).
    pub fn is_hash_unique(&self) -> bool {
        self.unique
    }

    /// The raw slots (empty ones included), for writing the table to a file.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The raw exact entries, index for index with [`slots`](Self::slots).
    pub fn raw_entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().zip(self.entries.iter()).filter(|(s, _)| s.hash != 0).map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::pack;

    #[test]
    fn table_finds_every_key_and_only_those() {
        let entries: Vec<Entry> = (0..1000u32).map(|k| Entry::new(pack(&[k, k * 7 + 1, 5]), k as f64, -(k as f64))).collect();
        let t = Table::build(3, &entries);
        assert_eq!(t.len(), 1000);
        assert!(t.is_hash_unique());
        for e in &entries {
            assert_eq!(t.get(e.key()).unwrap().logp, e.logp);
            let s = t.get_hashed(hash_key(e.key(), 3)).unwrap();
            assert_eq!((s.logp, s.logb), (e.logp as f32, e.logb as f32));
        }
        assert!(t.get(pack(&[1, 2, 3])).is_none());
        assert!(t.get_hashed(hash_key(pack(&[1, 2, 3]), 3)).is_none());
        assert_eq!(t.entries().count(), 1000);
    }

    #[test]
    fn table_hash_grows_word_by_word_from_the_last() {
        // Scoring hashes w, then (v w), then (u v w): the same as hashing each whole key.
        let (u, v, w) = (0u32, 9u32, 2_000_000u32);
        let h1 = hash_start(w);
        let h2 = hash_extend(h1, v);
        let h3 = hash_extend(h2, u);
        assert_eq!(stored(h1), hash_key(pack(&[w]), 1));
        assert_eq!(stored(h2), hash_key(pack(&[v, w]), 2));
        assert_eq!(stored(h3), hash_key(pack(&[u, v, w]), 3));
        // <unk> (id 0) at the front still changes the hash: orders are never confused.
        assert_ne!(hash_key(pack(&[0, v, w]), 3), hash_key(pack(&[v, w]), 2));
    }
}
