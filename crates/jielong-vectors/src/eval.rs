//! Measuring vectors: nearest neighbours by cosine, analogies by 3CosAdd, and the standard
//! sets, scored the way gensim's `KeyedVectors` scores them so the numbers compare:
//!
//! - `evaluate_word_analogies`: only the `restrict` most frequent words take part (the rows
//!   come most frequent first); words are compared upper-cased (case-insensitive, the first
//!   and most frequent spelling wins); a question with a word outside that vocabulary is
//!   skipped and counted; the prediction is the best of the top 5 of `b − a + c` that is none
//!   of the question's words; accuracy per section and in total over the questions answered.
//! - `evaluate_word_pairs`: the same case-insensitive vocabulary; pairs with an unknown word
//!   are skipped and counted (their share reported as the OOV ratio); Spearman's ρ (ties get
//!   their average rank) between the human scores and the cosine.

use crate::embeddings::Embeddings;
use crate::kernels::dot;
use jielong_core::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Vectors ready for queries: unit rows and a word index.
pub struct Index<'a> {
    pub emb: &'a Embeddings,
    pub unit: Vec<f32>,
    pub index: HashMap<&'a str, usize>,
}

impl<'a> Index<'a> {
    pub fn new(emb: &'a Embeddings) -> Self {
        Index { emb, unit: emb.unit_rows(), index: emb.index() }
    }

    fn unit_row(&self, i: usize) -> &[f32] {
        &self.unit[i * self.emb.dim..(i + 1) * self.emb.dim]
    }

    /// Row of `word`, or an input error naming it.
    pub fn lookup(&self, word: &str) -> Result<usize> {
        self.index.get(word).copied().ok_or_else(|| Error::input(format!("{word:?} is not in the vocabulary of these vectors")))
    }

    /// Cosine of two words.
    pub fn similarity(&self, a: &str, b: &str) -> Result<f32> {
        let (i, j) = (self.lookup(a)?, self.lookup(b)?);
        Ok(self.cos(i, j))
    }

    fn cos(&self, i: usize, j: usize) -> f32 {
        let d = self.emb.dim;
        // SAFETY: both rows have d floats.
        unsafe { dot(self.unit_row(i).as_ptr(), self.unit_row(j).as_ptr(), d) }
    }

    /// gensim's `most_similar`: the mean of the unit vectors of `positive` and minus those of
    /// `negative`, scaled to unit length, scored against the first `restrict` rows, the query
    /// words left out. Returns `(row, cosine)` best first.
    pub fn most_similar(&self, positive: &[usize], negative: &[usize], topn: usize, restrict: usize) -> Vec<(usize, f32)> {
        let d = self.emb.dim;
        let mut mean = vec![0f64; d];
        for (rows, sign) in [(positive, 1.0), (negative, -1.0)] {
            for &r in rows {
                for (m, x) in mean.iter_mut().zip(self.unit_row(r)) {
                    *m += sign * *x as f64;
                }
            }
        }
        let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
        let q: Vec<f32> = mean.iter().map(|x| if norm > 0.0 { (x / norm) as f32 } else { 0.0 }).collect();
        let limit = restrict.min(self.emb.len());
        let skip: HashSet<usize> = positive.iter().chain(negative).copied().collect();
        let mut best: Vec<(usize, f32)> = Vec::with_capacity(topn + 1);
        for i in 0..limit {
            // SAFETY: both have d floats.
            let s = unsafe { dot(q.as_ptr(), self.unit_row(i).as_ptr(), d) };
            if best.len() == topn + skip.len() && best.last().is_some_and(|l| l.1 >= s) {
                continue;
            }
            let at = best.partition_point(|b| b.1 >= s);
            best.insert(at, (i, s));
            best.truncate(topn + skip.len());
        }
        best.retain(|b| !skip.contains(&b.0));
        best.truncate(topn);
        best
    }

    /// Rows nearest (by cosine) to any vector, e.g. an unseen word's fastText vector.
    pub fn nearest_to(&self, v: &[f32], topn: usize) -> Vec<(String, f32)> {
        let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        let q: Vec<f32> = v.iter().map(|x| (*x as f64 / n) as f32).collect();
        let mut all: Vec<(usize, f32)> = (0..self.emb.len())
            // SAFETY: both have dim floats.
            .map(|i| (i, unsafe { dot(q.as_ptr(), self.unit_row(i).as_ptr(), self.emb.dim) }))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(topn);
        self.named(all)
    }

