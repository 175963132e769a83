//! Counting: every n-gram of orders 1..N in sentences padded as `<s> w1 … wm </s>` (one `<s>`:
//! the first word is predicted from the context `<s>` alone, as KenLM does), and the adjusted
//! counts Kneser-Ney smoothing estimates from.

use crate::key::{self, pack};
use crate::vocab::{Vocab, BOS, EOS, UNK};
use std::collections::HashMap;

/// One distinct n-gram with its raw count and its adjusted count (Kneser-Ney: the number of
/// distinct words seen before it, except at the highest order and for n-grams that start with
/// `<s>`, which nothing can precede; for the other methods the raw count again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gram {
    pub key: u128,
    pub raw: u64,
    pub adjusted: u64,
}

/// The n-grams of one corpus, per order, each order sorted by key (so by context, then word).
#[derive(Debug, Clone)]
pub struct Counts {
    pub order: usize,
    /// `grams[m - 1]`: the distinct m-grams. Unigrams never include `<s>`.
    pub grams: Vec<Vec<Gram>>,
    /// Sentences counted.
    pub sentences: u64,
    /// Units predicted: words (OOVs as `<unk>`) plus one `</s>` per sentence.
    pub tokens: u64,
}

impl Counts {
    /// Count `sentences` (unit ids without boundaries) up to `order`.
    pub fn new(sentences: &[Vec<u32>], order: usize) -> Self {
        let mut padded: Vec<u32> = Vec::with_capacity(sentences.iter().map(|s| s.len() + 2).sum());
        let mut bounds = Vec::with_capacity(sentences.len() + 1);
        for s in sentences {
            bounds.push(padded.len());
            padded.push(BOS);
            padded.extend_from_slice(s);
            padded.push(EOS);
        }
        bounds.push(padded.len());
        let tokens = (padded.len() - sentences.len()) as u64;
        let mut grams = Vec::with_capacity(order);
        for m in 1..=order {
            let mut keys: Vec<u128> = Vec::with_capacity(padded.len());
            for w in bounds.windows(2) {
                let sent = &padded[w[0]..w[1]];
                if sent.len() < m {
                    continue;
                }
                for i in 0..=sent.len() - m {
                    if m == 1 && sent[i] == BOS {
                        continue;
                    }
                    keys.push(pack(&sent[i..i + m]));
                }
            }
            keys.sort_unstable();
            grams.push(run_lengths(&keys));
        }
        let mut counts = Self { order, grams, sentences: sentences.len() as u64, tokens };
        counts.adjust();
        counts
    }

    /// Kneser-Ney's adjusted counts, as KenLM's `adjust_counts.cc` defines them: at the highest
    /// order the raw count; below it, an n-gram that starts with `<s>` keeps its raw count, and
    /// any other n-gram g gets N1+(• g), the number of distinct units v with `v g` seen.
    fn adjust(&mut self) {
        for m in (1..self.order).rev() {
            let mut suffixes: Vec<u128> = self.grams[m].iter().map(|g| key::suffix(g.key, m + 1)).collect();
            suffixes.sort_unstable();
            let cont = run_lengths(&suffixes);
            let mut j = 0;
            for g in &mut self.grams[m - 1] {
                while j < cont.len() && cont[j].key < g.key {
                    j += 1;
                }
                let left = if j < cont.len() && cont[j].key == g.key { cont[j].raw } else { 0 };
                g.adjusted = if key::first(g.key, m) == BOS { g.raw } else { left };
            }
        }
    }

    /// The distinct n-grams of order `m`.
    pub fn order_grams(&self, m: usize) -> &[Gram] {
        &self.grams[m - 1]
    }
}

fn run_lengths(sorted: &[u128]) -> Vec<Gram> {
    let mut out: Vec<Gram> = Vec::new();
    for &k in sorted {
        match out.last_mut() {
            Some(g) if g.key == k => {
                g.raw += 1;
                g.adjusted += 1;
            }
            _ => out.push(Gram { key: k, raw: 1, adjusted: 1 }),
        }
    }
    out
}

/// Turn sentences of unit strings into ids, building the vocabulary: `seed` (e.g. a tokenizer's
/// pieces, so every id has a place even if unseen) plus every unit seen more than
/// `min_count` times; rarer units become `<unk>` (the unigram `--prune` threshold). Literal
/// `<s>` and `</s>` in the text are dropped, as KenLM does (it reads them as whitespace):
/// sentence boundaries come only from the sentence splitting.
pub fn index_sentences<S: AsRef<str>>(sentences: &[Vec<S>], seed: Option<Vocab>, min_count: u64) -> (Vocab, Vec<Vec<u32>>) {
    let (vocab, mut ids) = index_all(sentences, seed, min_count);
    for s in &mut ids {
        s.retain(|&w| w != BOS && w != EOS);
    }
    (vocab, ids)
}

fn index_all<S: AsRef<str>>(sentences: &[Vec<S>], seed: Option<Vocab>, min_count: u64) -> (Vocab, Vec<Vec<u32>>) {
    let mut vocab = seed.unwrap_or_default();
    if min_count > 0 {
        let mut freq: HashMap<&str, u64> = HashMap::new();
        for s in sentences {
            for w in s {
                *freq.entry(w.as_ref()).or_default() += 1;
            }
        }
        for s in sentences {
            for w in s {
                if freq[w.as_ref()] > min_count {
                    vocab.insert(w.as_ref());
                }
            }
        }
        let ids = sentences.iter().map(|s| s.iter().map(|w| vocab.id(w.as_ref())).collect()).collect();
        return (vocab, ids);
    }
    let ids = sentences
        .iter()
        .map(|s| {
            s.iter()
                .map(|w| {
                    let w = w.as_ref();
                    if w == crate::vocab::UNK_STR {
                        UNK
                    } else {
                        vocab.insert(w)
                    }
                })
                .collect()
        })
        .collect();
    (vocab, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pad_with_one_bos_and_adjust_like_kenlm() {
        // Sentences "a b" and "b b": padded <s> a b </s>, <s> b b </s>. Ids: a = 3, b = 4.
        let c = Counts::new(&[vec![3, 4], vec![4, 4]], 3);
        assert_eq!(c.tokens, 6);
        let find = |ids: &[u32]| *c.grams[ids.len() - 1].iter().find(|g| g.key == pack(ids)).unwrap();
        // Unigram b: raw 3; preceded by a, b and <s> → adjusted 3.
        assert_eq!((find(&[4]).raw, find(&[4]).adjusted), (3, 3));
        // Unigram </s>: preceded only by b → 1.
        assert_eq!(find(&[EOS]).adjusted, 1);
        // Bigram "<s> b" keeps its raw count 1; "b </s>": preceded by a and b → 2.
        assert_eq!(find(&[BOS, 4]).adjusted, 1);
        assert_eq!(find(&[4, EOS]).adjusted, 2);
        // Highest order keeps raw counts.
        assert_eq!(find(&[BOS, 3, 4]).adjusted, 1);
        assert!(c.grams[0].iter().all(|g| g.key != BOS as u128));
    }

    #[test]
    fn index_sentences_drops_literal_boundaries_and_prunes_rare_units() {
        let (v, ids) = index_sentences(&[vec!["x", "<s>", "y", "</s>", "x"]], None, 0);
        assert_eq!(ids, vec![vec![v.id("x"), v.id("y"), v.id("x")]]);
        let (v, ids) = index_sentences(&[vec!["x", "y", "x"]], None, 1);
        assert_eq!((v.get("y"), ids), (None, vec![vec![3, UNK, 3]]));
    }
}
