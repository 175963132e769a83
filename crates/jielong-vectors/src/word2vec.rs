//! word2vec (Mikolov et al. 2013): skip-gram predicts each context word from the centre word,
//! CBOW predicts the centre word from the mean of its context. Either is trained with negative
//! sampling (the true word against `k` words drawn from unigram^0.75) or hierarchical softmax
//! (the binary decisions along the word's Huffman path). Around each word a window of
//! `window − b` words on each side is used, `b` drawn uniformly from `[0, window)`, after
//! frequent words have been subsampled away, as in word2vec.c and gensim.
//!
//! Matrices: `syn0` (the input vectors, the output of training), initialised uniformly in
//! `±1/dim` as gensim 4 does (word2vec.c used `±0.5/dim`; the wider start answered more analogy
//! questions in each of six seeds for skip-gram and for CBOW on the benchmark corpus,
//! BENCHMARKS.md); `syn1neg` or `syn1` (the output classifiers), zero. In skip-gram the context
//! word's input row predicts the centre word (word2vec.c's order, also gensim's).

use crate::corpus::Corpus;
use crate::embeddings::Embeddings;
use crate::hogwild::SharedMatrix;
use crate::huffman::Huffman;
use crate::kernels::{axpy, classifier_step};
use crate::sampling::{keep_thresholds, Lcg, NegativeTable};
use crate::schedule::{self, Progress, Schedule};
use crate::sigmoid::Sigmoid;
use jielong_core::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    SkipGram,
    Cbow,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Negative sampling with this many negatives per positive.
    Negative(usize),
    /// Hierarchical softmax over the Huffman tree.
    Hierarchical,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Word2VecConfig {
    pub arch: Arch,
    pub loss: Loss,
    pub dim: usize,
    pub window: usize,
    pub sample: f64,
    pub alpha: f32,
    pub min_alpha: f32,
    pub epochs: usize,
    pub threads: usize,
    pub seed: u64,
    pub ns_exponent: f64,
    pub exact_sigmoid: bool,
}

impl Default for Word2VecConfig {
    /// gensim's defaults (`Word2Vec(sg=1)`): 100 dimensions, window 5, 5 negatives, sample 1e-3,
    /// α 0.025 → 0.0001, 5 epochs.
    fn default() -> Self {
        Word2VecConfig {
            arch: Arch::SkipGram,
            loss: Loss::Negative(5),
            dim: 100,
            window: 5,
            sample: 1e-3,
            alpha: 0.025,
            min_alpha: 0.0001,
            epochs: 5,
            threads: 1,
            seed: 1,
            ns_exponent: 0.75,
            exact_sigmoid: false,
        }
    }
}

/// The checks every method shares: a dimension, a window and an epoch count of at least one.
pub(crate) fn validate_shape(dim: usize, window: usize, epochs: usize) -> Result<()> {
    if dim == 0 {
        return Err(Error::input("--dim 0: vectors need at least one dimension (100 is usual)"));
    }
    if window == 0 {
        return Err(Error::input("--window 0: a word needs at least one neighbour on each side (5 is usual)"));
    }
    if epochs == 0 {
        return Err(Error::input("--epochs 0: train for at least one epoch"));
    }
    Ok(())
}

impl Word2VecConfig {
    /// One-line errors for values that cannot train.
    pub fn validate(&self) -> Result<()> {
        validate_shape(self.dim, self.window, self.epochs)?;
        if let Loss::Negative(0) = self.loss {
            return Err(Error::input("--negative 0 with no --hs: choose negative samples (5 is usual) or --hs"));
        }
        if self.alpha.is_nan() || self.alpha <= 0.0 || self.alpha.is_infinite() {
            return Err(Error::input(format!("--alpha {}: the learning rate must be a positive number", self.alpha)));
        }
        if self.sample.is_nan() || self.sample < 0.0 {
            return Err(Error::input(format!("--sample {}: must be 0 (off) or positive", self.sample)));
        }
        Ok(())
    }
}

/// Initial input vectors: uniform in ±1/dim (gensim 4's `prep_vectors`), seeded.
pub fn init_rows(rows: usize, dim: usize, seed: u64, stream: u64) -> Vec<f32> {
    let mut rng = jielong_core::Rng::derive(seed, &[stream]);
    (0..rows * dim).map(|_| (rng.next_f32() * 2.0 - 1.0) / dim as f32).collect()
}

/// Per-thread scratch.
struct Scratch {
    sen: Vec<u32>,
    neu1: Vec<f32>,
    e: Vec<f32>,
}

/// What training gives back.
pub struct Trained {
    pub embeddings: Embeddings,
    pub seconds: f64,
    /// Words read by the trainer (every epoch, before subsampling).
    pub words: u64,
}