    /// Nearest neighbours of one word.
    pub fn neighbors(&self, word: &str, topn: usize) -> Result<Vec<(String, f32)>> {
        let i = self.lookup(word)?;
        Ok(self.named(self.most_similar(&[i], &[], topn, usize::MAX)))
    }

    /// `b − a + c` (a is to b as c is to ?), by 3CosAdd.
    pub fn analogy(&self, a: &str, b: &str, c: &str, topn: usize) -> Result<Vec<(String, f32)>> {
        let (a, b, c) = (self.lookup(a)?, self.lookup(b)?, self.lookup(c)?);
        Ok(self.named(self.most_similar(&[b, c], &[a], topn, usize::MAX)))
    }

    fn named(&self, v: Vec<(usize, f32)>) -> Vec<(String, f32)> {
        v.into_iter().map(|(i, s)| (self.emb.words[i].clone(), s)).collect()
    }

    /// Upper-cased word → row among the first `restrict` rows, most frequent spelling first.
    fn upper_vocab(&self, restrict: usize) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for i in (0..restrict.min(self.emb.len())).rev() {
            m.insert(self.emb.words[i].to_uppercase(), i);
        }
        m
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Section {
    pub name: String,
    pub correct: usize,
    pub incorrect: usize,
}

impl Section {
    pub fn accuracy(&self) -> f64 {
        let n = self.correct + self.incorrect;
        if n == 0 {
            0.0
        } else {
            self.correct as f64 / n as f64
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AnalogyReport {
    pub sections: Vec<Section>,
    pub total: Section,
    /// Questions skipped because a word is outside the restricted vocabulary.
    pub oov_questions: usize,
    pub questions: usize,
}

/// Score the analogy questions in `text` (`questions-words.txt` layout: `: section` lines, then
/// `a b c d` lines).
pub fn evaluate_analogies(ix: &Index, text: &str, restrict: usize) -> AnalogyReport {
    let vocab = ix.upper_vocab(restrict);
    let mut rep = AnalogyReport { total: Section { name: "Total accuracy".into(), ..Default::default() }, ..Default::default() };
    for line in text.lines() {
        if let Some(name) = line.strip_prefix(": ") {
            rep.sections.push(Section { name: name.trim().to_string(), ..Default::default() });
            continue;
        }
        let words: Vec<String> = line.split_whitespace().map(|w| w.to_uppercase()).collect();
        if words.len() != 4 {
            continue;
        }
        rep.questions += 1;
        if rep.sections.is_empty() {
            rep.sections.push(Section { name: "(no section)".into(), ..Default::default() });
        }
        let ids: Option<Vec<usize>> = words.iter().map(|w| vocab.get(w).copied()).collect();
        let Some(ids) = ids else {
            rep.oov_questions += 1;
            continue;
        };
        let ignore: HashSet<&str> = words[..3].iter().map(String::as_str).collect();
        let mut predicted = None;
        for (i, _) in ix.most_similar(&[ids[1], ids[2]], &[ids[0]], 5, restrict) {
            let p = ix.emb.words[i].to_uppercase();
            if vocab.contains_key(&p) && !ignore.contains(p.as_str()) {
                predicted = Some(p);
                break;
            }
        }
        let sec = rep.sections.last_mut().unwrap();
        if predicted.as_deref() == Some(words[3].as_str()) {
            sec.correct += 1;
            rep.total.correct += 1;
        } else {
            sec.incorrect += 1;
            rep.total.incorrect += 1;
        }
    }
    rep
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PairsReport {
    pub spearman: f64,
    pub pearson: f64,
    pub pairs: usize,
    pub oov_pairs: usize,
}

impl PairsReport {
    pub fn oov_ratio(&self) -> f64 {
        self.oov_pairs as f64 / (self.pairs + self.oov_pairs).max(1) as f64
    }
}

/// Score word pairs (`word1<TAB>word2<TAB>score` lines, `#` comments), as WordSim353 and
/// SimLex-999 are laid out.
pub fn evaluate_pairs(ix: &Index, path: &Path, text: &str, restrict: usize) -> Result<PairsReport> {
    let vocab = ix.upper_vocab(restrict);
    let (mut gold, mut model) = (Vec::new(), Vec::new());
    let mut oov = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split('\t').collect();
        let score = parts.get(2).and_then(|s| s.trim().parse::<f64>().ok());
        let (Some(score), true) = (score, parts.len() >= 3) else {
            return Err(Error::format(path, format!("line {}: expected `word1<TAB>word2<TAB>score`", n + 1)));
        };
        match (vocab.get(&parts[0].to_uppercase()), vocab.get(&parts[1].to_uppercase())) {
            (Some(&a), Some(&b)) => {
                gold.push(score);
                model.push(ix.cos(a, b) as f64);
            }
            _ => oov += 1,
        }
    }
    Ok(PairsReport { spearman: spearman(&gold, &model), pearson: pearson(&gold, &model), pairs: gold.len(), oov_pairs: oov })
}

/// Ranks from 1, ties sharing their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[order[k]] = avg;
        }
        i = j + 1;
    }
    r
}

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    if x.len() < 2 {
        return f64::NAN;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

/// Spearman's ρ: Pearson's r of the ranks (as scipy computes it, ties averaged).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(rows: &[(&str, [f32; 2])]) -> Embeddings {
        Embeddings::new(rows.iter().map(|r| r.0.to_string()).collect(), 2, rows.iter().flat_map(|r| r.1).collect())
    }

