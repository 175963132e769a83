//! fastText's subword skip-gram (Bojanowski et al. 2017): a word is the bag of its character
//! n-grams (`minn..=maxn` characters of `<word>`, the angle brackets marking its edges) plus
//! itself; its input vector is the mean of those rows, and the n-grams share a table of
//! `bucket` rows indexed by the 32-bit FNV-1a hash of their UTF-8 bytes, computed as fastText
//! computes it (each byte goes through `int8_t` before the xor, so bytes ≥ 0x80 are
//! sign-extended: Chinese n-grams hash differently from plain FNV-1a). A word never seen in
//! training still gets a vector: the mean of its n-gram rows.
//!
//! Training is word2vec's skip-gram with negative sampling on those bag vectors: for each
//! centre word and each context word in the window, the centre's bag predicts the context
//! word, and the step for the bag vector is added to every row of the bag (fastText's
//! `Model::update` for skip-gram does not divide it).
//!
//! The bag vector is the sum of the word's row and its n-gram rows, divided by a count that
//! the two reference tools choose differently ([`BagNorm`]): gensim divides by the number of
//! n-grams (the word's own row is added but not counted), fastText's C++ code by the whole bag.
//! gensim's choice is the default: it scored about 1.2 points higher on the Google analogies
//! on both benchmark corpora in every seed (BENCHMARKS.md). Either way the vector a trained
//! word is given in the end is the mean of its whole bag, as both tools write it.

use crate::corpus::Corpus;
use crate::embeddings::Embeddings;
use crate::hogwild::SharedMatrix;
use crate::kernels::{axpy, classifier_step};
use crate::sampling::{keep_thresholds, Lcg, NegativeTable};
use crate::schedule::{self, Progress, Schedule};
use crate::sigmoid::Sigmoid;
use crate::word2vec::{Loss, Word2VecConfig};
use jielong_core::{Error, Result};
use std::collections::HashMap;

/// What the sum of a bag's rows is divided by while training (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BagNorm {
    /// gensim's `fasttext_inner.pyx`: by the number of n-grams (by 1 when the word has none).
    #[default]
    Ngrams,
    /// fastText's `Model::computeHidden`: by the number of rows in the bag, word included.
    Bag,
}

