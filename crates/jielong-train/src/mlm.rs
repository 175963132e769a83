//! The masked-LM data collator (BERT): from a window of token ids, the model's input and its
//! targets. Each token that is not special is chosen with probability `train.mlm_probability`
//! (0.15); a chosen token is replaced by `[MASK]` 80% of the time, by a random token 10% of
//! the time and kept 10% of the time, and its original id becomes a target; every other
//! position's target is `IGNORE` (not predicted). With `train.whole_word_mask`, the choice is
//! made per word and every token of a chosen word is predicted: a word is a WordPiece token
//! and the `##` pieces after it, and a run of Chinese characters is cut into words by
//! jieba (`jielong_text::segment`), so 巴黎 is masked whole rather than 巴 alone.

use jielong_core::{Error, Result, Rng};
use jielong_models::IGNORE;
use jielong_tokenizer::Tokenizer;

/// Whether a piece is one Han character (BERT's tokenizers split CJK text into characters).
fn han_char(piece: &str) -> Option<char> {
    let mut cs = piece.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) if jielong_text::segment::is_han(c) => Some(c),
        _ => None,
    }
}

pub struct MlmMasker {
    mask_id: u32,
    /// Ids a random replacement is drawn from: 0..vocab.
    vocab: u32,
    /// Per id: never chosen (special tokens: [PAD], [CLS], [SEP], [MASK], the end of text).
    special: Vec<bool>,
    /// Per id: a `##` continuation piece.
    continuation: Vec<bool>,
    /// Per id: the Han character it is, if it is one.
    han: Vec<Option<char>>,
    pub probability: f64,
    pub whole_word: bool,
}

impl MlmMasker {
    /// The collator for `tk` (which must have a `[MASK]` token).
    pub fn new(tk: &Tokenizer, probability: f64, whole_word: bool) -> Result<Self> {
        if !(probability > 0.0 && probability < 1.0) {
            return Err(Error::input(format!("train.mlm_probability = {probability} must be between 0 and 1")));
        }
        let inner = tk.inner();
        let mask_id = ["[MASK]", "<mask>"].iter().find_map(|m| inner.token_to_id(m)).ok_or_else(|| {
            Error::input("train.objective = \"mlm\" needs a tokenizer with a [MASK] token: train one with `jielong tokenizer train --kind wordpiece` and prepare the data with it")
        })?;
        let n = tk.vocab_size();
        let added: std::collections::HashSet<u32> = inner.get_added_vocabulary().get_vocab().values().copied().collect();
        let mut special = vec![false; n];
        let mut continuation = vec![false; n];
        let mut han = vec![None; n];
        for id in 0..n as u32 {
            let piece = inner.id_to_token(id).unwrap_or_default();
            special[id as usize] = added.contains(&id) || matches!(piece.as_str(), "[PAD]" | "[CLS]" | "[SEP]" | "[MASK]" | "[UNK]");
            continuation[id as usize] = piece.starts_with("##");
            han[id as usize] = han_char(&piece);
        }
        Ok(Self { mask_id, vocab: n as u32, special, continuation, han, probability, whole_word })
    }

    /// A collator from explicit tables, for tests: ids < `n_special` are special.
    pub fn for_test(vocab: u32, n_special: u32, mask_id: u32, probability: f64) -> Self {
        let n = vocab as usize;
        Self {
            mask_id,
            vocab,
            special: (0..vocab).map(|i| i < n_special).collect(),
            continuation: vec![false; n],
            han: vec![None; n],
            probability,
            whole_word: false,
        }
    }

