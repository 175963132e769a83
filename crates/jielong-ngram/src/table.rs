//! The lookup structure of one order: an open-addressing hash table with linear probing (like
//! KenLM's "probing" structure, but keeping the whole n-gram as its key, so a lookup is never
//! wrong), laid out so that the model file can hold it as it is and be memory-mapped.

use memmap2::Mmap;
use std::sync::Arc;

/// One n-gram: its key (see `key.rs`) and its log10 probability and log10 backoff.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Entry {
    pub key_lo: u64,
    pub key_hi: u64,
    pub logp: f64,
    pub logb: f64,
}

const EMPTY: u128 = u128::MAX;

impl Entry {
    pub fn new(key: u128, logp: f64, logb: f64) -> Self {
        Self { key_lo: key as u64, key_hi: (key >> 64) as u64, logp, logb }
    }

    #[inline]
    pub fn key(&self) -> u128 {
        (self.key_hi as u128) << 64 | self.key_lo as u128
    }

    fn empty() -> Self {
        Self::new(EMPTY, 0.0, 0.0)
    }
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

/// The hash of a key (fixed here, because tables are stored in files).
#[inline]
fn hash(key: u128) -> u64 {
    let mut x = (key as u64) ^ ((key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

/// The home slot of a hash in a table of `cap` slots (Lemire's multiply-shift range reduction).
#[inline]
fn slot(h: u64, cap: usize) -> usize {
    ((h as u128 * cap as u128) >> 64) as usize
}

pub struct Table {
    slots: Buf<Entry>,
    len: usize,
}

impl Table {
    /// A table holding `entries` (distinct keys), 1.5 slots per entry (KenLM's probing
    /// multiplier).
    pub fn build(entries: &[Entry]) -> Self {
        let cap = entries.len() * 3 / 2 + 1;
        let mut slots = vec![Entry::empty(); cap];
        for e in entries {
            let mut i = slot(hash(e.key()), cap);
            while slots[i].key() != EMPTY {
                i = if i + 1 == cap { 0 } else { i + 1 };
            }
            slots[i] = *e;
        }
        Self { slots: Buf::owned(slots), len: entries.len() }
    }

    /// A table over slots read from a file (at least one of them empty, as `build` makes).
    pub fn from_slots(slots: Buf<Entry>, len: usize) -> Option<Self> {
        (len < slots.len()).then_some(Self { slots, len })
    }

    #[inline]
    pub fn get(&self, key: u128) -> Option<&Entry> {
        let slots: &[Entry] = &self.slots;
        let cap = slots.len();
        let mut i = slot(hash(key), cap);
        loop {
            let e = &slots[i];
            let k = e.key();
            if k == key {
                return Some(e);
            }
            if k == EMPTY {
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

    /// The raw slots (empty ones included), for writing the table to a file.
    pub fn slots(&self) -> &[Entry] {
        &self.slots
    }

    /// The entries, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().filter(|e| e.key() != EMPTY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_finds_every_key_and_only_those() {
        let entries: Vec<Entry> = (0..1000u128).map(|k| Entry::new(k * 7919, k as f64, 0.0)).collect();
        let t = Table::build(&entries);
        assert_eq!(t.len(), 1000);
        for e in &entries {
            assert_eq!(t.get(e.key()).unwrap().logp, e.logp);
        }
        assert!(t.get(3).is_none());
        assert_eq!(t.entries().count(), 1000);
    }
}
