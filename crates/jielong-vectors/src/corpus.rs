//! A corpus as word ids: every line of every document is one sentence (as word2vec.c's
//! newline and gensim's `LineSentence` make it), cut into words by `jielong_text::segment`
//! (Unicode word boundaries, jieba for Chinese; or characters), optionally lowercased. Words
//! below the minimum count are dropped before windows are formed, as both reference tools do.
//! Sentences longer than 10,000 words are split, as gensim's batches split them.

use crate::vocab::Vocab;
use jielong_core::{Error, Result};
use jielong_text::segment::{self, Units};
use std::collections::HashMap;

/// gensim's `MAX_WORDS_IN_BATCH`: the longest sentence a trainer sees.
pub const MAX_SENTENCE: usize = 10_000;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct CorpusOptions {
    pub units: Units,
    pub lowercase: bool,
    pub min_count: u64,
}

/// Sentences of word ids, stored flat: sentence `i` is `ids[starts[i]..starts[i + 1]]`.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub vocab: Vocab,
    pub ids: Vec<u32>,
    pub starts: Vec<usize>,
    /// Every word read, including those below the minimum count.
    pub raw_words: u64,
}

impl Corpus {
    pub fn n_sentences(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn sentence(&self, i: usize) -> &[u32] {
        &self.ids[self.starts[i]..self.starts[i + 1]]
    }

    /// Cut texts into sentences of ids. Fails (an input error) when there are no words at all
    /// or when the minimum count leaves none.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>, opts: &CorpusOptions) -> Result<Self> {
        // One pass: provisional ids in order of first appearance, then remap.
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut words: Vec<String> = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut ids: Vec<u32> = Vec::new();
        let mut starts: Vec<usize> = vec![0];
        let mut lower = String::new();
        for text in texts {
            for line in text.lines() {
                let toks = match opts.units {
                    Units::Words => segment::words(line),
                    Units::Chars => segment::chars(line),
                };
                for t in toks {
                    let key: &str = if opts.lowercase {
                        lower.clear();
                        lower.extend(t.chars().flat_map(char::to_lowercase));
                        &lower
                    } else {
                        t
                    };
                    let id = match index.get(key) {
                        Some(&id) => id,
                        None => {
                            let id = words.len() as u32;
                            index.insert(key.to_string(), id);
                            words.push(key.to_string());
                            counts.push(0);
                            id
                        }
                    };
                    counts[id as usize] += 1;
                    ids.push(id);
                }
                if *starts.last().unwrap() != ids.len() {
                    starts.push(ids.len());
                }
            }
        }
        let raw_words = ids.len() as u64;
        if raw_words == 0 {
            return Err(Error::input("the corpus is empty: no words found in the input (pass text files with some words in them)"));
        }
        let entries: Vec<(String, u64, usize)> =
            words.into_iter().zip(counts.iter().copied()).enumerate().map(|(i, (w, c))| (w, c, i)).collect();
        let provisional: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
        let vocab = Vocab::from_counts(entries, opts.min_count);
        if vocab.is_empty() {
            let most = counts.iter().max().copied().unwrap_or(0);
            return Err(Error::input(format!(
                "--min-count {} leaves no words (the most frequent word occurs {most} times); lower --min-count or give more text",
                opts.min_count
            )));
        }
        let remap: Vec<Option<u32>> = provisional.iter().map(|w| vocab.id(w)).collect();
        Ok(Self::remapped(vocab, &ids, &starts, &remap, raw_words))
    }

    fn remapped(vocab: Vocab, ids: &[u32], starts: &[usize], remap: &[Option<u32>], raw_words: u64) -> Self {
        let mut out = Corpus { vocab, ids: Vec::with_capacity(ids.len()), starts: vec![0], raw_words };
        for w in starts.windows(2) {
            let mut n = 0;
            for &id in &ids[w[0]..w[1]] {
                if let Some(new) = remap[id as usize] {
                    out.ids.push(new);
                    n += 1;
                    if n == MAX_SENTENCE {
                        out.starts.push(out.ids.len());
                        n = 0;
                    }
                }
            }
            if *out.starts.last().unwrap() != out.ids.len() {
                out.starts.push(out.ids.len());
            }
        }
        out
    }

    /// The kept words of each sentence as text, one sentence a line (what the trainer saw;
    /// the benchmark feeds this file to gensim so both read the same words).
    pub fn to_lines(&self) -> String {
        let mut s = String::new();
        for i in 0..self.n_sentences() {
            for (k, &id) in self.sentence(i).iter().enumerate() {
                if k > 0 {
                    s.push(' ');
                }
                s.push_str(&self.vocab.words[id as usize]);
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(min_count: u64) -> CorpusOptions {
        CorpusOptions { units: Units::Words, lowercase: true, min_count }
    }

    #[test]
    fn corpus_lines_are_sentences_and_rare_words_drop() {
        let c = Corpus::build(["The cat sat.\nthe dog sat, the end", "\n\nA cat"], &opts(2)).unwrap();
        assert_eq!(c.vocab.words, ["the", "cat", "sat"]);
        assert_eq!(c.raw_words, 10);
        assert_eq!(c.n_sentences(), 3);
        assert_eq!(c.sentence(0), [0, 1, 2]);
        assert_eq!(c.sentence(1), [0, 2, 0]);
        assert_eq!(c.sentence(2), [1]);
        assert_eq!(c.to_lines(), "the cat sat\nthe sat the\ncat\n");
    }

    #[test]
    fn corpus_chinese_is_cut_by_jieba_and_chars() {
        let c = Corpus::build(["我们喜欢自然语言处理"], &opts(1)).unwrap();
        assert!(c.vocab.words.len() >= 3 && c.vocab.words.len() < 10, "{:?}", c.vocab.words);
        let o = CorpusOptions { units: Units::Chars, lowercase: false, min_count: 1 };
        let c = Corpus::build(["我们喜欢我们"], &o).unwrap();
        assert_eq!(c.vocab.words, ["我", "们", "喜", "欢"]);
    }

    #[test]
    fn corpus_empty_or_all_rare_is_an_input_error() {
        let e = Corpus::build([" \n ,.; "], &opts(1)).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("corpus is empty"), "{e}");
        let e = Corpus::build(["one two three"], &opts(5)).unwrap_err();
        assert!(e.to_string().contains("--min-count 5 leaves no words"), "{e}");
    }

    #[test]
    fn corpus_long_lines_split_at_batch_size() {
        let text = "w ".repeat(MAX_SENTENCE + 5);
        let c = Corpus::build([text.as_str()], &opts(1)).unwrap();
        assert_eq!(c.n_sentences(), 2);
        assert_eq!(c.sentence(1).len(), 5);
    }
}
