//! The vocabulary of an n-gram model: unit strings and their ids, with the three special units
//! at fixed ids as in KenLM: `<unk>` = 0 (every unit not in the vocabulary), `<s>` = 1 (the
//! sentence start, a context only, never predicted) and `</s>` = 2 (the sentence end, predicted
//! like a word).

use jielong_core::{Error, Result};
use rustc_hash::FxHashMap as HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// A 64-bit hash of a unit string (foldhash's quality variant, fixed seed; never stored, so it
/// may change between versions).
#[inline]
fn word_hash(word: &str) -> u64 {
    foldhash::quality::FixedState::with_seed(0x6a69_656c_6f6e_6721).hash_one(word)
}

/// The identity hasher for keys that are already hashes.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("IdHasher only hashes u64 keys")
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

pub const UNK: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
pub const UNK_STR: &str = "<unk>";
pub const BOS_STR: &str = "<s>";
pub const EOS_STR: &str = "</s>";

/// Units and ids. Looking a unit up ([`Vocab::id`], once per word of every text scored) goes by
/// a 64-bit hash of the string alone, as KenLM's vocabulary does: no string comparison, so one
/// cache miss instead of two. If two units of the vocabulary share a hash (found when they are
/// added) lookups compare strings instead; an unknown unit whose hash equals a known one's
/// (about one lookup in 10^14 for a 100,000-unit vocabulary) would get that unit's id.
#[derive(Debug, Clone)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, u32>,
    by_hash: std::collections::HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    /// No two units share a hash, so `by_hash` alone answers.
    hash_unique: bool,
}

impl Default for Vocab {
    fn default() -> Self {
        Self::new()
    }
}

impl Vocab {
    /// A vocabulary holding only `<unk>`, `<s>` and `</s>`.
    pub fn new() -> Self {
        let mut v = Self { words: Vec::new(), index: HashMap::default(), by_hash: Default::default(), hash_unique: true };
        for w in [UNK_STR, BOS_STR, EOS_STR] {
            v.insert(w);
        }
        v
    }

    /// From the words in id order (the first three must be the specials).
    pub fn from_words(words: Vec<String>) -> Result<Self> {
        if words.len() < 3 || words[0] != UNK_STR || words[1] != BOS_STR || words[2] != EOS_STR {
            return Err(Error::input("an n-gram vocabulary must start with <unk>, <s>, </s>"));
        }
        let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect::<HashMap<_, _>>();
        if index.len() != words.len() {
            return Err(Error::input("an n-gram vocabulary lists a unit twice"));
        }
        let mut by_hash: std::collections::HashMap<u64, u32, BuildHasherDefault<IdHasher>> = Default::default();
        by_hash.reserve(words.len());
        let mut hash_unique = true;
        for (i, w) in words.iter().enumerate() {
            hash_unique &= by_hash.insert(word_hash(w), i as u32).is_none();
        }
        Ok(Self { words, index, by_hash, hash_unique })
    }

    /// The id of `word`, adding it if new.
    pub fn insert(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.index.get(word) {
            return id;
        }
        let id = self.words.len() as u32;
        self.words.push(word.to_string());
        self.index.insert(word.to_string(), id);
        self.hash_unique &= self.by_hash.insert(word_hash(word), id).is_none();
        id
    }

    /// The id of `word`, `<unk>` if it is not in the vocabulary.
    #[inline]
    pub fn id(&self, word: &str) -> u32 {
        if self.hash_unique {
            self.by_hash.get(&word_hash(word)).copied().unwrap_or(UNK)
        } else {
            self.index.get(word).copied().unwrap_or(UNK)
        }
    }

    /// The id of `word`, if known.
    pub fn get(&self, word: &str) -> Option<u32> {
        self.index.get(word).copied()
    }

    pub fn word(&self, id: u32) -> &str {
        &self.words[id as usize]
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Ids, `<s>` included.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The units a model predicts: every id but `<s>` (`<unk>` and `</s>` included). This is
    /// the |V| of add-k and of the uniform distribution under the unigrams (KenLM's too).
    pub fn predicted_len(&self) -> usize {
        self.words.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_looks_units_up_by_hash_and_by_string_alike() {
        let mut v = Vocab::new();
        let words: Vec<String> = (0..5000).map(|i| format!("w{i}")).chain(["春眠".to_string(), "不觉晓".to_string()]).collect();
        for w in &words {
            v.insert(w);
        }
        let loaded = Vocab::from_words(v.words().to_vec()).unwrap();
        for vocab in [&v, &loaded] {
            assert!(vocab.hash_unique);
            for w in &words {
                assert_eq!(vocab.id(w), vocab.get(w).unwrap());
            }
            assert_eq!((vocab.id("w5000"), vocab.id("春"), vocab.id("</s>")), (UNK, UNK, EOS));
        }
        // With a shared hash, lookups compare strings: the same answers.
        let mut slow = loaded.clone();
        slow.hash_unique = false;
        for w in words.iter().map(String::as_str).chain(["w5000", "<s>"]) {
            assert_eq!(slow.id(w), loaded.id(w));
        }
    }
}
