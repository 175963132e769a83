//! How repetitive a generated text is: the measures `jielong generate --compare` prints next to
//! each strategy, so the loops of greedy decoding show as numbers, not only as text.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repetition {
    /// Distinct unigrams / all unigrams (1 = no token repeats).
    pub distinct_1: f64,
    /// Distinct bigrams / all bigrams.
    pub distinct_2: f64,
    /// Length in tokens of the longest span that occurs at least twice.
    pub longest_repeat: usize,
    /// Share of 4-grams that already occurred earlier in the text.
    pub repeated_4grams: f64,
}

pub fn distinct_n(tokens: &[u32], n: usize) -> f64 {
    if tokens.len() < n || n == 0 {
        return 0.0;
    }
    let total = tokens.len() + 1 - n;
    let set: HashSet<&[u32]> = tokens.windows(n).collect();
    set.len() as f64 / total as f64
}

/// Longest repeated span (occurrences may overlap), by dynamic programming over suffix pairs.
pub fn longest_repeat(tokens: &[u32]) -> usize {
    let n = tokens.len();
    let mut best = 0;
    // prev[j] = length of the common run ending at (i − 1, j − 1).
    let mut prev = vec![0usize; n + 1];
    for i in 1..=n {
        let mut cur = vec![0usize; n + 1];
        for j in i + 1..=n {
            if tokens[i - 1] == tokens[j - 1] {
                cur[j] = prev[j - 1] + 1;
                best = best.max(cur[j]);
            }
        }
        prev = cur;
    }
    best
}

pub fn repeated_ngram_fraction(tokens: &[u32], n: usize) -> f64 {
    if tokens.len() < n {
        return 0.0;
    }
    let mut seen = HashSet::new();
    let mut repeats = 0;
    for w in tokens.windows(n) {
        if !seen.insert(w) {
            repeats += 1;
        }
    }
    repeats as f64 / (tokens.len() + 1 - n) as f64
}

pub fn measure(tokens: &[u32]) -> Repetition {
    Repetition {
        distinct_1: distinct_n(tokens, 1),
        distinct_2: distinct_n(tokens, 2),
        longest_repeat: longest_repeat(tokens),
        repeated_4grams: repeated_ngram_fraction(tokens, 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_measures_on_hand_checked_sequences() {
        let loop_ = [1, 2, 3, 1, 2, 3, 1, 2, 3];
        let r = measure(&loop_);
        assert!((r.distinct_1 - 3.0 / 9.0).abs() < 1e-12);
        assert!((r.distinct_2 - 3.0 / 8.0).abs() < 1e-12);
        assert_eq!(r.longest_repeat, 6); // 1 2 3 1 2 3 at 0 and at 3
        // 4-grams: 6 in all, the first 3 are new, the other 3 repeat.
        assert!((r.repeated_4grams - 0.5).abs() < 1e-12);
        let fresh = measure(&[1, 2, 3, 4, 5]);
        assert_eq!((fresh.distinct_1, fresh.longest_repeat, fresh.repeated_4grams), (1.0, 0, 0.0));
        assert_eq!(longest_repeat(&[7, 7]), 1);
    }
}
