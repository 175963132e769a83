//! The vocabulary: every word seen at least `min_count` times, most frequent first (ties in
//! order of first appearance, as gensim sorts them), with its count. Row `i` of every matrix
//! the trainers write belongs to word `i`, so "the 30,000 most frequent words" are rows 0..30000.

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Vocab {
    pub words: Vec<String>,
    pub counts: Vec<u64>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// Build from (word, count, first position) triples: keep `count >= min_count`, sort by
    /// count descending, ties by first appearance.
    pub fn from_counts(mut entries: Vec<(String, u64, usize)>, min_count: u64) -> Self {
        entries.retain(|e| e.1 >= min_count.max(1));
        entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        let mut v = Vocab::default();
        for (w, c, _) in entries {
            v.index.insert(w.clone(), v.words.len() as u32);
            v.words.push(w);
            v.counts.push(c);
        }
        v
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn id(&self, word: &str) -> Option<u32> {
        self.index.get(word).copied()
    }

    /// Sum of the counts of the kept words (the "train words" of word2vec.c).
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_sorts_by_count_then_first_seen_and_drops_rare() {
        let v = Vocab::from_counts(
            vec![("b".into(), 2, 0), ("a".into(), 5, 1), ("c".into(), 2, 2), ("d".into(), 1, 3)],
            2,
        );
        assert_eq!(v.words, ["a", "b", "c"]);
        assert_eq!(v.counts, [5, 2, 2]);
        assert_eq!(v.id("c"), Some(2));
        assert_eq!(v.id("d"), None);
        assert_eq!(v.total(), 9);
    }
}