impl BagNorm {
    /// The factor a bag of `rows` rows (the word's own first) is multiplied by.
    pub fn scale(self, rows: usize) -> f32 {
        let n = match self {
            BagNorm::Ngrams => rows.saturating_sub(1).max(1),
            BagNorm::Bag => rows.max(1),
        };
        1.0 / n as f32
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FastTextConfig {
    pub base: Word2VecConfig,
    pub minn: usize,
    pub maxn: usize,
    pub bucket: usize,
    #[serde(default)]
    pub bag_norm: BagNorm,
}

impl Default for FastTextConfig {
    /// fastText's and gensim's defaults: n-grams of 3 to 6 characters, 2,000,000 buckets;
    /// gensim's bag normalisation.
    fn default() -> Self {
        FastTextConfig { base: Word2VecConfig::default(), minn: 3, maxn: 6, bucket: 2_000_000, bag_norm: BagNorm::default() }
    }
}

/// fastText's `Dictionary::hash`: FNV-1a over the bytes, each byte sign-extended through `int8_t`.
pub fn hash(s: &str) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in s.as_bytes() {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// The character n-grams of `<word>` with `minn..=maxn` characters, in fastText's order (by
/// start, then length). Single characters touching an edge are left out, as fastText does.
pub fn ngrams(word: &str, minn: usize, maxn: usize) -> Vec<String> {
    let w = format!("<{word}>");
    let chars: Vec<(usize, char)> = w.char_indices().collect();
    let mut out = Vec::new();
    if maxn == 0 {
        return out;
    }
    for i in 0..chars.len() {
        for n in minn.max(1)..=maxn {
            if i + n > chars.len() {
                break;
            }
            if n == 1 && (i == 0 || i + 1 == chars.len()) {
                continue;
            }
            let end = if i + n == chars.len() { w.len() } else { chars[i + n].0 };
            out.push(w[chars[i].0..end].to_string());
        }
    }
    out
}

/// Bucket rows of a word's n-grams.
pub fn ngram_buckets(word: &str, minn: usize, maxn: usize, bucket: usize) -> Vec<u32> {
    if bucket == 0 {
        return Vec::new();
    }
    ngrams(word, minn, maxn).iter().map(|g| hash(g) % bucket as u32).collect()
}

/// A trained subword model: the vocabulary's vectors, and the n-gram rows to build vectors of
/// words it never saw.
pub struct FastTextModel {
    pub embeddings: Embeddings,
    pub minn: usize,
    pub maxn: usize,
    pub bucket: usize,
    /// Bucket → row of `ngram_rows`, for the buckets some vocabulary word uses (the only ones
    /// training moved; the rest keep their random start and are left out).
    pub ngram_index: HashMap<u32, usize>,
    pub ngram_rows: Embeddings,
}

impl FastTextModel {
    /// The vector of any word: its trained vector if in the vocabulary, else the mean of the
    /// rows of its n-grams (None when none of them was trained).
    pub fn word_vector(&self, word: &str) -> Option<Vec<f32>> {
        if let Some(i) = self.embeddings.words.iter().position(|w| w == word) {
            return Some(self.embeddings.row(i).to_vec());
        }
        let dim = self.embeddings.dim;
        let mut v = vec![0f32; dim];
        let mut n = 0;
        for b in ngram_buckets(word, self.minn, self.maxn, self.bucket) {
            if let Some(&r) = self.ngram_index.get(&b) {
                v.iter_mut().zip(self.ngram_rows.row(r)).for_each(|(a, x)| *a += x);
                n += 1;
            }
        }
        (n > 0).then(|| v.into_iter().map(|x| x / n as f32).collect())
    }
}

pub struct FastTextTrained {
    pub model: FastTextModel,
    /// `V × dim`: each word's own input row (its vector in `model` is the mean of its bag).
    pub word_rows: Vec<f32>,
    /// `V × dim`: the negative-sampling output vectors.
    pub output: Vec<f32>,
    pub seconds: f64,
    pub words: u64,
}

impl FastTextConfig {
    /// One-line errors for values that cannot train (the word2vec checks, then fastText's own).
    pub fn validate(&self) -> Result<()> {
        self.base.validate()?;
        if !matches!(self.base.loss, Loss::Negative(_)) {
            return Err(Error::input("fasttext trains with negative sampling only here: drop --hs"));
        }
        if self.maxn > 0 && (self.minn == 0 || self.minn > self.maxn) {
            return Err(Error::input(format!("--minn {} --maxn {}: need 1 <= minn <= maxn (fastText uses 3 and 6)", self.minn, self.maxn)));
        }
        Ok(())
    }
}

pub fn train(corpus: &Corpus, cfg: &FastTextConfig, progress: &mut dyn FnMut(Progress)) -> Result<FastTextTrained> {
    let base = &cfg.base;
    cfg.validate()?;
    let Loss::Negative(negative) = base.loss else { unreachable!("validate refuses --hs") };
    let v = corpus.vocab.len();
    let dim = base.dim;
    // Rows of each word's bag: itself, then its n-gram buckets. Only the buckets some vocabulary
    // word uses are ever read or written while training, so they get consecutive rows after
    // the V word rows (in order of first use) instead of the table holding all `bucket` rows:
    // the same model (the hash and the bucket count are unchanged), but a table of V + the used
    // buckets (about 60,000 on Shakespeare) that stays in cache, rather than V + 2,000,000 rows
    // (800 MB at dim 100) touched at random.
    let mut bag_starts = vec![0usize];
    let mut bags: Vec<u32> = Vec::new();
    let mut row_of_bucket: HashMap<u32, u32> = HashMap::new();
    let mut used_buckets: Vec<u32> = Vec::new();
    for (i, w) in corpus.vocab.words.iter().enumerate() {
        bags.push(i as u32);
        for b in ngram_buckets(w, cfg.minn, cfg.maxn, cfg.bucket) {
            let next = (v + used_buckets.len()) as u32;
            let r = *row_of_bucket.entry(b).or_insert_with(|| {
                used_buckets.push(b);
                next
            });
            bags.push(r);
        }
        bag_starts.push(bags.len());
    }
    let rows = v + used_buckets.len();
    let mut rng = jielong_core::Rng::derive(base.seed, &[3]);
    let init: Vec<f32> = (0..rows * dim).map(|_| (rng.next_f32() * 2.0 - 1.0) / dim as f32).collect();
    let input = SharedMatrix::new(init, rows, dim);
    let output = SharedMatrix::zeros(v, dim);
    let keep = keep_thresholds(&corpus.vocab.counts, base.sample);
    let table = NegativeTable::new(&corpus.vocab.counts, base.ns_exponent);
    let sig = Sigmoid::new(base.exact_sigmoid);
    let sched = Schedule { epochs: base.epochs, threads: base.threads.max(1), alpha: base.alpha, min_alpha: base.min_alpha, seed: base.seed };
    struct Scratch {
        sen: Vec<u32>,
        h: Vec<f32>,
        e: Vec<f32>,
    }
    let seconds = schedule::run(
        corpus,
        &sched,
        |_| Scratch { sen: Vec::new(), h: vec![0.0; dim], e: vec![0.0; dim] },
        |s: &mut Scratch, rng: &mut Lcg, alpha: f32, sentence: &[u32]| {
            s.sen.clear();
            s.sen.extend(sentence.iter().copied().filter(|&w| keep[w as usize] >= rng.next_u32() as u64));
            let n = s.sen.len();
            for pos in 0..n {
                let bag = &bags[bag_starts[s.sen[pos] as usize]..bag_starts[s.sen[pos] as usize + 1]];
                let reach = base.window - rng.below(base.window as u32) as usize;
                for c in pos.saturating_sub(reach)..=(pos + reach).min(n - 1) {
                    if c == pos {
                        continue;
                    }
                    // SAFETY (all blocks): bag rows < V + used buckets = input.rows, targets < V =
                    // output.rows, scratch has dim floats; races are Hogwild's.
                    s.h.fill(0.0);
                    for &r in bag {
                        unsafe { axpy(1.0, input.row(r as usize), s.h.as_mut_ptr(), dim) };
                    }
                    let inv = cfg.bag_norm.scale(bag.len());
                    s.h.iter_mut().for_each(|x| *x *= inv);
                    s.e.fill(0.0);
                    let target = s.sen[c];
                    unsafe { classifier_step(s.h.as_ptr(), &output, target as usize, 1.0, alpha, &sig, false, &mut s.e) };
                    for _ in 0..negative {
                        let neg = table.sample(rng);
                        if neg != target {
                            unsafe { classifier_step(s.h.as_ptr(), &output, neg as usize, 0.0, alpha, &sig, false, &mut s.e) };
                        }
                    }
                    for &r in bag {
                        unsafe { axpy(1.0, s.e.as_ptr(), input.row(r as usize), dim) };
                    }
                }
            }
        },
        progress,
    );
    let inp = input.into_vec();
    let output = output.into_vec();
    let mut data = Vec::with_capacity(v * dim);
    let mut ngram_index = HashMap::new();
    let mut ngram_words = Vec::new();
    let mut ngram_data = Vec::new();
    for i in 0..v {
        let bag = &bags[bag_starts[i]..bag_starts[i + 1]];
        let mut acc = vec![0f32; dim];
        for &r in bag {
            acc.iter_mut().zip(&inp[r as usize * dim..(r as usize + 1) * dim]).for_each(|(a, x)| *a += x);
            if r as usize >= v {
                let b = used_buckets[r as usize - v];
                ngram_index.entry(b).or_insert_with(|| {
                    ngram_words.push(b.to_string());
                    ngram_data.extend_from_slice(&inp[r as usize * dim..(r as usize + 1) * dim]);
                    ngram_words.len() - 1
                });
            }
        }
        data.extend(acc.into_iter().map(|x| x / bag.len() as f32));
    }
    Ok(FastTextTrained {
        model: FastTextModel {
            embeddings: Embeddings::new(corpus.vocab.words.clone(), dim, data),
            minn: cfg.minn,
            maxn: cfg.maxn,
            bucket: cfg.bucket,
            ngram_index,
            ngram_rows: Embeddings::new(ngram_words, dim, ngram_data),
        },
        word_rows: inp[..v * dim].to_vec(),
        output,
        seconds,
        words: corpus.ids.len() as u64 * base.epochs as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fasttext_hash_is_fnv1a_through_int8() {
        // Values computed independently (Python, the same byte loop).
        assert_eq!(hash("a"), 3_826_002_220);
        assert_eq!(hash("<wh"), 1_048_167_652);
        assert_eq!(hash("where>"), 4_012_121_234);
        // Bytes ≥ 0x80 are sign-extended: differs from plain FNV-1a (3974968749, 638031896).
        assert_eq!(hash("<词"), 3_533_076_653);
        assert_eq!(hash("词向量>"), 2_547_780_376);
    }

    #[test]
    fn fasttext_bag_norm_divides_as_each_reference_does() {
        // "where" with n-grams 3–6: the word's row and 14 n-gram rows.
        let rows = 1 + ngrams("where", 3, 6).len();
        assert_eq!(rows, 15);
        assert_eq!(BagNorm::Ngrams.scale(rows), 1.0 / 14.0);
        assert_eq!(BagNorm::Bag.scale(rows), 1.0 / 15.0);
        // A word with no n-grams (maxn 0): its row alone, divided by 1 either way.
        assert_eq!(BagNorm::Ngrams.scale(1), 1.0);
        assert_eq!(BagNorm::Bag.scale(1), 1.0);
    }

    #[test]
    fn fasttext_ngrams_match_hand_listed() {
        assert_eq!(ngrams("where", 3, 4), ["<wh", "<whe", "whe", "wher", "her", "here", "ere", "ere>", "re>"]);
        // Characters, not bytes: Chinese n-grams are whole characters.
        assert_eq!(ngrams("词向量", 3, 6), ["<词向", "<词向量", "<词向量>", "词向量", "词向量>", "向量>"]);
        assert_eq!(ngrams("ab", 1, 2), ["<a", "a", "ab", "b", "b>"]);
        assert!(ngrams("x", 3, 6) == ["<x>"]);
        assert!(ngrams("x", 3, 0).is_empty());
        assert_eq!(ngram_buckets("where", 3, 3, 100)[0], 1_048_167_652 % 100);
    }
}