    #[test]
    fn eval_spearman_matches_hand_computed() {
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        // x = 1..5, y = [2, 1, 4, 3, 5]: Σd² = 4, ρ = 1 − 6·4/(5·24) = 0.8.
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 4.0, 3.0, 5.0]) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn eval_analogy_is_3cosadd_excluding_the_question() {
        // king − man + woman lands on queen; "king" itself is closer but excluded.
        let e = emb(&[("king", [1.0, 1.0]), ("man", [1.0, 0.0]), ("woman", [0.0, 1.0]), ("queen", [0.2, 1.0]), ("apple", [-1.0, -0.2])]);
        let ix = Index::new(&e);
        assert_eq!(ix.analogy("man", "king", "woman", 1).unwrap()[0].0, "queen");
        let n = ix.neighbors("king", 4).unwrap();
        assert_eq!(n.len(), 4);
        assert!(n.iter().all(|x| x.0 != "king") && n[3].0 == "apple");
        assert!((ix.similarity("man", "woman").unwrap()).abs() < 1e-6);
        assert!(ix.similarity("man", "nope").unwrap_err().to_string().contains("\"nope\" is not in the vocabulary"));
    }

    #[test]
    fn eval_analogy_sections_oov_and_restriction() {
        let e = emb(&[("king", [1.0, 1.0]), ("man", [1.0, 0.0]), ("woman", [0.0, 1.0]), ("Queen", [0.2, 1.0]), ("prince", [1.0, 0.9])]);
        let ix = Index::new(&e);
        let q = ": royal\nman king woman queen\nMAN KING WOMAN PRINCE\nman king unicorn queen\n: other\nwoman man king queen\n";
        let r = evaluate_analogies(&ix, q, 30_000);
        assert_eq!(r.questions, 4);
        assert_eq!(r.oov_questions, 1);
        assert_eq!((r.sections[0].correct, r.sections[0].incorrect), (1, 1));
        assert_eq!(r.sections[1].name, "other");
        assert_eq!((r.total.correct, r.total.incorrect), (1, 2));
        // Restricting to the 4 most frequent words makes "prince" unknown: that question is skipped.
        let r = evaluate_analogies(&ix, q, 4);
        assert_eq!(r.oov_questions, 2);
    }

    #[test]
    fn eval_pairs_counts_oov_and_ranks() {
        let e = emb(&[("a", [1.0, 0.0]), ("b", [0.9, 0.1]), ("c", [0.0, 1.0]), ("d", [-1.0, 0.1])]);
        let ix = Index::new(&e);
        let text = "# comment\na\tb\t9\na\tc\t5\nA\td\t1\na\tzzz\t3\n";
        let r = evaluate_pairs(&ix, Path::new("p.tsv"), text, 300_000).unwrap();
        assert_eq!((r.pairs, r.oov_pairs), (3, 1));
        assert!((r.spearman - 1.0).abs() < 1e-12);
        assert!((r.oov_ratio() - 0.25).abs() < 1e-12);
        assert!(evaluate_pairs(&ix, Path::new("p.tsv"), "a b\n", 10).unwrap_err().to_string().contains("line 1"));
    }
}