    /// The words of `ids` as ranges of positions (see the module comment).
    pub fn words(&self, ids: &[u32]) -> Vec<std::ops::Range<usize>> {
        let mut out: Vec<std::ops::Range<usize>> = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let id = ids[i] as usize;
            if let Some(_c) = self.han.get(id).copied().flatten() {
                // A run of Han characters, cut into jieba words.
                let start = i;
                let mut text = String::new();
                while i < ids.len() {
                    match self.han.get(ids[i] as usize).copied().flatten() {
                        Some(c) => text.push(c),
                        None => break,
                    }
                    i += 1;
                }
                let mut at = start;
                for w in jielong_text::segment::word_tokens(&text) {
                    let n = w.chars().count();
                    out.push(at..at + n);
                    at += n;
                }
                debug_assert_eq!(at, i);
                continue;
            }
            if self.continuation.get(id).copied().unwrap_or(false) && !out.is_empty() && out.last().is_some_and(|r| r.end == i) && !self.special[ids[i - 1] as usize] {
                out.last_mut().expect("checked").end = i + 1;
            } else {
                out.push(i..i + 1);
            }
            i += 1;
        }
        out
    }

    /// Mask `rows` windows of `t` ids each (row-major): (inputs, targets), both rows × t.
    /// At least one position of the batch is chosen (the loss needs a target).
    pub fn mask(&self, ids: &[u32], rows: usize, t: usize, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
        let mut inputs = ids.to_vec();
        let mut targets = vec![IGNORE; ids.len()];
        let p = self.probability;
        let mut chosen = Vec::new();
        for r in 0..rows {
            let row = &ids[r * t..(r + 1) * t];
            if self.whole_word {
                for w in self.words(row) {
                    if row[w.clone()].iter().all(|&id| !self.is_special(id)) && rng.next_f64() < p {
                        chosen.extend(w.map(|j| r * t + j));
                    }
                }
            } else {
                for (j, &id) in row.iter().enumerate() {
                    if !self.is_special(id) && rng.next_f64() < p {
                        chosen.push(r * t + j);
                    }
                }
            }
        }
        if chosen.is_empty() {
            let candidates: Vec<usize> = (0..ids.len()).filter(|&i| !self.is_special(ids[i])).collect();
            let pick = if candidates.is_empty() { rng.below(ids.len() as u64) as usize } else { candidates[rng.below(candidates.len() as u64) as usize] };
            chosen.push(pick);
        }
        for i in chosen {
            targets[i] = ids[i];
            let u = rng.next_f64();
            if u < 0.8 {
                inputs[i] = self.mask_id;
            } else if u < 0.9 {
                inputs[i] = rng.below(self.vocab as u64) as u32;
            }
        }
        (inputs, targets)
    }

    fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within `z` standard deviations of a binomial(n, p) mean.
    fn within(count: usize, n: usize, p: f64, z: f64) -> bool {
        let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        (count as f64 - mean).abs() <= z * sd
    }

    #[test]
    fn mlm_masking_statistics_are_within_binomial_bounds() {
        // 200 windows of 512 tokens, ids 0..5 special (never chosen), vocabulary 1000.
        let (rows, t, vocab, mask_id) = (200, 512, 1000u32, 4u32);
        let m = MlmMasker::for_test(vocab, 5, mask_id, 0.15);
        let mut g = Rng::new(9);
        let ids: Vec<u32> = (0..rows * t).map(|_| g.below(vocab as u64) as u32).collect();
        let (inputs, targets) = m.mask(&ids, rows, t, &mut Rng::new(1));
        let eligible = ids.iter().filter(|&&i| i >= 5).count();
        let chosen: Vec<usize> = (0..ids.len()).filter(|&i| targets[i] != IGNORE).collect();
        assert!(chosen.iter().all(|&i| ids[i] >= 5 && targets[i] == ids[i]), "a special token was chosen, or a target is not the original");
        assert!((0..ids.len()).all(|i| targets[i] != IGNORE || inputs[i] == ids[i]), "an unchosen token changed");
        // z = 5: a correct collator fails about once in 3.5 million runs; 14% or 16% fails always.
        assert!(within(chosen.len(), eligible, 0.15, 5.0), "{} of {eligible} chosen", chosen.len());
        let masked = chosen.iter().filter(|&&i| inputs[i] == mask_id).count();
        let kept = chosen.iter().filter(|&&i| inputs[i] == ids[i]).count();
        // A random replacement can draw the original id (p = 1/vocab) or the mask id.
        let random = chosen.len() - masked - kept;
        let n = chosen.len();
        assert!(within(masked, n, 0.8 + 0.1 / vocab as f64, 5.0), "{masked} of {n} masked");
        assert!(within(kept, n, 0.1 + 0.1 / vocab as f64, 5.0), "{kept} of {n} kept");
        assert!(within(random, n, 0.1 * (1.0 - 2.0 / vocab as f64), 5.0), "{random} of {n} random");
    }

    #[test]
    fn mlm_whole_words_are_chosen_whole() {
        let dir = tempfile::tempdir().unwrap();
        let text = "巴黎是法国的首都。北京是中国的首都。playing replayed unbelievable tokenization\n".repeat(30);
        let tk = Tokenizer::train(jielong_tokenizer::TokenizerKind::Wordpiece, 120, std::iter::once(text.as_str())).unwrap();
        tk.save(dir.path()).unwrap();
        let m = MlmMasker::new(&tk, 0.3, true).unwrap();
        let ids = tk.encode("巴黎是法国的首都 unbelievable").unwrap();
        let words: Vec<String> = m.words(&ids).into_iter().map(|w| tk.decode(&ids[w]).unwrap().replace(' ', "")).collect();
        assert!(words.contains(&"巴黎".to_string()) && words.contains(&"首都".to_string()), "{words:?}");
        assert!(words.contains(&"unbelievable".to_string()), "{words:?}");
        // Every word is chosen whole or not at all.
        let row: Vec<u32> = ids.iter().copied().cycle().take(ids.len() * 50).collect();
        let (_, targets) = m.mask(&row, 50, ids.len(), &mut Rng::new(3));
        for r in 0..50 {
            for w in m.words(&ids) {
                let hit: Vec<bool> = w.map(|j| targets[r * ids.len() + j] != IGNORE).collect();
                assert!(hit.iter().all(|&h| h == hit[0]), "a word was split: {hit:?}");
            }
        }
        assert!(MlmMasker::new(&Tokenizer::train(jielong_tokenizer::TokenizerKind::Char, 50, std::iter::once("abc")).unwrap(), 0.15, false).is_err());
    }
}