/// Train word2vec on `corpus`.
pub fn train(corpus: &Corpus, cfg: &Word2VecConfig, progress: &mut dyn FnMut(Progress)) -> Result<Trained> {
    cfg.validate()?;
    let v = corpus.vocab.len();
    let dim = cfg.dim;
    let syn0 = SharedMatrix::new(init_rows(v, dim, cfg.seed, 0), v, dim);
    let out_rows = match cfg.loss {
        Loss::Negative(_) => v,
        Loss::Hierarchical => v.saturating_sub(1).max(1),
    };
    let syn1 = SharedMatrix::zeros(out_rows, dim);
    let keep = keep_thresholds(&corpus.vocab.counts, cfg.sample);
    let table = NegativeTable::new(&corpus.vocab.counts, cfg.ns_exponent);
    let huffman = match cfg.loss {
        Loss::Hierarchical => Huffman::new(&corpus.vocab.counts),
        Loss::Negative(_) => Huffman::default(),
    };
    let sig = Sigmoid::new(cfg.exact_sigmoid);
    let sched = Schedule { epochs: cfg.epochs, threads: cfg.threads.max(1), alpha: cfg.alpha, min_alpha: cfg.min_alpha, seed: cfg.seed };
    let window = cfg.window as u32;
    let seconds = schedule::run(
        corpus,
        &sched,
        |_| Scratch { sen: Vec::new(), neu1: vec![0.0; dim], e: vec![0.0; dim] },
        |s: &mut Scratch, rng: &mut Lcg, alpha: f32, sentence: &[u32]| {
            s.sen.clear();
            for &w in sentence {
                if keep[w as usize] >= rng.next_u32() as u64 {
                    s.sen.push(w);
                }
            }
            let n = s.sen.len();
            for pos in 0..n {
                let word = s.sen[pos];
                let b = rng.below(window) as usize;
                let reach = cfg.window - b;
                let lo = pos.saturating_sub(reach);
                let hi = (pos + reach).min(n - 1);
                // Every unsafe block below: rows come from ids < vocab size (matrices have
                // that many rows), scratch buffers have `dim` floats; races are Hogwild's.
                match cfg.arch {
                    Arch::SkipGram => {
                        for c in lo..=hi {
                            if c == pos {
                                continue;
                            }
                            let input = syn0.row(s.sen[c] as usize);
                            s.e.fill(0.0);
                            targets(cfg.loss, &syn1, &table, &huffman, &sig, rng, input, word, alpha, &mut s.e);
                            unsafe { axpy(1.0, s.e.as_ptr(), input, dim) };
                        }
                    }
                    Arch::Cbow => {
                        s.neu1.fill(0.0);
                        let mut cw = 0;
                        for c in lo..=hi {
                            if c != pos {
                                unsafe { axpy(1.0, syn0.row(s.sen[c] as usize), s.neu1.as_mut_ptr(), dim) };
                                cw += 1;
                            }
                        }
                        if cw == 0 {
                            continue;
                        }
                        let inv = 1.0 / cw as f32;
                        s.neu1.iter_mut().for_each(|x| *x *= inv);
                        s.e.fill(0.0);
                        targets(cfg.loss, &syn1, &table, &huffman, &sig, rng, s.neu1.as_ptr(), word, alpha, &mut s.e);
                        for c in lo..=hi {
                            if c != pos {
                                unsafe { axpy(1.0, s.e.as_ptr(), syn0.row(s.sen[c] as usize), dim) };
                            }
                        }
                    }
                }
            }
        },
        progress,
    );
    Ok(Trained {
        embeddings: Embeddings::new(corpus.vocab.words.clone(), dim, syn0.into_vec()),
        seconds,
        words: corpus.ids.len() as u64 * cfg.epochs as u64,
    })
}

/// The classifier steps for predicting `word` from the input vector `h`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn targets(
    loss: Loss,
    out: &SharedMatrix,
    table: &NegativeTable,
    huffman: &Huffman,
    sig: &Sigmoid,
    rng: &mut Lcg,
    h: *const f32,
    word: u32,
    alpha: f32,
    e: &mut [f32],
) {
    match loss {
        Loss::Negative(k) => {
            // SAFETY: h has dim floats; target < vocab size = out.rows.
            unsafe { classifier_step(h, out, word as usize, 1.0, alpha, sig, false, e) };
            for _ in 0..k {
                let target = table.sample(rng);
                if target == word {
                    continue;
                }
                unsafe { classifier_step(h, out, target as usize, 0.0, alpha, sig, false, e) };
            }
        }
        Loss::Hierarchical => {
            let code = &huffman.codes[word as usize];
            let point = &huffman.points[word as usize];
            for (&bit, &node) in code.iter().zip(point) {
                // SAFETY: inner nodes are < V − 1 = out.rows.
                unsafe { classifier_step(h, out, node as usize, 1.0 - bit as f32, alpha, sig, true, e) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gensim 4's range, ±1/dim, not word2vec.c's ±0.5/dim: the values fill the whole range
    /// and stay inside it, centred on zero.
    #[test]
    fn word2vec_init_rows_are_uniform_in_plus_minus_one_over_dim() {
        let dim = 50;
        let x = init_rows(2_000, dim, 7, 0);
        let bound = 1.0 / dim as f32;
        assert!(x.iter().all(|v| v.abs() <= bound));
        let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.99 * bound, "max |x| {max} of bound {bound}");
        let above_half = x.iter().filter(|v| v.abs() > 0.5 * bound).count() as f64 / x.len() as f64;
        assert!((above_half - 0.5).abs() < 0.01, "share beyond ±0.5/dim: {above_half}");
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.01 * bound as f64);
        assert_eq!(x, init_rows(2_000, dim, 7, 0));
    }
}
