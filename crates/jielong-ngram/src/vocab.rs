//! The vocabulary of an n-gram model: unit strings and their ids, with the three special units
//! at fixed ids as in KenLM: `<unk>` = 0 (every unit not in the vocabulary), `<s>` = 1 (the
//! sentence start, a context only, never predicted) and `</s>` = 2 (the sentence end, predicted
//! like a word).

use jielong_core::{Error, Result};
use rustc_hash::FxHashMap as HashMap;

pub const UNK: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
pub const UNK_STR: &str = "<unk>";
pub const BOS_STR: &str = "<s>";
pub const EOS_STR: &str = "</s>";

#[derive(Debug, Clone)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for Vocab {
    fn default() -> Self {
        Self::new()
    }
}

impl Vocab {
    /// A vocabulary holding only `<unk>`, `<s>` and `</s>`.
    pub fn new() -> Self {
        let mut v = Self { words: Vec::new(), index: HashMap::default() };
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
        Ok(Self { words, index })
    }

    /// The id of `word`, adding it if new.
    pub fn insert(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.index.get(word) {
            return id;
        }
        let id = self.words.len() as u32;
        self.words.push(word.to_string());
        self.index.insert(word.to_string(), id);
        id
    }

    /// The id of `word`, `<unk>` if it is not in the vocabulary.
    #[inline]
    pub fn id(&self, word: &str) -> u32 {
        self.index.get(word).copied().unwrap_or(UNK)
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
